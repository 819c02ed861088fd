//! The layers a configuration is merged from, lowest first: the built-in defaults of every key (the
//! seed's values where the seed has one), a file (`--config`: TOML, YAML or JSON by extension), the
//! environment (`ISKRA_SIDECAR_<KEY>` with `__` for nesting, and the seed's own names in [`SEED_ENV`]),
//! then command-line flags. [`figment`] stacks them; validation is the parent module's.
//!
//! [`defaults`] is also the list of known keys: a key absent from it is reported as unknown (except below
//! `websocket.connections` and `alerts`), and `iskra-ws-sidecar config` prints every key it holds.

use std::path::Path;

use figment::providers::{Env, Format, Json, Serialized, Toml, Yaml};
use figment::Figment;
use serde_json::{json, Value};

use super::{secret, ConfigError, ConfigErrors, Sources};

/// The seed's environment variable names and the config key each one sets.
pub const SEED_ENV: &[(&str, &str)] = &[
    ("WEBSOCKET_PULSE_URL", "websocket.connections.pulse.url"),
    ("WEBSOCKET_SEAMS_URL", "websocket.connections.seams.url"),
    ("WEBSOCKET_VOICES_URL", "websocket.connections.voices.url"),
    (
        "WEBSOCKET_MAX_RECONNECT",
        "websocket.reconnection.max_attempts",
    ),
    (
        "WEBSOCKET_HEARTBEAT_INTERVAL",
        "websocket.heartbeat.interval",
    ),
    ("WEBSOCKET_REQUEST_TIMEOUT", "limits.upstream_timeout_ms"),
    ("WEBSOCKET_LOG_LEVEL", "websocket.monitoring.log_level"),
    (
        "WEBSOCKET_ENABLE_METRICS",
        "websocket.monitoring.metrics_enabled",
    ),
    (
        "WEBSOCKET_ENABLE_ALERTS",
        "websocket.monitoring.alerting_enabled",
    ),
    ("WEBSOCKET_ENABLE_FALLBACK", "websocket.fallback.enabled"),
    (
        "WEBSOCKET_BUFFER_SIZE",
        "websocket.fallback.buffer_max_size",
    ),
    ("WEBSOCKET_FALLBACK_TIMEOUT", "websocket.fallback.timeout"),
    ("FRACTAL_LOGGING_ENABLED", "iskra.fractal_logging"),
    ("SLO_MONITORING_ENABLED", "iskra.slo_monitoring"),
    ("VOICE_SYSTEM_ENABLED", "iskra.voice_system"),
    ("SLACK_WEBHOOK_URL", "alerts.slack_webhook_url"),
    ("EMAIL_SMTP_HOST", "alerts.email_smtp_host"),
    ("EMAIL_SMTP_PORT", "alerts.email_smtp_port"),
    ("PAGERDUTY_API_KEY", "alerts.pagerduty_api_key"),
];

/// The built-in defaults, as a tree in the file format.
pub fn defaults() -> Value {
    let conn = |n: &str, port: u16, prio: u32, name: &str| {
        json!({"url": format!("ws://localhost:{port}"), "name": name, "priority": prio,
               "backup_urls": [format!("ws://backup-{n}.iskra.local:{port}")]})
    };
    json!({
        "dashboard": "pulse",
        "listen": "0.0.0.0:8000",
        "admin": "0.0.0.0:8080",
        "upstream": "ws://127.0.0.1:3001",
        "backup_upstreams": [],
        "limits": {"handshake_timeout_ms": 10000, "upstream_timeout_ms": 5000, "max_connections": 10000,
                   "max_frame_size": 16u64 << 20, "max_message_size": 64u64 << 20,
                   "max_header_size": 16384, "idle_timeout_ms": 0, "close_timeout_ms": 5000,
                   "admin_header_timeout_ms": 5000, "admin_max_connections": 64},
        "forwarded": {"enabled": true, "trusted_proxies": []},
        "shutdown": {"grace_ms": 10000},
        "resume": {"hold_ms": 0, "buffer_bytes": 1u64 << 20, "replay_messages": 0, "replay_bytes": 64u64 << 10},
        "telemetry": {"events_channel_capacity": 65536, "spool_dir": "", "spool_max_bytes": 64u64 << 20,
                      "frame_events": false, "record_subprotocols": [],
                      "step_spans": false},
        "probe": {"enabled": true, "sse_path": "/events", "long_poll_path": "/poll", "poll_path": "/health",
                  "send_token": "", "send_token_file": "", "path": "", "headers": {}, "header_files": {},
                  "subprotocols": [], "origin": "", "init_messages": [], "replies": {},
                  "gates_readiness": false},
        "health": {"window_ms": 300000},
        "iskra": {"fractal_logging": true, "slo_monitoring": true, "voice_system": true},
        "alerts": {"pagerduty_events_url": super::PAGERDUTY_EVENTS_URL},
        "websocket": {
            "connections": {"pulse": conn("pulse", 3001, 1, "Pulse Dashboard"),
                            "seams": conn("seams", 3002, 2, "Seams Dashboard"),
                            "voices": conn("voices", 3003, 3, "Voices Dashboard")},
            "reconnection": {"max_attempts": 10, "initial_delay": 1000, "backoff_multiplier": 1.5,
                             "max_delay": 30000, "jitter": true},
            "heartbeat": {"enabled": true, "interval": 30000, "timeout": 10000, "failure_threshold": 3},
            "monitoring": {"metrics_enabled": true, "alerting_enabled": true, "log_level": "info",
                           "performance_tracking": true},
            "fallback": {"enabled": true, "protocol_downgrade": true, "buffer_messages": true,
                         "buffer_max_size": 1000, "buffer_max_bytes": 8u64 << 20, "degraded_service": true,
                         "timeout": 30000, "flush_interval": 5000, "flush_batch": 10},
            "slo_thresholds": {
                "connection_latency_ms": {"target": 185, "warning": 500, "critical": 1000},
                "availability_percent": {"target": 99.9, "warning": 99.0, "critical": 95.0},
                "error_rate_percent": {"target": 0.1, "warning": 1.0, "critical": 5.0}}
        }
    })
}

/// The layered figment: defaults → file → env → flags.
pub fn figment(sources: &Sources) -> Result<Figment, ConfigErrors> {
    let mut fig = Figment::from(Serialized::defaults(defaults()));
    if let Some(path) = &sources.file {
        fig = fig.merge(file_provider(path)?);
    }
    let seed_env = Env::raw()
        .only(&SEED_ENV.iter().map(|(k, _)| *k).collect::<Vec<_>>())
        .map(|k| {
            let key = SEED_ENV
                .iter()
                .find(|(e, _)| k.as_str().eq_ignore_ascii_case(e))
                .map(|(_, key)| *key)
                .unwrap_or("unknown");
            key.into()
        });
    fig = fig.merge(seed_env);
    fig = fig.merge(
        Env::prefixed("ISKRA_SIDECAR_")
            .ignore(&["CONFIG", secret::TOKEN_ENV_SUFFIX])
            .split("__"),
    );
    // The token is taken as written: figment would read `123…` as a number and `[a]` as a list.
    if let Some(token) = std::env::var_os(secret::TOKEN_ENV) {
        let token = token.into_string().map_or(Value::Null, Value::String);
        fig = fig.merge(Serialized::default(secret::TOKEN_KEY, token));
    }
    for (key, value) in &sources.flags {
        fig = fig.merge(Serialized::default(key, value.clone()));
    }
    Ok(fig)
}

/// The file alone as a provider (its format from its extension), for `config` to say which keys it set.
pub fn file_provider(path: &Path) -> Result<Figment, ConfigErrors> {
    let one = |msg: String| ConfigErrors(vec![ConfigError::file(path, msg)]);
    if !path.is_file() {
        return Err(one("file not found".into()));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let fig = Figment::new();
    Ok(match ext.to_ascii_lowercase().as_str() {
        "toml" => fig.merge(Toml::file_exact(path)),
        "yaml" | "yml" => fig.merge(Yaml::file_exact(path)),
        "json" => fig.merge(Json::file_exact(path)),
        other => {
            return Err(one(format!(
                "unknown extension {other:?}: expected .toml, .yaml, .yml or .json"
            )))
        }
    })
}
