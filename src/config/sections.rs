//! The plain typed sections of the configuration: what each part reads, as values (no part's own types
//! flow into config; a part converts from these or uses them as they are).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

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

/// The telemetry section (`telemetry.*`, the seed's `websocket.monitoring.log_level`, `health.window_ms`).
#[derive(Debug, Clone, Serialize)]
pub struct TelemetryConfig {
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
    /// Log level name.
    pub log_level: String,
    /// The window `/health` scores (`health.window_ms`).
    pub health_window: Duration,
}

/// The prober's outbox (the seed's offline buffer: `websocket.fallback.buffer_*`, `flush_*`).
#[derive(Debug, Clone, Serialize)]
pub struct OutboxConfig {
    /// `buffer_messages`: whether there is an outbox at all.
    pub enabled: bool,
    /// `buffer_max_size`: most messages held.
    pub capacity: usize,
    /// `buffer_max_bytes`: most bytes of text held (the sum of the messages' lengths).
    pub max_bytes: u64,
    /// `flush_interval`: while connected, flush this often.
    pub flush_interval: Duration,
    /// `flush_batch`: flush as soon as this many wait.
    pub flush_batch: usize,
}

/// `resume.*`: how sessions are held through an upstream restart.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ResumeConfig {
    /// How long a session is held while the upstream is away (zero: off, the client gets 1012 at once).
    pub hold: Duration,
    /// Bytes of client frames held during the gap; more closes the session (1012, "buffer full").
    pub buffer_bytes: u64,
    /// The first N client data messages of a session, re-sent to a new upstream before the held ones.
    pub replay_messages: u32,
    /// Bound on those N messages' bytes; over it, the session is not held.
    pub replay_bytes: u64,
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
