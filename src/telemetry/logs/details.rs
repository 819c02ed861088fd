//! An event's own fields (durations, codes, the prober's endpoint, …; never headers, cookies or query
//! strings), written once by [`details`] through [`Fields`] into either shape: the JSON line or the
//! OTLP record's attributes.

use opentelemetry_proto::tonic::common::v1::KeyValue;

use crate::events::EventKind;
use crate::jsonlog::Line;
use crate::telemetry::attrs::{self, s};
use crate::telemetry::names::{attr, log};

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
pub(super) fn details(kind: &EventKind, out: &mut impl Fields) {
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
            out.str(attr::REASON, &crate::telemetry::health::refusal(*status));
            out.float(log::DURATION_MS, ms(*duration));
            out.str(attr::STATE, "probe_rejected");
            out.str(log::HINT, crate::telemetry::health::REJECTED_HINT);
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
