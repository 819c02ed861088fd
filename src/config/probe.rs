//! What the prober connects to and how it behaves, read from `probe.*` and the seed's
//! `websocket.fallback.{enabled, protocol_downgrade, timeout}`:
//!
//! - the target: `probe.path` (default: the upstream URL's own path and query), `probe.headers`
//!   (name → value) and `probe.header_files` (name → a file holding the value, e.g. a mounted Kubernetes
//!   Secret, read once at start, trailing newline dropped), `probe.subprotocols`, `probe.origin`, and the
//!   texts it sends after each upgrade (`probe.init_messages`) or in answer to one (`probe.replies`);
//! - `probe.gates_readiness`: whether the prober's WebSocket result gates `/ready` (default false);
//! - the seed's switches: fallback off → no failover nor downgrade in the prober; protocol_downgrade off
//!   → failover only; `timeout` → each downgrade transport's check.
//!
//! Header values are secrets: held as [`Masked`], shown as `****` by `config` and in every error.

use serde::Serialize;
use serde_json::Value;

use super::secret::Masked;
use super::Reader;

/// Names the WebSocket handshake owns (or other keys set): not accepted in `probe.headers`.
const OWNED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "origin",
    "content-length",
    "transfer-encoding",
];

/// The prober's target and behaviour.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ProbeSettings {
    /// Path (and query) of the prober's upgrade; None: each URL's own path.
    pub path: Option<String>,
    /// Extra request headers (values are secrets), from `probe.headers` and `probe.header_files`.
    pub headers: Vec<(String, Masked)>,
    /// `Sec-WebSocket-Protocol` values offered, in order.
    pub subprotocols: Vec<String>,
    /// `Origin` sent, if any.
    pub origin: Option<String>,
    /// Texts sent after every upgrade (e.g. graphql-ws `connection_init`, Socket.IO `40`).
    pub init_messages: Vec<String>,
    /// Texts answered with another (e.g. Engine.IO's `2` ping → `3`).
    pub replies: Vec<(String, String)>,
    /// The prober's WebSocket result gates `/ready`.
    pub gates_readiness: bool,
    /// `websocket.fallback.enabled`: failover to backups and downgrades.
    pub fallback: bool,
    /// `websocket.fallback.protocol_downgrade`: try SSE, long-polling, polling in degraded mode.
    pub downgrade: bool,
    /// `websocket.fallback.timeout`: each downgrade transport's check.
    pub transport_timeout: std::time::Duration,
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// A string or a list of strings (from env: comma-separated).
fn list(r: &mut Reader, key: &str) -> Vec<String> {
    match r.raw(key).cloned() {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => {
                    r.bad(&format!("{key}.{i}"), Some(v), "a string");
                    None
                }
            })
            .collect(),
        Some(Value::Number(n)) => vec![n.to_string()],
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        v => {
            r.bad(key, v.as_ref(), "a list of strings");
            Vec::new()
        }
    }
}

/// A map of strings (values as written; numbers become their text).
fn map(r: &mut Reader, key: &str) -> Vec<(String, String)> {
    match r.raw(key).cloned() {
        Some(Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Number(n) => Some((k, n.to_string())),
                v => {
                    r.bad(&format!("{key}.{k}"), Some(&v), "a string");
                    None
                }
            })
            .collect(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        v => {
            r.bad(key, v.as_ref(), "a map of names to strings");
            Vec::new()
        }
    }
}

fn headers(r: &mut Reader) -> Vec<(String, Masked)> {
    let mut out: Vec<(String, Masked)> = Vec::new();
    let inline = map(r, "probe.headers");
    let files = map(r, "probe.header_files");
    for (name, value, key) in inline
        .into_iter()
        .map(|(n, v)| {
            let k = format!("probe.headers.{n}");
            (n, Ok(v), k)
        })
        .chain(files.into_iter().map(|(n, path)| {
            let k = format!("probe.header_files.{n}");
            let read = std::fs::read_to_string(&path)
                .map(|t| t.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| (path, e));
            (n, read, k)
        }))
    {
        let lower = name.to_ascii_lowercase();
        if !is_token(&name) || OWNED.contains(&lower.as_str()) {
            let expected = format!(
                "a header name other than {} (set probe.subprotocols / probe.origin for those)",
                OWNED.join(", ")
            );
            r.bad(&key, Some(&Value::String(name.clone())), expected);
            continue;
        }
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            let expected = "each header once, in probe.headers or probe.header_files".to_string();
            r.bad(&key, Some(&Value::String(name.clone())), expected);
            continue;
        }
        match value {
            Ok(v) if is_header_value(&v) => out.push((name, Masked::new(v))),
            Ok(_) => r.bad(
                &key,
                Some(&Value::String("****".into())),
                "a header value of visible ASCII characters, spaces and tabs",
            ),
            Err((path, e)) => r.bad(
                &key,
                Some(&Value::String(path)),
                format!("a readable file holding the header's value ({e})"),
            ),
        }
    }
    out
}

/// Reads the prober's settings (every problem is recorded in `r`).
pub(super) fn read(r: &mut Reader) -> ProbeSettings {
    let path = r.text("probe.path").unwrap_or_default();
    let path = if path.is_empty() {
        None
    } else if path.starts_with('/') {
        Some(path)
    } else {
        let v = Value::String(path);
        r.bad(
            "probe.path",
            Some(&v),
            "a path starting with / (with a query if the server needs one), or empty for the upstream URL's path",
        );
        None
    };
    let subprotocols = list(r, "probe.subprotocols");
    for (i, p) in subprotocols.iter().enumerate() {
        if !is_token(p) {
            let v = Value::String(p.clone());
            r.bad(
                &format!("probe.subprotocols.{i}"),
                Some(&v),
                "a subprotocol name (an HTTP token: no spaces or commas)",
            );
        }
    }
    let origin = r.text("probe.origin").unwrap_or_default();
    if !is_header_value(&origin) {
        let v = Value::String(origin.clone());
        r.bad(
            "probe.origin",
            Some(&v),
            "an origin like https://dashboard.example",
        );
    }
    let fb = "websocket.fallback";
    ProbeSettings {
        path,
        headers: headers(r),
        subprotocols,
        origin: Some(origin).filter(|o| !o.is_empty()),
        init_messages: list(r, "probe.init_messages"),
        replies: map(r, "probe.replies"),
        gates_readiness: r.boolean("probe.gates_readiness"),
        fallback: r.boolean(&format!("{fb}.enabled")),
        downgrade: r.boolean(&format!("{fb}.protocol_downgrade")),
        transport_timeout: r.millis(&format!("{fb}.timeout"), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(probe: Value) -> Result<ProbeSettings, Vec<(String, String, String)>> {
        let mut tree = super::super::defaults();
        for (k, v) in probe.as_object().unwrap() {
            tree["probe"][k] = v.clone();
        }
        Reader::read_all(&tree, read)
    }

    #[test]
    fn defaults_probe_the_upstream_path_with_nothing_added() {
        let s = load(json!({})).unwrap();
        assert_eq!(s.path, None);
        assert!(s.headers.is_empty() && s.subprotocols.is_empty() && s.origin.is_none());
        assert!(!s.gates_readiness && s.fallback && s.downgrade);
        assert_eq!(s.transport_timeout, std::time::Duration::from_secs(30));
    }

    #[test]
    fn headers_come_inline_or_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cookie");
        std::fs::write(&f, "session=abc123secret\n").unwrap();
        let s = load(json!({"headers": {"Authorization": "Bearer tok-123secret"},
                            "header_files": {"Cookie": f}, "subprotocols": "graphql-transport-ws, x"}))
        .unwrap();
        let h: Vec<(&str, &str)> = s
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.expose()))
            .collect();
        assert_eq!(
            h,
            [
                ("Authorization", "Bearer tok-123secret"),
                ("Cookie", "session=abc123secret")
            ]
        );
        assert_eq!(s.subprotocols, ["graphql-transport-ws", "x"]);
        let shown = format!("{s:?} {}", serde_json::to_string(&s).unwrap());
        assert!(!shown.contains("123secret"), "{shown}");
    }

    #[test]
    fn mistakes_name_the_key_and_never_the_value() {
        let e = load(json!({"headers": {"Host": "x", "Authorization": "bad\u{7f}secret"},
                            "header_files": {"Cookie": "/nonexistent/cookie"}, "path": "socket.io"}))
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            keys,
            [
                "probe.path",
                "probe.headers.Authorization",
                "probe.headers.Host",
                "probe.header_files.Cookie"
            ]
        );
        assert!(!format!("{e:?}").contains("bad\u{7f}secret"));
        assert!(e[3].2.contains("readable file"));
    }
}
