//! The inputs of the health score over the last `health.window_ms`, not since start: events are
//! counted into 60 time slots of a sixtieth of the window each (constant memory at any event rate), and
//! a reading sums the slots younger than the window. Client sessions and the prober are counted apart,
//! each against its own attempts; missed heartbeats of browsers apart from the dashboard's. The prober's
//! current state (connected, refused with a status, down; fallback mode) is kept as of its last event.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::events::{Event, EventKind, FallbackMode, Initiator, Peer, Transport};
use crate::semantics;

/// Counts over some stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Client upgrades answered (101 or a refusal).
    pub client_attempts: f64,
    /// Client upgrades that reached 101.
    pub client_connected: f64,
    /// Client upgrades or sessions that failed on the dashboard's or the sidecar's side (at most one
    /// per session).
    pub client_errors: f64,
    /// Prober WebSocket attempts.
    pub probe_attempts: f64,
    /// … that connected.
    pub probe_ok: f64,
    /// … that failed (no answer, 5xx, link lost).
    pub probe_failed: f64,
    /// … that the dashboard refused with a 4xx.
    pub probe_rejected: f64,
    /// Heartbeats browsers failed to answer.
    pub hb_clients: f64,
    /// Heartbeats the dashboard failed to answer (on sessions or the prober's link).
    pub hb_dashboard: f64,
    /// Sum of the prober's ping round trips (s).
    pub rtt_sum: f64,
    /// Their number.
    pub rtt_n: f64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.client_attempts += o.client_attempts;
        self.client_connected += o.client_connected;
        self.client_errors += o.client_errors;
        self.probe_attempts += o.probe_attempts;
        self.probe_ok += o.probe_ok;
        self.probe_failed += o.probe_failed;
        self.probe_rejected += o.probe_rejected;
        self.hb_clients += o.hb_clients;
        self.hb_dashboard += o.hb_dashboard;
        self.rtt_sum += o.rtt_sum;
        self.rtt_n += o.rtt_n;
    }
}

/// The prober as of its last event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeView {
    /// Whether it has reported anything yet.
    pub seen: bool,
    /// It holds a WebSocket now.
    pub connected: bool,
    /// Refused: the status (None: closed without an answer) and the URL (no query).
    pub rejected: Option<(Option<u16>, String)>,
    /// Where it is when not on its primary WebSocket.
    pub mode: Option<FallbackMode>,
}

struct State {
    slots: VecDeque<(Instant, Counts)>,
    probe: ProbeView,
}

/// The windowed inputs of one sidecar.
pub struct Window {
    span: Duration,
    slot: Duration,
    state: Mutex<State>,
}

/// What one event adds to the counts (pure: tested without a clock).
pub fn delta(kind: &EventKind, in_session: bool) -> Counts {
    let mut c = Counts::default();
    match kind {
        EventKind::HandshakeCompleted { .. } => {
            c.client_attempts = 1.0;
            c.client_connected = 1.0;
        }
        EventKind::HandshakeRejected { status, .. } => {
            c.client_attempts = 1.0;
            c.client_errors = f64::from(u8::from(*status >= 500));
        }
        EventKind::ProtocolError { .. } if in_session => c.client_errors = 1.0,
        EventKind::Close { initiator, .. }
            if in_session
                && *initiator != Initiator::Sidecar
                && semantics::classify(kind).is_some() =>
        {
            c.client_errors = 1.0
        }
        EventKind::HeartbeatTimeout { peer, .. } => match peer {
            Peer::Client => c.hb_clients = 1.0,
            Peer::Upstream => c.hb_dashboard = 1.0,
        },
        EventKind::PingPong { rtt: Some(r), .. } if !in_session => {
            c.rtt_sum = r.as_secs_f64();
            c.rtt_n = 1.0;
        }
        EventKind::ProbeSucceeded {
            transport: Transport::WebSocket,
            ..
        } => {
            c.probe_attempts = 1.0;
            c.probe_ok = 1.0;
        }
        EventKind::ProbeFailed {
            transport: Transport::WebSocket,
            ..
        } => {
            c.probe_attempts = 1.0;
            c.probe_failed = 1.0;
        }
        EventKind::ProbeRejected { .. } => {
            c.probe_attempts = 1.0;
            c.probe_rejected = 1.0;
        }
        _ => {}
    }
    c
}

impl Window {
    /// A window of `span` (at least 60 ms).
    pub fn new(span: Duration) -> Window {
        let span = span.max(Duration::from_millis(60));
        Window {
            span,
            slot: span / 60,
            state: Mutex::new(State {
                slots: VecDeque::new(),
                probe: ProbeView::default(),
            }),
        }
    }

    /// The window's length.
    pub fn span(&self) -> Duration {
        self.span
    }

    /// Counts one event.
    pub fn record(&self, ev: &Event) {
        let d = delta(&ev.kind, ev.session.is_some());
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if ev.session.is_none() {
            let p = &mut st.probe;
            match &ev.kind {
                EventKind::ProbeSucceeded {
                    transport: Transport::WebSocket,
                    ..
                } => {
                    *p = ProbeView {
                        seen: true,
                        connected: true,
                        rejected: None,
                        mode: p.mode,
                    }
                }
                EventKind::ProbeFailed {
                    transport: Transport::WebSocket,
                    ..
                } => {
                    p.seen = true;
                    p.connected = false;
                    p.rejected = None;
                }
                EventKind::ProbeRejected { status, url, .. } => {
                    p.seen = true;
                    p.connected = false;
                    p.rejected = Some((*status, url.clone()));
                }
                EventKind::FallbackChanged { mode, .. } => p.mode = *mode,
                _ => {}
            }
        }
        if d == Counts::default() {
            return;
        }
        let now = Instant::now();
        match st.slots.back_mut() {
            Some((start, c)) if now.duration_since(*start) < self.slot => c.add(&d),
            _ => st.slots.push_back((now, d)),
        }
        let span = self.span;
        while st
            .slots
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > span)
        {
            st.slots.pop_front();
        }
    }

    /// The counts of the last window, and the prober's state.
    pub fn read(&self) -> (Counts, ProbeView) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = Counts::default();
        for (t, c) in &st.slots {
            if t.elapsed() <= self.span {
                total.add(c);
            }
        }
        (total, st.probe.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ConnectCause, RejectCause};

    fn ev(kind: EventKind) -> Event {
        Event {
            at: std::time::SystemTime::now(),
            session: None,
            kind,
        }
    }

    #[test]
    fn prober_and_clients_count_apart_and_refusals_are_not_failures() {
        let w = Window::new(Duration::from_secs(60));
        w.record(&ev(EventKind::HandshakeCompleted {
            duration: Duration::ZERO,
            subprotocol: None,
            extensions: None,
        }));
        w.record(&ev(EventKind::HandshakeRejected {
            duration: Duration::ZERO,
            status: 502,
            cause: RejectCause::UpstreamUnavailable(ConnectCause::Refused),
        }));
        for changed in [true, false, false] {
            w.record(&ev(EventKind::ProbeRejected {
                endpoint: "pulse".into(),
                url: "ws://h:1/".into(),
                status: Some(400),
                duration: Duration::ZERO,
                changed,
            }));
        }
        let (c, p) = w.read();
        assert_eq!(
            (c.client_attempts, c.client_connected, c.client_errors),
            (2.0, 1.0, 1.0)
        );
        assert_eq!(
            (c.probe_attempts, c.probe_rejected, c.probe_failed),
            (3.0, 3.0, 0.0)
        );
        assert_eq!(p.rejected, Some((Some(400), "ws://h:1/".into())));
    }

    #[test]
    fn what_is_older_than_the_window_no_longer_counts() {
        let w = Window::new(Duration::from_millis(120));
        w.record(&ev(EventKind::HeartbeatTimeout {
            peer: Peer::Client,
            missed: 3,
        }));
        assert_eq!(w.read().0.hb_clients, 1.0);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(w.read().0, Counts::default());
    }
}
