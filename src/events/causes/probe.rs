//! The typed values the prober's events carry: its transports in downgrade order, the fallback mode it is
//! in, and why its outbox refused a message.

/// A probe transport, in downgrade order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// A WebSocket connection.
    WebSocket,
    /// Server-sent events (read-only).
    Sse,
    /// HTTP long-polling.
    LongPolling,
    /// Plain periodic HTTP polling.
    Polling,
}

impl Transport {
    /// The `websocket.transport` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
            Transport::LongPolling => "long_polling",
            Transport::Polling => "polling",
        }
    }
}

/// Where the prober is while it is not on its primary WebSocket upstream (`mode` of
/// `websocket.fallback.active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackMode {
    /// Connected over WebSocket to a backup upstream.
    Backup,
    /// Degraded, and the dashboard's SSE stream answers.
    Sse,
    /// Degraded, and its long-polling endpoint answers.
    LongPoll,
    /// Degraded, and its polling endpoint answers.
    Poll,
    /// Degraded (max attempts spent), no transport answers.
    Degraded,
}

impl FallbackMode {
    /// Every mode (telemetry-schema.yaml lists the same values).
    pub const ALL: [FallbackMode; 5] = [
        FallbackMode::Backup,
        FallbackMode::Sse,
        FallbackMode::LongPoll,
        FallbackMode::Poll,
        FallbackMode::Degraded,
    ];

    /// The `mode` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackMode::Backup => "backup",
            FallbackMode::Sse => "sse",
            FallbackMode::LongPoll => "long_poll",
            FallbackMode::Poll => "poll",
            FallbackMode::Degraded => "degraded",
        }
    }

    /// The mode of a working downgrade transport.
    pub fn of(t: Transport) -> FallbackMode {
        match t {
            Transport::Sse => FallbackMode::Sse,
            Transport::LongPolling => FallbackMode::LongPoll,
            Transport::Polling => FallbackMode::Poll,
            Transport::WebSocket => FallbackMode::Backup,
        }
    }
}

/// Why the prober's outbox refused a message (`reason` on `websocket.buffer.dropped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The outbox already held its capacity (`websocket.fallback.buffer_max_size`).
    Full,
    /// The message would have passed the outbox's byte budget (`websocket.fallback.buffer_max_bytes`).
    FullBytes,
    /// The outbox could not be written to `telemetry.spool_dir`, so it could not keep the message.
    SpoolError,
}

impl DropReason {
    /// Every reason (telemetry-schema.yaml lists the same values; tests/schema.rs keeps them equal).
    pub const ALL: [DropReason; 3] = [
        DropReason::Full,
        DropReason::FullBytes,
        DropReason::SpoolError,
    ];

    /// The `reason` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Full => "full",
            DropReason::FullBytes => "full_bytes",
            DropReason::SpoolError => "spool_error",
        }
    }
}
