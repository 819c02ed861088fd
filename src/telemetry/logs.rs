//! Lifecycle events → structured logs: a JSON line on stdout with the seed's fields (timestamp, level,
//! component, event_type, delta, omega, lambda, fractal_metadata) and the same record as an OTLP log,
//! correlated with its session's trace and span. The exporter never logs through this path, so its own
//! failures cannot feed back into it.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{json, Map, Value};

use super::attrs::{self, s};
use super::names::{attr, log};
use super::spans::{nanos, Ids};
use crate::events::{Event, EventKind};
use crate::semantics::{LogLevel, Semantics};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Event-specific fields worth logging (never headers, cookies or query strings).
fn details(kind: &EventKind) -> Map<String, Value> {
    let v = match kind {
        EventKind::Accepted { client } => json!({attr::CLIENT_ADDRESS: client.ip().to_string()}),
        EventKind::RequestHead {
            method,
            path,
            upgrade,
        } => {
            json!({attr::HTTP_REQUEST_METHOD: method, attr::URL_PATH: path, log::UPGRADE: upgrade})
        }
        EventKind::UpstreamConnected { duration } => {
            json!({log::DURATION_MS: duration.as_secs_f64() * 1e3})
        }
        EventKind::UpstreamConnectFailed { duration, cause } => {
            json!({log::DURATION_MS: duration.as_secs_f64() * 1e3, log::CAUSE: cause.as_str()})
        }
        EventKind::HandshakeCompleted {
            duration,
            subprotocol,
            ..
        } => {
            json!({log::DURATION_MS: duration.as_secs_f64() * 1e3, attr::SUBPROTOCOL: subprotocol})
        }
        EventKind::HandshakeRejected {
            duration, status, ..
        } => {
            json!({log::DURATION_MS: duration.as_secs_f64() * 1e3, attr::STATUS: status})
        }
        EventKind::HttpRelayed {
            method,
            path,
            status,
            duration,
        } => {
            json!({attr::HTTP_REQUEST_METHOD: method, attr::URL_PATH: path, attr::STATUS: status, log::DURATION_MS: duration.as_secs_f64() * 1e3})
        }
        EventKind::PingPong { peer, rtt } => {
            json!({attr::PEER: peer.as_str(), log::RTT_MS: rtt.map(|r| r.as_secs_f64() * 1e3)})
        }
        EventKind::HeartbeatTimeout { peer, missed } => {
            json!({attr::PEER: peer.as_str(), log::MISSED: missed})
        }
        EventKind::Resumed {
            gap,
            attempts,
            upstream,
        } => {
            json!({log::GAP_MS: gap.as_secs_f64() * 1e3, log::ATTEMPTS: attempts, attr::UPSTREAM_NAME: upstream})
        }
        EventKind::ResumeGaveUp {
            gap,
            attempts,
            reason,
        } => {
            json!({log::GAP_MS: gap.as_secs_f64() * 1e3, log::ATTEMPTS: attempts, attr::REASON: reason.as_str()})
        }
        EventKind::Close {
            code,
            upstream_code,
            reason,
            initiator,
        } => {
            json!({attr::CLOSE_CODE: code, attr::UPSTREAM_CLOSE_CODE: upstream_code, attr::CLOSE_REASON: reason, attr::CLOSE_INITIATOR: initiator.as_str()})
        }
        EventKind::ProtocolError { peer, rule } => {
            json!({attr::PEER: peer.as_str(), attr::RULE: rule.as_str(), attr::CLOSE_CODE: rule.close_code()})
        }
        EventKind::SessionEnded {
            duration,
            totals,
            code,
            upstream_code,
            initiator,
        } => {
            json!({log::DURATION_S: duration.as_secs_f64(), log::MESSAGES_IN: totals.messages_in, log::MESSAGES_OUT: totals.messages_out, log::BYTES_IN: totals.bytes_in, log::BYTES_OUT: totals.bytes_out, attr::CLOSE_CODE: code, attr::UPSTREAM_CLOSE_CODE: upstream_code, attr::CLOSE_INITIATOR: initiator.as_str()})
        }
        EventKind::ProbeAttempt {
            endpoint,
            url,
            attempt,
            transport,
        } => {
            json!({attr::ENDPOINT: endpoint, log::URL: url, log::ATTEMPT: attempt, attr::TRANSPORT: transport.as_str()})
        }
        EventKind::ProbeSucceeded {
            endpoint,
            transport,
            duration,
            recovered,
        } => {
            json!({attr::ENDPOINT: endpoint, attr::TRANSPORT: transport.as_str(), log::DURATION_MS: duration.as_secs_f64() * 1e3, log::RECOVERED: recovered})
        }
        EventKind::ProbeFailed {
            endpoint,
            transport,
            cause,
            status,
            duration,
        } => {
            json!({attr::ENDPOINT: endpoint, attr::TRANSPORT: transport.as_str(), log::CAUSE: cause.as_str(), log::STATUS: status, log::DURATION_MS: duration.as_secs_f64() * 1e3})
        }
        EventKind::ProbeRejected {
            endpoint,
            url,
            status,
            duration,
            ..
        } => {
            json!({attr::ENDPOINT: endpoint, log::URL: url, attr::STATUS: status,
                   attr::REASON: super::health::refusal(*status),
                   log::DURATION_MS: duration.as_secs_f64() * 1e3, attr::STATE: "probe_rejected",
                   log::HINT: super::health::REJECTED_HINT})
        }
        EventKind::FallbackChanged { endpoint, mode } => {
            json!({attr::ENDPOINT: endpoint, attr::FALLBACK_MODE: mode.map_or("primary", |m| m.as_str())})
        }
        EventKind::Failover { endpoint, from, to } => {
            json!({attr::ENDPOINT: endpoint, log::FROM: from, log::TO: to})
        }
        EventKind::Downgrade { endpoint, to } => {
            json!({attr::ENDPOINT: endpoint, attr::TRANSPORT: to.as_str()})
        }
        EventKind::FallbackActivated { endpoint } => json!({attr::ENDPOINT: endpoint}),
        EventKind::MissingHeartbeat { endpoint, silence } => {
            json!({attr::ENDPOINT: endpoint, log::SILENCE_MS: silence.as_secs_f64() * 1e3})
        }
        EventKind::BufferFlushed {
            endpoint,
            messages,
            queued,
        } => json!({attr::ENDPOINT: endpoint, log::MESSAGES: messages, log::QUEUED: queued}),
        EventKind::BufferRejected {
            endpoint,
            reason,
            capacity,
            queued,
        } => {
            json!({attr::ENDPOINT: endpoint, attr::REASON: reason.as_str(), log::CAPACITY: capacity, log::QUEUED: queued})
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
        log::COMPONENT: component,
        log::EVENT_TYPE: sem.event_type.as_str(),
        attr::DASHBOARD: scope.dashboard,
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
            (attr::SEAM_ID.into(), sem.seam.into()),
        ]);
    }
    if scope.voices {
        let voice = sem.voice.map_or("none", |v| v.as_str());
        o.insert(attr::VOICE_ACTIVE.into(), voice.into());
    }
    if let Some(e) = sem.error {
        o.insert(attr::ERROR_TYPE.into(), e.as_str().into());
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
    attributes.push(s(log::EVENT_TYPE, sem.event_type.as_str()));
    attributes.push(s(log::COMPONENT, component));
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
