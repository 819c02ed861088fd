//! End-to-end tests of [`describe`]: one lifecycle event in, the whole seed vocabulary out, for every
//! seed event type the sidecar produces and every choice made where the seed is ambiguous.
//! (Assertions are kept one per line, so the test functions skip rustfmt.)

use super::*;
use crate::events::{ConnectCause, Initiator, Peer, ProtocolRule, RejectCause, Transport};
use seams::{ERROR_ENTRY, PERFORMANCE_ENTRY};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A seed event type that no [`EventKind`] produces (e.g. `heartbeat_sent`), described as `describe` would:
/// Δ is the type's name, no error; heartbeats are routine.
fn describe_event_type(event_type: EventType, ctx: &Context) -> Semantics {
    let routine = matches!(
        event_type,
        EventType::HeartbeatSuccess | EventType::HeartbeatSent | EventType::ServerHeartbeatDetected
    );
    let mapped = mapping::Mapped {
        event_type,
        delta: event_type.as_str(),
        routine,
    };
    let fallback = ctx.fallback_active || event_type == EventType::FallbackActivated;
    build(
        mapped,
        None,
        ctx.latency,
        fallback,
        EntryKind::Event,
        ctx.reconnections,
    )
}

fn ctx() -> Context {
    Context::default()
}

#[rustfmt::skip]
fn close(code: u16, initiator: Initiator) -> EventKind {
    EventKind::Close { code, upstream_code: code, reason: String::new(), initiator }
}

#[rustfmt::skip]
fn ping(rtt: Option<Duration>) -> EventKind {
    EventKind::PingPong { peer: Peer::Upstream, rtt }
}

fn event_entry(impact: VoiceImpact, seam: &'static str) -> FractalMetadata {
    FractalMetadata::for_entry(EntryKind::Event, impact, seam)
}

#[test]
#[rustfmt::skip]
fn connection_failed_end_to_end() {
    let kind = EventKind::UpstreamConnectFailed { duration: MS(3), cause: ConnectCause::Refused };
    let s = describe(&kind, &ctx());
    assert_eq!(s.delta, "connection_failed");
    assert_eq!(s.event_type, EventType::ConnectionFailed);
    assert_eq!(s.dimension, 3); // 1 + 2 for the error
    assert_eq!(s.omega, 0.8);
    assert_eq!(s.lambda, "attempt_reconnection_with_backoff");
    assert_eq!(s.seam, "network_infrastructure");
    assert_eq!(s.impact, VoiceImpact::new(0.7, 0.3, 0.4));
    // pain is exactly 0.7, not above it: no alarm, mercy (pain > 0.4)
    assert_eq!(s.voice, Some(Voice::Mercy));
    assert_eq!(s.voice_lambda().as_deref(), Some("respond_to_connection_failed_with_mercy"));
    assert_eq!(s.error, Some(ErrorClass::NetworkError));
    assert_eq!(s.level, LogLevel::Warn);
    assert_eq!(s.fractal, ERROR_ENTRY);
}

#[test]
#[rustfmt::skip]
fn protocol_violation_raises_the_alarm_at_error_level() {
    let kind = EventKind::ProtocolError { peer: Peer::Client, rule: ProtocolRule::UnmaskedClientFrame };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.omega, s.seam), ("protocol_violation", 0.9, "data_contract"));
    assert_eq!(s.lambda, "escalate_to_developer");
    assert_eq!(s.voice, Some(Voice::Alarm));
    assert_eq!(s.voice_lambda().as_deref(), Some("respond_to_protocol_violation_with_alarm"));
    assert_eq!(s.error, Some(ErrorClass::ProtocolError));
    assert_eq!((s.level, s.dimension), (LogLevel::Error, 3));
}

#[test]
#[rustfmt::skip]
fn heartbeat_success_is_debug_not_the_seeds_error() {
    let s = describe(&ping(Some(MS(20))), &ctx());
    assert_eq!((s.delta, s.omega), ("heartbeat_success", 0.95));
    assert_eq!(log_level_for_omega(s.omega), LogLevel::Error);
    assert_eq!(s.level, LogLevel::Debug);
    assert_eq!((s.voice, s.error, s.dimension), (None, None, 1));
    assert_eq!(s.fractal, PERFORMANCE_ENTRY); // an RTT is a performance entry
    let s = describe(&ping(None), &ctx());
    assert_eq!(s.fractal, event_entry(VoiceImpact::DEFAULT, "general_operation"));
}

#[test]
#[rustfmt::skip]
fn the_events_own_latency_wins_over_the_contexts() {
    let slow = Context { latency: Some(MS(5000)), ..ctx() };
    assert_eq!(describe(&ping(Some(MS(1500))), &ctx()).dimension, 2);
    assert_eq!(describe(&ping(Some(MS(1000))), &ctx()).dimension, 1);
    assert_eq!(describe(&ping(Some(MS(20))), &slow).dimension, 1);
    assert_eq!(describe(&ping(None), &slow).dimension, 2);
    let handshake = EventKind::HandshakeCompleted { duration: MS(1200), subprotocol: None, extensions: None };
    assert_eq!(describe(&handshake, &ctx()).dimension, 2);
}

#[test]
#[rustfmt::skip]
fn a_sessions_connection_established_is_debug_not_the_seeds_error() {
    // Routine per session (its ws.session span carries the same ∆DΩΛ): DEBUG by default since issue 15.
    let kind = EventKind::HandshakeCompleted { duration: MS(5), subprotocol: None, extensions: None };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.omega, s.lambda.as_ref()), ("connection_established", 0.9, "continue_monitoring"));
    assert_eq!(log_level_for_omega(s.omega), LogLevel::Error);
    assert_eq!((s.level, s.voice, s.error), (LogLevel::Debug, None, None));
}

#[test]
#[rustfmt::skip]
fn reconnection_success_celebrates_and_counts_reconnections() {
    let kind = EventKind::ProbeSucceeded {
        endpoint: "pulse".into(), transport: Transport::WebSocket, duration: MS(9), recovered: true,
    };
    let s = describe(&kind, &Context { reconnections: 3, ..ctx() });
    assert_eq!((s.delta, s.omega, s.lambda.as_ref()), ("reconnection_success", 0.85, "monitor_stability"));
    assert_eq!(s.voice, Some(Voice::Celebration));
    assert_eq!(s.dimension, 4); // 1 + 3 reconnections
    assert_eq!(s.level, LogLevel::Info); // celebration is not an alert
}

#[test]
#[rustfmt::skip]
fn fallback_activated_counts_itself_as_fallback_and_caps_at_ten() {
    let kind = EventKind::FallbackActivated { endpoint: "voices".into() };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.omega, s.seam), ("fallback_activated", 0.6, "resilience_mechanisms"));
    assert_eq!(s.lambda, "investigate_primary_failure");
    assert_eq!(s.voice, Some(Voice::Courage));
    assert_eq!((s.dimension, s.level), (4, LogLevel::Info));
    assert_eq!(describe(&kind, &Context { reconnections: 10, ..ctx() }).dimension, 10);
}

#[test]
#[rustfmt::skip]
fn fallback_context_adds_three_to_any_event() {
    let on = Context { fallback_active: true, ..ctx() };
    assert_eq!(describe(&ping(None), &on).dimension, 4);
    let failed = EventKind::UpstreamConnectFailed { duration: MS(1), cause: ConnectCause::TimedOut };
    let all = Context { reconnections: 2, fallback_active: true, latency: Some(MS(1001)) };
    assert_eq!(describe(&failed, &all).dimension, 9); // 1 + 2 + 1 + 2 + 3
}

#[test]
#[rustfmt::skip]
fn heartbeat_timeout_is_a_connection_timeout() {
    let s = describe(&EventKind::HeartbeatTimeout { peer: Peer::Client, missed: 3 }, &ctx());
    assert_eq!((s.delta, s.omega, s.seam), ("heartbeat_timeout", 0.7, "communication_protocol"));
    assert_eq!(s.lambda, "validate_connection_health");
    assert_eq!((s.voice, s.error), (Some(Voice::Curiosity), Some(ErrorClass::ConnectionTimeout)));
    assert_eq!((s.level, s.fractal), (LogLevel::Warn, ERROR_ENTRY));
}

#[test]
#[rustfmt::skip]
fn server_overload_from_the_connection_limit() {
    let kind = EventKind::HandshakeRejected { duration: MS(0), status: 503, cause: RejectCause::ConnectionLimit };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.omega, s.seam), ("server_overload", 0.75, "load_balancing"));
    assert_eq!(s.lambda, "activate_fallback_strategy");
    // the seed gives server_overload the default impact: no voice
    assert_eq!((s.impact, s.voice), (VoiceImpact::DEFAULT, None));
    assert_eq!((s.error, s.level), (Some(ErrorClass::ServerOverload), LogLevel::Warn));
}

#[test]
fn server_overload_from_a_close_1013() {
    let s = describe(&close(1013, Initiator::Upstream), &ctx());
    assert_eq!(s.delta, "server_overload");
    assert_eq!(s.error, Some(ErrorClass::ServerOverload));
}

#[test]
#[rustfmt::skip]
fn normal_and_abnormal_closes_fall_into_anything_else() {
    let s = describe(&close(1000, Initiator::Client), &ctx());
    assert_eq!((s.delta, s.event_type, s.omega), ("connection_closed", EventType::Other, 0.5));
    // A clean close is routine (DEBUG); an abnormal one carries an error class and stays at INFO.
    assert_eq!((s.error, s.voice, s.level, s.dimension), (None, None, LogLevel::Debug, 1));
    assert_eq!(s.fractal, event_entry(VoiceImpact::DEFAULT, "general_operation"));
    let s = describe(&close(1006, Initiator::Client), &ctx());
    assert_eq!((s.delta, s.error), ("connection_closed", Some(ErrorClass::NetworkError)));
    assert_eq!((s.level, s.dimension, s.fractal), (LogLevel::Info, 3, ERROR_ENTRY));
}

#[test]
#[rustfmt::skip]
fn the_sidecars_own_close_for_an_error_is_error_handled_and_counts_no_second_error() {
    let s = describe(&close(1002, Initiator::Sidecar), &ctx());
    assert_eq!((s.delta, s.omega, s.lambda.as_ref()), ("error_handled", 0.8, "continue_monitoring"));
    assert_eq!((s.error, s.voice, s.level, s.dimension), (None, None, LogLevel::Info, 1));
}

#[test]
#[rustfmt::skip]
fn missing_heartbeat_is_a_low_confidence_suspicion() {
    let kind = EventKind::MissingHeartbeat { endpoint: "pulse".into(), silence: MS(60_000) };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.omega, s.seam), ("missing_heartbeat", 0.1, "communication_protocol"));
    assert_eq!((s.voice, s.error), (Some(Voice::Curiosity), None));
    assert_eq!(log_level_for_omega(0.1), LogLevel::Debug);
    assert_eq!(s.level, LogLevel::Info); // trouble is never DEBUG
}

#[test]
#[rustfmt::skip]
fn the_outbox_flush_is_buffer_flushed_and_a_refusal_warns_as_server_overload() {
    let kind = EventKind::BufferFlushed { endpoint: "pulse".into(), messages: 10, queued: 0 };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.event_type, s.omega), ("buffer_flushed", EventType::BufferFlushed, 0.8));
    assert_eq!((s.error, s.voice, s.level), (None, None, LogLevel::Info));
    let kind = EventKind::BufferRejected { endpoint: "pulse".into(), reason: crate::events::DropReason::Full, capacity: 3, queued: 3 };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.event_type, s.omega), ("buffer_message_rejected", EventType::ServerOverload, 0.75));
    assert_eq!((s.error, s.voice, s.level), (Some(ErrorClass::ServerOverload), None, LogLevel::Warn));
}

#[test]
#[rustfmt::skip]
fn a_downgrade_is_the_seeds_degraded_service() {
    let kind = EventKind::Downgrade { endpoint: "seams".into(), to: Transport::LongPolling };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.event_type), ("protocol_downgraded", EventType::DegradedServiceActivated));
    assert_eq!((s.omega, s.voice, s.level), (0.3, Some(Voice::Courage), LogLevel::Info));
    assert_eq!(s.voice_lambda().as_deref(), Some("respond_to_degraded_service_activated_with_courage"));
}

#[test]
#[rustfmt::skip]
fn draining_rejects_are_not_errors() {
    let kind = EventKind::HandshakeRejected { duration: MS(0), status: 503, cause: RejectCause::ShuttingDown };
    let s = describe(&kind, &ctx());
    assert_eq!((s.delta, s.error, s.level), ("sidecar_draining", None, LogLevel::Info));
}

#[test]
#[rustfmt::skip]
fn seed_events_without_an_event_kind() {
    let cases = [
        (EventType::HeartbeatSent,           "heartbeat_sent",            1.0, LogLevel::Debug),
        (EventType::ServerHeartbeatDetected, "server_heartbeat_detected", 0.9, LogLevel::Debug),
        (EventType::BufferFlushed,           "buffer_flushed",            0.8, LogLevel::Info),
        (EventType::ErrorHandled,            "error_handled",             0.8, LogLevel::Info),
    ];
    for (ty, delta, omega, level) in cases {
        let s = describe_event_type(ty, &ctx());
        assert_eq!((s.delta, s.omega, s.level, s.error, s.dimension), (delta, omega, level, None, 1));
    }
    assert_eq!(describe_event_type(EventType::FallbackActivated, &ctx()).dimension, 4);
}

#[test]
#[rustfmt::skip]
fn the_voice_and_level_of_every_event_type() {
    use EventType::*;
    use LogLevel::*;
    let cases = [
        (ConnectionEstablished,    None,                     Info),
        (ConnectionFailed,         Some(Voice::Mercy),       Warn),
        (HeartbeatSuccess,         None,                     Debug),
        (HeartbeatTimeout,         Some(Voice::Curiosity),   Warn),
        (ErrorHandled,             None,                     Info),
        (ReconnectionSuccess,      Some(Voice::Celebration), Info),
        (FallbackActivated,        Some(Voice::Courage),     Info),
        (ProtocolViolation,        Some(Voice::Alarm),       Error),
        (ServerOverload,           None,                     Info),
        (Other,                    None,                     Info),
        (HeartbeatSent,            None,                     Debug),
        (ServerHeartbeatDetected,  None,                     Debug),
        (MissingHeartbeat,         Some(Voice::Curiosity),   Info),
        (DegradedServiceActivated, Some(Voice::Courage),     Info),
        (BufferFlushed,            None,                     Info),
        (ConnectionResumed,        Some(Voice::Celebration), Info),
    ];
    // without an error class: only alert voices follow Ω (connection_failed Ω 0.8 → WARN, ...)
    for (ty, voice, level) in cases {
        let s = describe_event_type(ty, &ctx());
        assert_eq!((s.voice, s.level), (voice, level), "{ty:?}");
    }
}

#[test]
fn lambda_is_borrowed_from_the_table() {
    let s = describe(&ping(Some(MS(1))), &ctx());
    assert!(matches!(s.lambda, Cow::Borrowed("continue_monitoring")));
}
