//! The end of a running session, made unforgeable: [`SessionEnd`] is created as the relay starts and
//! emits SessionEnded when it is dropped — with the ending the relay decided, or, if the session's
//! future stopped any other way (cancelled, a panic unwinding), as an abnormal 1006 closed by the
//! sidecar. Together with [`super::handshake::Begun`] (the handshake's end) every session that starts
//! ends in the span builder, the metrics and the logs, through the lossless path of the event sink.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use std::sync::Arc;

use super::pump::{idx, Shared};
use crate::events::{Direction, EventKind, EventSink, Initiator, SessionInfo, SessionTotals};

/// Emits the session's SessionEnded when dropped.
pub struct SessionEnd<'a> {
    sink: &'a EventSink,
    info: Arc<SessionInfo>,
    shared: &'a Shared,
    started: Instant,
    /// (code the client got, code the upstream got, who closed).
    ending: Option<(u16, u16, Initiator)>,
}

impl<'a> SessionEnd<'a> {
    /// Armed for the session `info` (events to `sink`), whose counters are in `shared`. It borrows the
    /// sink alone, not the whole context, so that a resumed session can rename its upstream.
    pub fn new(
        sink: &'a EventSink,
        info: Arc<SessionInfo>,
        shared: &'a Shared,
        started: Instant,
    ) -> Self {
        SessionEnd {
            sink,
            info,
            shared,
            started,
            ending: None,
        }
    }

    /// The session now names another upstream (a resume took it to a backup).
    pub fn retarget(&mut self, info: Arc<SessionInfo>) {
        self.info = info;
    }

    /// How the session ended (the close code the client got or sent, the upstream's, and who closed);
    /// SessionEnded is emitted as the guard drops.
    pub fn ended(mut self, code: u16, upstream_code: u16, initiator: Initiator) {
        self.ending = Some((code, upstream_code, initiator));
    }
}

impl Drop for SessionEnd<'_> {
    fn drop(&mut self) {
        let (code, upstream_code, initiator) =
            self.ending.unwrap_or((1006, 1006, Initiator::Sidecar));
        let (c2u, u2c) = (
            idx(Direction::ClientToUpstream),
            idx(Direction::UpstreamToClient),
        );
        let s = self.shared;
        let totals = SessionTotals {
            messages_in: s.messages[c2u].load(Relaxed),
            messages_out: s.messages[u2c].load(Relaxed),
            bytes_in: s.bytes[c2u].load(Relaxed),
            bytes_out: s.bytes[u2c].load(Relaxed),
        };
        let kind = EventKind::SessionEnded {
            duration: self.started.elapsed(),
            totals,
            code,
            upstream_code,
            initiator,
        };
        self.sink.emit_lossless(Some(&self.info), kind);
    }
}
