//! The data path: accept client connections (with limits), read request heads, relay plain HTTP and SSE
//! streamed, and hand upgraded WebSocket sessions to the frame relay.
//!
//! - [`listener`]: accept loop, connection limit (503 + Retry-After), the first head; [`http`]: the
//!   rest of a connection that did not start with an upgrade, served by hyper.
//! - [`head`]: the first request head (linear scan, exact size limit, RFC 6455 checks).
//! - [`handshake`]: upgrades on the fast path (no HTTP machinery).
//! - [`prefixed`]: a stream with the bytes already read put back, for hyper.
//! - [`upstream`]: dialing the dashboard, forwarding a request, typed failures (502 / 504).
//! - [`forwarded`]: `X-Forwarded-For` / `X-Forwarded-Proto` on both paths; [`refused`]: relaying an
//!   upstream's non-101 answer on the fast path and closing (no tunnel).
//! - [`guard`]: the session's end, emitted by a guard whatever way the session stops.
//! - [`pump`], [`relay`], [`frame`], [`rules`]: the WebSocket session after the upgrade (`rules`: the
//!   RFC 6455 checks on each frame header, apart from the pump that moves the bytes).
//! - [`resume`]: holding a session through an upstream restart (`resume.hold_ms`).
//! - [`closing`]: how a session ends on the wire and in events (shared by the relay and a held session).
//! - [`stats`]: hot-path counters read by telemetry.

pub mod closing;
pub mod forwarded;
pub mod frame;
pub mod guard;
pub mod handshake;
pub mod head;
pub mod heartbeat;
pub mod http;
pub mod listener;
pub mod prefixed;
pub mod pump;
pub mod refused;
pub mod relay;
pub mod resume;
pub mod rules;
pub mod stats;
pub mod upstream;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, Upstream};
use crate::events::{EventSink, SessionInfo};
use crate::readiness::Readiness;
pub use stats::Stats;

/// Everything a session needs, fixed when its handshake completes.
pub struct SessionCtx {
    /// Identity for events.
    pub info: Arc<SessionInfo>,
    /// Event stream.
    pub sink: EventSink,
    /// Shared counters.
    pub stats: Arc<Stats>,
    /// permessage-deflate negotiated: RSV1 allowed on first frames.
    pub deflate: bool,
    /// An extension other than permessage-deflate negotiated: RSV bits are not checked.
    pub any_extension: bool,
    /// Frame limit.
    pub max_frame_size: u64,
    /// Message limit.
    pub max_message_size: u64,
    /// Wait for a peer's close after the sidecar sends one.
    pub close_timeout: Duration,
    /// Close sessions idle this long (zero: never).
    pub idle_timeout: Duration,
    /// Emit a FrameRelayed event per message (at most [`FRAME_EVENTS_PER_SEC`] a second per session).
    pub frame_events: bool,
    /// This session's budget of per-message events.
    pub frame_budget: EventBudget,
    /// The sidecar's own pings on this session.
    pub heartbeat: heartbeat::Heartbeats,
    /// Holding the session through an upstream restart (None: `resume.hold_ms` is 0).
    pub resume: Option<Box<resume::Plan>>,
}

/// Per-message events one session may emit in a second (`telemetry.frame_events`); beyond it they are
/// counted in `iskra_sidecar_events_suppressed_total` instead, so that one client's flood of small
/// messages cannot fill the event channel every session shares.
pub const FRAME_EVENTS_PER_SEC: u32 = 100;

/// A session's budget of per-message events: [`FRAME_EVENTS_PER_SEC`] per second of session time.
#[derive(Debug, Default)]
pub struct EventBudget {
    second: AtomicU64,
    used: std::sync::atomic::AtomicU32,
}

impl EventBudget {
    /// Whether one more event may be emitted `elapsed` into the session (both pumps share it).
    pub fn take(&self, elapsed: Duration) -> bool {
        let now = elapsed.as_secs();
        if self.second.swap(now, Relaxed) != now {
            self.used.store(0, Relaxed);
        }
        self.used.fetch_add(1, Relaxed) < FRAME_EVENTS_PER_SEC
    }
}

/// State shared by every connection of one proxy.
pub struct Shared {
    /// Validated config.
    pub config: Arc<Config>,
    /// Event stream.
    pub sink: EventSink,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Flips to true on shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// What is known of the upstream (readiness, restart detection); the prober shares it.
    pub readiness: Arc<Readiness>,
    /// Session ids.
    pub next_id: AtomicU64,
    /// Upstreams in order: the primary, then the backups.
    pub upstreams: Vec<(String, Upstream)>,
    /// Emit per-message events.
    pub frame_events: bool,
    /// Whether accepted sockets inherit TCP_NODELAY from the listener (0 unknown, 1 yes, 2 no).
    pub nodelay: std::sync::atomic::AtomicU8,
}

impl Shared {
    /// Builds the shared state for `config`.
    pub fn new(
        config: Arc<Config>,
        sink: EventSink,
        stats: Arc<Stats>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Shared> {
        let mut upstreams = vec![("primary".to_string(), config.upstream.clone())];
        for (i, b) in config.backup_upstreams.iter().enumerate() {
            upstreams.push((format!("backup-{}", i + 1), b.clone()));
        }
        let frame_events = config.telemetry.frame_events;
        Arc::new(Shared {
            config,
            sink,
            stats,
            shutdown,
            readiness: Arc::new(Readiness::default()),
            next_id: AtomicU64::new(1),
            upstreams,
            frame_events,
            nodelay: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_gets_its_budget_of_message_events_each_second() {
        let b = EventBudget::default();
        let at = |ms| Duration::from_millis(ms);
        let first = (0..1000).filter(|_| b.take(at(10))).count();
        assert_eq!(first, FRAME_EVENTS_PER_SEC as usize);
        assert!(b.take(at(1010)), "a new second, a new budget");
    }
}
