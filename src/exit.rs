//! The process exit codes every command shares (sysexits.h where one fits): the one place they are
//! spelled, below everything that returns one.

/// Success.
pub const OK: u8 = 0;
/// A check, scenario or send failed.
pub const FAILURE: u8 = 1;
/// A bad configuration or usage (EX_USAGE).
pub const CONFIG: u8 = 64;
/// An address cannot be bound (EX_UNAVAILABLE).
pub const BIND: u8 = 69;
