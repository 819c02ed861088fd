//! Error classes: the seed's six classes (severity, action, delta), and the class each event reports,
//! decided from typed causes — a [`ConnectCause`], an HTTP status or close code (see `codes`), a
//! [`RejectCause`], a protocol rule, a heartbeat timeout — and never from message text (the seed's
//! regexes are its known flaw).

use super::codes::{classify_close_code, classify_status};
use crate::events::{ConnectCause, EventKind, Initiator, RejectCause};

/// An Iskra error class (`error.type`, `iskra.error.class`, `websocket_errors_total{error_type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Something did not answer in time.
    ConnectionTimeout,
    /// The peer refused our credentials or policy.
    AuthenticationFailed,
    /// The server asked us to come back later.
    ServerOverload,
    /// The network path failed (refused, reset, unreachable, bad gateway, abnormal closure).
    NetworkError,
    /// A peer broke the WebSocket or HTTP upgrade protocol.
    ProtocolError,
    /// An error whose cause says nothing more specific.
    Unknown,
}

/// How bad an error class is (`iskra.error.severity`). The seed uses MEDIUM, HIGH and CRITICAL; LOW
/// exists for completeness and no class has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// `LOW`.
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`.
    High,
    /// `CRITICAL`.
    Critical,
}

impl Severity {
    /// `"LOW"`, `"MEDIUM"`, `"HIGH"` or `"CRITICAL"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One row of the seed's error class table.
#[derive(Debug, Clone, Copy)]
pub struct ErrorClassRow {
    /// The class.
    pub class: ErrorClass,
    /// Its SCREAMING_SNAKE name.
    pub name: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What to do about it.
    pub action: &'static str,
    /// The ∆ of an error entry of this class.
    pub delta: &'static str,
}

/// The seed's error class table, in its order; row `i` describes the class whose discriminant is `i`.
#[rustfmt::skip]
pub const ERROR_CLASS_TABLE: &[ErrorClassRow] = &[
    row(ErrorClass::ConnectionTimeout,    "CONNECTION_TIMEOUT",    Severity::High,     "reconnect",        "connection_timeout"),
    row(ErrorClass::AuthenticationFailed, "AUTHENTICATION_FAILED", Severity::Critical, "reauthenticate",   "auth_failed"),
    row(ErrorClass::ServerOverload,       "SERVER_OVERLOAD",       Severity::Medium,   "backoff",          "server_overload"),
    row(ErrorClass::NetworkError,         "NETWORK_ERROR",         Severity::High,     "reconnect",        "network_error"),
    row(ErrorClass::ProtocolError,        "PROTOCOL_ERROR",        Severity::Medium,   "retry",            "protocol_error"),
    row(ErrorClass::Unknown,              "UNKNOWN",               Severity::Medium,   "log_and_continue", "unknown_error"),
];

const fn row(
    class: ErrorClass,
    name: &'static str,
    severity: Severity,
    action: &'static str,
    delta: &'static str,
) -> ErrorClassRow {
    ErrorClassRow {
        class,
        name,
        severity,
        action,
        delta,
    }
}

impl ErrorClass {
    /// Its row in [`ERROR_CLASS_TABLE`].
    pub fn row(self) -> &'static ErrorClassRow {
        &ERROR_CLASS_TABLE[self as usize]
    }

    /// The class name, e.g. `"NETWORK_ERROR"`.
    pub fn as_str(&self) -> &'static str {
        self.row().name
    }

    /// The seed's severity.
    pub fn severity(&self) -> Severity {
        self.row().severity
    }

    /// The seed's action, e.g. `"reconnect"`.
    pub fn action(&self) -> &'static str {
        self.row().action
    }

    /// The seed's delta, e.g. `"network_error"`.
    pub fn delta(&self) -> &'static str {
        self.row().delta
    }
}

/// The class of a failed dial, from its I/O error kind.
pub fn classify_connect(cause: ConnectCause) -> ErrorClass {
    match cause {
        ConnectCause::TimedOut => ErrorClass::ConnectionTimeout,
        ConnectCause::Refused | ConnectCause::Reset | ConnectCause::Unreachable => {
            ErrorClass::NetworkError
        }
        ConnectCause::BadResponse => ErrorClass::ProtocolError,
        ConnectCause::Other => ErrorClass::Unknown,
    }
}

/// The class of a handshake the sidecar did not complete. The typed cause wins over the status it
/// produced; a draining sidecar's 503 is deliberate and no error; an upstream that answered the upgrade
/// with a status below 400 (200, a redirect) did not speak the protocol.
pub fn classify_reject(cause: RejectCause, status: u16) -> Option<ErrorClass> {
    match cause {
        RejectCause::ConnectionLimit => Some(ErrorClass::ServerOverload),
        RejectCause::UpstreamUnavailable(c) => Some(classify_connect(c)),
        RejectCause::UpstreamTimeout => Some(ErrorClass::ConnectionTimeout),
        RejectCause::UpstreamStatus => {
            Some(classify_status(status).unwrap_or(ErrorClass::ProtocolError))
        }
        RejectCause::ShuttingDown | RejectCause::ClientGone => None,
        RejectCause::InvalidRequest => Some(ErrorClass::ProtocolError),
    }
}

/// The class of a failed probe: the server's status when it answered one that has a class, else the
/// dial's cause.
pub fn classify_probe(cause: ConnectCause, status: Option<u16>) -> ErrorClass {
    status
        .and_then(classify_status)
        .unwrap_or_else(|| classify_connect(cause))
}

/// The error class an event reports, if it reports one. Each error is reported once: a close the
/// sidecar itself initiated is the handling of an error reported by the event that caused it
/// (`ProtocolError`, `HeartbeatTimeout`), and `SessionEnded` repeats the close already classified.
pub fn classify(kind: &EventKind) -> Option<ErrorClass> {
    match kind {
        EventKind::UpstreamConnectFailed { cause, .. } => Some(classify_connect(*cause)),
        EventKind::HandshakeRejected { status, cause, .. } => classify_reject(*cause, *status),
        EventKind::HeartbeatTimeout { .. } => Some(ErrorClass::ConnectionTimeout),
        EventKind::Close {
            initiator: Initiator::Sidecar,
            ..
        } => None,
        EventKind::Close { code, .. } => classify_close_code(*code),
        EventKind::ProtocolError { .. } => Some(ErrorClass::ProtocolError),
        EventKind::ProbeFailed { cause, status, .. } => Some(classify_probe(*cause, *status)),
        // A refused outbox message: whoever offered it must back off until the outbox flushes.
        EventKind::BufferRejected { .. } => Some(ErrorClass::ServerOverload),
        // Not errors: plain HTTP is relayed as is (its status is an attribute), a missing dashboard
        // heartbeat is a suspicion (Ω 0.1) until `HeartbeatTimeout`.
        EventKind::Accepted { .. }
        | EventKind::RequestHead { .. }
        | EventKind::UpstreamConnectStarted
        | EventKind::UpstreamConnected { .. }
        | EventKind::HandshakeCompleted { .. }
        | EventKind::HttpRelayed { .. }
        | EventKind::FrameRelayed { .. }
        | EventKind::PingPong { .. }
        | EventKind::SessionEnded { .. }
        | EventKind::ProbeAttempt { .. }
        | EventKind::ProbeSucceeded { .. }
        | EventKind::Failover { .. }
        // The dashboard is up and answered: the prober's request is what needs changing.
        | EventKind::ProbeRejected { .. }
        | EventKind::FallbackChanged { .. }
        | EventKind::Downgrade { .. }
        | EventKind::FallbackActivated { .. }
        | EventKind::MissingHeartbeat { .. }
        | EventKind::BufferFlushed { .. } => None,
        // A resume is the system working; a resume given up is followed by the Close that says what
        // the client got, classified there.
        EventKind::Resumed { .. } | EventKind::ResumeGaveUp { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Peer, ProtocolRule, Transport};
    use std::time::Duration;
    use ErrorClass::*;

    #[test]
    #[rustfmt::skip]
    fn error_class_table_rows_are_the_seeds() {
        let expected = [
            (ConnectionTimeout,    "CONNECTION_TIMEOUT",    "HIGH",     "reconnect",        "connection_timeout"),
            (AuthenticationFailed, "AUTHENTICATION_FAILED", "CRITICAL", "reauthenticate",   "auth_failed"),
            (ServerOverload,       "SERVER_OVERLOAD",       "MEDIUM",   "backoff",          "server_overload"),
            (NetworkError,         "NETWORK_ERROR",         "HIGH",     "reconnect",        "network_error"),
            (ProtocolError,        "PROTOCOL_ERROR",        "MEDIUM",   "retry",            "protocol_error"),
            (Unknown,              "UNKNOWN",               "MEDIUM",   "log_and_continue", "unknown_error"),
        ];
        assert_eq!(ERROR_CLASS_TABLE.len(), expected.len());
        for (class, name, severity, action, delta) in expected {
            assert_eq!(class.row().class, class);
            assert_eq!(class.as_str(), name);
            assert_eq!(class.severity().as_str(), severity, "{name}");
            assert_eq!(class.action(), action, "{name}");
            assert_eq!(class.delta(), delta, "{name}");
        }
    }

    #[test]
    fn severities_order_and_names() {
        assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
        assert_eq!(Severity::Low.as_str(), "LOW");
    }

    #[test]
    #[rustfmt::skip]
    fn connect_causes() {
        assert_eq!(classify_connect(ConnectCause::TimedOut),    ConnectionTimeout);
        assert_eq!(classify_connect(ConnectCause::Refused),     NetworkError);
        assert_eq!(classify_connect(ConnectCause::Reset),       NetworkError);
        assert_eq!(classify_connect(ConnectCause::Unreachable), NetworkError);
        assert_eq!(classify_connect(ConnectCause::BadResponse), ProtocolError);
        assert_eq!(classify_connect(ConnectCause::Other),       Unknown);
    }

    #[test]
    fn protocol_rules_close_with_codes_classified_as_protocol_errors() {
        for rule in [
            ProtocolRule::ReservedOpcode,
            ProtocolRule::InvalidUtf8,
            ProtocolRule::FrameTooLarge,
        ] {
            assert_eq!(classify_close_code(rule.close_code()), Some(ProtocolError));
            let kind = EventKind::ProtocolError {
                peer: Peer::Client,
                rule,
            };
            assert_eq!(classify(&kind), Some(ProtocolError));
        }
    }

    #[test]
    #[rustfmt::skip]
    fn rejects_typed_cause_wins_over_status() {
        use RejectCause::*;
        assert_eq!(classify_reject(ConnectionLimit, 503), Some(ServerOverload));
        assert_eq!(classify_reject(UpstreamUnavailable(ConnectCause::TimedOut), 502), Some(ConnectionTimeout));
        assert_eq!(classify_reject(UpstreamUnavailable(ConnectCause::Refused), 502), Some(NetworkError));
        assert_eq!(classify_reject(UpstreamTimeout, 504), Some(ConnectionTimeout));
        assert_eq!(classify_reject(ShuttingDown, 503), None);
    }

    #[test]
    #[rustfmt::skip]
    fn rejects_relaying_an_upstream_status() {
        let up = RejectCause::UpstreamStatus;
        assert_eq!(classify_reject(up, 401), Some(AuthenticationFailed));
        assert_eq!(classify_reject(up, 403), Some(AuthenticationFailed));
        assert_eq!(classify_reject(up, 429), Some(ServerOverload));
        assert_eq!(classify_reject(up, 503), Some(ServerOverload));
        assert_eq!(classify_reject(up, 500), Some(Unknown));
        // an upstream answering the upgrade with 200 or a redirect did not speak the protocol
        assert_eq!(classify_reject(up, 200), Some(ProtocolError));
        assert_eq!(classify_reject(up, 302), Some(ProtocolError));
    }

    #[test]
    #[rustfmt::skip]
    fn probes_prefer_a_classified_status_over_the_dial_cause() {
        assert_eq!(classify_probe(ConnectCause::BadResponse, Some(401)), AuthenticationFailed);
        assert_eq!(classify_probe(ConnectCause::BadResponse, Some(503)), ServerOverload);
        assert_eq!(classify_probe(ConnectCause::BadResponse, Some(200)), ProtocolError);
        assert_eq!(classify_probe(ConnectCause::Refused, None), NetworkError);
    }

    #[test]
    #[rustfmt::skip]
    fn events() {
        let d = Duration::from_millis(5);
        let close = |code, initiator| EventKind::Close { code, upstream_code: code, reason: String::new(), initiator };
        let probe_failed = EventKind::ProbeFailed {
            endpoint: "pulse".into(), transport: Transport::WebSocket, duration: d,
            cause: ConnectCause::TimedOut, status: None,
        };
        let http = EventKind::HttpRelayed { method: "GET".into(), path: "/".into(), status: 503, duration: d };
        let ended = EventKind::SessionEnded {
            duration: d, totals: Default::default(), code: 1006, upstream_code: 1006, initiator: Initiator::Upstream,
        };
        let cases = [
            (EventKind::UpstreamConnectFailed { duration: d, cause: ConnectCause::Reset }, Some(NetworkError)),
            (EventKind::HeartbeatTimeout { peer: Peer::Upstream, missed: 3 }, Some(ConnectionTimeout)),
            (close(1006, Initiator::Client), Some(NetworkError)),
            (close(1013, Initiator::Upstream), Some(ServerOverload)),
            (close(1000, Initiator::Client), None),
            (close(1002, Initiator::Sidecar), None), // handles an error already reported
            (probe_failed, Some(ConnectionTimeout)),
            (http, None),      // plain HTTP: the status is an attribute, not an Iskra error
            (ended, None),     // the close was classified already
            (EventKind::MissingHeartbeat { endpoint: "pulse".into(), silence: d }, None),
            (EventKind::BufferFlushed { endpoint: "pulse".into(), messages: 10, queued: 0 }, None),
            (EventKind::Resumed { gap: Duration::from_millis(1500), attempts: 3, upstream: "primary".into() }, None),
            (EventKind::BufferRejected { endpoint: "pulse".into(), reason: crate::events::DropReason::Full, capacity: 3, queued: 3 }, Some(ServerOverload)),
        ];
        for (kind, class) in cases {
            assert_eq!(classify(&kind), class, "{kind:?}");
        }
    }
}
