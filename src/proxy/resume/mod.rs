//! Holding a session through an upstream restart: when the dashboard's connection ends at a message
//! boundary (no close frame, or 1001 / 1012), the client's connection stays open while the sidecar dials
//! the dashboard again with the same request head (a fresh `Sec-WebSocket-Key`), checks that the new 101
//! agrees with the first, and relays on. The client sees no close and no second handshake.
//!
//! - this module: the settings, what a session keeps for it ([`Plan`]), and the decision to hold
//!   ([`verdict`]);
//! - [`hold`]: the hold itself (heartbeats kept, a new connection awaited, the session resumed or ended);
//! - [`frames`]: the client's frames during the hold (pings answered, data frames held in order);
//! - [`reconnect`]: dialing again and checking the new 101;
//! - [`record`]: the first client messages, re-sent to a new upstream (`resume.replay_messages`);
//! - [`deflate`]: `client_no_context_takeover` added to the client's 101 (RFC 7692 §7.1.1.1), so that the
//!   client's compressed messages decode at the fresh decompressor of a new upstream connection.

pub mod deflate;
pub mod frames;
pub mod hold;
pub mod reconnect;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::pump::{Outcome, Pump};
use super::SessionCtx;
use crate::events::{EventKind, ResumeGaveUp};

/// `resume.*`: how sessions are held through an upstream restart.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settings {
    /// How long a session is held while the upstream is away (zero: off, the client gets 1012 at once).
    pub hold: Duration,
    /// Bytes of client frames held during the gap; more closes the session (1012, "buffer full").
    pub buffer_bytes: u64,
    /// The first N client data messages of a session, re-sent to a new upstream before the held ones.
    pub replay_messages: u32,
    /// Bound on those N messages' bytes; over it, the session is not held.
    pub replay_bytes: u64,
}

impl Settings {
    /// Whether sessions are held at all.
    pub fn enabled(&self) -> bool {
        !self.hold.is_zero()
    }
}

/// What the handshake leaves for a resume: the request head as sent to the upstream, and the first 101's
/// subprotocol and extensions.
#[derive(Debug, Clone)]
pub struct Head {
    /// The request head, byte for byte as the upstream got it.
    pub request: Bytes,
    /// `Sec-WebSocket-Protocol` of the first 101.
    pub subprotocol: Option<String>,
    /// `Sec-WebSocket-Extensions` of the first 101 (as the upstream sent it).
    pub extensions: Option<String>,
}

/// Everything a session needs to be resumed (present only when `resume.hold_ms` > 0).
pub struct Plan {
    /// The settings.
    pub settings: Settings,
    /// The first handshake.
    pub head: Head,
    /// The proxy's shared state: upstreams, limits, shutdown, events.
    pub shared: Arc<super::Shared>,
    /// The session's first client messages (`replay_messages`), teed by the client → upstream pump.
    pub replay: record::Recorder,
}

impl Plan {
    /// The plan of a session whose handshake was `head`.
    pub fn new(settings: Settings, head: Head, shared: Arc<super::Shared>) -> Plan {
        let replay = record::Recorder::default();
        replay.start(settings.replay_messages, settings.replay_bytes);
        Plan {
            settings,
            head,
            shared,
            replay,
        }
    }
}

/// Why the upstream connection is gone, when it may be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostCause {
    /// The upstream's TCP connection ended or failed without a close frame.
    Vanished,
    /// The upstream sent close 1001 or 1012 (not forwarded to the client).
    Closed(u16),
    /// The upstream stopped answering the sidecar's heartbeats.
    Heartbeat,
}

impl LostCause {
    /// The close code the upstream's side of the session got: 1006 when it vanished, its own close
    /// code, or the 1001 the sidecar sent an upstream that stopped answering heartbeats
    /// (`websocket.upstream.close.code`).
    pub fn upstream_code(self) -> u16 {
        match self {
            LostCause::Vanished => 1006,
            LostCause::Closed(c) => c,
            LostCause::Heartbeat => 1001,
        }
    }
}

/// A session whose upstream is gone, ready to be held.
#[derive(Debug)]
pub struct Lost {
    /// Why.
    pub cause: LostCause,
    /// Bytes the client sent that begin a frame not yet forwarded (a header cut by a read).
    pub client_pending: Vec<u8>,
}

/// The decision when the upstream side of a session ends.
#[derive(Debug)]
pub enum Verdict {
    /// Resume is off, or the upstream ended in a way that is not a restart (a close it chose): as today.
    NotMine,
    /// Hold the session.
    Hold(Lost),
    /// A restart, but the session cannot be held: close toward the client as today.
    GiveUp(ResumeGaveUp),
}

/// Whether an upstream close code announces a restart (held instead of forwarded when resume is on).
pub fn restart_code(code: u16) -> bool {
    matches!(code, 1001 | 1012)
}

/// Decides what to do when the upstream direction `up` ended with `o` (`None`: the upstream missed its
/// heartbeats); `client` is the client → upstream direction, still running.
pub fn verdict(ctx: &SessionCtx, o: Option<&Outcome>, up: &Pump<'_>, client: &Pump<'_>) -> Verdict {
    let Some(plan) = &ctx.resume else {
        return Verdict::NotMine;
    };
    let cause = match o {
        None => LostCause::Heartbeat,
        Some(Outcome::Eof | Outcome::ReadError(_)) => LostCause::Vanished,
        Some(Outcome::Closed { code, .. }) if up.close_held() => LostCause::Closed(*code),
        // A restart announced inside a fragmented message was forwarded as is.
        Some(Outcome::Closed { code, .. }) if restart_code(*code) => {
            return Verdict::GiveUp(ResumeGaveUp::MidMessage)
        }
        _ => return Verdict::NotMine,
    };
    let u = up.position();
    if u.mid_frame || !u.pending.is_empty() {
        return Verdict::GiveUp(ResumeGaveUp::MidFrame);
    }
    if u.in_message {
        return Verdict::GiveUp(ResumeGaveUp::MidMessage);
    }
    let c = client.position();
    if c.mid_frame || c.in_message {
        return Verdict::GiveUp(ResumeGaveUp::ClientMidMessage);
    }
    if plan.settings.replay_messages > 0 && client.replay_overflowed() {
        return Verdict::GiveUp(ResumeGaveUp::ReplayTooLarge);
    }
    Verdict::Hold(Lost {
        cause,
        client_pending: c.pending.to_vec(),
    })
}

/// Emits the `ResumeGaveUp` event.
pub fn gave_up(ctx: &SessionCtx, reason: ResumeGaveUp, gap: Duration, attempts: u32) {
    let kind = EventKind::ResumeGaveUp {
        gap,
        attempts,
        reason,
    };
    ctx.sink.emit(Some(&ctx.info), kind);
}

/// Where one direction of a session stands, for the decision to hold.
#[derive(Debug)]
pub struct Position<'a> {
    /// Part of a frame was forwarded (or waits in the backlog): the destination is not at a frame boundary.
    pub mid_frame: bool,
    /// Inside a fragmented message.
    pub in_message: bool,
    /// The start of a frame read but not forwarded (a header cut by a read boundary).
    pub pending: &'a [u8],
}
