//! Every metric the sidecar emits, defined once (telemetry-schema.yaml lists the same set; a test keeps
//! the two equal). Attribute keys are constants here too, so no name is spelled twice.

use super::registry::{Def, Kind};

/// Seconds buckets for handshakes and connects: fine below the 185 ms SLO, up to 10 s.
pub const FAST_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.185, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Seconds buckets for sessions: up to 8 hours.
pub const SESSION_S: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
];
/// Byte buckets for message sizes (the relay's atomic histogram uses the same bounds).
pub const SIZE_B: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

macro_rules! defs {
    ($($id:ident = $name:literal, $kind:expr, $unit:literal, $help:literal;)*) => {
        $(#[doc = $help] pub const $id: Def = Def { name: $name, kind: $kind, unit: $unit, help: $help };)*
        /// All definitions, in schema order.
        pub const ALL: &[Def] = &[$($id),*];
    };
}

defs! {
    ACTIVE = "websocket.server.active_connections", Kind::UpDown, "{connection}", "Open WebSocket sessions through the sidecar.";
    SESSION_DURATION = "websocket.server.connection.duration", Kind::Histogram(SESSION_S), "s", "Duration of proxied WebSocket sessions.";
    HANDSHAKE = "websocket.handshake.duration", Kind::Histogram(FAST_S), "s", "Time from request head to the upgrade answer reaching the client.";
    UPSTREAM_CONNECT = "websocket.upstream.connect.duration", Kind::Histogram(FAST_S), "s", "Time to connect to the upstream dashboard.";
    MESSAGES = "websocket.messages", Kind::Counter, "{message}", "Data messages relayed.";
    PAYLOAD = "websocket.payload", Kind::Counter, "By", "Payload bytes of data frames relayed.";
    MESSAGE_SIZE = "websocket.message.size", Kind::Histogram(SIZE_B), "By", "Sizes of data messages relayed.";
    PING_RTT = "websocket.ping.rtt", Kind::Histogram(FAST_S), "s", "Round trip of the sidecar's pings and the prober's heartbeats.";
    CLOSES = "websocket.closes", Kind::Counter, "{close}", "Session closes by code and initiator.";
    RECONNECTS = "websocket.reconnects", Kind::Counter, "{attempt}", "Prober reconnection attempts.";
    FALLBACKS = "websocket.fallbacks", Kind::Counter, "{fallback}", "Failovers and transport downgrades.";
    FALLBACK_ACTIVE = "websocket.fallback.active", Kind::Gauge, "1", "1 while the prober is not on its primary WebSocket upstream, on the series of the mode it is in (backup, sse, long_poll, poll, degraded); 0 on every series when back.";
    HEARTBEAT_MISSED = "websocket.heartbeat.missed", Kind::Counter, "{heartbeat}", "Heartbeats a peer failed to answer in time.";
    BUFFER_QUEUED = "websocket.buffer.queued", Kind::Gauge, "{message}", "Messages waiting in the prober's offline buffer.";
    BUFFER_DROPPED = "websocket.buffer.dropped", Kind::Counter, "{message}", "Messages the prober's offline buffer refused, by reason.";
    BUFFER_DELIVERED = "websocket.buffer.delivered", Kind::Counter, "{message}", "Messages of the prober's offline buffer the dashboard confirmed.";
    RESUMES = "websocket.resumes", Kind::Counter, "{session}", "Sessions held through an upstream restart: resumed, or gave up (by reason).";
    PROTOCOL_ERRORS = "websocket.protocol_errors", Kind::Counter, "{error}", "RFC 6455 violations seen, by rule.";
    SEED_CONNECTIONS = "websocket_connections_total", Kind::Counter, "", "Seed dashboard: connections by state (connected, disconnected, failed).";
    SEED_ERRORS = "websocket_errors_total", Kind::Counter, "", "Seed dashboard: errors by Iskra error class.";
    SEED_RECONNECTIONS = "websocket_reconnections_total", Kind::Counter, "", "Seed dashboard: reconnections by endpoint.";
    SEED_VOICE_ALERTS = "websocket_voice_alerts_total", Kind::Counter, "", "Seed dashboard: voice activations by voice.";
    SEED_AVG_LATENCY = "websocket_avg_latency_seconds", Kind::Gauge, "", "Seed dashboard: mean ping RTT over the last minute.";
    SEED_MAX_LATENCY = "websocket_max_latency_seconds", Kind::Gauge, "", "Seed dashboard: max ping RTT over the last minute.";
    PROBE_SUCCESS = "probe_success", Kind::Gauge, "", "Blackbox-style: 1 if the last probe of the endpoint succeeded.";
    PROBE_DURATION = "probe_duration_seconds", Kind::Gauge, "", "Blackbox-style: duration of the last probe.";
    HEALTH_SCORE = "iskra.sidecar.health.score", Kind::Gauge, "1", "The seed's health score (0-100) over the last health.window_ms, as /health shows it.";
    HEALTH_STATUS = "iskra.sidecar.health.status", Kind::Gauge, "1", "The /health status over the last health.window_ms: 0 HEALTHY, 1 WARNING, 2 CRITICAL.";
    EVENTS_DROPPED = "iskra.sidecar.events.dropped", Kind::Counter, "{event}", "Lifecycle events lost to a full channel.";
    SESSIONS_EXPIRED = "iskra.sidecar.sessions.expired", Kind::Counter, "{session}", "Sessions the span builder ended itself: no handshake outcome arrived within the handshake's time budget (a backstop; 0 when every end arrives).";
    SESSIONS_TRACKED = "iskra.sidecar.sessions.tracked", Kind::Gauge, "{session}", "Sessions whose spans are being built (open in the span builder).";
    EVENTS_SUPPRESSED = "iskra.sidecar.events.suppressed", Kind::Counter, "{event}", "Per-message events (telemetry.frame_events) not emitted because their session spent its budget of 100 a second.";
    ADMIN_REFUSED = "iskra.sidecar.admin.refused", Kind::Counter, "{connection}", "Admin connections closed at accept: limits.admin_max_connections were already being served.";
    TELEMETRY_EXPORTED = "iskra.sidecar.telemetry.exported", Kind::Counter, "{item}", "Spans, logs and metric points exported.";
    TELEMETRY_FAILED = "iskra.sidecar.telemetry.failed", Kind::Counter, "{item}", "Items whose export failed (kept for retry).";
    TELEMETRY_DROPPED = "iskra.sidecar.telemetry.dropped", Kind::Counter, "{item}", "Items dropped beyond the spool budget.";
    SPOOL_USAGE = "iskra.sidecar.telemetry.spool.usage", Kind::Gauge, "By", "Bytes of spans and logs queued for export (memory or disk spool).";
    EXPORT_DURATION = "iskra.sidecar.telemetry.export.duration", Kind::Histogram(FAST_S), "s", "Duration of OTLP export calls.";
}

/// Attribute keys used on metrics, spans and logs.
pub mod attr {
    #![allow(missing_docs)]
    pub const DASHBOARD: &str = "iskra.dashboard";
    pub const DIRECTION: &str = "network.io.direction";
    pub const FRAME_TYPE: &str = "websocket.frame.type";
    pub const CLOSE_CODE: &str = "websocket.close.code";
    pub const UPSTREAM_CLOSE_CODE: &str = "websocket.upstream.close.code";
    pub const CLOSE_REASON: &str = "websocket.close.reason";
    pub const CLOSE_INITIATOR: &str = "websocket.close.initiator";
    pub const STATUS: &str = "http.response.status_code";
    pub const UPSTREAM_NAME: &str = "websocket.upstream.name";
    pub const ERROR_TYPE: &str = "error.type";
    pub const PEER: &str = "websocket.peer";
    pub const TRANSPORT: &str = "websocket.transport";
    pub const RULE: &str = "websocket.protocol_error.rule";
    pub const STATE: &str = "state";
    pub const SEED_ERROR_TYPE: &str = "error_type";
    pub const ENDPOINT: &str = "endpoint";
    pub const VOICE: &str = "voice";
    pub const SIGNAL: &str = "signal";
    pub const REASON: &str = "reason";
    pub const OUTCOME: &str = "outcome";
    pub const FALLBACK_MODE: &str = "websocket.fallback.mode";
}
