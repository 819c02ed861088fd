//! What the proxy and the prober learn about the upstream, for `/ready` and for the relay's restart
//! detection: a small shared handle, so that the prober needs nothing else of the proxy.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The upstream as last seen; share it as `Arc<Readiness>`.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Whether the upstream has answered at least once.
    pub upstream_seen: AtomicBool,
    /// Whether the last look at the primary upstream (a dial, the prober, `/ready`) found it up.
    pub upstream_up: AtomicBool,
    /// Whether the prober holds a WebSocket to the dashboard (or a backup) now.
    pub probe_ws_up: AtomicBool,
}

impl Readiness {
    /// Records whether the primary accepts connections (any HTTP answer counts).
    pub fn set_upstream(&self, up: bool) {
        self.upstream_up.store(up, Relaxed);
        if up {
            self.upstream_seen.store(true, Relaxed);
        }
    }

    /// The dashboard was reachable once and the last look found it down: a restart.
    pub fn upstream_known_down(&self) -> bool {
        self.upstream_seen.load(Relaxed) && !self.upstream_up.load(Relaxed)
    }
}
