//! The logs' tests: a refused prober's quiet, a close as a JSON line and as an OTLP record.

use super::*;
use crate::events::{ConnectCause, Transport};
use std::time::Duration;

fn attempt() -> EventKind {
    EventKind::ProbeAttempt {
        endpoint: "pulse".into(),
        url: "ws://h:1/".into(),
        attempt: 3,
        transport: Transport::WebSocket,
    }
}

fn rejected(changed: bool) -> EventKind {
    EventKind::ProbeRejected {
        endpoint: "pulse".into(),
        url: "ws://h:1/".into(),
        status: Some(401),
        duration: Duration::ZERO,
        changed,
    }
}

#[test]
fn a_refused_prober_logs_once_per_change_and_its_attempts_not_at_all() {
    let q = Quiet::default();
    let kept: Vec<bool> = [
        attempt(),
        rejected(true),
        attempt(),
        rejected(false),
        attempt(),
        rejected(false),
    ]
    .iter()
    .map(|k| q.keep(k))
    .collect();
    assert_eq!(kept, [true, true, false, false, false, false]);
    // The dashboard goes away: a change, logged, and so are the attempts again.
    let failed = EventKind::ProbeFailed {
        endpoint: "pulse".into(),
        transport: Transport::WebSocket,
        duration: Duration::ZERO,
        cause: ConnectCause::Refused,
        status: None,
    };
    assert!(q.keep(&failed) && q.keep(&attempt()));
}

/// A session's close, as the stdout line and as the OTLP record: the line parses with serde_json
/// (a reason with quotes, a newline and non-ASCII survives), and both carry the same fields.
#[test]
fn a_close_line_parses_back_and_matches_its_otlp_record() {
    use crate::events::{Initiator, SessionInfo};
    use serde_json::{json, Value};
    let info = std::sync::Arc::new(SessionInfo {
        id: 42,
        client: "10.0.0.9:5555".parse().unwrap(),
        path: "/live".into(),
        user_agent: None,
        upstream_name: "primary".into(),
        upstream_host: "127.0.0.1".into(),
        upstream_port: 3001,
    });
    let reason = "bye \"now\"\n∆ \u{1}";
    let ev = Event {
        at: std::time::SystemTime::UNIX_EPOCH + Duration::from_micros(1_765_000_000_000_001),
        session: Some(info),
        kind: EventKind::Close {
            code: 1006,
            upstream_code: 1000,
            reason: reason.into(),
            initiator: Initiator::Client,
        },
    };
    let sem = crate::semantics::describe(&ev.kind, &Default::default());
    let scope = attrs::Scope::new("pulse");
    let ids = Some(([0xab; 16], [1, 2, 3, 4, 5, 6, 7, 0xff]));
    let mut buf = b"left over".to_vec();
    line(&mut buf, &ev, &sem, &scope, ids);
    let text = std::str::from_utf8(&buf).unwrap();
    assert!(
        text.ends_with("}\n") && text.matches('\n').count() == 1,
        "{text}"
    );
    let v: Value = serde_json::from_str(text).expect("the line is JSON");
    let want = json!({
        "timestamp": "2025-12-06T05:46:40.000001Z", "level": "INFO",
        "component": "iskra-ws-sidecar.proxy", "event_type": "other", "iskra.dashboard": "pulse",
        "delta": "connection_closed", "dimension": sem.dimension, "omega": 0.5,
        "lambda": sem.lambda, "iskra.seam.id": sem.seam, "iskra.voice.active": "none",
        "fractal_metadata": {"seam_id": sem.fractal.seam_id, "voice_pain": sem.fractal.voice_pain,
            "voice_chaos": sem.fractal.voice_chaos, "voice_trust": sem.fractal.voice_trust},
        "error.type": "NETWORK_ERROR", "severity": sem.error.unwrap().severity().as_str(),
        "session_id": 42, "trace_id": "ab".repeat(16), "span_id": "01020304050607ff",
        "websocket.close.code": 1006, "websocket.upstream.close.code": 1000,
        "websocket.close.reason": reason, "websocket.close.initiator": "client",
    });
    assert_eq!(v, want);
    // The record: the same event fields as attributes, the ids as bytes.
    let r = record(&ev, &sem, &scope, ids);
    let get = |k: &str| {
        let kv = r.attributes.iter().find(|kv| kv.key == k)?;
        kv.value.clone()?.value
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    assert_eq!(get("websocket.close.code"), Some(V::IntValue(1006)));
    assert_eq!(
        get("websocket.upstream.close.code"),
        Some(V::IntValue(1000))
    );
    assert_eq!(
        get("websocket.close.reason"),
        Some(V::StringValue(reason.into()))
    );
    assert_eq!(
        get("component"),
        Some(V::StringValue("iskra-ws-sidecar.proxy".into()))
    );
    assert_eq!(
        (r.severity_text.as_str(), r.event_name.as_str()),
        ("INFO", "other")
    );
    assert_eq!(
        (r.trace_id, r.span_id),
        (vec![0xab; 16], vec![1, 2, 3, 4, 5, 6, 7, 0xff])
    );
}
