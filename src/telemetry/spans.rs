//! Lifecycle events → OTLP spans. One `ws.session` span per proxied connection (request head to session
//! end) whose steps — `ws.upstream.connect`, `ws.handshake`, `ws.close` — are span events with their
//! start and `websocket.step.duration_ms` (or, with `telemetry.step_spans`, child spans exported as each
//! ends), and a `ws.reconnect.attempt` span per prober attempt. Only the open sessions' small state is held, and
//! finished spans are written already encoded ([`Encoded`], through [`super::pb`]): no span structs, no
//! allocation per attribute.
//!
//! Status is ERROR only for real failures: an error class from the seed's table (1006, refused or timed
//! out upstream, protocol errors, …), never for a normal 1000/1001 close.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};

use super::attrs;
use super::attrs::Attrs;
use super::names::{attr, span};
use super::pb::{self, PbAttrs};
use crate::events::{Event, EventKind, SessionInfo};
use crate::semantics::{ErrorClass, Semantics};

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

/// Finished spans, encoded: each is a `spans` field (2) of an OTLP `ScopeSpans`.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The encoded fields.
    pub buf: Vec<u8>,
    /// How many spans `buf` holds.
    pub count: u64,
    /// Nothing exports traces: spans are not written at all (ids are still kept for logs).
    pub off: bool,
}

impl Encoded {
    /// No spans.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets the spans written, keeping the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }
}

/// The close of a session, kept until the session ends.
#[derive(Debug)]
struct Closed {
    at: u64,
    code: u16,
    upstream_code: u16,
    reason: String,
    initiator: &'static str,
}

impl Closed {
    fn write(&self, a: &mut impl Attrs) {
        a.int(attr::CLOSE_CODE, self.code as i64);
        a.int(attr::UPSTREAM_CLOSE_CODE, self.upstream_code as i64);
        a.str(attr::CLOSE_REASON, &self.reason);
        a.str(attr::CLOSE_INITIATOR, self.initiator);
    }
}

/// A span event of a session: a resume, or a resume given up.
#[derive(Debug)]
struct Resume {
    at: u64,
    gap_ms: f64,
    attempts: u32,
    /// The upstream that took the session, or why it was not held.
    detail: Result<String, &'static str>,
}

impl Resume {
    /// The span event of a `Resumed` or `ResumeGaveUp` event.
    fn of(at: u64, kind: &EventKind) -> Option<Resume> {
        let (gap, attempts, detail) = match kind {
            EventKind::Resumed {
                gap,
                attempts,
                upstream,
            } => (gap, attempts, Ok(upstream.clone())),
            EventKind::ResumeGaveUp {
                gap,
                attempts,
                reason,
            } => (gap, attempts, Err(reason.as_str())),
            _ => return None,
        };
        Some(Resume {
            at,
            gap_ms: gap.as_secs_f64() * 1e3,
            attempts: *attempts,
            detail,
        })
    }

    /// Writes it as Span.events (11): Event { time_unix_nano 1, name 2, attributes 3 }.
    fn write(&self, a: &mut PbAttrs) {
        pb::message(a.message_buf(), 11, |e| {
            pb::fixed64(e, 1, self.at);
            let name = match self.detail {
                Ok(_) => "websocket.resumed",
                Err(_) => "websocket.resume_gave_up",
            };
            pb::bytes(e, 2, name.as_bytes());
            let mut ea = PbAttrs::new(e, 3);
            ea.float(attr::RESUME_GAP_MS, self.gap_ms);
            ea.int(attr::RESUME_ATTEMPTS, self.attempts as i64);
            match &self.detail {
                Ok(upstream) => ea.str(attr::UPSTREAM_NAME, upstream),
                Err(reason) => ea.str(attr::RESUME_REASON, reason),
            }
        });
    }
}

/// A finished step of a session (upstream connect, handshake), kept in place until the session ends
/// when steps are span events: no heap, its name and Δ are static.
#[derive(Debug, Clone, Copy)]
struct Step {
    name: &'static str,
    start: u64,
    end: u64,
    delta: &'static str,
    omega: f64,
    error: Option<ErrorClass>,
    /// The handshake's HTTP status.
    status: Option<u16>,
}

impl Step {
    fn new(name: &'static str, (start, end): (u64, u64), sem: &Semantics) -> Step {
        Step {
            name,
            start,
            end,
            delta: sem.delta,
            omega: sem.omega,
            error: sem.error,
            status: None,
        }
    }

    /// Span.Event { time_unix_nano 1, name 2, attributes 3 }, as field 11 of the session's span.
    fn write(&self, b: &mut Vec<u8>, scope: &attrs::Scope, extra: impl FnOnce(&mut PbAttrs)) {
        pb::message(b, 11, |b| {
            pb::fixed64(b, 1, self.start);
            pb::bytes(b, 2, self.name.as_bytes());
            let a = &mut PbAttrs::new(b, 3);
            let ns = self.end.saturating_sub(self.start);
            a.float(attr::STEP_DURATION_MS, ns as f64 / 1e6);
            if let Some(s) = self.status {
                a.int(attr::STATUS, s as i64);
            }
            extra(a);
            if scope.ddol {
                a.str(attr::DELTA, self.delta);
                a.float(attr::OMEGA, self.omega);
            }
            if let Some(e) = self.error {
                a.str(attr::ERROR_TYPE, e.as_str());
            }
        });
    }
}

#[derive(Debug, Default)]
struct Open {
    trace: [u8; 16],
    span: [u8; 8],
    start: u64,
    /// Learned along the way.
    subprotocol: Option<String>,
    rule: Option<&'static str>,
    connect_start: Option<u64>,
    close: Option<Closed>,
    /// Upstream connect and handshake, when steps are span events.
    steps: [Option<Step>; 2],
    error: Option<ErrorClass>,
    /// The semantics of the session's outcome so far (its handshake, then its close), described once
    /// when that event came.
    outcome: Option<Semantics>,
    /// Resumes (and resumes given up) through upstream restarts, as span events.
    resumes: Vec<Resume>,
    /// The handshake completed: the session runs until its SessionEnded.
    live: bool,
}

impl Open {
    /// A session first seen at `at`, with new trace and span ids.
    fn started(at: u64) -> Open {
        Open {
            trace: trace_id(),
            span: span_id(),
            start: at,
            ..Default::default()
        }
    }

    /// What the session learned along the way (subprotocol, protocol error rule).
    fn learned(&self, a: &mut impl Attrs) {
        if let Some(p) = &self.subprotocol {
            a.str(attr::SUBPROTOCOL, p);
        }
        if let Some(r) = self.rule {
            a.str(attr::RULE, r);
        }
    }
}

/// Builds spans from events; holds only open sessions.
pub struct SpanBuilder {
    scope: attrs::Scope,
    /// Steps as child spans (`telemetry.step_spans`) rather than events of the session span.
    step_spans: bool,
    /// Boxed: a bucket of the map is a pointer, not the whole state, so the map's spare capacity (up to
    /// half of it after a doubling) costs 16 bytes a slot instead of the state's size (idle memory).
    open: HashMap<u64, Box<Open>>,
    probes: HashMap<String, (u64, [u8; 16], [u8; 8], u32)>,
}

/// Trace and span ids of a session, for log correlation.
pub type Ids = Option<([u8; 16], [u8; 8])>;

fn base_attrs(info: &SessionInfo, a: &mut impl Attrs) {
    a.str(attr::URL_PATH, &info.path);
    a.str(attr::URL_SCHEME, "ws");
    a.str(attr::SERVER_ADDRESS, &info.upstream_host);
    a.int(attr::SERVER_PORT, info.upstream_port as i64);
    a.str(attr::CLIENT_ADDRESS, &info.client.ip().to_string());
    a.str(attr::NETWORK_PROTOCOL_NAME, "websocket");
    a.str(attr::HTTP_REQUEST_METHOD, "GET");
    a.str(attr::UPSTREAM_NAME, &info.upstream_name);
    if let Some(ua) = &info.user_agent {
        a.str(attr::USER_AGENT_ORIGINAL, ua);
    }
}

/// Where a span sits: its trace, its own id and its parent.
struct Place {
    trace: [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
}

/// Writes one span: Span { trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8,
/// attributes 9, status 15 { message 2, code 3 } }.
fn span(
    out: &mut Encoded,
    (name, kind): (&str, SpanKind),
    at: Place,
    (start, end): (u64, u64),
    attributes: impl FnOnce(&mut PbAttrs),
    events: impl FnOnce(&mut Vec<u8>),
    error: Option<&str>,
) {
    if out.off {
        return;
    }
    pb::message(&mut out.buf, 2, |b| {
        pb::bytes(b, 1, &at.trace);
        pb::bytes(b, 2, &at.id);
        if let Some(p) = at.parent {
            pb::bytes(b, 4, &p);
        }
        pb::bytes(b, 5, name.as_bytes());
        pb::uint(b, 6, kind as u64);
        pb::fixed64(b, 7, start);
        pb::fixed64(b, 8, end.max(start));
        attributes(&mut PbAttrs::new(b, 9));
        events(b);
        pb::message(b, 15, |b| {
            if let Some(msg) = error {
                pb::bytes(b, 2, msg.as_bytes());
                pb::uint(b, 3, StatusCode::Error as u64);
            }
        });
    });
    out.count += 1;
}

/// A step span (`ws.upstream.connect`, `ws.handshake`, `ws.close`) under its session's span.
fn child_span(
    out: &mut Encoded,
    o: &Open,
    (name, kind): (&str, SpanKind),
    times: (u64, u64),
    attributes: impl FnOnce(&mut PbAttrs),
    error: Option<&str>,
) {
    let at = Place {
        trace: o.trace,
        id: span_id(),
        parent: Some(o.span),
    };
    span(out, (name, kind), at, times, attributes, |_| {}, error)
}

/// The `ws.session` span of a finished session, with its steps' events (`close`: the close step's
/// event, when steps are events and the session closed).
fn session_span(
    out: &mut Encoded,
    (o, scope): (&Open, &attrs::Scope),
    attributes: impl FnOnce(&mut PbAttrs),
    (end, close): (u64, Option<Step>),
    error: Option<&str>,
) {
    let at = Place {
        trace: o.trace,
        id: o.span,
        parent: None,
    };
    let (name, kind) = (span::SESSION, SpanKind::Server);
    let events = |b: &mut Vec<u8>| {
        for step in o.steps.iter().flatten() {
            step.write(b, scope, |_| {});
        }
        if let (Some(step), Some(c)) = (close, &o.close) {
            step.write(b, scope, |a| c.write(a));
        }
    };
    span(
        out,
        (name, kind),
        at,
        (o.start, end),
        attributes,
        events,
        error,
    )
}

impl SpanBuilder {
    /// A builder labelling spans with `dashboard`, every vocabulary on.
    pub fn new(dashboard: &str) -> Self {
        Self::scoped(attrs::Scope::new(dashboard))
    }

    /// A builder writing the attributes `scope` says.
    pub fn scoped(scope: attrs::Scope) -> Self {
        SpanBuilder {
            scope,
            step_spans: false,
            open: HashMap::new(),
            probes: HashMap::new(),
        }
    }

    /// Steps as child spans (true) or as events of the `ws.session` span (false, the default).
    pub fn step_spans(mut self, on: bool) -> Self {
        self.step_spans = on;
        self
    }

    /// The dashboard and vocabularies the spans carry.
    pub fn scope(&self) -> &attrs::Scope {
        &self.scope
    }

    /// The trace and span ids of `ev`'s session (opening its state at its first event); None for
    /// events of no session.
    pub fn session_ids(&mut self, ev: &Event) -> Ids {
        let info = ev.session.as_ref()?;
        let at = nanos(ev.at);
        let o = self
            .open
            .entry(info.id)
            .or_insert_with(|| Box::new(Open::started(at)));
        Some((o.trace, o.span))
    }

    /// Open sessions (for tests and self-telemetry).
    pub fn open_sessions(&self) -> usize {
        self.open.len()
    }

    /// The backstop: ends every session whose handshake has had no outcome for longer than `max_age`
    /// at `now` (ns since the epoch) — its `ws.session` span is written with an error status — and
    /// returns how many. Every handshake's outcome is emitted losslessly, so this finds none unless
    /// something upstream of it broke; it keeps the builder's memory bounded all the same.
    pub fn expire(&mut self, now: u64, max_age: std::time::Duration, out: &mut Encoded) -> u64 {
        let max = max_age.as_nanos() as u64;
        let stale: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| !o.live && now.saturating_sub(o.start) > max)
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            if let Some(o) = self.open.remove(id) {
                let dashboard = self.scope.dashboard.as_str();
                let attributes = |a: &mut PbAttrs| {
                    a.str(attr::DASHBOARD, dashboard);
                    a.str(attr::ERROR_TYPE, "handshake_expired");
                };
                let (o, end) = ((&*o, &self.scope), (now, None));
                session_span(out, o, attributes, end, Some("handshake_expired"));
            }
        }
        stale.len() as u64
    }

    /// Feeds one event and its semantics (described once, by the caller); finished spans are written to
    /// `out`. Returns the session's ids for logs.
    pub fn on_event(&mut self, ev: &Event, sem: &Semantics, out: &mut Encoded) -> Ids {
        let at = nanos(ev.at);
        if let Some(ids) = self.on_probe(ev, sem, at, out) {
            return ids;
        }
        let info = ev.session.as_ref()?;
        let Self {
            scope,
            open,
            step_spans,
            ..
        } = self;
        let step_spans = *step_spans;
        let dashboard = &*scope;
        let o = open
            .entry(info.id)
            .or_insert_with(|| Box::new(Open::started(at)));
        let ids = Some((o.trace, o.span));
        match &ev.kind {
            EventKind::UpstreamConnectStarted => o.connect_start = Some(at),
            EventKind::UpstreamConnected { .. } | EventKind::UpstreamConnectFailed { .. } => {
                let start = o.connect_start.take().unwrap_or(at);
                let sm = sem;
                let attributes = |a: &mut PbAttrs| {
                    a.str(attr::SERVER_ADDRESS, &info.upstream_host);
                    a.int(attr::SERVER_PORT, info.upstream_port as i64);
                    a.str(attr::UPSTREAM_NAME, &info.upstream_name);
                    attrs::iskra(sm, dashboard, a);
                };
                let err = sm.error.map(|e| e.as_str());
                let what = (span::UPSTREAM_CONNECT, SpanKind::Client);
                if step_spans {
                    child_span(out, o, what, (start, at), attributes, err);
                } else {
                    o.steps[0] = Some(Step::new(what.0, (start, at), sm));
                }
            }
            EventKind::HandshakeCompleted {
                subprotocol,
                extensions,
                ..
            } => {
                let sm = sem;
                let attributes = |a: &mut PbAttrs| {
                    a.int(attr::STATUS, 101);
                    if let Some(p) = subprotocol {
                        a.str(attr::SUBPROTOCOL, p);
                    }
                    if let Some(x) = extensions {
                        a.str(attr::EXTENSIONS, x);
                    }
                    attrs::iskra(sm, dashboard, a);
                };
                let what = (span::HANDSHAKE, SpanKind::Internal);
                if step_spans {
                    child_span(out, o, what, (o.start, at), attributes, None);
                } else {
                    let step = Step::new(what.0, (o.start, at), sm);
                    o.steps[1] = Some(Step {
                        status: Some(101),
                        ..step
                    });
                }
                o.live = true;
                o.subprotocol.clone_from(subprotocol);
                o.outcome = Some(sem.clone());
            }
            EventKind::HandshakeRejected { status, .. } => {
                let sm = sem;
                let err = sm.error.map(|e| e.as_str());
                let status = *status as i64;
                let attributes = |a: &mut PbAttrs| {
                    a.int(attr::STATUS, status);
                    attrs::iskra(sm, dashboard, a);
                };
                let what = (span::HANDSHAKE, SpanKind::Internal);
                if step_spans {
                    child_span(out, o, what, (o.start, at), attributes, err);
                } else {
                    let step = Step::new(what.0, (o.start, at), sm);
                    o.steps[1] = Some(Step {
                        status: Some(status as u16),
                        ..step
                    });
                }
                let o = open.remove(&info.id).unwrap_or_default();
                let attributes = |a: &mut PbAttrs| {
                    base_attrs(info, a);
                    o.learned(a);
                    a.int(attr::STATUS, status);
                    attrs::iskra(sm, dashboard, a);
                };
                session_span(out, (&o, dashboard), attributes, (at, None), err);
            }
            EventKind::ProtocolError { rule, .. } => {
                o.error = o.error.or(sem.error);
                o.rule = o.rule.or(Some(rule.as_str()));
            }
            EventKind::HeartbeatTimeout { .. } => o.error = o.error.or(sem.error),
            EventKind::Resumed { .. } | EventKind::ResumeGaveUp { .. } => {
                o.resumes.extend(Resume::of(at, &ev.kind))
            }
            EventKind::Close {
                code,
                upstream_code,
                reason,
                initiator,
            } => {
                o.error = o.error.or(sem.error);
                o.close = Some(Closed {
                    at,
                    code: *code,
                    upstream_code: *upstream_code,
                    reason: reason.clone(),
                    initiator: initiator.as_str(),
                });
                o.outcome = Some(sem.clone());
            }
            EventKind::SessionEnded { totals, .. } => {
                let mut o = open.remove(&info.id).unwrap_or_default();
                let outcome = o.outcome.take();
                let sm = outcome.as_ref().unwrap_or(sem);
                let err = o.error.or(sm.error);
                let mut close = None;
                if let Some(c) = &o.close {
                    let what = (span::CLOSE, SpanKind::Internal);
                    if step_spans {
                        let attributes = |a: &mut PbAttrs| {
                            c.write(a);
                            attrs::iskra(sm, dashboard, a);
                        };
                        let err = err.map(|e| e.as_str());
                        child_span(out, &o, what, (c.at, at), attributes, err);
                    } else {
                        let step = Step::new(what.0, (c.at, at), sm);
                        close = Some(Step { error: err, ..step });
                    }
                }
                let attributes = |a: &mut PbAttrs| {
                    base_attrs(info, a);
                    o.learned(a);
                    if let Some(c) = &o.close {
                        c.write(a);
                    }
                    a.int(attr::MESSAGES_RECEIVED, totals.messages_in as i64);
                    a.int(attr::MESSAGES_SENT, totals.messages_out as i64);
                    a.int(attr::BYTES_RECEIVED, totals.bytes_in as i64);
                    a.int(attr::BYTES_SENT, totals.bytes_out as i64);
                    let resumed = o.resumes.iter().filter(|r| r.detail.is_ok()).count();
                    if !o.resumes.is_empty() {
                        a.int(attr::UPSTREAM_RESUMES, resumed as i64);
                    }
                    for r in &o.resumes {
                        r.write(a);
                    }
                    attrs::iskra(sm, dashboard, a);
                    if let (Some(e), None) = (err, sm.error) {
                        attrs::error_class(e, a);
                    }
                };
                let err = err.map(|e| e.as_str());
                session_span(out, (&o, dashboard), attributes, (at, close), err);
            }
            _ => {}
        }
        ids
    }

    /// Prober attempts become `ws.reconnect.attempt` spans (one trace per attempt).
    fn on_probe(&mut self, ev: &Event, sem: &Semantics, at: u64, out: &mut Encoded) -> Option<Ids> {
        match &ev.kind {
            EventKind::ProbeAttempt {
                endpoint, attempt, ..
            } => {
                let ids = (at, trace_id(), span_id(), *attempt);
                self.probes.insert(endpoint.clone(), ids);
                Some(Some((ids.1, ids.2)))
            }
            EventKind::ProbeSucceeded { endpoint, .. }
            | EventKind::ProbeFailed { endpoint, .. }
            | EventKind::ProbeRejected { endpoint, .. } => {
                let (transport, status) = match &ev.kind {
                    EventKind::ProbeSucceeded { transport, .. } => (*transport, None),
                    EventKind::ProbeFailed {
                        transport, status, ..
                    } => (*transport, *status),
                    EventKind::ProbeRejected { status, .. } => {
                        (crate::events::Transport::WebSocket, *status)
                    }
                    _ => unreachable!("matched above"),
                };
                let (start, trace, id, attempt) =
                    self.probes
                        .remove(endpoint)
                        .unwrap_or((at, trace_id(), span_id(), 0));
                let sm = sem;
                let attributes = |a: &mut PbAttrs| {
                    a.str(attr::UPSTREAM_NAME, endpoint);
                    a.str(attr::TRANSPORT, transport.as_str());
                    a.int(attr::RECONNECT_ATTEMPT, attempt as i64);
                    if let Some(st) = status {
                        a.int(attr::STATUS, st as i64);
                    }
                    attrs::iskra(sm, &self.scope, a);
                };
                let at_ = Place {
                    trace,
                    id,
                    parent: None,
                };
                let what = span::RECONNECT_ATTEMPT;
                let rejected = matches!(ev.kind, EventKind::ProbeRejected { .. });
                let err = sm
                    .error
                    .map(|e| e.as_str())
                    .or(rejected.then_some("probe_rejected"));
                span(
                    out,
                    (what, SpanKind::Client),
                    at_,
                    (start, at),
                    attributes,
                    |_| {},
                    err,
                );
                Some(Some((trace, id)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Initiator, SessionTotals};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
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
            attributes: vec![super::super::attrs::s(
                crate::telemetry::names::resource::SERVICE_NAME,
                "iskra-ws-sidecar",
            )],
            ..Default::default()
        }
        .encode_to_vec();
        let scope = super::super::export::scope().encode_to_vec();
        let req = super::super::export::trace_request(&resource, &scope, &out.buf);
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
}
