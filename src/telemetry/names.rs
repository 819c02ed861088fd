//! Every metric the sidecar emits, every attribute key (spans, metrics, logs) and every span name, each
//! spelled once here (telemetry-schema.yaml lists the same sets; tests/schema.rs keeps them equal).

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

/// Key constants, and `ALL` listing them (tests/schema.rs holds each list against telemetry-schema.yaml).
macro_rules! keys {
    ($($id:ident = $key:expr;)*) => {
        $(#[allow(missing_docs)] pub const $id: &str = $key;)*
        /// Every key of this module, in order.
        pub const ALL: &[&str] = &[$($id),*];
    };
}

/// Attribute keys used on metrics, spans and logs (telemetry-schema.yaml `attributes`, `metric_labels`).
pub mod attr {
    keys! {
        DASHBOARD = "iskra.dashboard";
        DIRECTION = "network.io.direction";
        FRAME_TYPE = "websocket.frame.type";
        CLOSE_CODE = "websocket.close.code";
        UPSTREAM_CLOSE_CODE = "websocket.upstream.close.code";
        CLOSE_REASON = "websocket.close.reason";
        CLOSE_INITIATOR = "websocket.close.initiator";
        STATUS = "http.response.status_code";
        UPSTREAM_NAME = "websocket.upstream.name";
        ERROR_TYPE = "error.type";
        PEER = "websocket.peer";
        TRANSPORT = "websocket.transport";
        RULE = "websocket.protocol_error.rule";
        STATE = "state";
        SEED_ERROR_TYPE = "error_type";
        ENDPOINT = "endpoint";
        VOICE = "voice";
        SIGNAL = "signal";
        REASON = "reason";
        OUTCOME = "outcome";
        FALLBACK_MODE = "websocket.fallback.mode";
        SUBPROTOCOL = "websocket.subprotocol";
        URL_PATH = "url.path";
        URL_SCHEME = "url.scheme";
        SERVER_ADDRESS = "server.address";
        SERVER_PORT = "server.port";
        CLIENT_ADDRESS = "client.address";
        NETWORK_PROTOCOL_NAME = "network.protocol.name";
        HTTP_REQUEST_METHOD = "http.request.method";
        USER_AGENT_ORIGINAL = "user_agent.original";
        EXTENSIONS = "websocket.extensions";
        MESSAGES_RECEIVED = "websocket.messages.received";
        MESSAGES_SENT = "websocket.messages.sent";
        BYTES_RECEIVED = "websocket.bytes.received";
        BYTES_SENT = "websocket.bytes.sent";
        RECONNECT_ATTEMPT = "websocket.reconnect.attempt";
        SEAM_ID = "iskra.seam.id";
        VOICE_ACTIVE = "iskra.voice.active";
        DELTA = "iskra.delta";
        DIMENSION = "iskra.dimension";
        OMEGA = "iskra.omega";
        LAMBDA = "iskra.lambda";
        VOICE_PAIN = "iskra.voice.pain";
        VOICE_TRUST = "iskra.voice.trust";
        VOICE_CHAOS = "iskra.voice.chaos";
        VOICE_ACTION = "iskra.voice.action";
        VOICE_LAMBDA = "iskra.voice.lambda";
        ERROR_CLASS = "iskra.error.class";
        ERROR_SEVERITY = "iskra.error.severity";
        RESUME_GAP_MS = "websocket.resume.gap_ms";
        RESUME_ATTEMPTS = "websocket.resume.attempts";
        RESUME_REASON = "websocket.resume.reason";
        UPSTREAM_RESUMES = "websocket.upstream.resumes";
        STEP_DURATION_MS = "websocket.step.duration_ms";
    }
}

/// Keys only log records carry: the event's details (telemetry-schema.yaml `log_attributes`).
pub mod log {
    keys! {
        EVENT_TYPE = crate::jsonlog::key::EVENT_TYPE;
        COMPONENT = crate::jsonlog::key::COMPONENT;
        UPGRADE = "upgrade";
        DURATION_MS = "duration_ms";
        CAUSE = "cause";
        RTT_MS = "rtt_ms";
        MISSED = "missed";
        DURATION_S = "duration_s";
        MESSAGES_IN = "messages_in";
        MESSAGES_OUT = "messages_out";
        BYTES_IN = "bytes_in";
        BYTES_OUT = "bytes_out";
        URL = "url";
        ATTEMPT = "attempt";
        RECOVERED = "recovered";
        STATUS = "status";
        HINT = "hint";
        FROM = "from";
        TO = "to";
        SILENCE_MS = "silence_ms";
        MESSAGES = "messages";
        QUEUED = "queued";
        CAPACITY = "capacity";
        GAP_MS = "gap_ms";
        ATTEMPTS = "attempts";
    }
}

/// The other keys of a log line on stdout (telemetry-schema.yaml `log_line`): the header the one
/// writer starts every line with ([`crate::jsonlog::key`]; event_type and component are in [`log`]),
/// the seed's ∆DΩΛ fields and fractal metadata, and the session's ids. The line's other keys are
/// attribute keys ([`attr`]) or the event's details ([`log`]).
pub mod line {
    keys! {
        TIMESTAMP = crate::jsonlog::key::TIMESTAMP;
        LEVEL = crate::jsonlog::key::LEVEL;
        DELTA = "delta";
        DIMENSION = "dimension";
        OMEGA = "omega";
        LAMBDA = "lambda";
        FRACTAL_METADATA = "fractal_metadata";
        SEAM_ID = "seam_id";
        VOICE_PAIN = "voice_pain";
        VOICE_CHAOS = "voice_chaos";
        VOICE_TRUST = "voice_trust";
        SEVERITY = "severity";
        VOICE_LAMBDA = "voice_lambda";
        SESSION_ID = "session_id";
        TRACE_ID = "trace_id";
        SPAN_ID = "span_id";
    }
}

/// Resource attribute keys (telemetry-schema.yaml `resource`).
pub mod resource {
    keys! {
        SERVICE_NAME = "service.name";
        SERVICE_VERSION = "service.version";
        SERVICE_INSTANCE_ID = "service.instance.id";
        K8S_POD_NAME = "k8s.pod.name";
        K8S_NAMESPACE_NAME = "k8s.namespace.name";
        K8S_NODE_NAME = "k8s.node.name";
    }
}

/// Span names.
pub mod span {
    keys! {
        SESSION = "ws.session";
        UPSTREAM_CONNECT = "ws.upstream.connect";
        HANDSHAKE = "ws.handshake";
        CLOSE = "ws.close";
        RECONNECT_ATTEMPT = "ws.reconnect.attempt";
    }
}

/// Span event names (telemetry-schema.yaml `span_events`); a session's steps, when they are events of
/// its span, are named as their spans ([`span`]).
pub mod span_event {
    keys! {
        RESUMED = "websocket.resumed";
        RESUME_GAVE_UP = "websocket.resume_gave_up";
    }
}
