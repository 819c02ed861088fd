//! Typed configuration: built-in defaults → file (TOML/YAML/JSON) → environment → flags, via figment,
//! then validated whole so that every bad key is reported at once (key, value, what was expected).
//!
//! The seed's own JSON shape (`{"websocket": {"connections", "reconnection", "heartbeat", "monitoring",
//! "fallback", "slo_thresholds"}}`) loads as written. Environment: `ISKRA_SIDECAR_<KEY>` with `__` for
//! nesting (`ISKRA_SIDECAR_LIMITS__MAX_CONNECTIONS`), and the seed's `WEBSOCKET_…` names (see
//! [`SEED_ENV`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Json, Serialized, Toml, Yaml};
use figment::Figment;
use serde::Serialize;
use serde_json::{json, Value};

pub mod command;
mod read;
use read::Reader;
pub use read::{ConfigError, ConfigErrors};

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

/// Keys whose values are secrets: never printed, masked in `config` output.
pub const SECRET_KEYS: &[&str] = &["alerts.slack_webhook_url", "alerts.pagerduty_api_key"];

/// A WebSocket upstream: where the dashboard listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upstream {
    /// The URL as configured.
    pub url: String,
    /// Host to dial.
    pub host: String,
    /// Port to dial.
    pub port: u16,
}

impl Upstream {
    /// Parses `ws://host:port[/path]` or `http://…`; the path is ignored (the client's path is relayed).
    pub fn parse(url: &str) -> Result<Upstream, &'static str> {
        let (rest, default_port) = if let Some(r) = url.strip_prefix("ws://") {
            (r, 80)
        } else if let Some(r) = url.strip_prefix("http://") {
            (r, 80)
        } else {
            return Err("a ws:// or http:// URL (the dashboard listens in the pod, without TLS)");
        };
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return Err("a URL with a host and no credentials, like ws://127.0.0.1:3001");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
                Ok(p) => (h.trim_matches(['[', ']']).to_string(), p),
                Err(_) => return Err("a URL whose port is a number from 1 to 65535"),
            },
            _ => (authority.to_string(), default_port),
        };
        Ok(Upstream {
            url: url.to_string(),
            host,
            port,
        })
    }

    /// `host:port` for dialing.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Limits with safe defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Time allowed for a client to send a whole request head.
    pub handshake_timeout: Duration,
    /// Time allowed for the upstream to accept and answer.
    pub upstream_timeout: Duration,
    /// Max concurrent client connections; over it: 503 + Retry-After.
    pub max_connections: usize,
    /// Max payload of one frame (over: close 1009).
    pub max_frame_size: u64,
    /// Max payload of one message, all fragments (over: close 1009).
    pub max_message_size: u64,
    /// Max size of a request head (over: 431).
    pub max_header_size: usize,
    /// Close a session with no frames either way for this long (zero: never).
    pub idle_timeout: Duration,
    /// How long to wait for the peer's close frame after sending one.
    pub close_timeout: Duration,
}

/// The seed's heartbeat settings.
#[derive(Debug, Clone, Serialize)]
pub struct Heartbeat {
    /// Whether the sidecar sends its own pings.
    pub enabled: bool,
    /// Interval between pings.
    pub interval: Duration,
    /// Time to wait for a pong.
    pub timeout: Duration,
    /// Missed beats before a peer is declared dead.
    pub failure_threshold: u32,
}

/// The seed's reconnection settings (used by the prober).
#[derive(Debug, Clone, Serialize)]
pub struct Reconnection {
    /// Attempts before degraded mode (the sidecar keeps trying at the max delay after it).
    pub max_attempts: u32,
    /// First delay.
    pub initial_delay: Duration,
    /// Growth per attempt.
    pub backoff_multiplier: f64,
    /// Cap.
    pub max_delay: Duration,
    /// Randomise delays.
    pub jitter: bool,
}

/// One dashboard as the seed lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// Primary URL.
    pub url: String,
    /// Human name.
    pub name: String,
    /// Priority (1 first).
    pub priority: u32,
    /// Backups, in order.
    pub backup_urls: Vec<String>,
}

/// The seed's SLO thresholds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Slo {
    /// Target.
    pub target: f64,
    /// Warning threshold.
    pub warning: f64,
    /// Critical threshold.
    pub critical: f64,
}

/// The whole validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Which dashboard this sidecar fronts: pulse, seams or voices.
    pub dashboard: String,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Admin server (health, ready, metrics).
    pub admin: SocketAddr,
    /// The dashboard's server.
    pub upstream: Upstream,
    /// Backups for new handshakes while the upstream is down, in order.
    pub backup_upstreams: Vec<Upstream>,
    /// Limits.
    pub limits: Limits,
    /// Grace period for draining on SIGTERM.
    pub shutdown_grace: Duration,
    /// Capacity of the lifecycle event channel.
    pub events_capacity: usize,
    /// Where unsent spans and logs wait (None: in memory).
    pub spool_dir: Option<PathBuf>,
    /// Spool budget in bytes; beyond it the oldest is dropped and counted.
    pub spool_max_bytes: u64,
    /// Emit one event per relayed message (debugging; costs throughput).
    pub frame_events: bool,
    /// Run the active prober against the upstream and its backups.
    pub probe_enabled: bool,
    /// The prober's fallback transport paths.
    pub probe_paths: crate::probe::transports::Paths,
    /// The prober's outbox (the seed's offline buffer: `websocket.fallback.buffer_*`, `flush_*`).
    pub outbox: crate::probe::outbox::Settings,
    /// Heartbeats on proxied sessions and the prober.
    pub heartbeat: Heartbeat,
    /// Reconnection policy of the prober.
    pub reconnection: Reconnection,
    /// Dashboards the seed lists (prober targets, `check` defaults).
    pub connections: BTreeMap<String, Endpoint>,
    /// Log level name.
    pub log_level: String,
    /// SLO: connection latency (ms).
    pub slo_latency_ms: Slo,
    /// SLO: availability (%).
    pub slo_availability: Slo,
    /// SLO: error rate (%).
    pub slo_error_rate: Slo,
}

/// Where a config comes from besides the defaults.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// A file named by `--config` or `ISKRA_SIDECAR_CONFIG`.
    pub file: Option<PathBuf>,
    /// Flag overrides as `(key, value)`.
    pub flags: Vec<(&'static str, Value)>,
}

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
                   "max_header_size": 16384, "idle_timeout_ms": 0, "close_timeout_ms": 5000},
        "shutdown": {"grace_ms": 10000},
        "telemetry": {"events_channel_capacity": 65536, "spool_dir": "", "spool_max_bytes": 64u64 << 20,
                      "frame_events": false},
        "probe": {"enabled": true, "sse_path": "/events", "long_poll_path": "/poll", "poll_path": "/health"},
        "iskra": {"fractal_logging": true, "slo_monitoring": true, "voice_system": true},
        "alerts": {},
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
                         "buffer_max_size": 1000, "degraded_service": true, "timeout": 30000,
                         "flush_interval": 5000, "flush_batch": 10},
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
            .ignore(&["CONFIG"])
            .split("__"),
    );
    for (key, value) in &sources.flags {
        fig = fig.merge(Serialized::default(key, value.clone()));
    }
    Ok(fig)
}

fn file_provider(path: &Path) -> Result<Figment, ConfigErrors> {
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

/// Loads and validates; every problem is returned at once.
pub fn load(sources: &Sources) -> Result<Config, ConfigErrors> {
    let fig = figment(sources)?;
    let tree: Value = fig.extract().map_err(|e| {
        ConfigErrors(
            e.into_iter()
                .map(|e| ConfigError::parse(sources.file.as_deref(), e.to_string()))
                .collect(),
        )
    })?;
    from_tree(&tree)
}

/// Validates a merged tree into a [`Config`].
pub fn from_tree(tree: &Value) -> Result<Config, ConfigErrors> {
    let mut r = Reader::new(tree);
    r.check_unknown(&defaults(), &["websocket.connections", "alerts"]);
    let ws = "websocket";
    let dashboard = r.one_of("dashboard", &["pulse", "seams", "voices"]);
    let listen = r.addr("listen");
    let admin = r.addr("admin");
    let upstream = r.upstream("upstream");
    let backup_upstreams = r.upstream_list("backup_upstreams");
    let limits = Limits {
        handshake_timeout: r.millis("limits.handshake_timeout_ms", 1),
        upstream_timeout: r.millis("limits.upstream_timeout_ms", 1),
        max_connections: r.uint("limits.max_connections", 1, 10_000_000) as usize,
        max_frame_size: r.uint("limits.max_frame_size", 125, 1 << 40),
        max_message_size: r.uint("limits.max_message_size", 125, 1 << 42),
        max_header_size: r.uint("limits.max_header_size", 1024, 1 << 20) as usize,
        idle_timeout: r.millis("limits.idle_timeout_ms", 0),
        close_timeout: r.millis("limits.close_timeout_ms", 1),
    };
    let heartbeat = Heartbeat {
        enabled: r.boolean(&format!("{ws}.heartbeat.enabled")),
        interval: r.millis(&format!("{ws}.heartbeat.interval"), 10),
        timeout: r.millis(&format!("{ws}.heartbeat.timeout"), 10),
        failure_threshold: r.uint(&format!("{ws}.heartbeat.failure_threshold"), 1, 1000) as u32,
    };
    let reconnection = Reconnection {
        max_attempts: r.uint(&format!("{ws}.reconnection.max_attempts"), 1, 1_000_000) as u32,
        initial_delay: r.millis(&format!("{ws}.reconnection.initial_delay"), 1),
        backoff_multiplier: r.float(&format!("{ws}.reconnection.backoff_multiplier"), 1.0, 100.0),
        max_delay: r.millis(&format!("{ws}.reconnection.max_delay"), 1),
        jitter: r.boolean(&format!("{ws}.reconnection.jitter")),
    };
    for key in [
        "metrics_enabled",
        "alerting_enabled",
        "performance_tracking",
    ] {
        r.boolean(&format!("{ws}.monitoring.{key}"));
    }
    let log_level = r.one_of(
        &format!("{ws}.monitoring.log_level"),
        &["trace", "debug", "info", "warn", "error"],
    );
    for key in ["enabled", "protocol_downgrade", "degraded_service"] {
        r.boolean(&format!("{ws}.fallback.{key}"));
    }
    let outbox = crate::probe::outbox::Settings {
        enabled: r.boolean(&format!("{ws}.fallback.buffer_messages")),
        capacity: r.uint(&format!("{ws}.fallback.buffer_max_size"), 1, 10_000_000) as usize,
        flush_interval: r.millis(&format!("{ws}.fallback.flush_interval"), 10),
        flush_batch: r.uint(&format!("{ws}.fallback.flush_batch"), 1, 10_000_000) as usize,
    };
    r.millis(&format!("{ws}.fallback.timeout"), 1);
    for key in ["fractal_logging", "slo_monitoring", "voice_system"] {
        r.boolean(&format!("iskra.{key}"));
    }
    let slo = |r: &mut Reader, name: &str| Slo {
        target: r.float(&format!("{ws}.slo_thresholds.{name}.target"), 0.0, 1e9),
        warning: r.float(&format!("{ws}.slo_thresholds.{name}.warning"), 0.0, 1e9),
        critical: r.float(&format!("{ws}.slo_thresholds.{name}.critical"), 0.0, 1e9),
    };
    let slo_latency_ms = slo(&mut r, "connection_latency_ms");
    let slo_availability = slo(&mut r, "availability_percent");
    let slo_error_rate = slo(&mut r, "error_rate_percent");
    let connections = r.endpoints(&format!("{ws}.connections"));
    let events_capacity = r.uint("telemetry.events_channel_capacity", 16, 1 << 24) as usize;
    let shutdown_grace = r.millis("shutdown.grace_ms", 0);
    let spool_dir = r
        .text("telemetry.spool_dir")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let spool_max_bytes = r.uint("telemetry.spool_max_bytes", 4096, 1 << 40);
    let frame_events = r.boolean("telemetry.frame_events");
    let probe_enabled = r.boolean("probe.enabled");
    let mut path = |k: &str| {
        let v = r.text(k).unwrap_or_default();
        if v.starts_with('/') {
            v
        } else {
            format!("/{v}")
        }
    };
    let probe_paths = crate::probe::transports::Paths {
        sse: path("probe.sse_path"),
        long_poll: path("probe.long_poll_path"),
        poll: path("probe.poll_path"),
    };
    r.finish()?;
    Ok(Config {
        dashboard,
        listen,
        admin,
        upstream,
        backup_upstreams,
        limits,
        shutdown_grace,
        events_capacity,
        spool_dir,
        spool_max_bytes,
        frame_events,
        probe_enabled,
        probe_paths,
        outbox,
        heartbeat,
        reconnection,
        connections,
        log_level,
        slo_latency_ms,
        slo_availability,
        slo_error_rate,
    })
}

#[cfg(test)]
mod tests;
