//! An open session's state in the span builder — its steps, its close, its resumes — and how each
//! is written as an event of the `ws.session` span.

use super::{span_id, trace_id};
use crate::events::EventKind;
use crate::semantics::{ErrorClass, Semantics};
use crate::telemetry::attrs::{self, Attrs};
use crate::telemetry::names::{attr, span_event};
use crate::telemetry::pb::{self, PbAttrs};

/// The close of a session, kept until the session ends.
#[derive(Debug)]
pub(super) struct Closed {
    pub(super) at: u64,
    pub(super) code: u16,
    pub(super) upstream_code: u16,
    pub(super) reason: String,
    pub(super) initiator: &'static str,
}

impl Closed {
    pub(super) fn write(&self, a: &mut impl Attrs) {
        a.int(attr::CLOSE_CODE, self.code as i64);
        a.int(attr::UPSTREAM_CLOSE_CODE, self.upstream_code as i64);
        a.str(attr::CLOSE_REASON, &self.reason);
        a.str(attr::CLOSE_INITIATOR, self.initiator);
    }
}

/// A span event of a session: a resume, or a resume given up.
#[derive(Debug)]
pub(super) struct Resume {
    pub(super) at: u64,
    pub(super) gap_ms: f64,
    pub(super) attempts: u32,
    /// The upstream that took the session, or why it was not held.
    pub(super) detail: Result<String, &'static str>,
}

impl Resume {
    /// The span event of a `Resumed` or `ResumeGaveUp` event.
    pub(super) fn of(at: u64, kind: &EventKind) -> Option<Resume> {
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
    pub(super) fn write(&self, a: &mut PbAttrs) {
        pb::message(a.message_buf(), 11, |e| {
            pb::fixed64(e, 1, self.at);
            let name = match self.detail {
                Ok(_) => span_event::RESUMED,
                Err(_) => span_event::RESUME_GAVE_UP,
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
pub(super) struct Step {
    pub(super) name: &'static str,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) delta: &'static str,
    pub(super) omega: f64,
    pub(super) error: Option<ErrorClass>,
    /// The handshake's HTTP status.
    pub(super) status: Option<u16>,
}

impl Step {
    pub(super) fn new(name: &'static str, (start, end): (u64, u64), sem: &Semantics) -> Step {
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
    pub(super) fn write(
        &self,
        b: &mut Vec<u8>,
        scope: &attrs::Scope,
        extra: impl FnOnce(&mut PbAttrs),
    ) {
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
pub(super) struct Open {
    pub(super) trace: [u8; 16],
    pub(super) span: [u8; 8],
    pub(super) start: u64,
    /// Learned along the way.
    pub(super) subprotocol: Option<String>,
    pub(super) rule: Option<&'static str>,
    pub(super) connect_start: Option<u64>,
    pub(super) close: Option<Closed>,
    /// Upstream connect and handshake, when steps are span events.
    pub(super) steps: [Option<Step>; 2],
    pub(super) error: Option<ErrorClass>,
    /// The semantics of the session's outcome so far (its handshake, then its close), described once
    /// when that event came.
    pub(super) outcome: Option<Semantics>,
    /// Resumes (and resumes given up) through upstream restarts, as span events.
    pub(super) resumes: Vec<Resume>,
    /// The handshake completed: the session runs until its SessionEnded.
    pub(super) live: bool,
}

impl Open {
    /// A session first seen at `at`, with new trace and span ids.
    pub(super) fn started(at: u64) -> Open {
        Open {
            trace: trace_id(),
            span: span_id(),
            start: at,
            ..Default::default()
        }
    }

    /// What the session learned along the way (subprotocol, protocol error rule).
    pub(super) fn learned(&self, a: &mut impl Attrs) {
        if let Some(p) = &self.subprotocol {
            a.str(attr::SUBPROTOCOL, p);
        }
        if let Some(r) = self.rule {
            a.str(attr::RULE, r);
        }
    }
}
