//! Mapping: which seed event type, and which Δ, each lifecycle or probe [`EventKind`] is.
//!
//! A failure classified SERVER_OVERLOAD is a `server_overload` event (whether it came from the sidecar's
//! limit, an HTTP 429/503 or a close 1013); any other failure to connect is `connection_failed`. A close
//! the sidecar initiated for an error is `error_handled`. Events the seed's table has no row for fall
//! into its "(anything else)" row with a Δ of their own. The tests below pin every arm.

use super::classify::classify;
use super::codes::classify_close_code;
use super::error_class::ErrorClass;
use super::event_type::EventType;
use crate::events::{EventKind, Initiator, RejectCause};
use std::time::Duration;

/// What the mapping says about one event, beyond its error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// The seed event type (the table row).
    pub event_type: EventType,
    /// Δ: the event's snake_case name; the row's name unless the row is "(anything else)" or the event
    /// is a particular case of the row.
    pub delta: &'static str,
    /// Frequent and uneventful: logged at DEBUG unless it carries trouble.
    pub routine: bool,
}

fn named(event_type: EventType, routine: bool) -> Mapped {
    Mapped {
        event_type,
        delta: event_type.as_str(),
        routine,
    }
}

const fn other(delta: &'static str, routine: bool) -> Mapped {
    Mapped {
        event_type: EventType::Other,
        delta,
        routine,
    }
}

/// A failure: `server_overload` when classified so, else `connection_failed`.
fn failure(error: Option<ErrorClass>) -> Mapped {
    match error {
        Some(ErrorClass::ServerOverload) => named(EventType::ServerOverload, false),
        _ => named(EventType::ConnectionFailed, false),
    }
}

/// The seed event type and Δ of `kind`.
pub fn map_kind(kind: &EventKind) -> Mapped {
    use EventKind as K;
    use EventType as T;
    match kind {
        K::Accepted { .. } => other("connection_accepted", true),
        K::RequestHead { upgrade: true, .. } => other("upgrade_requested", true),
        K::RequestHead { upgrade: false, .. } => other("http_request_received", true),
        K::UpstreamConnectStarted => other("upstream_connect_started", true),
        K::UpstreamConnected { .. } => other("upstream_connected", true),
        K::UpstreamConnectFailed { .. } | K::ProbeFailed { .. } => failure(classify(kind)),
        // A session's routine open and close (the `ws.session` span carries the same ∆DΩΛ): DEBUG
        // unless trouble (an error class or an alerting voice) lifts them.
        K::HandshakeCompleted { .. } => named(T::ConnectionEstablished, true),
        K::HandshakeRejected {
            cause: RejectCause::ShuttingDown,
            ..
        } => other("sidecar_draining", false),
        K::HandshakeRejected {
            cause: RejectCause::ClientGone,
            ..
        } => other("handshake_abandoned", false),
        K::HandshakeRejected { .. } => failure(classify(kind)),
        K::HttpRelayed { .. } => other("http_relayed", true),
        K::FrameRelayed { .. } => other("frame_relayed", true),
        K::PingPong { .. } => named(T::HeartbeatSuccess, true),
        K::HeartbeatTimeout { .. } => named(T::HeartbeatTimeout, false),
        K::Close {
            code,
            initiator: Initiator::Sidecar,
            ..
        } if classify_close_code(*code).is_some() => named(T::ErrorHandled, false),
        K::Close { code, .. } if classify_close_code(*code) == Some(ErrorClass::ServerOverload) => {
            named(T::ServerOverload, false)
        }
        K::Close { .. } => other("connection_closed", true),
        K::ProtocolError { .. } => named(T::ProtocolViolation, false),
        K::SessionEnded { .. } => other("session_ended", true),
        K::Resumed { .. } => named(T::ConnectionResumed, false),
        K::ResumeGaveUp { .. } => other("resume_gave_up", false),
        K::ProbeAttempt { attempt: 0, .. } => other("connection_attempt", true),
        K::ProbeAttempt { .. } => other("reconnection_attempt", false),
        K::ProbeSucceeded {
            recovered: true, ..
        } => named(T::ReconnectionSuccess, false),
        K::ProbeSucceeded {
            recovered: false, ..
        } => named(T::ConnectionEstablished, false),
        K::Failover { .. } => other("server_failover", false),
        K::ProbeRejected { .. } => other("probe_rejected", false),
        K::FallbackChanged { mode: Some(_), .. } => other("fallback_mode_changed", false),
        K::FallbackChanged { mode: None, .. } => other("primary_restored", false),
        K::Downgrade { .. } => Mapped {
            event_type: T::DegradedServiceActivated,
            delta: "protocol_downgraded",
            routine: false,
        },
        K::FallbackActivated { .. } => named(T::FallbackActivated, false),
        K::MissingHeartbeat { .. } => named(T::MissingHeartbeat, false),
        K::BufferFlushed { .. } => named(T::BufferFlushed, false),
        // The outbox refusing a message is the sidecar asking its caller to come back later.
        K::BufferRejected { .. } => Mapped {
            event_type: T::ServerOverload,
            delta: "buffer_message_rejected",
            routine: false,
        },
    }
}

/// The latency the event itself measured, if any: a ping's RTT, or the time a connect or handshake
/// took. Durations of failures (time spent before failing) and of sessions are not latencies.
pub fn measured_latency(kind: &EventKind) -> Option<Duration> {
    match kind {
        EventKind::PingPong { rtt, .. } => *rtt,
        EventKind::UpstreamConnected { duration }
        | EventKind::HandshakeCompleted { duration, .. }
        | EventKind::ProbeSucceeded { duration, .. } => Some(*duration),
        _ => None,
    }
}

/// Whether the event is a latency measurement, logged as a seed performance entry.
pub fn is_performance(kind: &EventKind) -> bool {
    matches!(kind, EventKind::PingPong { rtt: Some(_), .. })
}

/// Whether the event itself says fallback is active (D's +3 applies even if the caller's context has
/// not caught up yet).
pub fn announces_fallback(kind: &EventKind) -> bool {
    matches!(kind, EventKind::FallbackActivated { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ConnectCause, Direction, OpcodeKind, Peer, ProtocolRule, Transport};
    use EventType as T;

    const D: Duration = Duration::from_millis(20);

    fn rejected(status: u16, cause: RejectCause) -> EventKind {
        EventKind::HandshakeRejected {
            duration: D,
            status,
            cause,
        }
    }

    fn close(code: u16, initiator: Initiator) -> EventKind {
        EventKind::Close {
            code,
            upstream_code: code,
            reason: String::new(),
            initiator,
        }
    }

    #[rustfmt::skip]
    fn probe_failed(cause: ConnectCause, status: Option<u16>) -> EventKind {
        EventKind::ProbeFailed { endpoint: "p".into(), transport: Transport::WebSocket, duration: D, cause, status }
    }

    #[rustfmt::skip]
    fn probe_succeeded(recovered: bool) -> EventKind {
        EventKind::ProbeSucceeded { endpoint: "p".into(), transport: Transport::WebSocket, duration: D, recovered }
    }

    #[rustfmt::skip]
    fn attempt(attempt: u32) -> EventKind {
        EventKind::ProbeAttempt { endpoint: "p".into(), url: "ws://x".into(), attempt, transport: Transport::Sse }
    }

    fn ping(rtt: Option<Duration>) -> EventKind {
        EventKind::PingPong {
            peer: Peer::Client,
            rtt,
        }
    }

    #[test]
    #[rustfmt::skip]
    fn every_event_kind_maps_to_a_documented_type_and_delta() {
        use RejectCause::*;
        let client: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let head = |upgrade| EventKind::RequestHead { method: "GET".into(), path: "/".into(), upgrade };
        let http = EventKind::HttpRelayed { method: "GET".into(), path: "/".into(), status: 200, duration: D };
        let frame = EventKind::FrameRelayed { direction: Direction::ClientToUpstream, opcode: OpcodeKind::Text, size: 3 };
        let ended = EventKind::SessionEnded { duration: D, totals: Default::default(), code: 1000, upstream_code: 1000, initiator: Initiator::Client };
        let failover = EventKind::Failover { endpoint: "p".into(), from: "ws://a".into(), to: "ws://b".into() };
        let cases: Vec<(EventKind, EventType, &str, bool)> = vec![
            (EventKind::Accepted { client },                   T::Other, "connection_accepted", true),
            (head(true),                                       T::Other, "upgrade_requested", true),
            (head(false),                                      T::Other, "http_request_received", true),
            (EventKind::UpstreamConnectStarted,                T::Other, "upstream_connect_started", true),
            (EventKind::UpstreamConnected { duration: D },     T::Other, "upstream_connected", true),
            (EventKind::UpstreamConnectFailed { duration: D, cause: ConnectCause::Refused }, T::ConnectionFailed, "connection_failed", false),
            (EventKind::HandshakeCompleted { duration: D, subprotocol: None, extensions: None }, T::ConnectionEstablished, "connection_established", true),
            (rejected(503, ConnectionLimit),                   T::ServerOverload, "server_overload", false),
            (rejected(502, UpstreamUnavailable(ConnectCause::Refused)), T::ConnectionFailed, "connection_failed", false),
            (rejected(504, UpstreamTimeout),                   T::ConnectionFailed, "connection_failed", false),
            (rejected(401, UpstreamStatus),                    T::ConnectionFailed, "connection_failed", false),
            (rejected(429, UpstreamStatus),                    T::ServerOverload, "server_overload", false),
            (rejected(503, UpstreamStatus),                    T::ServerOverload, "server_overload", false),
            (rejected(503, ShuttingDown),                      T::Other, "sidecar_draining", false),
            (rejected(499, ClientGone),                        T::Other, "handshake_abandoned", false),
            (rejected(400, InvalidRequest),                    T::ConnectionFailed, "connection_failed", false),
            (http,                                             T::Other, "http_relayed", true),
            (frame,                                            T::Other, "frame_relayed", true),
            (ping(Some(D)),                                    T::HeartbeatSuccess, "heartbeat_success", true),
            (ping(None),                                       T::HeartbeatSuccess, "heartbeat_success", true),
            (EventKind::HeartbeatTimeout { peer: Peer::Client, missed: 3 }, T::HeartbeatTimeout, "heartbeat_timeout", false),
            (close(1000, Initiator::Client),                   T::Other, "connection_closed", true),
            (close(1006, Initiator::Upstream),                 T::Other, "connection_closed", true),
            (close(1013, Initiator::Upstream),                 T::ServerOverload, "server_overload", false),
            (close(1002, Initiator::Sidecar),                  T::ErrorHandled, "error_handled", false),
            (close(1013, Initiator::Sidecar),                  T::ErrorHandled, "error_handled", false),
            (close(1001, Initiator::Sidecar),                  T::Other, "connection_closed", true),
            (EventKind::ProtocolError { peer: Peer::Client, rule: ProtocolRule::ReservedBits }, T::ProtocolViolation, "protocol_violation", false),
            (ended,                                            T::Other, "session_ended", true),
            (attempt(0),                                       T::Other, "connection_attempt", true),
            (attempt(1),                                       T::Other, "reconnection_attempt", false),
            (probe_succeeded(false),                           T::ConnectionEstablished, "connection_established", false),
            (probe_succeeded(true),                            T::ReconnectionSuccess, "reconnection_success", false),
            (probe_failed(ConnectCause::Refused, None),        T::ConnectionFailed, "connection_failed", false),
            (probe_failed(ConnectCause::BadResponse, Some(503)), T::ServerOverload, "server_overload", false),
            (probe_failed(ConnectCause::BadResponse, Some(429)), T::ServerOverload, "server_overload", false),
            (failover,                                         T::Other, "server_failover", false),
            (EventKind::Downgrade { endpoint: "p".into(), to: Transport::Sse }, T::DegradedServiceActivated, "protocol_downgraded", false),
            (EventKind::FallbackActivated { endpoint: "p".into() }, T::FallbackActivated, "fallback_activated", false),
            (EventKind::MissingHeartbeat { endpoint: "p".into(), silence: D }, T::MissingHeartbeat, "missing_heartbeat", false),
            (EventKind::BufferFlushed { endpoint: "p".into(), messages: 10, queued: 0 }, T::BufferFlushed, "buffer_flushed", false),
            (EventKind::BufferRejected { endpoint: "p".into(), reason: crate::events::DropReason::Full, capacity: 3, queued: 3 }, T::ServerOverload, "buffer_message_rejected", false),
            (EventKind::Resumed { gap: D, attempts: 2, upstream: "primary".into() }, T::ConnectionResumed, "connection_resumed", false),
            (EventKind::ResumeGaveUp { gap: D, attempts: 9, reason: crate::events::ResumeGaveUp::Timeout }, T::Other, "resume_gave_up", false),
        ];
        for (kind, event_type, delta, routine) in cases {
            assert_eq!(map_kind(&kind), Mapped { event_type, delta, routine }, "{kind:?}");
            assert!(delta.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{delta} is snake_case");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn latency_comes_from_measurements_only() {
        assert_eq!(measured_latency(&ping(Some(D))), Some(D));
        assert_eq!(measured_latency(&ping(None)), None);
        assert_eq!(measured_latency(&EventKind::UpstreamConnected { duration: D }), Some(D));
        let handshake = EventKind::HandshakeCompleted { duration: D, subprotocol: None, extensions: None };
        assert_eq!(measured_latency(&handshake), Some(D));
        assert_eq!(measured_latency(&probe_succeeded(true)), Some(D));
        // time spent before failing, or a session's length, is not a latency
        assert_eq!(measured_latency(&probe_failed(ConnectCause::TimedOut, None)), None);
        assert_eq!(measured_latency(&rejected(504, RejectCause::UpstreamTimeout)), None);
        let ended = EventKind::SessionEnded {
            duration: Duration::from_secs(3600), totals: Default::default(), code: 1000, upstream_code: 1000, initiator: Initiator::Client,
        };
        assert_eq!(measured_latency(&ended), None);
    }

    #[test]
    #[rustfmt::skip]
    fn performance_and_fallback_flags() {
        assert!(is_performance(&ping(Some(D))));
        assert!(!is_performance(&ping(None)));
        assert!(announces_fallback(&EventKind::FallbackActivated { endpoint: "p".into() }));
        assert!(!announces_fallback(&EventKind::Downgrade { endpoint: "p".into(), to: Transport::Polling }));
    }
}
