//! [`Event`] (a step, its time and its session) and [`EventSink`]: a non-blocking `try_send` on a bounded
//! channel; a full channel counts the event as dropped, and the relay never waits on telemetry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::{EventKind, SessionInfo};

/// An event with its time and, for proxied sessions, its session identity.
#[derive(Debug, Clone)]
pub struct Event {
    /// Wall-clock time the step happened.
    pub at: SystemTime,
    /// The session it belongs to, if any.
    pub session: Option<Arc<SessionInfo>>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// `kind`, happening now, in `session` (if any).
    fn now(session: Option<&Arc<SessionInfo>>, kind: EventKind) -> Event {
        Event {
            at: SystemTime::now(),
            session: session.cloned(),
            kind,
        }
    }
}

/// The sending side of the event stream: cheap to clone, never blocks.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Event>>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// A bounded channel of `capacity` events, and its receiving end.
    pub fn channel(capacity: usize) -> (EventSink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sink = EventSink {
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (sink, rx)
    }

    /// A sink that discards everything (telemetry off); nothing is counted as dropped.
    pub fn disabled() -> EventSink {
        EventSink {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Publishes without waiting; a full channel counts the event as dropped.
    pub fn emit(&self, session: Option<&Arc<SessionInfo>>, kind: EventKind) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(Event::now(session, kind)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes an event that must never be lost — a session's start and end (HandshakeCompleted,
    /// HandshakeRejected, SessionEnded), which the span builder and the active-session gauge pair up: when the channel is full it is handed to a task that waits for room (the channel's
    /// senders are served in order, so it still arrives after the session's earlier events). At most
    /// one such task per session that ends while telemetry is saturated.
    pub fn emit_lossless(&self, session: Option<&Arc<SessionInfo>>, kind: EventKind) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Event::now(session, kind)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        let tx = tx.clone();
                        rt.spawn(async move {
                            let _ = tx.send(ev).await;
                        });
                    }
                    Err(_) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events lost to a full (or closed) channel so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_channel_counts_drops_and_never_blocks() {
        let (sink, mut rx) = EventSink::channel(2);
        for _ in 0..5 {
            sink.emit(None, EventKind::UpstreamConnectStarted);
        }
        assert_eq!(sink.dropped(), 3);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_terminal_event_waits_for_room_instead_of_being_lost() {
        let (sink, mut rx) = EventSink::channel(1);
        sink.emit(None, EventKind::UpstreamConnectStarted);
        sink.emit_lossless(None, EventKind::UpstreamConnectStarted);
        assert_eq!(sink.dropped(), 0);
        assert!(rx.recv().await.is_some());
        let late = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert!(
            matches!(late, Ok(Some(_))),
            "the terminal event arrives once there is room"
        );
    }
}
