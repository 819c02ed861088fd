//! The sidecar's own diagnostic lines (started, draining, a spool it cannot use, …), written by the one
//! log writer (`jsonlog`) with the shape and the level filter of the session logs.
//! A leaf: every part may say something about itself without importing the one that wires it.

use serde_json::Value;

/// Prints one structured log line of the sidecar's own to stdout, through the one log writer
/// ([`crate::jsonlog`]): at or above `websocket.monitoring.log_level`, except the process's start, drain
/// and stop, which are always said.
pub fn log_line(level: &str, event_type: &str, fields: Value) {
    let always = matches!(
        event_type,
        "sidecar_started" | "sidecar_draining" | "sidecar_stopped"
    );
    let out = crate::jsonlog::Stream::Stdout;
    crate::jsonlog::own(out, always, level, "iskra-ws-sidecar", event_type, &fields);
}
