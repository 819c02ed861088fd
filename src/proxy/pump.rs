//! One direction of a WebSocket session: reads bytes, walks frame headers, checks them against RFC 6455,
//! and forwards the bytes it read unchanged (payloads are never copied or unmasked, except control
//! frames, which are at most 125 bytes and read whole).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{ready, Context, Poll};
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

/// What one read from a socket gave.
enum Read {
    /// The buffer was filled: more may be waiting.
    Full(usize),
    /// Fewer bytes than the buffer holds: the socket's receive queue is empty now.
    Drained(usize),
    /// Nothing to read (the readiness was stale).
    Empty,
    /// End of stream.
    Eof,
    /// The read failed.
    Error(io::ErrorKind),
}

/// Reads once. A short read means the kernel queue was emptied, so the socket's readiness is cleared
/// right away (as tokio's own `poll_read` does) instead of by a second read that would only return
/// `EAGAIN`: one system call less per wake-up. Closed-state readiness is never cleared by tokio, so an
/// end of stream that arrived with the data is still seen.
fn read_some(from: &TcpStream, buf: &mut [u8]) -> Read {
    use std::io::Read as _;
    let mut drained = 0;
    let res = from.try_io(tokio::io::Interest::READABLE, || {
        let sock = socket2::SockRef::from(from);
        let n = (&*sock).read(buf)?;
        if n > 0 && n < buf.len() {
            drained = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match res {
        Ok(0) => Read::Eof,
        Ok(n) => Read::Full(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && drained > 0 => Read::Drained(drained),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Read::Empty,
        Err(e) => Read::Error(e.kind()),
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
    pub fn position(&self) -> super::resume::Position<'_> {
        super::resume::Position {
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

    /// Reads while the source has data (or until the destination would block or the direction ends),
    /// forwarding as it goes.
    fn read_batch(&mut self) {
        let mut buf = take_buf();
        loop {
            let (n, more) = match read_some(self.from, &mut buf) {
                Read::Eof => {
                    self.ended = Some(Outcome::Eof);
                    break;
                }
                Read::Full(n) => (n, true),
                Read::Drained(n) => (n, false),
                Read::Empty => break,
                Read::Error(kind) => {
                    self.ended = Some(Outcome::ReadError(kind));
                    break;
                }
            };
            if let Err(o) = self.process(&buf[..n]) {
                self.ended = Some(o);
                break;
            }
            if !more || !self.backlog.is_empty() {
                break;
            }
        }
        give_buf(buf);
        self.flush_batch();
    }

    /// After a read batch: whether the destination is mid-frame, and the time of the last activity.
    fn flush_batch(&mut self) {
        let i = idx(self.dir);
        self.shared.mid_frame[i].store(self.remaining > 0, Relaxed);
        // The clock is read only when an idle timeout needs it.
        if !self.ctx.idle_timeout.is_zero() {
            let now = self.started.elapsed().as_millis() as u64;
            self.shared.last_activity_ms.store(now, Relaxed);
        }
    }

    /// Writes what the destination takes now; the rest goes to the backlog (and everything after it
    /// too, to keep the order). The direction is marked mid-write until all of it is written (the flag
    /// stays set if a write fails, as with [`write_all`]).
    fn write(&mut self, mut data: &[u8]) -> Result<(), Outcome> {
        if data.is_empty() {
            return Ok(());
        }
        if let (Direction::ClientToUpstream, Some(plan)) = (self.dir, &self.ctx.resume) {
            plan.replay.tee(data);
        }
        if !self.backlog.is_empty() {
            self.backlog.extend_from_slice(data);
            return Ok(());
        }
        let writing = &self.shared.writing[idx(self.dir)];
        writing.store(true, Relaxed);
        loop {
            match self.to.try_write(data) {
                Ok(n) if n == data.len() => break,
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.backlog.extend_from_slice(data);
                    return Ok(());
                }
                Err(e) => return Err(Outcome::WriteError(e.kind())),
            }
        }
        writing.store(false, Relaxed);
        Ok(())
    }

    /// Writes the backlog out, waiting for the destination; a failed write ends the direction.
    fn poll_backlog(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Outcome>> {
        while !self.backlog.is_empty() {
            match self.to.try_write(&self.backlog) {
                Ok(n) => {
                    self.backlog.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(self.to.poll_write_ready(cx)) {
                        return Poll::Ready(Err(Outcome::WriteError(e.kind())));
                    }
                }
                Err(e) => return Poll::Ready(Err(Outcome::WriteError(e.kind()))),
            }
        }
        // Give the memory back: a backlog is rare, and an idle session should hold none.
        self.backlog = Vec::new();
        self.shared.writing[idx(self.dir)].store(false, Relaxed);
        Poll::Ready(Ok(()))
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
                    && super::resume::restart_code(code);
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

/// RFC 6455 checks on a header from the client (`from_client`) or the upstream, given whether a
/// fragmented message is in progress and its size so far.
pub fn check_header(
    ctx: &SessionCtx,
    from_client: bool,
    (in_message, message_size): (bool, u64),
    h: &FrameHeader,
) -> Result<(), ProtocolRule> {
    let kind = h.kind()?;
    match (from_client, h.mask.is_some()) {
        (true, false) => return Err(ProtocolRule::UnmaskedClientFrame),
        (false, true) => return Err(ProtocolRule::MaskedServerFrame),
        _ => {}
    }
    if !ctx.any_extension {
        let rsv1_ok =
            ctx.deflate && matches!(kind, OpcodeKind::Text | OpcodeKind::Binary) && h.rsv == 0b100;
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
    match (kind, in_message) {
        (OpcodeKind::Continuation, false) => return Err(ProtocolRule::BadContinuation),
        (OpcodeKind::Text | OpcodeKind::Binary, true) => return Err(ProtocolRule::BadContinuation),
        _ => {}
    }
    if h.len > ctx.max_frame_size {
        return Err(ProtocolRule::FrameTooLarge);
    }
    let so_far = if kind == OpcodeKind::Continuation {
        message_size
    } else {
        0
    };
    if so_far + h.len > ctx.max_message_size {
        return Err(ProtocolRule::MessageTooLarge);
    }
    Ok(())
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
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::events::{EventSink, ProtocolRule, SessionInfo};
    use crate::proxy::heartbeat::{ping_payload, Heartbeats};
    use crate::proxy::Stats;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// A session context for unit tests (heartbeats on, no deflate, no resume).
    pub(crate) fn ctx(sink: EventSink) -> SessionCtx {
        SessionCtx {
            info: Arc::new(SessionInfo {
                id: 1,
                client: "127.0.0.1:1".parse().unwrap(),
                path: "/".into(),
                user_agent: None,
                upstream_name: "primary".into(),
                upstream_host: "127.0.0.1".into(),
                upstream_port: 1,
            }),
            sink,
            stats: Arc::new(Stats::default()),
            deflate: false,
            any_extension: false,
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            close_timeout: Duration::from_secs(1),
            idle_timeout: Duration::ZERO,
            frame_events: false,
            resume: None,
            frame_budget: Default::default(),
            heartbeat: Heartbeats {
                enabled: true,
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
                threshold: 3,
            },
        }
    }

    /// Upstream → client frames of every length form, a fragmented message, a peer's ping, a pong to
    /// the sidecar's own ping (consumed) and a close; returns (stream, what must come out, messages).
    fn upstream_stream() -> (Vec<u8>, Vec<u8>, u64) {
        let own_pong = frame::build_frame(0xA, &ping_payload(Duration::from_millis(5)), None);
        let mut fragmented = frame::build_frame(0x1, b"frag-", None);
        fragmented[0] &= 0x7F; // FIN off
        let parts = [
            frame::build_frame(0x1, b"hello", None),
            frame::build_frame(0x2, &[7u8; 300], None),
            frame::build_frame(0x9, b"peer ping", None),
            fragmented,
            frame::build_frame(0x0, b"ment", None),
            frame::build_frame(0x2, &vec![1u8; 70_000], None),
            frame::build_frame(0x2, &[], None),
        ];
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            input.extend_from_slice(p);
            expected.extend_from_slice(p);
            if i == 2 {
                input.extend_from_slice(&own_pong);
            }
        }
        let close = frame::close_frame(1000, "bye", None);
        input.extend_from_slice(&close);
        expected.extend_from_slice(&close);
        (input, expected, 5)
    }

    #[tokio::test]
    async fn frames_cut_at_any_read_boundary_are_forwarded_unchanged_and_own_pongs_consumed() {
        let (input, expected, messages) = upstream_stream();
        for step in [1usize, 2, 3, 5, 9, 13, 139, 140, 4096, 1 << 20] {
            let (src, _src_peer) = pair().await;
            let (dst, mut dst_peer) = pair().await;
            let (sink, _rx) = EventSink::channel(1024);
            let ctx = ctx(sink);
            let shared = Shared::default();
            let own_ping = ping_payload(Duration::from_millis(5));
            shared
                .pongs
                .expect(crate::events::Peer::Upstream, &own_ping);
            let started = Instant::now();
            let dir = Direction::UpstreamToClient;
            let mut pump = Pump::new(&src, &dst, dir, &ctx, &shared, &started);
            let reader = tokio::spawn(async move {
                let mut out = Vec::new();
                dst_peer.read_to_end(&mut out).await.map(|_| out)
            });
            let mut end = None;
            for piece in input.chunks(step) {
                if let Err(o) = pump.process(piece) {
                    end = Some(o);
                    break;
                }
            }
            let written = std::future::poll_fn(|cx| pump.poll_backlog(cx)).await;
            assert!(written.is_ok(), "step {step}");
            let close = Outcome::Closed {
                code: 1000,
                reason: "bye".into(),
            };
            assert_eq!(end, Some(close), "step {step}");
            assert_eq!(shared.pongs.count(crate::events::Peer::Upstream), 1);
            assert_eq!(shared.messages[idx(dir)].load(Relaxed), messages);
            assert_eq!(ctx.stats.outbound.binary(), 3);
            assert_eq!(ctx.stats.outbound.text(), 2);
            drop(pump);
            drop(dst);
            let out = reader.await.unwrap().unwrap();
            assert_eq!(out.len(), expected.len(), "step {step}");
            assert!(out == expected, "step {step}: bytes differ");
        }
    }

    #[tokio::test]
    async fn a_destination_that_does_not_read_gets_everything_in_order_once_it_does() {
        let (src, mut src_peer) = pair().await;
        let (dst, mut dst_peer) = pair().await;
        // Small kernel buffers, so that the destination blocks early.
        let _ = socket2::SockRef::from(&dst).set_send_buffer_size(16 * 1024);
        let _ = socket2::SockRef::from(&dst_peer).set_recv_buffer_size(16 * 1024);
        let (sink, _rx) = EventSink::channel(1024);
        let ctx = ctx(sink);
        let shared = Shared::default();
        let started = Instant::now();
        let dir = Direction::UpstreamToClient;
        let mut input = Vec::new();
        for i in 0..64u32 {
            input.extend(frame::build_frame(0x2, &vec![i as u8; 64 * 1024], None));
        }
        let mut pump = Pump::new(&src, &dst, dir, &ctx, &shared, &started);
        assert_eq!(pump.process(&input[..1 << 20]), Ok(()));
        assert!(
            !pump.backlog.is_empty(),
            "the destination should have blocked"
        );
        assert!(!shared.at_boundary().0, "mid-write while a backlog waits");
        let rest = input[1 << 20..].to_vec();
        let write = async move {
            src_peer.write_all(&rest).await.unwrap();
            src_peer.shutdown().await.unwrap();
        };
        let run = async {
            let outcome = (&mut pump).await;
            (outcome, pump.backlog.is_empty())
        };
        let read = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut out = vec![0u8; input.len()];
            dst_peer.read_exact(&mut out).await.map(|_| out)
        };
        let (_, (outcome, drained), out) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(write, run, read)
        })
        .await
        .expect("relayed within 30 s");
        assert_eq!(outcome, Outcome::Eof);
        assert!(drained);
        assert!(shared.at_boundary().0);
        assert!(out.unwrap() == input, "bytes differ");
        assert_eq!(shared.messages[idx(dir)].load(Relaxed), 64);
    }

    #[tokio::test]
    async fn a_masked_server_frame_stops_the_direction_after_the_frames_before_it() {
        let (src, _src_peer) = pair().await;
        let (dst, mut dst_peer) = pair().await;
        let (sink, _rx) = EventSink::channel(1024);
        let ctx = ctx(sink);
        let shared = Shared::default();
        let started = Instant::now();
        let mut pump = Pump::new(
            &src,
            &dst,
            Direction::UpstreamToClient,
            &ctx,
            &shared,
            &started,
        );
        let good = frame::build_frame(0x1, b"ok", None);
        let mut input = good.clone();
        input.extend(frame::build_frame(0x1, b"masked", Some([1, 2, 3, 4])));
        let r = pump.process(&input);
        assert_eq!(r, Err(Outcome::Violation(ProtocolRule::MaskedServerFrame)));
        drop(pump);
        drop(dst);
        let mut out = Vec::new();
        dst_peer.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, good);
    }
}
