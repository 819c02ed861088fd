//! Lifecycle events → structured logs: a JSON line on stdout with the seed's fields (timestamp, level,
//! component, event_type, delta, omega, lambda, fractal_metadata) and the same record as an OTLP log,
//! correlated with its session's trace and span. The exporter never logs through this path, so its own
//! failures cannot feed back into it.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{json, Map, Value};

use super::attrs::{self, s};
use super::spans::{nanos, Ids};
use crate::events::{Event, EventKind};
use crate::semantics::{LogLevel, Semantics};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Event-specific fields worth logging (never headers, cookies or query strings).
fn details(kind: &EventKind) -> Map<String, Value> {
    let v = match kind {
        EventKind::Accepted { client } => json!({"client.address": client.ip().to_string()}),
        EventKind::RequestHead {
            method,
            path,
            upgrade,
        } => json!({"http.request.method": method, "url.path": path, "upgrade": upgrade}),
        EventKind::UpstreamConnected { duration } => {
            json!({"duration_ms": duration.as_secs_f64() * 1e3})
        }
        EventKind::UpstreamConnectFailed { duration, cause } => {
            json!({"duration_ms": duration.as_secs_f64() * 1e3, "cause": cause.as_str()})
        }
        EventKind::HandshakeCompleted {
            duration,
            subprotocol,
            ..
        } => {
            json!({"duration_ms": duration.as_secs_f64() * 1e3, "websocket.subprotocol": subprotocol})
        }
        EventKind::HandshakeRejected {
            duration, status, ..
        } => {
            json!({"duration_ms": duration.as_secs_f64() * 1e3, "http.response.status_code": status})
        }
        EventKind::HttpRelayed {
            method,
            path,
            status,
            duration,
        } => {
            json!({"http.request.method": method, "url.path": path, "http.response.status_code": status, "duration_ms": duration.as_secs_f64() * 1e3})
        }
        EventKind::PingPong { peer, rtt } => {
            json!({"websocket.peer": peer.as_str(), "rtt_ms": rtt.map(|r| r.as_secs_f64() * 1e3)})
        }
        EventKind::HeartbeatTimeout { peer, missed } => {
            json!({"websocket.peer": peer.as_str(), "missed": missed})
        }
        EventKind::Resumed {
            gap,
            attempts,
            upstream,
        } => {
            json!({"gap_ms": gap.as_secs_f64() * 1e3, "attempts": attempts, "websocket.upstream.name": upstream})
        }
        EventKind::ResumeGaveUp {
            gap,
            attempts,
            reason,
        } => {
            json!({"gap_ms": gap.as_secs_f64() * 1e3, "attempts": attempts, "reason": reason.as_str()})
        }
        EventKind::Close {
            code,
            upstream_code,
            reason,
            initiator,
        } => {
            json!({"websocket.close.code": code, "websocket.upstream.close.code": upstream_code, "websocket.close.reason": reason, "websocket.close.initiator": initiator.as_str()})
        }
        EventKind::ProtocolError { peer, rule } => {
            json!({"websocket.peer": peer.as_str(), "websocket.protocol_error.rule": rule.as_str(), "websocket.close.code": rule.close_code()})
        }
        EventKind::SessionEnded {
            duration,
            totals,
            code,
            upstream_code,
            initiator,
        } => {
            json!({"duration_s": duration.as_secs_f64(), "messages_in": totals.messages_in, "messages_out": totals.messages_out, "bytes_in": totals.bytes_in, "bytes_out": totals.bytes_out, "websocket.close.code": code, "websocket.upstream.close.code": upstream_code, "websocket.close.initiator": initiator.as_str()})
        }
        EventKind::ProbeAttempt {
            endpoint,
            url,
            attempt,
            transport,
        } => {
            json!({"endpoint": endpoint, "url": url, "attempt": attempt, "websocket.transport": transport.as_str()})
        }
        EventKind::ProbeSucceeded {
            endpoint,
            transport,
            duration,
            recovered,
        } => {
            json!({"endpoint": endpoint, "websocket.transport": transport.as_str(), "duration_ms": duration.as_secs_f64() * 1e3, "recovered": recovered})
        }
        EventKind::ProbeFailed {
            endpoint,
            transport,
            cause,
            status,
            duration,
        } => {
            json!({"endpoint": endpoint, "websocket.transport": transport.as_str(), "cause": cause.as_str(), "status": status, "duration_ms": duration.as_secs_f64() * 1e3})
        }
        EventKind::ProbeRejected {
            endpoint,
            url,
            status,
            duration,
            ..
        } => {
            json!({"endpoint": endpoint, "url": url, "http.response.status_code": status,
                   "reason": super::health::refusal(*status),
                   "duration_ms": duration.as_secs_f64() * 1e3, "state": "probe_rejected",
                   "hint": super::health::REJECTED_HINT})
        }
        EventKind::FallbackChanged { endpoint, mode } => {
            json!({"endpoint": endpoint, "websocket.fallback.mode": mode.map_or("primary", |m| m.as_str())})
        }
        EventKind::Failover { endpoint, from, to } => {
            json!({"endpoint": endpoint, "from": from, "to": to})
        }
        EventKind::Downgrade { endpoint, to } => {
            json!({"endpoint": endpoint, "websocket.transport": to.as_str()})
        }
        EventKind::FallbackActivated { endpoint } => json!({"endpoint": endpoint}),
        EventKind::MissingHeartbeat { endpoint, silence } => {
            json!({"endpoint": endpoint, "silence_ms": silence.as_secs_f64() * 1e3})
        }
        EventKind::BufferFlushed {
            endpoint,
            messages,
            queued,
        } => json!({"endpoint": endpoint, "messages": messages, "queued": queued}),
        EventKind::BufferRejected {
            endpoint,
            reason,
            capacity,
            queued,
        } => {
            json!({"endpoint": endpoint, "reason": reason.as_str(), "capacity": capacity, "queued": queued})
        }
        _ => json!({}),
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
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

fn severity(level: LogLevel) -> i32 {
    match level {
        LogLevel::Debug => 5,
        LogLevel::Info => 9,
        LogLevel::Warn => 13,
        LogLevel::Error => 17,
    }
}

/// One log entry in both shapes.
pub struct Entry {
    /// The stdout JSON line.
    pub json: Value,
    /// The OTLP record.
    pub record: LogRecord,
}

/// Builds the log entry of `ev`.
pub fn entry(ev: &Event, sem: &Semantics, scope: &attrs::Scope, ids: Ids) -> Entry {
    let component = if ev.session.is_some() {
        "iskra-ws-sidecar.proxy"
    } else if matches!(
        ev.kind,
        EventKind::ProbeAttempt { .. }
            | EventKind::ProbeSucceeded { .. }
            | EventKind::ProbeFailed { .. }
            | EventKind::ProbeRejected { .. }
            | EventKind::FallbackChanged { .. }
            | EventKind::Failover { .. }
            | EventKind::Downgrade { .. }
            | EventKind::FallbackActivated { .. }
            | EventKind::MissingHeartbeat { .. }
            | EventKind::BufferFlushed { .. }
            | EventKind::BufferRejected { .. }
    ) {
        "iskra-ws-sidecar.probe"
    } else {
        "iskra-ws-sidecar.proxy"
    };
    let f = &sem.fractal;
    let mut j = json!({
        "timestamp": humantime::format_rfc3339_micros(ev.at).to_string(),
        "level": sem.level.as_str(),
        "component": component,
        "event_type": sem.event_type.as_str(),
        "iskra.dashboard": scope.dashboard,
    });
    let o = j.as_object_mut().expect("object");
    // The seed's switches: ∆DΩΛ and fractal metadata (iskra.fractal_logging), voices (iskra.voice_system).
    if scope.ddol {
        let mut fractal = json!({"seam_id": f.seam_id});
        if scope.voices {
            fractal["voice_pain"] = f.voice_pain.into();
            fractal["voice_chaos"] = f.voice_chaos.into();
            fractal["voice_trust"] = f.voice_trust.into();
        }
        o.extend([
            ("delta".into(), sem.delta.into()),
            ("dimension".into(), sem.dimension.into()),
            ("omega".into(), sem.omega.into()),
            ("lambda".into(), json!(sem.lambda)),
            ("fractal_metadata".into(), fractal),
            ("iskra.seam.id".into(), sem.seam.into()),
        ]);
    }
    if scope.voices {
        let voice = sem.voice.map_or("none", |v| v.as_str());
        o.insert("iskra.voice.active".into(), voice.into());
    }
    if let Some(e) = sem.error {
        o.insert("error.type".into(), e.as_str().into());
        o.insert("severity".into(), e.severity().as_str().into());
    }
    if let Some(l) = sem.voice_lambda().filter(|_| scope.voices) {
        o.insert("voice_lambda".into(), l.into());
    }
    if let Some(info) = &ev.session {
        o.insert("session_id".into(), info.id.into());
    }
    if let Some((t, sp)) = ids {
        o.insert("trace_id".into(), hex(&t).into());
        o.insert("span_id".into(), hex(&sp).into());
    }
    let details = details(&ev.kind);
    let mut attributes = Vec::new();
    attrs::iskra(sem, scope, &mut attributes);
    attributes.push(s("event_type", sem.event_type.as_str()));
    attributes.push(s("component", component));
    for (k, v) in &details {
        let kv = match v {
            Value::String(x) => s(k, x.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                attrs::i(k, n.as_i64().unwrap_or(i64::MAX))
            }
            Value::Number(n) => attrs::f(k, n.as_f64().unwrap_or(0.0)),
            Value::Bool(b) => s(k, b.to_string()),
            _ => continue,
        };
        attributes.push(kv);
    }
    o.extend(details);
    let record = LogRecord {
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
    };
    Entry { json: j, record }
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
}
