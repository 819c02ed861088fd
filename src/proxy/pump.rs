//! One direction of a WebSocket session: reads bytes, walks frame headers, checks them against RFC 6455,
//! and forwards the bytes it read unchanged (payloads are never copied or unmasked, except control
//! frames, which are at most 125 bytes and read whole).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use tokio::net::TcpStream;

use super::frame::{self, FrameHeader, Parsed, MAX_CONTROL_FRAME};
use super::stats::Batch;
use super::SessionCtx;
use crate::events::{Direction, EventKind, OpcodeKind, Peer, ProtocolRule};

/// Size of the read buffer a busy direction borrows; an idle one holds none.
pub const READ_BUF: usize = 32 * 1024;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Box<[u8]>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_buf() -> Box<[u8]> {
    POOL.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; READ_BUF].into_boxed_slice())
}

fn give_buf(b: Box<[u8]>) {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < 32 {
            p.push(b);
        }
    });
}

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

/// Writes all of `data`, marking the direction as mid-write meanwhile.
pub async fn write_all(to: &TcpStream, mut data: &[u8], writing: &AtomicBool) -> io::Result<()> {
    writing.store(true, Relaxed);
    while !data.is_empty() {
        match to.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => to.writable().await?,
            Err(e) => return Err(e),
        }
    }
    writing.store(false, Relaxed);
    Ok(())
}

/// One direction's parser and forwarder.
pub struct Pump<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    dir: Direction,
    ctx: &'a SessionCtx,
    shared: &'a Shared,
    started: Instant,
    /// Payload bytes left of the data frame being forwarded.
    remaining: u64,
    in_message: bool,
    message_kind: OpcodeKind,
    message_size: u64,
    pending: [u8; MAX_CONTROL_FRAME],
    pending_len: usize,
    batch: Batch,
}

impl<'a> Pump<'a> {
    /// A pump from `from` to `to`.
    pub fn new(
        from: &'a TcpStream,
        to: &'a TcpStream,
        dir: Direction,
        ctx: &'a SessionCtx,
        shared: &'a Shared,
        started: Instant,
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
            pending: [0; MAX_CONTROL_FRAME],
            pending_len: 0,
            batch: Batch::default(),
        }
    }

    /// Relays until this direction ends; `initial` holds bytes read before the upgrade completed.
    pub async fn run(mut self, initial: bytes::Bytes) -> Outcome {
        if !initial.is_empty() {
            let r = self.process(&initial).await;
            self.flush_batch();
            if let Err(o) = r {
                return o;
            }
        }
        loop {
            if let Err(e) = self.from.readable().await {
                return Outcome::ReadError(e.kind());
            }
            let mut buf = take_buf();
            let res = loop {
                match self.from.try_read(&mut buf) {
                    Ok(0) => break Some(Outcome::Eof),
                    Ok(n) => {
                        if let Err(o) = self.process(&buf[..n]).await {
                            break Some(o);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                    Err(e) => break Some(Outcome::ReadError(e.kind())),
                }
            };
            give_buf(buf);
            self.flush_batch();
            if let Some(o) = res {
                return o;
            }
        }
    }

    fn flush_batch(&mut self) {
        let i = idx(self.dir);
        self.shared.messages[i].fetch_add(self.batch.text + self.batch.binary, Relaxed);
        self.shared.bytes[i].fetch_add(self.batch.bytes, Relaxed);
        self.shared.mid_frame[i].store(self.remaining > 0, Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        self.shared.last_activity_ms.store(now, Relaxed);
        self.batch.flush(self.ctx.stats.traffic(self.dir));
    }

    async fn write(&self, data: &[u8]) -> Result<(), Outcome> {
        if data.is_empty() {
            return Ok(());
        }
        write_all(self.to, data, &self.shared.writing[idx(self.dir)])
            .await
            .map_err(|e| Outcome::WriteError(e.kind()))
    }

    /// Walks `data`, forwarding every byte of valid frames; `Err` ends the direction.
    async fn process(&mut self, data: &[u8]) -> Result<(), Outcome> {
        let mut i = 0;
        let mut fwd = 0;
        if self.pending_len > 0 {
            i = self.complete_pending(data).await?;
            fwd = i;
        }
        while i < data.len() {
            if self.remaining > 0 {
                let take = self.remaining.min((data.len() - i) as u64);
                i += take as usize;
                self.remaining -= take;
                self.batch.bytes += take;
                continue;
            }
            let h = match frame::parse_header(&data[i..]) {
                Parsed::Incomplete => break,
                Parsed::Invalid(rule) => {
                    self.write(&data[fwd..i]).await?;
                    return Err(Outcome::Violation(rule));
                }
                Parsed::Header(h) => h,
            };
            if let Err(rule) = self.check(&h) {
                self.write(&data[fwd..i]).await?;
                return Err(Outcome::Violation(rule));
            }
            if !h.is_control() {
                self.start_data_frame(&h);
                i += h.header_len;
                continue;
            }
            let total = h.header_len + h.len as usize;
            if data.len() - i < total {
                break;
            }
            self.write(&data[fwd..i]).await?;
            self.control(&data[i..i + total], &h).await?;
            i += total;
            fwd = i;
        }
        self.write(&data[fwd..i]).await?;
        // A header or control frame cut by the read boundary waits in `pending` (at most 139 bytes).
        let rest = &data[i..];
        if !rest.is_empty() {
            self.pending[..rest.len()].copy_from_slice(rest);
            self.pending_len = rest.len();
        }
        Ok(())
    }

    /// Finishes a header or control frame split across reads; returns bytes of `data` used.
    async fn complete_pending(&mut self, data: &[u8]) -> Result<usize, Outcome> {
        let old = self.pending_len;
        let k = (MAX_CONTROL_FRAME - old).min(data.len());
        self.pending[old..old + k].copy_from_slice(&data[..k]);
        let have = old + k;
        let h = match frame::parse_header(&self.pending[..have]) {
            Parsed::Incomplete => {
                self.pending_len = have;
                return Ok(data.len());
            }
            Parsed::Invalid(rule) => return Err(Outcome::Violation(rule)),
            Parsed::Header(h) => h,
        };
        self.check(&h).map_err(Outcome::Violation)?;
        self.pending_len = 0;
        if !h.is_control() {
            let header = self.pending;
            self.write(&header[..h.header_len]).await?;
            self.start_data_frame(&h);
            return Ok(h.header_len - old);
        }
        let total = h.header_len + h.len as usize;
        if have < total {
            self.pending_len = have;
            return Ok(data.len());
        }
        let frame = self.pending;
        self.control(&frame[..total], &h).await?;
        Ok(total - old)
    }

    /// RFC 6455 checks on a header, before anything of its frame is forwarded.
    fn check(&self, h: &FrameHeader) -> Result<(), ProtocolRule> {
        let kind = h.kind()?;
        let from_client = self.dir == Direction::ClientToUpstream;
        match (from_client, h.mask.is_some()) {
            (true, false) => return Err(ProtocolRule::UnmaskedClientFrame),
            (false, true) => return Err(ProtocolRule::MaskedServerFrame),
            _ => {}
        }
        if !self.ctx.any_extension {
            let rsv1_ok = self.ctx.deflate
                && matches!(kind, OpcodeKind::Text | OpcodeKind::Binary)
                && h.rsv == 0b100;
            if h.rsv != 0 && !rsv1_ok {
                return Err(ProtocolRule::ReservedBits);
            }
        }
        if h.is_control() {
            if !h.fin {
                return Err(ProtocolRule::FragmentedControlFrame);
            }
            if h.len > 125 {
                return Err(ProtocolRule::ControlFrameTooLong);
            }
            return Ok(());
        }
        match (kind, self.in_message) {
            (OpcodeKind::Continuation, false) => return Err(ProtocolRule::BadContinuation),
            (OpcodeKind::Text | OpcodeKind::Binary, true) => {
                return Err(ProtocolRule::BadContinuation)
            }
            _ => {}
        }
        if h.len > self.ctx.max_frame_size {
            return Err(ProtocolRule::FrameTooLarge);
        }
        let so_far = if kind == OpcodeKind::Continuation {
            self.message_size
        } else {
            0
        };
        if so_far + h.len > self.ctx.max_message_size {
            return Err(ProtocolRule::MessageTooLarge);
        }
        Ok(())
    }

    fn start_data_frame(&mut self, h: &FrameHeader) {
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
                OpcodeKind::Text => self.batch.text += 1,
                _ => self.batch.binary += 1,
            }
            self.ctx
                .stats
                .traffic(self.dir)
                .sizes
                .observe(self.message_size);
            if self.ctx.frame_events {
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
    async fn control(&mut self, frame: &[u8], h: &FrameHeader) -> Result<(), Outcome> {
        let mut payload = [0u8; 125];
        let p = &mut payload[..h.len as usize];
        p.copy_from_slice(&frame[h.header_len..]);
        if let Some(m) = h.mask {
            frame::apply_mask(p, m, 0);
        }
        match h.opcode {
            0x8 => {
                let (code, reason) = frame::parse_close(p).map_err(Outcome::Violation)?;
                self.write(frame).await?;
                Err(Outcome::Closed { code, reason })
            }
            0xA if self.ctx.heartbeat.enabled && super::heartbeat::own_pong(p).is_some() => {
                let sent = super::heartbeat::own_pong(p).unwrap_or_default();
                let peer = if self.dir == Direction::ClientToUpstream {
                    Peer::Client
                } else {
                    Peer::Upstream
                };
                self.shared.pongs.record(peer);
                let rtt = self.started.elapsed().saturating_sub(sent);
                self.ctx.sink.emit(
                    Some(&self.ctx.info),
                    EventKind::PingPong {
                        peer,
                        rtt: Some(rtt),
                    },
                );
                Ok(())
            }
            _ => self.write(frame).await,
        }
    }
}
