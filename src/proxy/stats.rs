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

impl AtomicHistogram {
    /// Records one value.
    pub fn observe(&self, v: u64) {
        let i = SIZE_BUCKETS
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(SIZE_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
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

/// Per-direction traffic.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Text messages.
    pub text: AtomicU64,
    /// Binary messages.
    pub binary: AtomicU64,
    /// Payload bytes of data frames.
    pub bytes: AtomicU64,
    /// Message sizes.
    pub sizes: AtomicHistogram,
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

/// Counts accumulated locally during one read batch, flushed to [`Traffic`] once.
#[derive(Debug, Default, Clone, Copy)]
pub struct Batch {
    /// Text messages completed.
    pub text: u64,
    /// Binary messages completed.
    pub binary: u64,
    /// Payload bytes.
    pub bytes: u64,
}

impl Batch {
    /// Adds the batch to the shared counters and resets it.
    pub fn flush(&mut self, t: &Traffic) {
        if self.text > 0 {
            t.text.fetch_add(self.text, Relaxed);
        }
        if self.binary > 0 {
            t.binary.fetch_add(self.binary, Relaxed);
        }
        if self.bytes > 0 {
            t.bytes.fetch_add(self.bytes, Relaxed);
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
}
