//! The D rule's context, followed from the event stream: what the seed's `calculateDimension` knows
//! beyond the event itself — reconnections so far, whether fallback is active, the latest latency.
//!
//! - reconnections: the prober's failed WebSocket attempts since its last successful connect to the
//!   dashboard (the seed's `reconnectAttempts`, reset when a connection opens). The sidecar fronts one
//!   dashboard, so proxied sessions and the prober share this count: a session opened while the prober
//!   is on its 4th reconnection carries D + 4.
//! - fallback: `websocket.fallback.active` as the registry holds it (non-zero on any series), so D
//!   follows the same truth as the gauge and the `WebSocketFallbackActive` alert.
//! - latency: the prober's latest heartbeat round trip, used for events that measured none themselves.

use std::time::Duration;

use crate::events::{Event, EventKind, Transport};
use crate::semantics::Context;

/// Follows the events that change the D rule's inputs.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    reconnections: u32,
    latency: Option<Duration>,
}

impl Tracker {
    /// Applies one event (before it is described, so that it counts toward its own D).
    pub fn observe(&mut self, ev: &Event) {
        match &ev.kind {
            EventKind::ProbeAttempt {
                attempt,
                transport: Transport::WebSocket,
                ..
            } => self.reconnections = *attempt,
            EventKind::ProbeSucceeded {
                transport: Transport::WebSocket,
                ..
            } => self.reconnections = 0,
            EventKind::PingPong { rtt: Some(rtt), .. } if ev.session.is_none() => {
                self.latency = Some(*rtt)
            }
            _ => {}
        }
    }

    /// The context of the next event to describe, given whether fallback is active now.
    pub fn context(&self, fallback_active: bool) -> Context {
        Context {
            reconnections: self.reconnections,
            fallback_active,
            latency: self.latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ConnectCause;
    use crate::semantics::describe;
    use std::time::SystemTime;

    fn ev(kind: EventKind) -> Event {
        Event {
            at: SystemTime::now(),
            session: None,
            kind,
        }
    }

    fn attempt(n: u32) -> Event {
        ev(EventKind::ProbeAttempt {
            endpoint: "pulse".into(),
            url: "ws://x".into(),
            attempt: n,
            transport: Transport::WebSocket,
        })
    }

    /// D of a failed probe rises by one per reconnection, by three with fallback, and falls back to
    /// the error's 3 once the prober is connected again.
    #[test]
    fn d_rises_with_reconnections_and_fallback_and_resets_on_success() {
        let failed = EventKind::ProbeFailed {
            endpoint: "pulse".into(),
            transport: Transport::WebSocket,
            duration: Duration::ZERO,
            cause: ConnectCause::Refused,
            status: None,
        };
        let mut t = Tracker::default();
        let mut ds = Vec::new();
        for n in 0..4 {
            t.observe(&attempt(n));
            ds.push(describe(&failed, &t.context(false)).dimension);
        }
        assert_eq!(ds, [3, 4, 5, 6]);
        assert_eq!(describe(&failed, &t.context(true)).dimension, 9);
        t.observe(&ev(EventKind::ProbeSucceeded {
            endpoint: "pulse".into(),
            transport: Transport::WebSocket,
            duration: Duration::ZERO,
            recovered: true,
        }));
        assert_eq!(describe(&failed, &t.context(false)).dimension, 3);
        // A slow dashboard adds one to events that measured no latency themselves.
        t.observe(&ev(EventKind::PingPong {
            peer: crate::events::Peer::Upstream,
            rtt: Some(Duration::from_millis(1500)),
        }));
        assert_eq!(describe(&failed, &t.context(false)).dimension, 4);
    }
}
