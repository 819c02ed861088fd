//! Event types: the seed's ∆DΩΛ event table (Ω, Λ, seam and voice impact per event type), and the
//! other events the seed gives an Ω of their own.
//!
//! [`EVENT_TABLE`] is the seed's table, row for row, ending with its "(anything else)" row
//! ([`EventType::Other`]). Where the seed's table says "default" for a voice impact, the seed's code
//! falls back to `{pain 0.3, trust 0.5, chaos 0.3}`, the same value as the "(anything else)" row: so
//! `connection_established`, `heartbeat_success`, `error_handled` and `server_overload` have that impact
//! and activate no voice.
//!
//! [`EXTRA_EVENT_TABLE`] holds the events the seed logs outside that table with an Ω of their own.
//! Their Ω is the seed's; their Λ, seam and impact are decisions of this crate, documented per row.

use super::ddol::{DEFAULT_LAMBDA, DEFAULT_OMEGA};
use super::seams::{
    COMMUNICATION_PROTOCOL, DATA_CONTRACT, GENERAL_OPERATION, LOAD_BALANCING,
    NETWORK_INFRASTRUCTURE, RESILIENCE_MECHANISMS,
};
use super::voices::VoiceImpact;

/// A seed event type: a row of [`EVENT_TABLE`] or [`EXTRA_EVENT_TABLE`], in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A connection is up (handshake completed, or a first probe connect).
    ConnectionEstablished,
    /// A connection could not be made.
    ConnectionFailed,
    /// A ping was answered.
    HeartbeatSuccess,
    /// A peer missed its heartbeats and was declared dead.
    HeartbeatTimeout,
    /// The sidecar handled an error by closing the session itself.
    ErrorHandled,
    /// A probe connected again after failures.
    ReconnectionSuccess,
    /// The prober spent its attempts and entered degraded mode.
    FallbackActivated,
    /// A peer broke an RFC 6455 rule.
    ProtocolViolation,
    /// The server (or the sidecar's limit) asked to come back later.
    ServerOverload,
    /// The seed's "(anything else)" row.
    Other,
    /// The seed's heartbeat ping (`heartbeat_sent`, Ω 1.0).
    HeartbeatSent,
    /// The dashboard's own heartbeat seen (`server_heartbeat_detected`, Ω 0.9).
    ServerHeartbeatDetected,
    /// The dashboard's own heartbeats stopped (Ω 0.1).
    MissingHeartbeat,
    /// Degraded service: the prober moved to a lower transport (Ω 0.3).
    DegradedServiceActivated,
    /// The offline buffer was flushed (Ω 0.8).
    BufferFlushed,
    /// A session held through an upstream restart resumed on a new connection (this crate's own).
    ConnectionResumed,
}

/// One row of the event tables.
#[derive(Debug, Clone, Copy)]
pub struct EventRow {
    /// The event type.
    pub event_type: EventType,
    /// Its snake_case name (the seed's event type string).
    pub name: &'static str,
    /// Ω: confidence.
    pub omega: f64,
    /// Λ: the next action.
    pub lambda: &'static str,
    /// The seam touched.
    pub seam: &'static str,
    /// The voice impact.
    pub impact: VoiceImpact,
}

const fn row(
    event_type: EventType,
    name: &'static str,
    omega: f64,
    lambda: &'static str,
    seam: &'static str,
    impact: VoiceImpact,
) -> EventRow {
    EventRow {
        event_type,
        name,
        omega,
        lambda,
        seam,
        impact,
    }
}

const fn imp(pain: f64, trust: f64, chaos: f64) -> VoiceImpact {
    VoiceImpact::new(pain, trust, chaos)
}

const DEFAULT: VoiceImpact = VoiceImpact::DEFAULT;

/// The seed's event table: event type, Ω, Λ, seam, voice impact {pain, trust, chaos}.
#[rustfmt::skip]
pub const EVENT_TABLE: &[EventRow] = &[
    row(EventType::ConnectionEstablished, "connection_established", 0.9,  "continue_monitoring",              GENERAL_OPERATION,      DEFAULT),
    row(EventType::ConnectionFailed,      "connection_failed",      0.8,  "attempt_reconnection_with_backoff", NETWORK_INFRASTRUCTURE, imp(0.7, 0.3, 0.4)),
    row(EventType::HeartbeatSuccess,      "heartbeat_success",      0.95, "continue_monitoring",              GENERAL_OPERATION,      DEFAULT),
    row(EventType::HeartbeatTimeout,      "heartbeat_timeout",      0.7,  "validate_connection_health",       COMMUNICATION_PROTOCOL, imp(0.4, 0.2, 0.6)),
    row(EventType::ErrorHandled,          "error_handled",          0.8,  "continue_monitoring",              GENERAL_OPERATION,      DEFAULT),
    row(EventType::ReconnectionSuccess,   "reconnection_success",   0.85, "monitor_stability",                GENERAL_OPERATION,      imp(0.1, 0.8, 0.1)),
    row(EventType::FallbackActivated,     "fallback_activated",     0.6,  "investigate_primary_failure",      RESILIENCE_MECHANISMS,  imp(0.6, 0.4, 0.8)),
    row(EventType::ProtocolViolation,     "protocol_violation",     0.9,  "escalate_to_developer",            DATA_CONTRACT,          imp(0.8, 0.1, 0.9)),
    row(EventType::ServerOverload,        "server_overload",        0.75, "activate_fallback_strategy",       LOAD_BALANCING,         DEFAULT),
    row(EventType::Other,                 "other",                  DEFAULT_OMEGA, DEFAULT_LAMBDA,            GENERAL_OPERATION,      DEFAULT),
];

/// The seed's other events with an Ω of their own.
/// - `heartbeat_sent`, `server_heartbeat_detected`, `buffer_flushed`: the "(anything else)" row's Λ,
///   seam and impact.
/// - `missing_heartbeat`: the seed emits it with ∆ `heartbeat_timeout`, so it takes that row's Λ, seam
///   and impact (voice curiosity); its Ω stays the seed's 0.1.
/// - `degraded_service_activated`: the seed emits it with ∆ `fallback_activated`, so it takes that
///   row's Λ, seam and impact (voice courage); its Ω stays the seed's 0.3. (The seed's own Λ,
///   `websocket_fallback`, names a category, not a next step, and its logger overwrites it anyway.)
/// - `connection_resumed` (this crate's own event, not the seed's): a dashboard restart the user never
///   saw is the system working, so it reads like `reconnection_success` — Ω 0.9 (the sidecar saw the
///   new 101 agree), Λ `monitor_stability` (the dashboard just restarted: watch that it stays up), seam
///   `resilience_mechanisms` (the mechanism that absorbed it), impact {pain 0.1, trust 0.8, chaos 0.1}:
///   the celebration voice, no alarm.
#[rustfmt::skip]
pub const EXTRA_EVENT_TABLE: &[EventRow] = &[
    row(EventType::HeartbeatSent,            "heartbeat_sent",             1.0, DEFAULT_LAMBDA,                GENERAL_OPERATION,      DEFAULT),
    row(EventType::ServerHeartbeatDetected,  "server_heartbeat_detected",  0.9, DEFAULT_LAMBDA,                GENERAL_OPERATION,      DEFAULT),
    row(EventType::MissingHeartbeat,         "missing_heartbeat",          0.1, "validate_connection_health",  COMMUNICATION_PROTOCOL, imp(0.4, 0.2, 0.6)),
    row(EventType::DegradedServiceActivated, "degraded_service_activated", 0.3, "investigate_primary_failure", RESILIENCE_MECHANISMS,  imp(0.6, 0.4, 0.8)),
    row(EventType::BufferFlushed,            "buffer_flushed",             0.8, DEFAULT_LAMBDA,                GENERAL_OPERATION,      DEFAULT),
    row(EventType::ConnectionResumed,        "connection_resumed",         0.9, "monitor_stability",           RESILIENCE_MECHANISMS,  imp(0.1, 0.8, 0.1)),
];

impl EventType {
    /// Its row in [`EVENT_TABLE`] or [`EXTRA_EVENT_TABLE`].
    pub fn row(self) -> &'static EventRow {
        let i = self as usize;
        match EVENT_TABLE.get(i) {
            Some(row) => row,
            None => &EXTRA_EVENT_TABLE[i - EVENT_TABLE.len()],
        }
    }

    /// The seed's name for this event type, e.g. `"connection_failed"`.
    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// The event type a seed name stands for; an unknown name is [`EventType::Other`] (the seed's
    /// `table[type] || default`).
    pub fn from_name(name: &str) -> EventType {
        EVENT_TABLE
            .iter()
            .chain(EXTRA_EVENT_TABLE)
            .find(|r| r.name == name)
            .map_or(EventType::Other, |r| r.event_type)
    }

    /// Ω.
    pub fn omega(self) -> f64 {
        self.row().omega
    }

    /// Λ.
    pub fn lambda(self) -> &'static str {
        self.row().lambda
    }

    /// The seam touched.
    pub fn seam(self) -> &'static str {
        self.row().seam
    }

    /// The voice impact.
    pub fn impact(self) -> VoiceImpact {
        self.row().impact
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;

    type Expected = (
        EventType,
        &'static str,
        f64,
        &'static str,
        &'static str,
        (f64, f64, f64),
    );

    const D: (f64, f64, f64) = (0.3, 0.5, 0.3);

    fn check(expected: &[Expected]) {
        for &(ty, name, omega, lambda, seam, (pain, trust, chaos)) in expected {
            assert_eq!(ty.row().event_type, ty);
            assert_eq!(ty.as_str(), name);
            assert_eq!(EventType::from_name(name), ty);
            assert_eq!(ty.omega(), omega, "{name} Ω");
            assert_eq!(ty.lambda(), lambda, "{name} Λ");
            assert_eq!(ty.seam(), seam, "{name} seam");
            assert_eq!(
                ty.impact(),
                VoiceImpact { pain, trust, chaos },
                "{name} impact"
            );
        }
    }

    #[test]
    #[rustfmt::skip]
    fn every_row_of_the_seeds_event_table() {
        let expected = [
            (ConnectionEstablished, "connection_established", 0.9,  "continue_monitoring",               "general_operation",      D),
            (ConnectionFailed,      "connection_failed",      0.8,  "attempt_reconnection_with_backoff", "network_infrastructure", (0.7, 0.3, 0.4)),
            (HeartbeatSuccess,      "heartbeat_success",      0.95, "continue_monitoring",               "general_operation",      D),
            (HeartbeatTimeout,      "heartbeat_timeout",      0.7,  "validate_connection_health",        "communication_protocol", (0.4, 0.2, 0.6)),
            (ErrorHandled,          "error_handled",          0.8,  "continue_monitoring",               "general_operation",      D),
            (ReconnectionSuccess,   "reconnection_success",   0.85, "monitor_stability",                 "general_operation",      (0.1, 0.8, 0.1)),
            (FallbackActivated,     "fallback_activated",     0.6,  "investigate_primary_failure",       "resilience_mechanisms",  (0.6, 0.4, 0.8)),
            (ProtocolViolation,     "protocol_violation",     0.9,  "escalate_to_developer",             "data_contract",          (0.8, 0.1, 0.9)),
            (ServerOverload,        "server_overload",        0.75, "activate_fallback_strategy",        "load_balancing",         D),
            (Other,                 "other",                  0.5,  "continue_monitoring",               "general_operation",      D),
        ];
        assert_eq!(EVENT_TABLE.len(), expected.len());
        check(&expected);
    }

    #[test]
    #[rustfmt::skip]
    fn every_row_of_the_extra_table() {
        let expected = [
            (HeartbeatSent,            "heartbeat_sent",             1.0, "continue_monitoring",         "general_operation",      D),
            (ServerHeartbeatDetected,  "server_heartbeat_detected",  0.9, "continue_monitoring",         "general_operation",      D),
            (MissingHeartbeat,         "missing_heartbeat",          0.1, "validate_connection_health",  "communication_protocol", (0.4, 0.2, 0.6)),
            (DegradedServiceActivated, "degraded_service_activated", 0.3, "investigate_primary_failure", "resilience_mechanisms",  (0.6, 0.4, 0.8)),
            (BufferFlushed,            "buffer_flushed",             0.8, "continue_monitoring",         "general_operation",      D),
            (ConnectionResumed,        "connection_resumed",         0.9, "monitor_stability",           "resilience_mechanisms",  (0.1, 0.8, 0.1)),
        ];
        assert_eq!(EXTRA_EVENT_TABLE.len(), expected.len());
        check(&expected);
    }

    #[test]
    fn unknown_names_fall_into_the_anything_else_row() {
        let ty = EventType::from_name("websocket_frame_relayed");
        assert_eq!(ty, EventType::Other);
        assert_eq!((ty.omega(), ty.lambda()), (0.5, "continue_monitoring"));
        assert_eq!(
            (ty.seam(), ty.impact()),
            ("general_operation", VoiceImpact::DEFAULT)
        );
    }
}
