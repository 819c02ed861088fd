//! The span builder's tests: scripted sessions encoded and decoded with the official definitions.

use super::*;
use crate::events::{Event, EventKind, Initiator, SessionInfo, SessionTotals};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    let kv = s.attributes.iter().find(|kv| kv.key == key)?;
    kv.value.as_ref()?.value.as_ref()
}

/// A scripted session through the encoder and the request wrapper, decoded with the official
/// definitions: four spans, one trace, children under the session span, the attributes the seed
/// asks for, and the resource and scope around them.
/// A session's events: connect 0–1 ms, handshake done at 2 ms, close 4001 at 9 ms, end at 10 ms.
fn scripted_session(t0: SystemTime) -> Vec<Event> {
    let info = Arc::new(SessionInfo {
        id: 7,
        client: "10.0.0.9:5555".parse().unwrap(),
        path: "/live".into(),
        user_agent: Some("ua/1".into()),
        upstream_name: "primary".into(),
        upstream_host: "127.0.0.1".into(),
        upstream_port: 3001,
    });
    let ev = |ms: u64, kind: EventKind| Event {
        at: t0 + Duration::from_millis(ms),
        session: Some(info.clone()),
        kind,
    };
    let d = Duration::from_millis(1);
    let script = [
        ev(0, EventKind::UpstreamConnectStarted),
        ev(1, EventKind::UpstreamConnected { duration: d }),
        ev(
            2,
            EventKind::HandshakeCompleted {
                duration: d,
                subprotocol: Some("iskra.v1".into()),
                extensions: None,
            },
        ),
        ev(
            9,
            EventKind::Close {
                code: 4001,
                upstream_code: 4001,
                reason: "bye".into(),
                initiator: Initiator::Client,
            },
        ),
        ev(
            10,
            EventKind::SessionEnded {
                duration: d,
                totals: SessionTotals {
                    messages_in: 3,
                    ..Default::default()
                },
                code: 4001,
                upstream_code: 4001,
                initiator: Initiator::Client,
            },
        ),
    ];
    script.to_vec()
}

/// Feeds `events` to `b` and decodes what it wrote as an OTLP request, checking the resource.
fn decode(b: &mut SpanBuilder, events: &[Event]) -> (Vec<Span>, u64) {
    let mut out = Encoded::default();
    for e in events {
        let sem = crate::semantics::describe(&e.kind, &Default::default());
        b.on_event(e, &sem, &mut out);
    }
    assert_eq!(b.open_sessions(), 0);
    let resource = opentelemetry_proto::tonic::resource::v1::Resource {
        attributes: vec![crate::telemetry::attrs::s(
            crate::telemetry::names::resource::SERVICE_NAME,
            "iskra-ws-sidecar",
        )],
        ..Default::default()
    }
    .encode_to_vec();
    let scope = crate::telemetry::export::scope().encode_to_vec();
    let req = crate::telemetry::export::trace_request(&resource, &scope, &out.buf);
    let req = ExportTraceServiceRequest::decode(req.as_slice()).expect("decodes");
    let rs = &req.resource_spans[0];
    assert_eq!(rs.resource.as_ref().unwrap().encode_to_vec(), resource);
    (rs.scope_spans[0].spans.clone(), out.count)
}

/// With `telemetry.step_spans`: four spans, one trace, children under the session span, the
/// attributes the seed asks for, and the resource and scope around them.
#[test]
fn a_session_decodes_as_four_spans_of_one_trace_with_step_spans() {
    let t0 = SystemTime::now();
    let mut b = SpanBuilder::new("pulse").step_spans(true);
    let (spans, count) = decode(&mut b, &scripted_session(t0));
    assert_eq!(count, 4);
    let spans = &spans;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ws.upstream.connect",
            "ws.handshake",
            "ws.close",
            "ws.session"
        ]
    );
    let session = &spans[3];
    assert!(session.parent_span_id.is_empty());
    for child in &spans[..3] {
        assert_eq!(child.trace_id, session.trace_id);
        assert_eq!(child.parent_span_id, session.span_id);
    }
    assert_eq!(session.kind, SpanKind::Server as i32);
    assert_eq!(
        session.end_time_unix_nano - session.start_time_unix_nano,
        10_000_000
    );
    assert_eq!(
        attr(session, "websocket.close.code"),
        Some(&Value::IntValue(4001))
    );
    assert_eq!(
        attr(session, "websocket.subprotocol"),
        Some(&Value::StringValue("iskra.v1".into()))
    );
    assert_eq!(
        attr(session, "websocket.messages.received"),
        Some(&Value::IntValue(3))
    );
    assert_eq!(
        attr(session, "iskra.dashboard"),
        Some(&Value::StringValue("pulse".into()))
    );
    assert!(matches!(
        attr(session, "iskra.omega"),
        Some(Value::DoubleValue(_))
    ));
    assert_eq!(session.status.as_ref().map(|s| s.code), Some(0));
}

#[test]
fn handshakes_without_an_outcome_are_ended_by_the_backstop_and_live_sessions_are_not() {
    let info = |id| {
        Arc::new(SessionInfo {
            id,
            client: "10.0.0.9:5555".parse().unwrap(),
            path: "/".into(),
            user_agent: None,
            upstream_name: "primary".into(),
            upstream_host: "127.0.0.1".into(),
            upstream_port: 3001,
        })
    };
    let t0 = SystemTime::now();
    let head = EventKind::RequestHead {
        method: "GET".into(),
        path: "/".into(),
        upgrade: true,
    };
    let done = EventKind::HandshakeCompleted {
        duration: Duration::ZERO,
        subprotocol: None,
        extensions: None,
    };
    let mut b = SpanBuilder::new("pulse");
    let mut out = Encoded::default();
    for (id, kind) in [(1, head.clone()), (2, head), (2, done)] {
        let ev = Event {
            at: t0,
            session: Some(info(id)),
            kind,
        };
        let sem = crate::semantics::describe(&ev.kind, &Default::default());
        b.on_event(&ev, &sem, &mut out);
    }
    let age = Duration::from_secs(15);
    assert_eq!(b.expire(nanos(t0 + age / 2), age, &mut out), 0);
    assert_eq!(b.expire(nanos(t0 + age * 2), age, &mut out), 1);
    assert_eq!(b.open_sessions(), 1, "the live session stays");
}

/// By default: one `ws.session` span per session, its steps as events at their start with their
/// durations and Δ/Ω (what Tempo shows as the session's timeline).
#[test]
fn by_default_a_session_is_one_span_with_its_steps_as_events() {
    let t0 = SystemTime::now();
    let mut b = SpanBuilder::new("pulse");
    let (spans, count) = decode(&mut b, &scripted_session(t0));
    assert_eq!(count, 1);
    let session = &spans[0];
    assert_eq!(session.name, "ws.session");
    assert_eq!(
        attr(session, "websocket.close.code"),
        Some(&Value::IntValue(4001))
    );
    let start = session.start_time_unix_nano;
    let ms = |e: &opentelemetry_proto::tonic::trace::v1::span::Event, k: &str| {
        let kv = e.attributes.iter().find(|kv| kv.key == k);
        kv.and_then(|kv| kv.value.clone()?.value)
    };
    let got: Vec<(&str, u64, Option<Value>)> = session
        .events
        .iter()
        .map(|e| {
            let d = ms(e, "websocket.step.duration_ms");
            (e.name.as_str(), (e.time_unix_nano - start) / 1_000_000, d)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("ws.upstream.connect", 0, Some(Value::DoubleValue(1.0))),
            ("ws.handshake", 0, Some(Value::DoubleValue(2.0))),
            ("ws.close", 9, Some(Value::DoubleValue(1.0))),
        ]
    );
    let hs = &session.events[1];
    assert_eq!(
        (ms(hs, "iskra.delta"), ms(hs, "iskra.omega")),
        (
            Some(Value::StringValue("connection_established".into())),
            Some(Value::DoubleValue(0.9))
        )
    );
    assert_eq!(
        ms(hs, "http.response.status_code"),
        Some(Value::IntValue(101))
    );
    assert_eq!(
        ms(&session.events[2], "websocket.close.code"),
        Some(Value::IntValue(4001))
    );
}
