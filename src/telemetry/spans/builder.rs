//! [`SpanBuilder`]: lifecycle events → spans. A session's state is opened at its first event and
//! written as spans when the session ends (or the backstop ends it); a prober attempt is one span.

use std::collections::HashMap;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::session::{Closed, Open, Resume, Step};
use super::write::{base_attrs, child_span, session_span, span, Place};
use super::{nanos, span_id, trace_id, Encoded, Ids};
use crate::events::{Event, EventKind};
use crate::semantics::Semantics;
use crate::telemetry::attrs::{self, Attrs};
use crate::telemetry::names::{attr, span};
use crate::telemetry::pb::PbAttrs;

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
