//! The prober's outbox — the seed's offline buffer without its flaw: a bounded, ordered queue of text
//! messages the prober must deliver to the dashboard (fed by `POST /probe/send` and `monitor --send`).
//!
//! - **Bounded, never silent.** It holds at most `websocket.fallback.buffer_max_size` messages and at
//!   most `websocket.fallback.buffer_max_bytes` bytes of text (default 8 MiB: without it, 1000 messages
//!   of up to 64 MiB each would be no bound at all). A message offered to a full outbox is refused to
//!   whoever offered it (HTTP 507): [`Rejected::Full`] at the message count, counted in
//!   `websocket.buffer.dropped{reason="full"}`, [`Rejected::FullBytes`] when it would pass the byte
//!   budget, counted under `reason="full_bytes"`; either is logged at WARN (`buffer_message_rejected`).
//!   Nothing it holds is ever evicted (the seed dropped the oldest without a trace). A waiting offer
//!   ([`Outbox::offer_waiting`], `monitor --send`) waits for room under both caps.
//! - **The seed's flush policy.** While the prober is connected: every `flush_interval` (5000 ms), as soon
//!   as `flush_batch` (10) wait, and at once on every (re)connect. A flush sends everything queued, in
//!   order, then a ping; the pong to that ping (or to a later one) says the dashboard's WebSocket stack
//!   has read every frame before it. Only then are the messages removed ([`Outbox::ack`]), counted in
//!   `websocket.buffer.delivered` and announced by a `buffer_flushed` event (Ω 0.8).
//! - **Put back.** A flush that is not confirmed (write error, link lost, moving server, shutdown) leaves
//!   its messages at the front, in order ([`Outbox::abort`]); messages offered meanwhile stay behind.
//! - **Guarantee: at-least-once, in order.** Nothing accepted is lost while the process runs; with
//!   `telemetry.spool_dir` nothing is lost across a restart or a crash either, because the file
//!   (`outbox-<dashboard>.jsonl`, one JSON string per line) is rewritten — temp file, fsync, rename —
//!   before an offer is answered and after each confirmed flush. A message is sent twice only when its
//!   flush was not confirmed although the dashboard read it (the link broke between the batch and its
//!   pong), or the process died between a pong and the rewrite.
//!
//! The gauge `websocket.buffer.queued` and both counters are atomics the outbox keeps ([`Outbox::counts`],
//! [`Outbox::dropped`]), pulled into the metric registry at scrape and export time like the proxy's
//! counters (not sent as events): they stay exact even when the event channel overflows.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::config::OutboxConfig;
use crate::events::{DropReason, EventKind, EventSink};

mod file;
pub use file::for_sidecar;
use file::{read_file, write_file};

/// Where the outbox reports.
#[derive(Clone)]
pub struct Hooks {
    /// The endpoint named on events (the dashboard).
    pub endpoint: String,
    /// Lifecycle events (`buffer_flushed`, `buffer_message_rejected`).
    pub sink: EventSink,
}

/// Why a message was refused; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// At capacity.
    #[error("the prober's outbox is full: it holds {queued} messages, its capacity (websocket.fallback.buffer_max_size) is {capacity}; retry after it flushes")]
    Full {
        /// The capacity.
        capacity: usize,
        /// Messages held.
        queued: usize,
    },
    /// Taking it would pass the byte budget.
    #[error("the prober's outbox is full: it holds {bytes} bytes and a message of {size} bytes would pass its byte budget (websocket.fallback.buffer_max_bytes) of {max_bytes}; retry after it flushes")]
    FullBytes {
        /// The budget.
        max_bytes: u64,
        /// Bytes held.
        bytes: u64,
        /// The message's length.
        size: u64,
    },
    /// The spool file could not be written, so the message could not be kept.
    #[error("the prober's outbox could not be written to {path}: {error}")]
    Spool {
        /// The file.
        path: String,
        /// The OS error.
        error: String,
    },
}

impl Rejected {
    /// The `reason` it is counted under.
    pub fn reason(&self) -> DropReason {
        match self {
            Rejected::Full { .. } => DropReason::Full,
            Rejected::FullBytes { .. } => DropReason::FullBytes,
            Rejected::Spool { .. } => DropReason::SpoolError,
        }
    }
}

/// Totals, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Messages accepted since start (including any loaded from the spool).
    pub accepted: u64,
    /// Messages held now (waiting or in an unconfirmed flush).
    pub queued: u64,
    /// Messages the dashboard confirmed.
    pub delivered: u64,
    /// Messages refused.
    pub dropped: u64,
}

struct State {
    queue: VecDeque<Utf8Bytes>,
    /// The sum of the lengths of the messages in `queue`.
    bytes: u64,
    /// The first `in_flight` messages of `queue` belong to an unconfirmed flush.
    in_flight: usize,
}

/// The outbox; share it as `Arc<Outbox>`.
pub struct Outbox {
    settings: OutboxConfig,
    state: Mutex<State>,
    file: Option<PathBuf>,
    hooks: Hooks,
    accepted: AtomicU64,
    delivered: AtomicU64,
    /// Refusals by reason, in [`DropReason::ALL`] order.
    dropped: [AtomicU64; 3],
    batch_ready: Notify,
    room: Notify,
}

impl Outbox {
    /// An outbox; with `spool_dir`, it loads what a previous run left (an unreadable file is an error,
    /// and is left as it was).
    pub fn open(
        settings: OutboxConfig,
        spool_dir: Option<&Path>,
        hooks: Hooks,
    ) -> std::io::Result<Outbox> {
        let file = spool_dir.map(|d| d.join(format!("outbox-{}.jsonl", hooks.endpoint)));
        let queue = match &file {
            Some(f) => {
                std::fs::create_dir_all(f.parent().unwrap_or(Path::new(".")))?;
                read_file(f)?
            }
            None => VecDeque::new(),
        };
        let me = Outbox {
            settings,
            accepted: AtomicU64::new(queue.len() as u64),
            state: Mutex::new(State {
                bytes: queue.iter().map(|m| m.len() as u64).sum(),
                queue,
                in_flight: 0,
            }),
            file,
            hooks,
            delivered: AtomicU64::new(0),
            dropped: Default::default(),
            batch_ready: Notify::new(),
            room: Notify::new(),
        };
        if me.len() >= me.settings.flush_batch {
            me.batch_ready.notify_one();
        }
        Ok(me)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self, st: &State) -> std::io::Result<()> {
        match &self.file {
            Some(f) => write_file(f, &st.queue),
            None => Ok(()),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &OutboxConfig {
        &self.settings
    }

    /// Messages held (waiting or in an unconfirmed flush).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Bytes of text held (waiting or in an unconfirmed flush).
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Totals so far.
    pub fn counts(&self) -> Counts {
        Counts {
            accepted: self.accepted.load(Relaxed),
            queued: self.len() as u64,
            delivered: self.delivered.load(Relaxed),
            dropped: self.dropped.iter().map(|d| d.load(Relaxed)).sum(),
        }
    }

    /// Messages refused for `reason` so far.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Relaxed)
    }

    fn push(&self, msg: Utf8Bytes) -> Result<usize, Rejected> {
        let mut st = self.lock();
        let queued = st.queue.len();
        if queued >= self.settings.capacity {
            let capacity = self.settings.capacity;
            return Err(Rejected::Full { capacity, queued });
        }
        let (size, max_bytes) = (msg.len() as u64, self.settings.max_bytes);
        if st.bytes + size > max_bytes {
            let bytes = st.bytes;
            return Err(Rejected::FullBytes {
                max_bytes,
                bytes,
                size,
            });
        }
        st.queue.push_back(msg);
        st.bytes += size;
        if let Err(e) = self.persist(&st) {
            st.queue.pop_back(); // still ours: the lock was held since the push
            st.bytes -= size;
            let path = self.file.as_deref().unwrap_or(Path::new("")).display();
            let (path, error) = (path.to_string(), e.to_string());
            return Err(Rejected::Spool { path, error });
        }
        self.accepted.fetch_add(1, Relaxed);
        if st.queue.len() - st.in_flight >= self.settings.flush_batch {
            self.batch_ready.notify_one();
        }
        Ok(st.queue.len())
    }

    fn refused(&self, e: &Rejected) {
        let reason = e.reason();
        self.dropped[reason as usize].fetch_add(1, Relaxed);
        self.hooks.sink.emit(
            None,
            EventKind::BufferRejected {
                endpoint: self.hooks.endpoint.clone(),
                reason,
                capacity: self.settings.capacity as u64,
                queued: self.len() as u64,
            },
        );
    }

    /// Queues `msg` at the back and returns how many messages are held, or refuses it (counted,
    /// logged at WARN). With a spool file this writes it: call it off the async threads.
    pub fn offer(&self, msg: impl Into<Utf8Bytes>) -> Result<usize, Rejected> {
        self.push(msg.into()).inspect_err(|e| self.refused(e))
    }

    /// Like [`Outbox::offer`], but waits for room instead of refusing when full, under either cap
    /// (backpressure for a reader that can wait, like `monitor --send`). A message longer than the whole
    /// byte budget can never fit: it is refused at once rather than waited for forever.
    pub async fn offer_waiting(&self, msg: impl Into<Utf8Bytes>) -> Result<usize, Rejected> {
        let msg = msg.into();
        loop {
            // An ack between the refusal and the wait leaves a permit (notify_one): no wake-up is lost.
            match self.push(msg.clone()) {
                Err(Rejected::Full { .. }) => self.room.notified().await,
                Err(Rejected::FullBytes {
                    size, max_bytes, ..
                }) if size <= max_bytes => self.room.notified().await,
                r => return r.inspect_err(|e| self.refused(e)),
            }
        }
    }

    /// Resolves once `flush_batch` messages wait (a stored signal counts).
    pub async fn batch_ready(&self) {
        self.batch_ready.notified().await
    }

    /// Starts a flush: everything queued, in order; None when empty or a flush is unconfirmed.
    pub fn begin_flush(&self) -> Option<Vec<Utf8Bytes>> {
        let mut st = self.lock();
        if st.in_flight > 0 || st.queue.is_empty() {
            return None;
        }
        st.in_flight = st.queue.len();
        Some(st.queue.iter().cloned().collect())
    }

    /// The dashboard confirmed the flush: its messages leave (and the spool file is rewritten: call it
    /// off the async threads). Returns how many are still queued.
    pub fn ack(&self) -> usize {
        let mut st = self.lock();
        let n = st.in_flight;
        let freed: u64 = st.queue.drain(..n).map(|m| m.len() as u64).sum();
        st.bytes -= freed;
        st.in_flight = 0;
        if n == 0 {
            return st.queue.len();
        }
        if let Err(e) = self.persist(&st) {
            tracing::warn!(
                event_type = "outbox_spool_error",
                message = %format!("delivered messages stay in the outbox file and will be sent again after a restart: {e}"),
                path = self.file.as_deref().map(|p| p.display().to_string()),
            );
        }
        self.delivered.fetch_add(n as u64, Relaxed);
        let queued = st.queue.len();
        drop(st);
        self.room.notify_one();
        self.hooks.sink.emit(
            None,
            EventKind::BufferFlushed {
                endpoint: self.hooks.endpoint.clone(),
                messages: n as u64,
                queued: queued as u64,
            },
        );
        queued
    }

    /// The flush was not confirmed: its messages stay at the front, in order. Returns how many.
    pub fn abort(&self) -> usize {
        std::mem::take(&mut self.lock().in_flight)
    }
}

#[cfg(test)]
mod tests;
