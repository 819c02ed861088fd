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

pub mod command;
mod layers;
pub mod probe;
mod read;
mod secret;
use layers::file_provider;
pub use layers::{defaults, figment, SEED_ENV};
use read::Reader;
pub use read::{ConfigError, ConfigErrors};
pub use secret::{Masked, Secret};

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

    /// The URL's path and query (`/` when it has none): where the prober upgrades by default.
    pub fn path_and_query(&self) -> String {
        let rest = self.url.split_once("://").map_or("", |(_, r)| r);
        match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => rest[i..].to_string(),
            Some(i) => format!("/{}", &rest[i..]),
            None => "/".to_string(),
        }
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
    /// Admin server: time allowed for a whole request head (and between requests on a keep-alive
    /// connection); over it the connection is closed.
    pub admin_header_timeout: Duration,
    /// Admin server: connections served at once; over it new ones are closed at once.
    pub admin_max_connections: usize,
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

/// The seed's switches over what telemetry and the commands produce
/// (`websocket.monitoring.{metrics_enabled,alerting_enabled}`, `iskra.*`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Switches {
    /// Metrics are exported: OTLP metrics and `/metrics` (off: neither; `/metrics` holds no series).
    pub metrics: bool,
    /// `check` sends its alert (webhook, Slack, PagerDuty) when an endpoint fails.
    pub alerting: bool,
    /// The ∆DΩΛ fields (`iskra.delta`, `.dimension`, `.omega`, `.lambda`, `.seam.id`,
    /// `fractal_metadata`) are written on spans and logs.
    pub fractal_logging: bool,
    /// `check` and `monitor` judge latency against the SLO thresholds (`sloViolation`).
    pub slo_monitoring: bool,
    /// The voice fields (`iskra.voice.*`, `voice_lambda`) are written and voice activations counted.
    pub voice_system: bool,
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
    pub resume: crate::proxy::resume::Settings,
    /// Capacity of the lifecycle event channel.
    pub events_capacity: usize,
    /// Where unsent spans and logs wait (None: in memory).
    pub spool_dir: Option<PathBuf>,
    /// Spool budget in bytes; beyond it the oldest is dropped and counted.
    pub spool_max_bytes: u64,
    /// Emit one event per relayed message (debugging; costs throughput).
    pub frame_events: bool,
    /// A session's steps (upstream connect, handshake, close) as child spans rather than as events of
    /// its `ws.session` span.
    pub step_spans: bool,
    /// Subprotocols whose name may appear in telemetry (others are reported as `other`).
    pub record_subprotocols: Vec<String>,
    /// `X-Forwarded-For` / `X-Forwarded-Proto` toward the upstream.
    pub forwarded: crate::proxy::forwarded::Forwarding,
    /// Run the active prober against the upstream and its backups.
    pub probe_enabled: bool,
    /// The bearer token `POST /probe/send` requires (`probe.send_token` or the file named by
    /// `probe.send_token_file`); None: the endpoint is off (404).
    pub probe_send_token: Option<Secret>,
    /// The prober's target (path, headers, subprotocols, origin), readiness gate and seed switches.
    pub probe: probe::ProbeSettings,
    /// The window `/health` scores (`health.window_ms`).
    pub health_window: Duration,
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
    /// The seed's on/off switches.
    pub switches: Switches,
    /// Where `check` sends its alerts.
    pub alerts: crate::probe::alert::Settings,
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
    let outbox = crate::probe::outbox::Settings {
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
    let hidden = crate::probe::alert::Hidden::new;
    let alerts = crate::probe::alert::Settings {
        slack_webhook_url: r.alert_url("alerts.slack_webhook_url").map(hidden),
        pagerduty_api_key: r.optional_text("alerts.pagerduty_api_key").map(hidden),
        pagerduty_events_url: r
            .alert_url("alerts.pagerduty_events_url")
            .unwrap_or_else(|| crate::probe::alert::PAGERDUTY_EVENTS_URL.into()),
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
    let resume = crate::proxy::resume::Settings {
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
    let forwarded = crate::proxy::forwarded::Forwarding {
        enabled: r.boolean("forwarded.enabled"),
        trusted_proxies: r
            .list("forwarded.trusted_proxies")
            .into_iter()
            .filter_map(|(key, v)| r.parsed(&key, &v, crate::proxy::forwarded::Cidr::parse))
            .collect(),
    };
    let probe_enabled = r.boolean("probe.enabled");
    let probe_send_token = secret::send_token(&mut r);
    let probe = probe::read(&mut r);
    let health_window = r.millis("health.window_ms", 1000);
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
        resume,
        events_capacity,
        spool_dir,
        spool_max_bytes,
        frame_events,
        step_spans,
        record_subprotocols,
        forwarded,
        probe_enabled,
        probe_send_token,
        probe,
        health_window,
        probe_paths,
        outbox,
        heartbeat,
        reconnection,
        connections,
        log_level,
        slo_latency_ms,
        slo_availability,
        slo_error_rate,
        switches,
        alerts,
    })
}

#[cfg(test)]
mod tests;
