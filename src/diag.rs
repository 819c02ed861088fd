//! The sidecar's own diagnostic lines (started, draining, a spool it cannot use, …): one JSON object per
//! line on stdout with the shape of the session logs (`timestamp`, `level`, `component`, `event_type`).
//! A leaf: every part may say something about itself without importing the one that wires it.

use serde_json::{json, Value};

/// Prints one structured log line to stdout.
pub fn log_line(level: &str, event_type: &str, fields: Value) {
    let mut v = json!({
        "timestamp": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "level": level, "component": "iskra-ws-sidecar", "event_type": event_type,
    });
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    println!("{v}");
}
