//! Lifecycle events → OTLP spans. One `ws.session` span per proxied connection (request head to session
//! end) whose steps — `ws.upstream.connect`, `ws.handshake`, `ws.close` — are span events with their
//! start and `websocket.step.duration_ms` (or, with `telemetry.step_spans`, child spans exported as each
//! ends), and a `ws.reconnect.attempt` span per prober attempt. Only the open sessions' small state is held, and
//! finished spans are written already encoded ([`Encoded`], through [`super::pb`]): no span structs, no
//! allocation per attribute.
//!
//! Status is ERROR only for real failures: an error class from the seed's table (1006, refused or timed
//! out upstream, protocol errors, …), never for a normal 1000/1001 close.
//!
//! - [`builder`]: [`SpanBuilder`], events → spans, holding only the open sessions.
//! - `session`: what an open session holds (its steps, close and resumes) and how each is written as a
//!   span event.
//! - [`write`]: one span written as protobuf (a session's, a step's, a prober attempt's).

pub mod builder;
mod session;
mod write;

use std::time::{SystemTime, UNIX_EPOCH};

pub use builder::SpanBuilder;

/// Nanoseconds since the epoch.
pub fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A new random trace id.
pub fn trace_id() -> [u8; 16] {
    rand::random()
}

/// A new random span id.
pub fn span_id() -> [u8; 8] {
    rand::random()
}

/// Finished spans, encoded: each is a `spans` field (2) of an OTLP `ScopeSpans`.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The encoded fields.
    pub buf: Vec<u8>,
    /// How many spans `buf` holds.
    pub count: u64,
    /// Nothing exports traces: spans are not written at all (ids are still kept for logs).
    pub off: bool,
}

impl Encoded {
    /// No spans.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets the spans written, keeping the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }
}

/// Trace and span ids of a session, for log correlation.
pub type Ids = Option<([u8; 16], [u8; 8])>;

#[cfg(test)]
mod tests;
