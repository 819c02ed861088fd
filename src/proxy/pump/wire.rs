//! The pump's socket side: the pooled read buffer, non-blocking reads and writes, and the backlog a
//! destination that would block leaves behind.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{ready, Context, Poll};

use tokio::net::TcpStream;

use super::{idx, Outcome, Pump};
use crate::events::Direction;

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

impl Pump<'_> {
    /// Reads while the source has data (or until the destination would block or the direction ends),
    /// forwarding as it goes.
    pub(super) fn read_batch(&mut self) {
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
    pub(super) fn flush_batch(&mut self) {
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
    pub(super) fn write(&mut self, mut data: &[u8]) -> Result<(), Outcome> {
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
    pub(super) fn poll_backlog(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Outcome>> {
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
}
