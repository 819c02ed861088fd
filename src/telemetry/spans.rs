//! Lifecycle events → OTLP spans. One `ws.session` span per proxied connection (request head to session
//! end), with `ws.upstream.connect`, `ws.handshake` and `ws.close` children exported as each ends, and a
//! `ws.reconnect.attempt` span per prober attempt. Only the open sessions' small state is held.
//!
//! Status is ERROR only for real failures: an error class from the seed's table (1006, refused or timed
//! out upstream, protocol errors, …), never for a normal 1000/1001 close.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span, Status};

use super::attrs::{self, i, s};
use crate::events::{Event, EventKind, SessionInfo};
use crate::semantics::{self, Context, ErrorClass};

/// Nanoseconds since the epoch.
pub fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A new random trace id.
pub fn trace_id() -> [u8; 16] {
    rand::random()
}

/// A new random span id.
pub fn span_id() -> [u8; 8] {
    rand::random()
}

#[derive(Debug, Default)]
struct Open {
    trace: [u8; 16],
    span: [u8; 8],
    start: u64,
    info: Option<std::sync::Arc<SessionInfo>>,
    /// Attributes learned along the way (subprotocol, protocol error rule).
    attrs: Vec<KeyValue>,
    connect_start: Option<u64>,
    close: Option<(u64, Vec<KeyValue>)>,
    error: Option<ErrorClass>,
    last_kind: Option<EventKind>,
}

/// Builds spans from events; holds only open sessions.
pub struct SpanBuilder {
    dashboard: String,
    open: HashMap<u64, Open>,
    probes: HashMap<String, (u64, [u8; 16], [u8; 8], u32)>,
}

/// Trace and span ids of a session, for log correlation.
pub type Ids = Option<([u8; 16], [u8; 8])>;

fn base_attrs(info: &SessionInfo) -> Vec<KeyValue> {
    let mut v = vec![
        s("url.path", info.path.clone()),
        s("url.scheme", "ws"),
        s("server.address", info.upstream_host.clone()),
        i("server.port", info.upstream_port as i64),
        s("client.address", info.client.ip().to_string()),
        s("network.protocol.name", "websocket"),
        s("http.request.method", "GET"),
        s("websocket.upstream.name", info.upstream_name.clone()),
    ];
    if let Some(ua) = &info.user_agent {
        v.push(s("user_agent.original", ua.clone()));
    }
    v
}

/// Where a span sits: its trace, its own id and its parent.
struct Place {
    trace: [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
}

fn span(
    name: &str,
    kind: SpanKind,
    at: Place,
    (start, end): (u64, u64),
    attributes: Vec<KeyValue>,
    error: Option<&str>,
) -> Span {
    let Place { trace, id, parent } = at;
    let status = match error {
        Some(msg) => Status {
            code: StatusCode::Error as i32,
            message: msg.to_string(),
        },
        None => Status {
            code: StatusCode::Unset as i32,
            message: String::new(),
        },
    };
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end.max(start),
        attributes,
        status: Some(status),
        ..Default::default()
    }
}

/// A step span (`ws.upstream.connect`, `ws.handshake`, `ws.close`) under its session's span.
fn child_span(
    o: &Open,
    name: &str,
    kind: SpanKind,
    times: (u64, u64),
    attributes: Vec<KeyValue>,
    error: Option<&str>,
) -> Span {
    let at = Place {
        trace: o.trace,
        id: span_id(),
        parent: Some(o.span),
    };
    span(name, kind, at, times, attributes, error)
}

/// The `ws.session` span of a finished session.
fn session_span(o: &Open, attributes: Vec<KeyValue>, end: u64, error: Option<&str>) -> Span {
    let at = Place {
        trace: o.trace,
        id: o.span,
        parent: None,
    };
    span(
        "ws.session",
        SpanKind::Server,
        at,
        (o.start, end),
        attributes,
        error,
    )
}

impl SpanBuilder {
    /// A builder labelling spans with `dashboard`.
    pub fn new(dashboard: &str) -> Self {
        SpanBuilder {
            dashboard: dashboard.to_string(),
            open: HashMap::new(),
            probes: HashMap::new(),
        }
    }

    /// Open sessions (for tests and self-telemetry).
    pub fn open_sessions(&self) -> usize {
        self.open.len()
    }

    /// Feeds one event; finished spans are pushed to `out`. Returns the session's ids for logs.
    pub fn on_event(&mut self, ev: &Event, out: &mut Vec<Span>) -> Ids {
        let at = nanos(ev.at);
        if let Some(ids) = self.on_probe(ev, at, out) {
            return ids;
        }
        let info = ev.session.as_ref()?;
        let dashboard = self.dashboard.clone();
        let o = self.open.entry(info.id).or_insert_with(|| Open {
            trace: trace_id(),
            span: span_id(),
            start: at,
            ..Default::default()
        });
        o.info = Some(info.clone());
        let ids = Some((o.trace, o.span));
        let sem = || semantics::describe(&ev.kind, &Context::default());
        match &ev.kind {
            EventKind::UpstreamConnectStarted => o.connect_start = Some(at),
            EventKind::UpstreamConnected { .. } | EventKind::UpstreamConnectFailed { .. } => {
                let start = o.connect_start.take().unwrap_or(at);
                let sm = sem();
                let mut a = vec![
                    s("server.address", info.upstream_host.clone()),
                    i("server.port", info.upstream_port as i64),
                    s("websocket.upstream.name", info.upstream_name.clone()),
                ];
                a.extend(attrs::iskra(&sm, &dashboard));
                let err = sm.error.map(|e| e.as_str());
                out.push(child_span(
                    o,
                    "ws.upstream.connect",
                    SpanKind::Client,
                    (start, at),
                    a,
                    err,
                ));
            }
            EventKind::HandshakeCompleted {
                subprotocol,
                extensions,
                ..
            } => {
                let sm = sem();
                let mut a = vec![i("http.response.status_code", 101)];
                if let Some(p) = subprotocol {
                    a.push(s("websocket.subprotocol", p.clone()));
                    o.attrs.push(s("websocket.subprotocol", p.clone()));
                }
                if let Some(x) = extensions {
                    a.push(s("websocket.extensions", x.clone()));
                }
                a.extend(attrs::iskra(&sm, &dashboard));
                out.push(child_span(
                    o,
                    "ws.handshake",
                    SpanKind::Internal,
                    (o.start, at),
                    a,
                    None,
                ));
                o.last_kind = Some(ev.kind.clone());
            }
            EventKind::HandshakeRejected { status, .. } => {
                let sm = sem();
                let mut a = vec![i("http.response.status_code", *status as i64)];
                a.extend(attrs::iskra(&sm, &dashboard));
                let err = sm.error.map(|e| e.as_str());
                out.push(child_span(
                    o,
                    "ws.handshake",
                    SpanKind::Internal,
                    (o.start, at),
                    a,
                    err,
                ));
                let o = self.open.remove(&info.id).unwrap_or_default();
                let mut sa = base_attrs(info);
                sa.extend(o.attrs.iter().cloned());
                sa.push(i("http.response.status_code", *status as i64));
                sa.extend(attrs::iskra(&sm, &dashboard));
                out.push(session_span(&o, sa, at, err));
            }
            EventKind::ProtocolError { rule, .. } => {
                o.error = o.error.or(semantics::classify(&ev.kind));
                o.attrs
                    .push(s("websocket.protocol_error.rule", rule.as_str()));
            }
            EventKind::HeartbeatTimeout { .. } => {
                o.error = o.error.or(semantics::classify(&ev.kind))
            }
            EventKind::Close {
                code,
                reason,
                initiator,
            } => {
                o.error = o.error.or(semantics::classify(&ev.kind));
                let a = vec![
                    i("websocket.close.code", *code as i64),
                    s("websocket.close.reason", reason.clone()),
                    s("websocket.close.initiator", initiator.as_str()),
                ];
                o.close = Some((at, a));
                o.last_kind = Some(ev.kind.clone());
            }
            EventKind::SessionEnded { totals, .. } => {
                let mut o = self.open.remove(&info.id).unwrap_or_default();
                let outcome = o.last_kind.take().unwrap_or_else(|| ev.kind.clone());
                let sm = semantics::describe(&outcome, &Context::default());
                let err = o.error.or(sm.error);
                let mut sa = base_attrs(info);
                sa.append(&mut o.attrs);
                if let Some((close_at, ca)) = o.close.take() {
                    sa.extend(ca.iter().cloned());
                    let mut a = ca;
                    a.extend(attrs::iskra(&sm, &dashboard));
                    out.push(child_span(
                        &o,
                        "ws.close",
                        SpanKind::Internal,
                        (close_at, at),
                        a,
                        err.map(|e| e.as_str()),
                    ));
                }
                sa.extend([
                    i("websocket.messages.received", totals.messages_in as i64),
                    i("websocket.messages.sent", totals.messages_out as i64),
                    i("websocket.bytes.received", totals.bytes_in as i64),
                    i("websocket.bytes.sent", totals.bytes_out as i64),
                ]);
                let mut iskra = attrs::iskra(&sm, &dashboard);
                if let (Some(e), None) = (err, sm.error) {
                    iskra.push(s("error.type", e.as_str()));
                    iskra.push(s("iskra.error.class", e.as_str()));
                    iskra.push(s("iskra.error.severity", e.severity().as_str()));
                }
                sa.extend(iskra);
                out.push(session_span(&o, sa, at, err.map(|e| e.as_str())));
            }
            _ => {}
        }
        ids
    }

    /// Prober attempts become `ws.reconnect.attempt` spans (one trace per attempt).
    fn on_probe(&mut self, ev: &Event, at: u64, out: &mut Vec<Span>) -> Option<Ids> {
        match &ev.kind {
            EventKind::ProbeAttempt {
                endpoint, attempt, ..
            } => {
                let ids = (at, trace_id(), span_id(), *attempt);
                self.probes.insert(endpoint.clone(), ids);
                Some(Some((ids.1, ids.2)))
            }
            EventKind::ProbeSucceeded {
                endpoint,
                transport,
                ..
            }
            | EventKind::ProbeFailed {
                endpoint,
                transport,
                ..
            } => {
                let (start, trace, id, attempt) =
                    self.probes
                        .remove(endpoint)
                        .unwrap_or((at, trace_id(), span_id(), 0));
                let sm = semantics::describe(&ev.kind, &Context::default());
                let mut a = vec![
                    s("websocket.upstream.name", endpoint.clone()),
                    s("websocket.transport", transport.as_str()),
                    i("websocket.reconnect.attempt", attempt as i64),
                ];
                a.extend(attrs::iskra(&sm, &self.dashboard));
                out.push(span(
                    "ws.reconnect.attempt",
                    SpanKind::Client,
                    Place {
                        trace,
                        id,
                        parent: None,
                    },
                    (start, at),
                    a,
                    sm.error.map(|e| e.as_str()),
                ));
                Some(Some((trace, id)))
            }
            _ => None,
        }
    }
}
