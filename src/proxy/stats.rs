//! Hot-path counters: relaxed atomics the relay bumps once per read batch, read by telemetry off the
//! data path. Lifecycle steps go through events; per-message counts and sizes come from here.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::events::Direction;

/// Upper bounds (bytes) of the message-size histogram buckets.
pub const SIZE_BUCKETS: [u64; 10] = [
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1 << 20,
    4 << 20,
    16 << 20,
];

/// A lock-free fixed-bucket histogram.
#[derive(Debug, Default)]
pub struct AtomicHistogram {
    /// Counts per bucket in [`SIZE_BUCKETS`] order, plus the overflow bucket last.
    pub buckets: [AtomicU64; SIZE_BUCKETS.len() + 1],
    /// Sum of observed values.
    pub sum: AtomicU64,
}

/// The bucket index of `v` in [`SIZE_BUCKETS`] (the overflow bucket last).
pub fn bucket(v: u64) -> usize {
    SIZE_BUCKETS
        .iter()
        .position(|&b| v <= b)
        .unwrap_or(SIZE_BUCKETS.len())
}

impl AtomicHistogram {
    /// Records one value.
    pub fn observe(&self, v: u64) {
        self.buckets[bucket(v)].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
    }

    /// Bucket counts (not cumulative) and the sum.
    pub fn snapshot(&self) -> ([u64; SIZE_BUCKETS.len() + 1], u64) {
        let mut out = [0; SIZE_BUCKETS.len() + 1];
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            *o = b.load(Relaxed);
        }
        (out, self.sum.load(Relaxed))
    }
}

/// One shard of a direction's traffic counters, on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Shard {
    /// Text messages.
    pub text: AtomicU64,
    /// Binary messages.
    pub binary: AtomicU64,
    /// Payload bytes of data frames.
    pub bytes: AtomicU64,
    /// Message sizes.
    pub sizes: AtomicHistogram,
}

/// Shards per direction: worker threads pick one each, so that two threads relaying at once do not
/// bounce the same cache line between cores on every read.
const SHARDS: usize = 8;

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Relaxed) as usize % SHARDS
    };
}

/// Per-direction traffic: written per thread shard, read as the sum.
#[derive(Debug, Default)]
pub struct Traffic {
    shards: [Shard; SHARDS],
}

impl Traffic {
    /// The calling thread's shard.
    pub fn shard(&self) -> &Shard {
        &self.shards[SHARD.with(|s| *s)]
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| f(s).load(Relaxed)).sum()
    }

    /// Text messages.
    pub fn text(&self) -> u64 {
        self.sum(|s| &s.text)
    }

    /// Binary messages.
    pub fn binary(&self) -> u64 {
        self.sum(|s| &s.binary)
    }

    /// Payload bytes.
    pub fn bytes(&self) -> u64 {
        self.sum(|s| &s.bytes)
    }

    /// Message-size bucket counts (not cumulative) and their sum.
    pub fn sizes(&self) -> ([u64; SIZE_BUCKETS.len() + 1], u64) {
        let mut out = [0; SIZE_BUCKETS.len() + 1];
        let mut sum = 0;
        for s in &self.shards {
            let (b, n) = s.sizes.snapshot();
            for (o, v) in out.iter_mut().zip(b) {
                *o += v;
            }
            sum += n;
        }
        (out, sum)
    }
}

/// Counters of one proxy instance.
#[derive(Debug, Default)]
pub struct Stats {
    /// Open client TCP connections (HTTP and WebSocket).
    pub open_connections: AtomicI64,
    /// Open WebSocket sessions.
    pub active_sessions: AtomicI64,
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused over the connection limit.
    pub rejected_limit: AtomicU64,
    /// Admin connections closed at accept (over `limits.admin_max_connections`).
    pub admin_refused: AtomicU64,
    /// Per-message events not emitted: over a session's budget (`FRAME_EVENTS_PER_SEC`).
    pub events_suppressed: AtomicU64,
    /// Client → upstream.
    pub inbound: Traffic,
    /// Upstream → client.
    pub outbound: Traffic,
}

impl Stats {
    /// The traffic counters of one direction.
    pub fn traffic(&self, d: Direction) -> &Traffic {
        match d {
            Direction::ClientToUpstream => &self.inbound,
            Direction::UpstreamToClient => &self.outbound,
        }
    }
}

/// Counts accumulated locally during one read batch, flushed to [`Traffic`] once: the shared counters
/// are touched once per read, not once per message.
#[derive(Debug, Default, Clone, Copy)]
pub struct Batch {
    /// Text messages completed.
    pub text: u64,
    /// Binary messages completed.
    pub binary: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Message sizes: count per bucket of [`SIZE_BUCKETS`] (the overflow bucket last).
    pub sizes: [u32; SIZE_BUCKETS.len() + 1],
    /// Sum of the message sizes.
    pub size_sum: u64,
}

impl Batch {
    /// Records one message size.
    pub fn observe(&mut self, v: u64) {
        self.sizes[bucket(v)] += 1;
        self.size_sum += v;
    }

    /// Adds the batch to the calling thread's shard of the shared counters and resets it.
    pub fn flush(&mut self, t: &Traffic) {
        let t = t.shard();
        if self.text > 0 {
            t.text.fetch_add(self.text, Relaxed);
        }
        if self.binary > 0 {
            t.binary.fetch_add(self.binary, Relaxed);
        }
        if self.bytes > 0 {
            t.bytes.fetch_add(self.bytes, Relaxed);
        }
        if self.text + self.binary > 0 {
            for (b, &n) in t.sizes.buckets.iter().zip(&self.sizes) {
                if n > 0 {
                    b.fetch_add(n as u64, Relaxed);
                }
            }
            t.sizes.sum.fetch_add(self.size_sum, Relaxed);
        }
        *self = Batch::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = AtomicHistogram::default();
        h.observe(64);
        h.observe(65);
        h.observe(u64::MAX / 2);
        let (b, _) = h.snapshot();
        assert_eq!((b[0], b[1], b[SIZE_BUCKETS.len()]), (1, 1, 1));
    }

    #[test]
    fn a_batch_flushes_what_observing_each_value_would_record() {
        let direct = AtomicHistogram::default();
        let batched = Traffic::default();
        let mut batch = Batch::default();
        for v in [0u64, 64, 65, 4096, 70_000, 1 << 30] {
            direct.observe(v);
            batch.binary += 1;
            batch.observe(v);
        }
        batch.flush(&batched);
        assert_eq!(direct.snapshot(), batched.sizes());
        assert_eq!(batched.binary(), 6);
        batch.flush(&batched);
        assert_eq!(batched.binary(), 6);
    }

    #[test]
    fn shards_written_from_several_threads_add_up() {
        let t = std::sync::Arc::new(Traffic::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let mut b = Batch {
                        text: 2,
                        bytes: 10,
                        ..Default::default()
                    };
                    b.observe(100);
                    b.flush(&t);
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!((t.text(), t.bytes()), (24, 120));
        assert_eq!(t.sizes().0[1], 12);
    }
}
