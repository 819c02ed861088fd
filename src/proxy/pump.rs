//! One direction of a WebSocket session: reads bytes, walks frame headers (checked by [`super::rules`]),
//! and forwards the bytes it read unchanged (payloads are never copied or unmasked, except control
//! frames, which are at most 125 bytes and read whole). The socket side is in `wire`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use tokio::net::TcpStream;

use super::frame::{self, FrameHeader, Parsed, MAX_CONTROL_FRAME};
use super::rules::{check_header, restart_code};
use super::stats::Batch;
use super::SessionCtx;
use crate::events::{Direction, EventKind, OpcodeKind, Peer, ProtocolRule};

mod wire;
pub use wire::{write_all, READ_BUF};

/// How a direction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid close frame was forwarded.
    Closed {
        /// Its code (1005 when empty).
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// The source closed its TCP connection without a close frame.
    Eof,
    /// The source broke an RFC 6455 rule; nothing from the bad frame on was forwarded.
    Violation(ProtocolRule),
    /// Reading from the source failed.
    ReadError(io::ErrorKind),
    /// Writing to the destination failed.
    WriteError(io::ErrorKind),
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

/// State the two directions of one session share (both run in the session's task).
#[derive(Debug, Default)]
pub struct Shared {
    /// Set while a direction is in the middle of writing to its destination.
    pub writing: [AtomicBool; 2],
    /// Data messages per direction.
    pub messages: [AtomicU64; 2],
    /// Payload bytes per direction.
    pub bytes: [AtomicU64; 2],
    /// Set while a direction has written part of a frame (its destination is not at a frame boundary).
    pub mid_frame: [AtomicBool; 2],
    /// Milliseconds since session start of the last bytes seen.
    pub last_activity_ms: AtomicU64,
    /// Answers to the sidecar's own pings.
    pub pongs: super::heartbeat::Pongs,
    /// The client sent a close frame: an upstream close after it answers it, and is never a restart.
    pub client_closed: AtomicBool,
}

impl Shared {
    /// (client, upstream): whether the sidecar may write a frame of its own to each side now.
    pub fn at_boundary(&self) -> (bool, bool) {
        let free = |d: Direction| {
            let i = idx(d);
            !self.writing[i].load(Relaxed) && !self.mid_frame[i].load(Relaxed)
        };
        (
            free(Direction::UpstreamToClient),
            free(Direction::ClientToUpstream),
        )
    }
}

/// Index of a direction in [`Shared`]'s arrays.
pub fn idx(d: Direction) -> usize {
    match d {
        Direction::ClientToUpstream => 0,
        Direction::UpstreamToClient => 1,
    }
}

/// What to do with a whole control frame.
enum Control {
    /// Forward it unchanged.
    Forward,
    /// A valid close: forward it, then end the direction.
    Close(u16, String),
    /// The answer to one of the sidecar's own pings: consumed, not forwarded.
    Consume,
}

/// One direction's parser and forwarder, and the future that runs it.
///
/// Frames are walked synchronously and forwarded with non-blocking writes; only when the destination
/// would block are the unwritten bytes kept in `backlog`, and reading stops until it is written. The
/// future is this struct itself (no async state machine around it), so an idle direction costs a
/// hundred-odd bytes.
pub struct Pump<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    dir: Direction,
    ctx: &'a SessionCtx,
    shared: &'a Shared,
    started: &'a Instant,
    /// Payload bytes left of the data frame being forwarded.
    remaining: u64,
    in_message: bool,
    message_kind: OpcodeKind,
    message_size: u64,
    /// A header or control frame cut by a read boundary (allocated only while there is one).
    pending: Option<Box<[u8; MAX_CONTROL_FRAME]>>,
    pending_len: usize,
    /// Bytes the destination did not take yet (empty, and unallocated, almost always).
    backlog: Vec<u8>,
    /// How the direction ended, reported once the backlog is written.
    ended: Option<Outcome>,
    /// An upstream close announcing a restart was kept from the client, for a resume.
    close_held: bool,
}

impl<'a> Pump<'a> {
    /// A pump from `from` to `to`.
    pub fn new(
        from: &'a TcpStream,
        to: &'a TcpStream,
        dir: Direction,
        ctx: &'a SessionCtx,
        shared: &'a Shared,
        started: &'a Instant,
    ) -> Self {
        Pump {
            from,
            to,
            dir,
            ctx,
            shared,
            started,
            remaining: 0,
            in_message: false,
            message_kind: OpcodeKind::Binary,
            message_size: 0,
            pending: None,
            pending_len: 0,
            backlog: Vec::new(),
            ended: None,
            close_held: false,
        }
    }

    /// Where the direction stands (for the decision to hold a session through a restart).
    pub fn position(&self) -> Position<'_> {
        Position {
            mid_frame: self.remaining > 0 || !self.backlog.is_empty(),
            in_message: self.in_message,
            pending: match &self.pending {
                Some(p) => &p[..self.pending_len],
                None => &[],
            },
        }
    }

    /// Whether the upstream's close (1001 / 1012) was kept from the client for a resume.
    pub fn close_held(&self) -> bool {
        self.close_held
    }

    /// Whether the first client messages, kept for a resume, passed `resume.replay_bytes`.
    pub fn replay_overflowed(&self) -> bool {
        self.ctx
            .resume
            .as_ref()
            .is_some_and(|p| p.replay.overflowed())
    }

    /// Starts relaying: `initial` (bytes read before the upgrade completed) is walked now; the pump,
    /// as a future, then relays until this direction ends. `initial` is a view into the HTTP layer's
    /// read buffer (8 KiB or more) and is let go here rather than held for the session.
    pub fn run(mut self, initial: bytes::Bytes) -> Self {
        if !initial.is_empty() {
            if let Err(o) = self.process(&initial) {
                self.ended = Some(o);
            }
            self.flush_batch();
        }
        self
    }

    /// Walks `data`, forwarding every byte of valid frames; `Err` ends the direction (after the
    /// backlog, if any, is written). The counts go to the session's and the shared counters once per
    /// call (the batch lives on the stack, not in the pump).
    fn process(&mut self, data: &[u8]) -> Result<(), Outcome> {
        let mut batch = Batch::default();
        let r = self.walk(data, &mut batch);
        let i = idx(self.dir);
        // One writer per direction (this pump): a load and a store, no locked read-modify-write.
        let add = |c: &AtomicU64, n: u64| c.store(c.load(Relaxed) + n, Relaxed);
        add(&self.shared.messages[i], batch.text + batch.binary);
        add(&self.shared.bytes[i], batch.bytes);
        batch.flush(self.ctx.stats.traffic(self.dir));
        r
    }

    fn walk(&mut self, data: &[u8], batch: &mut Batch) -> Result<(), Outcome> {
        let mut i = 0;
        let mut fwd = 0;
        if self.pending_len > 0 {
            i = self.complete_pending(data, batch)?;
            fwd = i;
        }
        while i < data.len() {
            if self.remaining > 0 {
                let take = self.remaining.min((data.len() - i) as u64);
                i += take as usize;
                self.remaining -= take;
                batch.bytes += take;
                continue;
            }
            let h = match frame::parse_header(&data[i..]) {
                Parsed::Incomplete => break,
                Parsed::Invalid(rule) => {
                    self.write(&data[fwd..i])?;
                    return Err(Outcome::Violation(rule));
                }
                Parsed::Header(h) => h,
            };
            if let Err(rule) = self.check(&h) {
                self.write(&data[fwd..i])?;
                return Err(Outcome::Violation(rule));
            }
            if !h.is_control() {
                self.start_data_frame(&h, batch);
                i += h.header_len;
                continue;
            }
            let total = h.header_len + h.len as usize;
            if data.len() - i < total {
                break;
            }
            self.write(&data[fwd..i])?;
            self.control(&data[i..i + total], &h)?;
            i += total;
            fwd = i;
        }
        self.write(&data[fwd..i])?;
        // A header or control frame cut by the read boundary waits in `pending` (at most 139 bytes).
        let rest = &data[i..];
        if !rest.is_empty() {
            let p = self
                .pending
                .get_or_insert_with(|| Box::new([0; MAX_CONTROL_FRAME]));
            p[..rest.len()].copy_from_slice(rest);
            self.pending_len = rest.len();
        }
        Ok(())
    }

    /// Finishes a header or control frame split across reads; returns bytes of `data` used.
    fn complete_pending(&mut self, data: &[u8], batch: &mut Batch) -> Result<usize, Outcome> {
        let mut pending = self
            .pending
            .take()
            .unwrap_or_else(|| Box::new([0; MAX_CONTROL_FRAME]));
        let old = self.pending_len;
        let k = (MAX_CONTROL_FRAME - old).min(data.len());
        pending[old..old + k].copy_from_slice(&data[..k]);
        let have = old + k;
        let h = match frame::parse_header(&pending[..have]) {
            Parsed::Incomplete => {
                self.pending_len = have;
                self.pending = Some(pending);
                return Ok(data.len());
            }
            Parsed::Invalid(rule) => return Err(Outcome::Violation(rule)),
            Parsed::Header(h) => h,
        };
        self.check(&h).map_err(Outcome::Violation)?;
        self.pending_len = 0;
        if !h.is_control() {
            self.write(&pending[..h.header_len])?;
            self.start_data_frame(&h, batch);
            return Ok(h.header_len - old);
        }
        let total = h.header_len + h.len as usize;
        if have < total {
            self.pending_len = have;
            self.pending = Some(pending);
            return Ok(data.len());
        }
        self.control(&pending[..total], &h)?;
        Ok(total - old)
    }

    /// RFC 6455 checks on a header, before anything of its frame is forwarded.
    fn check(&self, h: &FrameHeader) -> Result<(), ProtocolRule> {
        let from_client = self.dir == Direction::ClientToUpstream;
        check_header(
            self.ctx,
            from_client,
            (self.in_message, self.message_size),
            h,
        )
    }

    fn start_data_frame(&mut self, h: &FrameHeader, batch: &mut Batch) {
        if h.opcode != 0 {
            self.message_kind = if h.opcode == 1 {
                OpcodeKind::Text
            } else {
                OpcodeKind::Binary
            };
            self.message_size = 0;
        }
        self.message_size += h.len;
        self.remaining = h.len;
        self.in_message = !h.fin;
        if h.fin {
            match self.message_kind {
                OpcodeKind::Text => batch.text += 1,
                _ => batch.binary += 1,
            }
            batch.observe(self.message_size);
            if self.ctx.frame_events && !self.ctx.frame_budget.take(self.started.elapsed()) {
                let suppressed = &self.ctx.stats.events_suppressed;
                suppressed.fetch_add(1, Relaxed);
            } else if self.ctx.frame_events {
                let kind = EventKind::FrameRelayed {
                    direction: self.dir,
                    opcode: self.message_kind,
                    size: self.message_size,
                };
                self.ctx.sink.emit(Some(&self.ctx.info), kind);
            }
        }
    }

    /// Handles a whole control frame: close ends the direction after forwarding it.
    fn control(&mut self, frame: &[u8], h: &FrameHeader) -> Result<(), Outcome> {
        match self.inspect_control(frame, h)? {
            Control::Forward => self.write(frame),
            Control::Close(code, reason) => {
                // A restart announced while resume is on: the client does not see it (the relay holds
                // the session, or sends it this close itself if it cannot).
                let from_client = self.dir == Direction::ClientToUpstream;
                if from_client {
                    self.shared.client_closed.store(true, Relaxed);
                }
                self.close_held = !from_client
                    && self.ctx.resume.is_some()
                    && !self.in_message
                    && !self.shared.client_closed.load(Relaxed)
                    && restart_code(code);
                if !self.close_held {
                    self.write(frame)?;
                }
                Err(Outcome::Closed { code, reason })
            }
            Control::Consume => Ok(()),
        }
    }

    /// What a control frame asks for (pongs answering the sidecar's own pings are recorded here).
    fn inspect_control(&self, frame: &[u8], h: &FrameHeader) -> Result<Control, Outcome> {
        let mut payload = [0u8; 125];
        let p = &mut payload[..h.len as usize];
        p.copy_from_slice(&frame[h.header_len..]);
        if let Some(m) = h.mask {
            frame::apply_mask(p, m, 0);
        }
        match h.opcode {
            0x8 => {
                let (code, reason) = frame::parse_close(p).map_err(Outcome::Violation)?;
                Ok(Control::Close(code, reason))
            }
            0xA if self.ctx.heartbeat.enabled => {
                let peer = if self.dir == Direction::ClientToUpstream {
                    Peer::Client
                } else {
                    Peer::Upstream
                };
                // Only the exact answer to the ping outstanding to this peer; any other pong is the
                // peers' own business and is forwarded.
                let Some(sent) = self.shared.pongs.answer(peer, p) else {
                    return Ok(Control::Forward);
                };
                let rtt = self.started.elapsed().saturating_sub(sent);
                self.ctx.sink.emit(
                    Some(&self.ctx.info),
                    EventKind::PingPong {
                        peer,
                        rtt: Some(rtt),
                    },
                );
                Ok(Control::Consume)
            }
            _ => Ok(Control::Forward),
        }
    }
}

impl Future for Pump<'_> {
    type Output = Outcome;

    /// Writes any backlog, reports the end of the direction once it is written (a failed write wins),
    /// otherwise waits for the source to be readable and reads a batch. The waker goes to the sockets'
    /// own reader / writer slots (`poll_*_ready`), so the pump needs no waiter node of its own.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = &mut *self;
        loop {
            if matches!(this.ended, Some(Outcome::WriteError(_))) {
                return Poll::Ready(this.ended.take().unwrap_or(Outcome::Eof));
            }
            if !this.backlog.is_empty() {
                if let Err(o) = ready!(this.poll_backlog(cx)) {
                    return Poll::Ready(o);
                }
            }
            if let Some(o) = this.ended.take() {
                return Poll::Ready(o);
            }
            if let Err(e) = ready!(this.from.poll_read_ready(cx)) {
                return Poll::Ready(Outcome::ReadError(e.kind()));
            }
            this.read_batch();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
