//! The sidecar's own diagnostics (started, draining, a spool it cannot use, a bad `OTEL_*` variable, …):
//! `tracing` events whose target is the module that speaks, written by our layer ([`layer`]) through
//! the one log writer ([`crate::jsonlog`]) in the shape of the session lines (timestamp, level,
//! component, event_type, fields). A leaf: every part may say something about itself without
//! importing the one that wires it.
//!
//! - Which lines are written: `RUST_LOG` when set (the `EnvFilter` syntax: `warn`,
//!   `iskra_ws_sidecar=debug,h2=info`, …), else `websocket.monitoring.log_level` for the sidecar's own
//!   targets (other crates' events are then not written). The process's start, drain and stop
//!   ([`LIFECYCLE`]) are always written: supervisors and scripts wait for them.
//! - Where: stdout, except the exporter's own trouble ([`EXPORTER`]), on stderr.
//! - OTLP: the lines written at WARN or ERROR from the sidecar's own targets are also handed to
//!   [`Export`] (telemetry's bridge to OTLP logs, `telemetry::own_logs`), except the exporter's own
//!   trouble, which must never feed back into what it exports.
//!
//! Session lines do not pass through here: `telemetry::logs` writes them straight with `jsonlog`.

pub mod fields;
pub mod layer;

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Once, RwLock};
use std::time::SystemTime;

use serde_json::Value;

/// The sidecar's own targets start with this (the crate's module path).
pub const CRATE: &str = "iskra_ws_sidecar";
/// The target of the process's start, drain and stop lines, written whatever the filter.
pub const LIFECYCLE: &str = "iskra_ws_sidecar::lifecycle";
/// The exporter's target: its lines go to stderr and are never exported.
pub const EXPORTER: &str = "iskra_ws_sidecar::telemetry::export";

/// One line of the sidecar's own, as handed to [`Export`].
#[derive(Debug)]
pub struct OwnLine<'a> {
    /// When it was said.
    pub at: SystemTime,
    /// Its level.
    pub level: tracing::Level,
    /// `iskra-ws-sidecar` (or the target of another crate's event).
    pub component: &'a str,
    /// What happened (`otel_env`, `outbox_spool_error`, …).
    pub event_type: &'a str,
    /// The other fields, in the order said.
    pub fields: &'a [(String, Value)],
}

/// Where the sidecar's own WARN and ERROR lines go besides stdout (telemetry's OTLP logs).
pub trait Export: Send + Sync {
    /// Takes one line; must not block and must not say anything through `tracing` itself.
    fn export(&self, line: &OwnLine<'_>);
}

static EXPORT: RwLock<Option<Arc<dyn Export>>> = RwLock::new(None);

/// Sets where the sidecar's own WARN and ERROR lines are exported (`None`: nowhere). One process
/// exports its own lines through one sidecar's telemetry: the one `run` starts.
pub fn export_to(to: Option<Arc<dyn Export>>) {
    if let Ok(mut e) = EXPORT.write() {
        *e = to;
    }
}

/// Hands `line` to the exporter set by [`export_to`], if any.
fn export(line: &OwnLine<'_>) {
    if let Ok(e) = EXPORT.read() {
        if let Some(e) = e.as_ref() {
            e.export(line);
        }
    }
}

/// The lowest level written without `RUST_LOG`: 0 DEBUG, 1 INFO, 2 WARN, 3 ERROR.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(1);

/// The rank of a level name (`debug`/`DEBUG` … `error`; `trace` is DEBUG, anything else INFO): 0 DEBUG,
/// 1 INFO, 2 WARN, 3 ERROR. The one reading of `websocket.monitoring.log_level`, for the sidecar's own
/// lines and the sessions' (`telemetry::parse_level`).
pub fn rank(level: &str) -> u8 {
    let is = |name: &str| level.eq_ignore_ascii_case(name);
    if is("trace") || is("debug") {
        0
    } else if is("warn") || is("warning") {
        2
    } else if is("error") {
        3
    } else {
        1
    }
}

/// Sets the lowest level the sidecar's own lines are written at when `RUST_LOG` is not set
/// (`websocket.monitoring.log_level`).
pub fn set_level(level: &str) {
    MIN_LEVEL.store(rank(level), Relaxed);
}

/// Whether a line at `level` passes `websocket.monitoring.log_level`.
pub fn level_enabled(level: &tracing::Level) -> bool {
    rank(level.as_str()) >= MIN_LEVEL.load(Relaxed)
}

/// Installs the process's `tracing` subscriber (our layer, with `RUST_LOG` read now) once; later calls,
/// or a process that already has a global subscriber, change nothing. A `RUST_LOG` that does not parse
/// is said at WARN (`rust_log`) and `websocket.monitoring.log_level` applies.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let (filter, bad) = layer::Filter::from_env();
        let sub = tracing_subscriber::registry().with(layer::layer(filter));
        let _ = tracing::subscriber::set_global_default(sub);
        if let Some(message) = bad {
            tracing::warn!(event_type = "rust_log", message = %message);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_rank_without_case() {
        assert_eq!(
            ["TRACE", "debug", "Info", "WARN", "warning", "error", "?"].map(rank),
            [0, 0, 1, 2, 2, 3, 1]
        );
    }
}
