//! Typed configuration: built-in defaults → file (TOML/YAML/JSON) → environment → flags, via figment,
//! then validated whole so that every bad key is reported at once (key, value, what was expected).
//!
//! The seed's own JSON shape (`{"websocket": {"connections", "reconnection", "heartbeat", "monitoring",
//! "fallback", "slo_thresholds"}}`) loads as written. Environment: `ISKRA_SIDECAR_<KEY>` with `__` for
//! nesting (`ISKRA_SIDECAR_LIMITS__MAX_CONNECTIONS`), and the seed's `WEBSOCKET_…` names (see
//! [`SEED_ENV`]). Secrets ([`SECRET_KEYS`]) are masked wherever a value is shown; the bearer token of
//! `POST /probe/send` is held as a [`Secret`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

mod alerts;
mod errors;
mod forwarded;
mod layers;
pub mod probe;
mod read;
mod secret;
mod sections;
pub use alerts::{AlertUrl, AlertsConfig, PAGERDUTY_EVENTS_URL};
pub use errors::{ConfigError, ConfigErrors};
pub use forwarded::{Cidr, Forwarding};
pub use layers::{defaults, figment, file_provider, SEED_ENV};
pub use probe::{ProbeConfig, TransportPaths};
use read::Reader;
pub use secret::{Masked, Secret};
pub use sections::{
    Endpoint, Heartbeat, Limits, OutboxConfig, Reconnection, ResumeConfig, Slo, Switches,
    TelemetryConfig, Upstream,
};

/// Keys whose values are secrets: never printed, masked in `config` output and in error messages.
pub const SECRET_KEYS: &[&str] = &[
    "alerts.slack_webhook_url",
    "alerts.pagerduty_api_key",
    "probe.send_token",
];

/// Prefixes below which every value is a secret (the prober's request headers).
pub const SECRET_PREFIXES: &[&str] = &["probe.headers."];

/// Whether the value at `key` is a secret (masked wherever shown).
pub fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key) || SECRET_PREFIXES.iter().any(|p| key.starts_with(p))
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
    /// Holding sessions through an upstream restart (`resume.*`; off when `hold_ms` is 0).
    pub resume: ResumeConfig,
    /// `X-Forwarded-For` / `X-Forwarded-Proto` toward the upstream.
    pub forwarded: Forwarding,
    /// Telemetry: the event channel, the spool, what may be named, the log level, the health window.
    pub telemetry: TelemetryConfig,
    /// The prober: on or off, its target (path, headers, subprotocols, origin), readiness gate, seed
    /// switches, downgrade paths, and the token of `POST /probe/send`.
    pub probe: ProbeConfig,
    /// The prober's outbox (the seed's offline buffer: `websocket.fallback.buffer_*`, `flush_*`).
    pub outbox: OutboxConfig,
    /// Heartbeats on proxied sessions and the prober.
    pub heartbeat: Heartbeat,
    /// Reconnection policy of the prober.
    pub reconnection: Reconnection,
    /// Dashboards the seed lists (prober targets, `check` defaults).
    pub connections: BTreeMap<String, Endpoint>,
    /// SLO: connection latency (ms).
    pub slo_latency_ms: Slo,
    /// SLO: availability (%).
    pub slo_availability: Slo,
    /// SLO: error rate (%).
    pub slo_error_rate: Slo,
    /// The seed's on/off switches.
    pub switches: Switches,
    /// Where `check` sends its alerts.
    pub alerts: AlertsConfig,
}

/// Where a config comes from besides the defaults.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// A file named by `--config` or `ISKRA_SIDECAR_CONFIG`.
    pub file: Option<PathBuf>,
    /// Flag overrides as `(key, value)`.
    pub flags: Vec<(&'static str, Value)>,
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
    r.check_unknown(
        &defaults(),
        &[
            "websocket.connections",
            "alerts",
            "probe.headers",
            "probe.header_files",
            "probe.replies",
        ],
    );
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
        admin_header_timeout: r.millis("limits.admin_header_timeout_ms", 1),
        admin_max_connections: r.uint("limits.admin_max_connections", 1, 1_000_000) as usize,
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
    let metrics = r.boolean(&format!("{ws}.monitoring.metrics_enabled"));
    let alerting = r.boolean(&format!("{ws}.monitoring.alerting_enabled"));
    r.boolean(&format!("{ws}.monitoring.performance_tracking"));
    let log_level = r.one_of(
        &format!("{ws}.monitoring.log_level"),
        &["trace", "debug", "info", "warn", "error"],
    );
    r.boolean(&format!("{ws}.fallback.degraded_service"));
    let outbox = OutboxConfig {
        enabled: r.boolean(&format!("{ws}.fallback.buffer_messages")),
        capacity: r.uint(&format!("{ws}.fallback.buffer_max_size"), 1, 10_000_000) as usize,
        max_bytes: r.uint(&format!("{ws}.fallback.buffer_max_bytes"), 1024, 1 << 40),
        flush_interval: r.millis(&format!("{ws}.fallback.flush_interval"), 10),
        flush_batch: r.uint(&format!("{ws}.fallback.flush_batch"), 1, 10_000_000) as usize,
    };
    let switches = Switches {
        metrics,
        alerting,
        fractal_logging: r.boolean("iskra.fractal_logging"),
        slo_monitoring: r.boolean("iskra.slo_monitoring"),
        voice_system: r.boolean("iskra.voice_system"),
    };
    let hidden = Masked::new;
    let alerts = AlertsConfig {
        slack_webhook_url: r.alert_url("alerts.slack_webhook_url").map(hidden),
        pagerduty_api_key: r.optional_text("alerts.pagerduty_api_key").map(hidden),
        pagerduty_events_url: r
            .alert_url("alerts.pagerduty_events_url")
            .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.into()),
    };
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
    let resume = ResumeConfig {
        hold: r.millis("resume.hold_ms", 0),
        buffer_bytes: r.uint("resume.buffer_bytes", 0, 1 << 30),
        replay_messages: r.uint("resume.replay_messages", 0, 1000) as u32,
        replay_bytes: r.uint("resume.replay_bytes", 0, 16 << 20),
    };
    let spool_dir = r
        .text("telemetry.spool_dir")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let spool_max_bytes = r.uint("telemetry.spool_max_bytes", 4096, 1 << 40);
    let frame_events = r.boolean("telemetry.frame_events");
    let step_spans = r.boolean("telemetry.step_spans");
    let record_subprotocols = r.list("telemetry.record_subprotocols").into_iter();
    let record_subprotocols = record_subprotocols.map(|(_, v)| v).collect();
    let forwarded = Forwarding {
        enabled: r.boolean("forwarded.enabled"),
        trusted_proxies: r
            .list("forwarded.trusted_proxies")
            .into_iter()
            .filter_map(|(key, v)| r.parsed(&key, &v, Cidr::parse))
            .collect(),
    };
    let probe = probe::read(&mut r);
    let health_window = r.millis("health.window_ms", 1000);
    r.finish()?;
    Ok(Config {
        dashboard,
        listen,
        admin,
        upstream,
        backup_upstreams,
        limits,
        shutdown_grace,
        resume,
        telemetry: TelemetryConfig {
            events_capacity,
            spool_dir,
            spool_max_bytes,
            frame_events,
            step_spans,
            record_subprotocols,
            log_level,
            health_window,
        },
        forwarded,
        probe,
        outbox,
        heartbeat,
        reconnection,
        connections,
        slo_latency_ms,
        slo_availability,
        slo_error_rate,
        switches,
        alerts,
    })
}

#[cfg(test)]
mod tests;
