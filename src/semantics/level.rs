//! Log levels: the seed's Ω → level mapping, and the level the sidecar actually logs an event at.
//!
//! The seed maps confidence to level (Ω ≥ 0.9 ERROR, ≥ 0.7 WARN, ≥ 0.5 INFO, else DEBUG). Ω is how
//! *sure* the seed is about an event, not how *bad* it is, so used alone it logs a healthy
//! `heartbeat_success` (Ω 0.95) or `connection_established` (Ω 0.9) at ERROR. The sidecar therefore
//! uses the seed's mapping only for trouble:
//! - an event that carries an error class, or whose voice answers trouble ([`Voice::is_alert`]), logs
//!   at the seed's level for its Ω, but never below INFO (trouble is never DEBUG);
//! - any other event logs at INFO, or at DEBUG when it is routine and frequent (accepts, request
//!   heads, frames, ping/pong, upstream dials, first probe attempts, and a session's clean open,
//!   close and end: at thousands of sessions per second those lines would cost more than the session,
//!   and its `ws.session` span carries the same ∆DΩΛ).

use super::voices::Voice;

/// A log severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
}

impl LogLevel {
    /// `"DEBUG"`, `"INFO"`, `"WARN"` or `"ERROR"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// The seed's Ω → level thresholds, checked in order: the first whose bound Ω reaches wins.
pub const OMEGA_LEVELS: &[(f64, LogLevel)] = &[
    (0.9, LogLevel::Error),
    (0.7, LogLevel::Warn),
    (0.5, LogLevel::Info),
];

/// The seed's `mapToLogLevel`: ≥ 0.9 ERROR, ≥ 0.7 WARN, ≥ 0.5 INFO, else DEBUG (NaN → DEBUG).
pub fn log_level_for_omega(omega: f64) -> LogLevel {
    OMEGA_LEVELS
        .iter()
        .find(|(bound, _)| omega >= *bound)
        .map_or(LogLevel::Debug, |(_, level)| *level)
}

/// The level the sidecar logs an event at (see the module doc).
pub fn log_level(omega: f64, has_error: bool, voice: Option<Voice>, routine: bool) -> LogLevel {
    if has_error || voice.is_some_and(Voice::is_alert) {
        log_level_for_omega(omega).max(LogLevel::Info)
    } else if routine {
        LogLevel::Debug
    } else {
        LogLevel::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LogLevel::*;

    #[test]
    fn seed_mapping_and_its_boundaries() {
        let cases = [
            (1.0, Error),
            (0.95, Error),
            (0.9, Error),
            (0.899, Warn),
            (0.7, Warn),
            (0.699, Info),
            (0.5, Info),
            (0.499, Debug),
            (0.1, Debug),
            (0.0, Debug),
            (f64::NAN, Debug),
        ];
        for (omega, level) in cases {
            assert_eq!(log_level_for_omega(omega), level, "{omega}");
        }
    }

    #[test]
    fn names() {
        let got = [Debug, Info, Warn, Error].map(LogLevel::as_str);
        assert_eq!(got, ["DEBUG", "INFO", "WARN", "ERROR"]);
    }

    #[test]
    fn successes_do_not_follow_omega() {
        // heartbeat_success, Ω 0.95: the seed's mapping says ERROR
        assert_eq!(log_level_for_omega(0.95), Error);
        assert_eq!(log_level(0.95, false, None, true), Debug);
        // connection_established, Ω 0.9
        assert_eq!(log_level(0.9, false, None, false), Info);
        // reconnection_success, Ω 0.85, celebration is not an alert
        assert_eq!(
            log_level(0.85, false, Some(Voice::Celebration), false),
            Info
        );
    }

    #[test]
    fn trouble_follows_omega() {
        assert_eq!(log_level(0.9, true, Some(Voice::Alarm), false), Error); // protocol_violation
        assert_eq!(log_level(0.8, true, Some(Voice::Mercy), false), Warn); // connection_failed
        assert_eq!(log_level(0.75, true, None, false), Warn); // server_overload
        assert_eq!(log_level(0.7, true, Some(Voice::Curiosity), false), Warn); // heartbeat_timeout
        assert_eq!(log_level(0.6, false, Some(Voice::Courage), false), Info); // fallback_activated
    }

    #[test]
    fn trouble_is_never_debug() {
        assert_eq!(log_level(0.1, false, Some(Voice::Curiosity), false), Info); // missing_heartbeat
        assert_eq!(log_level(0.3, false, Some(Voice::Courage), false), Info); // degraded service
        assert_eq!(log_level(0.5, true, None, true), Info);
    }
}
