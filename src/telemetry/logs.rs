//! Lifecycle events → structured logs: a JSON line on stdout with the seed's fields (timestamp, level,
//! component, event_type, delta, omega, lambda, fractal_metadata) and the same record as an OTLP log,
//! correlated with its session's trace and span. The exporter never logs through this path, so its own
//! failures cannot feed back into it.
//!
//! Each shape is built only when something takes it: the stdout line is written by [`crate::jsonlog`]
//! straight into a reused buffer (no map, no `String` per field), the OTLP record only when logs are
//! exported. Both carry the same event fields, written once by [`details`] through [`Fields`].

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::attrs::{self, s};
use super::names::{attr, log};
use super::spans::{nanos, Ids};
use crate::events::{Event, EventKind};
use crate::jsonlog::Line;
use crate::semantics::{LogLevel, Semantics};

/// Where an event's fields go: the JSON line or the OTLP record's attributes.
pub trait Fields {
    /// A string field.
    fn str(&mut self, k: &str, v: &str);
    /// An integer field.
    fn int(&mut self, k: &str, v: i64);
    /// A floating-point field.
    fn float(&mut self, k: &str, v: f64);
    /// A boolean field (an OTLP string, `"true"`/`"false"`, as before).
    fn bool(&mut self, k: &str, v: bool);
    /// A field with no value: `null` in JSON, left out of OTLP.
    fn null(&mut self, k: &str);
}

impl Fields for Line<'_> {
    fn str(&mut self, k: &str, v: &str) {
        Line::string(self, k, v);
    }
    fn int(&mut self, k: &str, v: i64) {
        Line::integer(self, k, v);
    }
    fn float(&mut self, k: &str, v: f64) {
        Line::number(self, k, v);
    }
    fn bool(&mut self, k: &str, v: bool) {
        Line::bool(self, k, v);
    }
    fn null(&mut self, k: &str) {
        Line::opt_string(self, k, None);
    }
}

impl Fields for Vec<KeyValue> {
    fn str(&mut self, k: &str, v: &str) {
        self.push(s(k, v));
    }
    fn int(&mut self, k: &str, v: i64) {
        self.push(attrs::i(k, v));
    }
    fn float(&mut self, k: &str, v: f64) {
        self.push(attrs::f(k, v));
    }
    fn bool(&mut self, k: &str, v: bool) {
        self.push(s(k, if v { "true" } else { "false" }));
    }
    fn null(&mut self, _: &str) {}
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn opt_str(out: &mut impl Fields, k: &str, v: Option<&str>) {
    match v {
        Some(v) => out.str(k, v),
        None => out.null(k),
    }
}

fn opt_int(out: &mut impl Fields, k: &str, v: Option<i64>) {
    match v {
        Some(v) => out.int(k, v),
        None => out.null(k),
    }
}

/// Event-specific fields worth logging (never headers, cookies or query strings).
fn details(kind: &EventKind, out: &mut impl Fields) {
    use EventKind as K;
    match kind {
        K::Accepted { client } => out.str(attr::CLIENT_ADDRESS, &client.ip().to_string()),
        K::RequestHead {
            method,
            path,
            upgrade,
        } => {
            out.str(attr::HTTP_REQUEST_METHOD, method);
            out.str(attr::URL_PATH, path);
            out.bool(log::UPGRADE, *upgrade);
        }
        K::UpstreamConnected { duration } => out.float(log::DURATION_MS, ms(*duration)),
        K::UpstreamConnectFailed { duration, cause } => {
            out.float(log::DURATION_MS, ms(*duration));
            out.str(log::CAUSE, cause.as_str());
        }
        K::HandshakeCompleted {
            duration,
            subprotocol,
            ..
        } => {
            out.float(log::DURATION_MS, ms(*duration));
            opt_str(out, attr::SUBPROTOCOL, subprotocol.as_deref());
        }
        K::HandshakeRejected {
            duration, status, ..
        } => {
            out.float(log::DURATION_MS, ms(*duration));
            out.int(attr::STATUS, *status as i64);
        }
        K::HttpRelayed {
            method,
            path,
            status,
            duration,
        } => {
            out.str(attr::HTTP_REQUEST_METHOD, method);
            out.str(attr::URL_PATH, path);
            out.int(attr::STATUS, *status as i64);
            out.float(log::DURATION_MS, ms(*duration));
        }
        K::PingPong { peer, rtt } => {
            out.str(attr::PEER, peer.as_str());
            match rtt {
                Some(r) => out.float(log::RTT_MS, ms(*r)),
                None => out.null(log::RTT_MS),
            }
        }
        K::HeartbeatTimeout { peer, missed } => {
            out.str(attr::PEER, peer.as_str());
            out.int(log::MISSED, *missed as i64);
        }
        K::Resumed {
            gap,
            attempts,
            upstream,
        } => {
            out.float(log::GAP_MS, ms(*gap));
            out.int(log::ATTEMPTS, *attempts as i64);
            out.str(attr::UPSTREAM_NAME, upstream);
        }
        K::ResumeGaveUp {
            gap,
            attempts,
            reason,
        } => {
            out.float(log::GAP_MS, ms(*gap));
            out.int(log::ATTEMPTS, *attempts as i64);
            out.str(attr::REASON, reason.as_str());
        }
        K::Close {
            code,
            upstream_code,
            reason,
            initiator,
        } => {
            out.int(attr::CLOSE_CODE, *code as i64);
            out.int(attr::UPSTREAM_CLOSE_CODE, *upstream_code as i64);
            out.str(attr::CLOSE_REASON, reason);
            out.str(attr::CLOSE_INITIATOR, initiator.as_str());
        }
        K::ProtocolError { peer, rule } => {
            out.str(attr::PEER, peer.as_str());
            out.str(attr::RULE, rule.as_str());
            out.int(attr::CLOSE_CODE, rule.close_code() as i64);
        }
        K::SessionEnded {
            duration,
            totals,
            code,
            upstream_code,
            initiator,
        } => {
            out.float(log::DURATION_S, duration.as_secs_f64());
            out.int(log::MESSAGES_IN, totals.messages_in as i64);
            out.int(log::MESSAGES_OUT, totals.messages_out as i64);
            out.int(log::BYTES_IN, totals.bytes_in as i64);
            out.int(log::BYTES_OUT, totals.bytes_out as i64);
            out.int(attr::CLOSE_CODE, *code as i64);
            out.int(attr::UPSTREAM_CLOSE_CODE, *upstream_code as i64);
            out.str(attr::CLOSE_INITIATOR, initiator.as_str());
        }
        K::ProbeAttempt {
            endpoint,
            url,
            attempt,
            transport,
        } => {
            out.str(attr::ENDPOINT, endpoint);
            out.str(log::URL, url);
            out.int(log::ATTEMPT, *attempt as i64);
            out.str(attr::TRANSPORT, transport.as_str());
        }
        K::ProbeSucceeded {
            endpoint,
            transport,
            duration,
            recovered,
        } => {
            out.str(attr::ENDPOINT, endpoint);
            out.str(attr::TRANSPORT, transport.as_str());
            out.float(log::DURATION_MS, ms(*duration));
            out.bool(log::RECOVERED, *recovered);
        }
        K::ProbeFailed {
            endpoint,
            transport,
            cause,
            status,
            duration,
        } => {
            out.str(attr::ENDPOINT, endpoint);
            out.str(attr::TRANSPORT, transport.as_str());
            out.str(log::CAUSE, cause.as_str());
            opt_int(out, log::STATUS, status.map(i64::from));
            out.float(log::DURATION_MS, ms(*duration));
        }
        K::ProbeRejected {
            endpoint,
            url,
            status,
            duration,
            ..
        } => {
            out.str(attr::ENDPOINT, endpoint);
            out.str(log::URL, url);
            opt_int(out, attr::STATUS, status.map(i64::from));
            out.str(attr::REASON, &super::health::refusal(*status));
            out.float(log::DURATION_MS, ms(*duration));
            out.str(attr::STATE, "probe_rejected");
            out.str(log::HINT, super::health::REJECTED_HINT);
        }
        K::FallbackChanged { endpoint, mode } => {
            out.str(attr::ENDPOINT, endpoint);
            let mode = mode.map_or("primary", |m| m.as_str());
            out.str(attr::FALLBACK_MODE, mode);
        }
        K::Failover { endpoint, from, to } => {
            out.str(attr::ENDPOINT, endpoint);
            out.str(log::FROM, from);
            out.str(log::TO, to);
        }
        K::Downgrade { endpoint, to } => {
            out.str(attr::ENDPOINT, endpoint);
            out.str(attr::TRANSPORT, to.as_str());
        }
        K::FallbackActivated { endpoint } => out.str(attr::ENDPOINT, endpoint),
        K::MissingHeartbeat { endpoint, silence } => {
            out.str(attr::ENDPOINT, endpoint);
            out.float(log::SILENCE_MS, ms(*silence));
        }
        K::BufferFlushed {
            endpoint,
            messages,
            queued,
        } => {
            out.str(attr::ENDPOINT, endpoint);
            out.int(log::MESSAGES, *messages as i64);
            out.int(log::QUEUED, *queued as i64);
        }
        K::BufferRejected {
            endpoint,
            reason,
            capacity,
            queued,
        } => {
            out.str(attr::ENDPOINT, endpoint);
            out.str(attr::REASON, reason.as_str());
            out.int(log::CAPACITY, *capacity as i64);
            out.int(log::QUEUED, *queued as i64);
        }
        _ => {}
    }
}

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
    l.time("timestamp", ev.at)
        .string("level", sem.level.as_str())
        .string("component", component(ev))
        .string("event_type", sem.event_type.as_str())
        .string("iskra.dashboard", &scope.dashboard);
    // The seed's switches: ∆DΩΛ and fractal metadata (iskra.fractal_logging), voices (iskra.voice_system).
    if scope.ddol {
        let f = &sem.fractal;
        l.string("delta", sem.delta)
            .uint("dimension", sem.dimension.into())
            .number("omega", sem.omega)
            .string("lambda", &sem.lambda)
            .object("fractal_metadata", |o| {
                o.string("seam_id", f.seam_id);
                if scope.voices {
                    o.number("voice_pain", f.voice_pain)
                        .number("voice_chaos", f.voice_chaos)
                        .number("voice_trust", f.voice_trust);
                }
            })
            .string("iskra.seam.id", sem.seam);
    }
    if scope.voices {
        l.string(
            "iskra.voice.active",
            sem.voice.map_or("none", |v| v.as_str()),
        );
    }
    if let Some(e) = sem.error {
        l.string("error.type", e.as_str())
            .string("severity", e.severity().as_str());
    }
    if let Some(l2) = sem.voice_lambda().filter(|_| scope.voices) {
        l.string("voice_lambda", &l2);
    }
    if let Some(info) = &ev.session {
        l.uint("session_id", info.id);
    }
    if let Some((t, sp)) = ids {
        l.hex("trace_id", &t).hex("span_id", &sp);
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
mod tests {
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
}
