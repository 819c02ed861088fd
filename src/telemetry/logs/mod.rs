//! Lifecycle events → structured logs: a JSON line on stdout with the seed's fields (timestamp, level,
//! component, event_type, delta, omega, lambda, fractal_metadata) and the same record as an OTLP log,
//! correlated with its session's trace and span. The exporter never logs through this path, so its own
//! failures cannot feed back into it.
//!
//! Each shape is built only when something takes it: the stdout line is written by [`crate::jsonlog`]
//! straight into a reused buffer (no map, no `String` per field), the OTLP record only when logs are
//! exported. Both carry the same event fields, written once by [`details`] through [`Fields`].

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::attrs::{self, s};
use super::names::{attr, line, log};
use super::spans::{nanos, Ids};
use crate::events::{Event, EventKind};
use crate::jsonlog::Line;
use crate::semantics::{LogLevel, Semantics};

mod details;

use details::details;
pub use details::Fields;

/// Keeps a refused prober to one log line per change of state: while the dashboard refuses its
/// upgrade, neither its attempts nor repeated refusals with the same status are logged (they are still
/// counted in metrics and exported as spans).
#[derive(Debug, Default)]
pub struct Quiet {
    refused: std::sync::atomic::AtomicBool,
}

impl Quiet {
    /// Whether `kind` is logged (and notes the prober's state).
    pub fn keep(&self, kind: &EventKind) -> bool {
        use crate::events::Transport::WebSocket;
        use std::sync::atomic::Ordering::Relaxed;
        match kind {
            EventKind::ProbeRejected { changed, .. } => {
                self.refused.store(true, Relaxed);
                *changed
            }
            EventKind::ProbeSucceeded {
                transport: WebSocket,
                ..
            }
            | EventKind::ProbeFailed {
                transport: WebSocket,
                ..
            } => {
                self.refused.store(false, Relaxed);
                true
            }
            EventKind::ProbeAttempt {
                transport: WebSocket,
                ..
            } => !self.refused.load(Relaxed),
            _ => true,
        }
    }
}

/// The OTLP severity number of a level.
pub(super) fn severity(level: LogLevel) -> i32 {
    match level {
        LogLevel::Debug => 5,
        LogLevel::Info => 9,
        LogLevel::Warn => 13,
        LogLevel::Error => 17,
    }
}

/// The component an event is logged under.
fn component(ev: &Event) -> &'static str {
    use EventKind as K;
    let probe = matches!(
        ev.kind,
        K::ProbeAttempt { .. }
            | K::ProbeSucceeded { .. }
            | K::ProbeFailed { .. }
            | K::ProbeRejected { .. }
            | K::FallbackChanged { .. }
            | K::Failover { .. }
            | K::Downgrade { .. }
            | K::FallbackActivated { .. }
            | K::MissingHeartbeat { .. }
            | K::BufferFlushed { .. }
            | K::BufferRejected { .. }
    );
    if ev.session.is_none() && probe {
        "iskra-ws-sidecar.probe"
    } else {
        "iskra-ws-sidecar.proxy"
    }
}

/// Writes the stdout JSON line of `ev` (ending in `\n`) into `buf`, which is cleared first.
pub fn line(buf: &mut Vec<u8>, ev: &Event, sem: &Semantics, scope: &attrs::Scope, ids: Ids) {
    let mut l = Line::new(buf);
    let level = sem.level.as_str();
    l.header(ev.at, level, component(ev), sem.event_type.as_str())
        .string(attr::DASHBOARD, &scope.dashboard);
    // The seed's switches: ∆DΩΛ and fractal metadata (iskra.fractal_logging), voices (iskra.voice_system).
    if scope.ddol {
        let f = &sem.fractal;
        l.string(line::DELTA, sem.delta)
            .uint(line::DIMENSION, sem.dimension.into())
            .number(line::OMEGA, sem.omega)
            .string(line::LAMBDA, &sem.lambda)
            .object(line::FRACTAL_METADATA, |o| {
                o.string(line::SEAM_ID, f.seam_id);
                if scope.voices {
                    o.number(line::VOICE_PAIN, f.voice_pain)
                        .number(line::VOICE_CHAOS, f.voice_chaos)
                        .number(line::VOICE_TRUST, f.voice_trust);
                }
            })
            .string(attr::SEAM_ID, sem.seam);
    }
    if scope.voices {
        let voice = sem.voice.map_or("none", |v| v.as_str());
        l.string(attr::VOICE_ACTIVE, voice);
    }
    if let Some(e) = sem.error {
        l.string(attr::ERROR_TYPE, e.as_str())
            .string(line::SEVERITY, e.severity().as_str());
    }
    if let Some(l2) = sem.voice_lambda().filter(|_| scope.voices) {
        l.string(line::VOICE_LAMBDA, &l2);
    }
    if let Some(info) = &ev.session {
        l.uint(line::SESSION_ID, info.id);
    }
    if let Some((t, sp)) = ids {
        l.hex(line::TRACE_ID, &t).hex(line::SPAN_ID, &sp);
    }
    details(&ev.kind, &mut l);
    l.finish();
}

/// The OTLP log record of `ev`.
pub fn record(ev: &Event, sem: &Semantics, scope: &attrs::Scope, ids: Ids) -> LogRecord {
    let mut attributes = Vec::new();
    attrs::iskra(sem, scope, &mut attributes);
    attributes.push(s(log::EVENT_TYPE, sem.event_type.as_str()));
    attributes.push(s(log::COMPONENT, component(ev)));
    details(&ev.kind, &mut attributes);
    LogRecord {
        time_unix_nano: nanos(ev.at),
        observed_time_unix_nano: nanos(std::time::SystemTime::now()),
        severity_number: severity(sem.level),
        severity_text: sem.level.as_str().into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(sem.delta.into())),
        }),
        attributes,
        trace_id: ids.map(|(t, _)| t.to_vec()).unwrap_or_default(),
        span_id: ids.map(|(_, s)| s.to_vec()).unwrap_or_default(),
        event_name: sem.event_type.as_str().into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
