//! The lifecycle event vocabulary: the only seam between the data path (proxy, prober) and telemetry.
//!
//! The relay builds an [`Event`] for every step it sees and hands it to an [`EventSink`], which does a
//! non-blocking `try_send` on a bounded channel. When the channel is full the event is counted in
//! [`EventSink::dropped`] and lost; the relay never waits on telemetry.
//!
//! Causes are typed ([`ConnectCause`], [`ProtocolRule`], close codes, HTTP statuses) so that error classes
//! are decided from what happened, never from message text.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

/// Which way a frame travelled through the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the upstream dashboard (`network.io.direction=receive`).
    ClientToUpstream,
    /// From the upstream dashboard to the client (`network.io.direction=transmit`).
    UpstreamToClient,
}

impl Direction {
    /// The OTel `network.io.direction` value, seen from the sidecar's client-facing socket.
    pub fn io_direction(self) -> &'static str {
        match self {
            Direction::ClientToUpstream => "receive",
            Direction::UpstreamToClient => "transmit",
        }
    }
}

/// A peer of a proxied session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The browser / client side.
    Client,
    /// The dashboard's WebSocket server.
    Upstream,
}

impl Peer {
    /// The `websocket.peer` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Peer::Client => "client",
            Peer::Upstream => "upstream",
        }
    }
}

/// Who started a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// The client sent the first close frame (or vanished).
    Client,
    /// The upstream sent the first close frame (or vanished).
    Upstream,
    /// The sidecar closed on its own account (limit, protocol error, shutdown, heartbeat).
    Sidecar,
}

impl Initiator {
    /// The `websocket.close.initiator` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::Client => "client",
            Initiator::Upstream => "upstream",
            Initiator::Sidecar => "sidecar",
        }
    }
}

/// The RFC 6455 frame opcodes the relay distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpcodeKind {
    /// 0x0
    Continuation,
    /// 0x1
    Text,
    /// 0x2
    Binary,
    /// 0x8
    Close,
    /// 0x9
    Ping,
    /// 0xA
    Pong,
}

impl OpcodeKind {
    /// The `websocket.frame.type` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            OpcodeKind::Continuation => "continuation",
            OpcodeKind::Text => "text",
            OpcodeKind::Binary => "binary",
            OpcodeKind::Close => "close",
            OpcodeKind::Ping => "ping",
            OpcodeKind::Pong => "pong",
        }
    }
}

/// Why dialing the upstream failed, from the I/O error kind, not its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectCause {
    /// Nothing listened (ECONNREFUSED).
    Refused,
    /// The connect or the upstream's answer did not come in time.
    TimedOut,
    /// The connection was reset or aborted (ECONNRESET, EPIPE, …).
    Reset,
    /// The host name did not resolve or the address was unreachable.
    Unreachable,
    /// The upstream answered something that is not HTTP.
    BadResponse,
    /// Any other I/O error kind.
    Other,
}

impl ConnectCause {
    /// Classifies an I/O error by its kind.
    pub fn from_io(e: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused => ConnectCause::Refused,
            TimedOut | WouldBlock => ConnectCause::TimedOut,
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
                ConnectCause::Reset
            }
            HostUnreachable | NetworkUnreachable | AddrNotAvailable | NotFound => {
                ConnectCause::Unreachable
            }
            InvalidData => ConnectCause::BadResponse,
            _ => ConnectCause::Other,
        }
    }

    /// A short snake_case name (`error.type` detail, log field).
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectCause::Refused => "connection_refused",
            ConnectCause::TimedOut => "timed_out",
            ConnectCause::Reset => "connection_reset",
            ConnectCause::Unreachable => "unreachable",
            ConnectCause::BadResponse => "bad_response",
            ConnectCause::Other => "io_error",
        }
    }
}

/// The RFC 6455 rule a peer broke; each maps to the close code the sidecar answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolRule {
    /// §5.2: opcodes 0x3–0x7 and 0xB–0xF are reserved.
    ReservedOpcode,
    /// §5.2: RSV1–3 must be 0 unless an extension defines them.
    ReservedBits,
    /// §5.1: a client must mask every frame it sends.
    UnmaskedClientFrame,
    /// §5.1: a server must not mask frames.
    MaskedServerFrame,
    /// §5.5: control frames carry at most 125 bytes.
    ControlFrameTooLong,
    /// §5.5: control frames must not be fragmented.
    FragmentedControlFrame,
    /// §5.4: a continuation without a message in progress, or a new message inside one.
    BadContinuation,
    /// §5.5.1 / §7.4: a close code that may not be sent, or a 1-byte close payload.
    InvalidCloseCode,
    /// §8.1: text (or a close reason) that is not UTF-8.
    InvalidUtf8,
    /// §5.2: a 64-bit length with the top bit set, or a non-minimal length encoding.
    BadLength,
    /// A frame larger than the configured limit (answered with 1009).
    FrameTooLarge,
    /// A message larger than the configured limit (answered with 1009).
    MessageTooLarge,
}

impl ProtocolRule {
    /// The close code the sidecar sends for this violation.
    pub fn close_code(self) -> u16 {
        match self {
            ProtocolRule::InvalidUtf8 => 1007,
            ProtocolRule::FrameTooLarge | ProtocolRule::MessageTooLarge => 1009,
            _ => 1002,
        }
    }

    /// The `websocket.protocol_error.rule` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolRule::ReservedOpcode => "reserved_opcode",
            ProtocolRule::ReservedBits => "reserved_bits",
            ProtocolRule::UnmaskedClientFrame => "unmasked_client_frame",
            ProtocolRule::MaskedServerFrame => "masked_server_frame",
            ProtocolRule::ControlFrameTooLong => "control_frame_too_long",
            ProtocolRule::FragmentedControlFrame => "fragmented_control_frame",
            ProtocolRule::BadContinuation => "bad_continuation",
            ProtocolRule::InvalidCloseCode => "invalid_close_code",
            ProtocolRule::InvalidUtf8 => "invalid_utf8",
            ProtocolRule::BadLength => "bad_length",
            ProtocolRule::FrameTooLarge => "frame_too_large",
            ProtocolRule::MessageTooLarge => "message_too_large",
        }
    }
}

/// Why the sidecar refused or failed a request before any upstream answer reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCause {
    /// Over `limits.max_connections` (503 + Retry-After).
    ConnectionLimit,
    /// The upstream could not be reached (502).
    UpstreamUnavailable(ConnectCause),
    /// The upstream did not answer the handshake in time (504).
    UpstreamTimeout,
    /// The upstream answered the upgrade with a non-101 status, relayed as is.
    UpstreamStatus,
    /// The sidecar is draining for shutdown (503).
    ShuttingDown,
    /// The client's upgrade request was not a valid WebSocket handshake (400, or 426 for a version
    /// other than 13); answered by the sidecar, never forwarded.
    InvalidRequest,
    /// The client went away (or could not be written to) before its session started: a reset right
    /// after the request head, a failed write of the answer, an upgrade that could not be taken over.
    /// Reported with status 499 (nginx's "client closed request"), which no client ever receives.
    ClientGone,
}

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

/// Why the sidecar did not hold a session through the loss of its upstream (`reason` on
/// `websocket.resumes{outcome="gave_up"}`): the client got the close it gets without resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeGaveUp {
    /// The upstream went away in the middle of a frame to the client (part of it was forwarded).
    MidFrame,
    /// The upstream went away inside a fragmented message to the client.
    MidMessage,
    /// The client was in the middle of a frame or fragmented message to the old upstream.
    ClientMidMessage,
    /// No upstream answered a matching 101 within `resume.hold_ms`.
    Timeout,
    /// The client sent more than `resume.buffer_bytes` during the hold.
    BufferFull,
    /// The new 101 named another subprotocol or other extensions.
    Mismatch,
    /// The first `resume.replay_messages` messages were larger than `resume.replay_bytes`.
    ReplayTooLarge,
    /// The sidecar is shutting down (the client got 1001).
    Shutdown,
}

impl ResumeGaveUp {
    /// Every reason (telemetry-schema.yaml lists the same values; tests/schema.rs keeps them equal).
    pub const ALL: [ResumeGaveUp; 8] = [
        ResumeGaveUp::MidFrame,
        ResumeGaveUp::MidMessage,
        ResumeGaveUp::ClientMidMessage,
        ResumeGaveUp::Timeout,
        ResumeGaveUp::BufferFull,
        ResumeGaveUp::Mismatch,
        ResumeGaveUp::ReplayTooLarge,
        ResumeGaveUp::Shutdown,
    ];

    /// The `reason` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResumeGaveUp::MidFrame => "mid_frame",
            ResumeGaveUp::MidMessage => "mid_message",
            ResumeGaveUp::ClientMidMessage => "client_mid_message",
            ResumeGaveUp::Timeout => "hold_timeout",
            ResumeGaveUp::BufferFull => "buffer_full",
            ResumeGaveUp::Mismatch => "handshake_mismatch",
            ResumeGaveUp::ReplayTooLarge => "replay_too_large",
            ResumeGaveUp::Shutdown => "shutdown",
        }
    }
}

/// Per-session identity shared by every event of one proxied connection.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Process-unique session id.
    pub id: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// Request path without its query string.
    pub path: String,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
    /// The upstream name (`primary` or a backup's name) and its host and port.
    pub upstream_name: String,
    /// Upstream host.
    pub upstream_host: String,
    /// Upstream port.
    pub upstream_port: u16,
}

/// Counters of one finished session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// Data messages client → upstream.
    pub messages_in: u64,
    /// Data messages upstream → client.
    pub messages_out: u64,
    /// Payload bytes client → upstream.
    pub bytes_in: u64,
    /// Payload bytes upstream → client.
    pub bytes_out: u64,
}

/// One step of a connection's life, as seen by the proxy or the prober.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// A TCP connection was accepted.
    Accepted {
        /// The client's address.
        client: SocketAddr,
    },
    /// A request head was read; `upgrade` says whether it asks for a WebSocket.
    RequestHead {
        /// HTTP method.
        method: String,
        /// Path without query.
        path: String,
        /// Whether this is a WebSocket upgrade.
        upgrade: bool,
    },
    /// Dialing the upstream started.
    UpstreamConnectStarted,
    /// The upstream TCP connection is up.
    UpstreamConnected {
        /// Time to connect.
        duration: Duration,
    },
    /// Dialing the upstream failed.
    UpstreamConnectFailed {
        /// Time spent before failing.
        duration: Duration,
        /// Typed cause.
        cause: ConnectCause,
    },
    /// The upstream answered 101 and the client got it.
    HandshakeCompleted {
        /// Time from the request head to the 101 reaching the client.
        duration: Duration,
        /// Negotiated subprotocol.
        subprotocol: Option<String>,
        /// Negotiated extensions.
        extensions: Option<String>,
    },
    /// The handshake did not end in 101: the client got `status`.
    HandshakeRejected {
        /// Time until the answer.
        duration: Duration,
        /// HTTP status sent to the client.
        status: u16,
        /// Why.
        cause: RejectCause,
    },
    /// A plain HTTP request (not an upgrade) was relayed and answered.
    HttpRelayed {
        /// HTTP method.
        method: String,
        /// Path without query.
        path: String,
        /// Status sent to the client.
        status: u16,
        /// Time to the response head.
        duration: Duration,
    },
    /// A frame was relayed (only emitted when per-frame events are on; counts go to atomics otherwise).
    FrameRelayed {
        /// Which way.
        direction: Direction,
        /// Opcode.
        opcode: OpcodeKind,
        /// Payload length.
        size: u64,
    },
    /// A ping was seen or sent, and its pong, with the round trip when the sidecar can measure it.
    PingPong {
        /// Whose round trip (the peer that answered).
        peer: Peer,
        /// RTT when measurable (sidecar's own pings).
        rtt: Option<Duration>,
    },
    /// A peer missed its heartbeats and was declared dead.
    HeartbeatTimeout {
        /// The silent peer.
        peer: Peer,
        /// Beats missed.
        missed: u32,
    },
    /// The first close frame of a session (or the sidecar's own close).
    Close {
        /// The close code the client received or sent (1005 when none, 1006 when the client's TCP
        /// connection vanished): what the browser console shows.
        code: u16,
        /// The close code the upstream sent or received (1006 when its TCP connection vanished); equal
        /// to `code` when a close frame was relayed as is.
        upstream_code: u16,
        /// Close reason.
        reason: String,
        /// Who closed.
        initiator: Initiator,
    },
    /// A peer broke an RFC 6455 rule; the sidecar closed with `rule.close_code()`.
    ProtocolError {
        /// Who broke it.
        peer: Peer,
        /// Which rule.
        rule: ProtocolRule,
    },
    /// The upstream connection was lost and the session was held and resumed on a new one: the client
    /// saw no close and no second handshake.
    Resumed {
        /// From the loss to the first byte relayed on the new connection.
        gap: Duration,
        /// Reconnect rounds (each dials the primary, then the backups).
        attempts: u32,
        /// The upstream that took the session (`primary` or `backup-N`).
        upstream: String,
    },
    /// The upstream connection was lost and the session could not be held: the client got the close it
    /// gets without resume (1012; 1001 on shutdown).
    ResumeGaveUp {
        /// Time held before giving up (zero when not held at all).
        gap: Duration,
        /// Reconnect rounds tried.
        attempts: u32,
        /// Why.
        reason: ResumeGaveUp,
    },
    /// The session is over.
    SessionEnded {
        /// Time since the handshake completed.
        duration: Duration,
        /// Totals.
        totals: SessionTotals,
        /// The close code the client received or sent.
        code: u16,
        /// The close code the upstream sent or received.
        upstream_code: u16,
        /// Who closed.
        initiator: Initiator,
    },
    /// A prober attempt started (`attempt` from 0).
    ProbeAttempt {
        /// Endpoint name.
        endpoint: String,
        /// URL tried.
        url: String,
        /// Attempt number.
        attempt: u32,
        /// Transport tried.
        transport: Transport,
    },
    /// A prober attempt succeeded.
    ProbeSucceeded {
        /// Endpoint name.
        endpoint: String,
        /// Transport that worked.
        transport: Transport,
        /// Time to connect.
        duration: Duration,
        /// True when it follows earlier failures.
        recovered: bool,
    },
    /// A prober attempt failed.
    ProbeFailed {
        /// Endpoint name.
        endpoint: String,
        /// Transport that failed.
        transport: Transport,
        /// Time spent.
        duration: Duration,
        /// Typed cause.
        cause: ConnectCause,
        /// HTTP status if the server answered.
        status: Option<u16>,
    },
    /// The dashboard answered the prober's upgrade with a 4xx, or accepted the connection and closed it
    /// without an answer: it is up, but refuses this request
    /// (wrong path, missing token, cookie, subprotocol or origin). Not a connection error; emitted on
    /// every attempt, logged only when `changed` (the first refusal, or a different status).
    ProbeRejected {
        /// Endpoint name.
        endpoint: String,
        /// The URL probed (no query, no credentials).
        url: String,
        /// The status the dashboard answered (None: it closed the connection without an HTTP answer).
        status: Option<u16>,
        /// Time to the answer.
        duration: Duration,
        /// True when the prober was not already refused this way.
        changed: bool,
    },
    /// The prober left or returned to its primary WebSocket upstream (None: back on it).
    FallbackChanged {
        /// Endpoint name.
        endpoint: String,
        /// Where it is now.
        mode: Option<FallbackMode>,
    },
    /// The prober moved to another server (`to` is a URL).
    Failover {
        /// Endpoint name.
        endpoint: String,
        /// From URL.
        from: String,
        /// To URL.
        to: String,
    },
    /// The prober moved to a lower transport.
    Downgrade {
        /// Endpoint name.
        endpoint: String,
        /// To transport.
        to: Transport,
    },
    /// Max attempts spent: degraded mode, still retrying at the max delay.
    FallbackActivated {
        /// Endpoint name.
        endpoint: String,
    },
    /// The dashboard's own periodic messages stopped.
    MissingHeartbeat {
        /// Endpoint name.
        endpoint: String,
        /// Silence so far.
        silence: Duration,
    },
    /// The prober's outbox delivered a batch: the dashboard answered the ping sent after it.
    BufferFlushed {
        /// Endpoint name.
        endpoint: String,
        /// Messages in the batch.
        messages: u64,
        /// Messages still queued.
        queued: u64,
    },
    /// The prober's outbox refused a message (it never evicts one it holds).
    BufferRejected {
        /// Endpoint name.
        endpoint: String,
        /// Why.
        reason: DropReason,
        /// The outbox's capacity.
        capacity: u64,
        /// Messages it holds.
        queued: u64,
    },
}

/// A close reason as exported: at most 123 bytes (RFC 6455's limit, cut on a character boundary) of
/// text, with control characters (line breaks, escapes) replaced by spaces.
pub fn reason_text(reason: &str) -> String {
    let cut = reason.floor_char_boundary(123);
    reason[..cut]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// An event with its time and, for proxied sessions, its session identity.
#[derive(Debug, Clone)]
pub struct Event {
    /// Wall-clock time the step happened.
    pub at: SystemTime,
    /// The session it belongs to, if any.
    pub session: Option<Arc<SessionInfo>>,
    /// What happened.
    pub kind: EventKind,
}

/// The sending side of the event stream: cheap to clone, never blocks.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Event>>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// A bounded channel of `capacity` events, and its receiving end.
    pub fn channel(capacity: usize) -> (EventSink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sink = EventSink {
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (sink, rx)
    }

    /// A sink that discards everything (telemetry off); nothing is counted as dropped.
    pub fn disabled() -> EventSink {
        EventSink {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Publishes without waiting; a full channel counts the event as dropped.
    pub fn emit(&self, session: Option<&Arc<SessionInfo>>, kind: EventKind) {
        let Some(tx) = &self.tx else { return };
        let ev = Event {
            at: SystemTime::now(),
            session: session.cloned(),
            kind,
        };
        if tx.try_send(ev).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes an event that must never be lost — a session's start and end (HandshakeCompleted,
    /// HandshakeRejected, SessionEnded), which the span builder and the active-session gauge pair up: when the channel is full it is handed to a task that waits for room (the channel's
    /// senders are served in order, so it still arrives after the session's earlier events). At most
    /// one such task per session that ends while telemetry is saturated.
    pub fn emit_lossless(&self, session: Option<&Arc<SessionInfo>>, kind: EventKind) {
        let Some(tx) = &self.tx else { return };
        let ev = Event {
            at: SystemTime::now(),
            session: session.cloned(),
            kind,
        };
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        let tx = tx.clone();
                        rt.spawn(async move {
                            let _ = tx.send(ev).await;
                        });
                    }
                    Err(_) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events lost to a full (or closed) channel so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// True when events are being collected.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_channel_counts_drops_and_never_blocks() {
        let (sink, mut rx) = EventSink::channel(2);
        for _ in 0..5 {
            sink.emit(None, EventKind::UpstreamConnectStarted);
        }
        assert_eq!(sink.dropped(), 3);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_terminal_event_waits_for_room_instead_of_being_lost() {
        let (sink, mut rx) = EventSink::channel(1);
        sink.emit(None, EventKind::UpstreamConnectStarted);
        sink.emit_lossless(None, EventKind::UpstreamConnectStarted);
        assert_eq!(sink.dropped(), 0);
        assert!(rx.recv().await.is_some());
        let late = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert!(
            matches!(late, Ok(Some(_))),
            "the terminal event arrives once there is room"
        );
    }

    #[test]
    fn close_reasons_are_exported_as_at_most_123_bytes_of_text() {
        assert_eq!(reason_text("bye\r\n\x1b[31mred"), "bye   [31mred");
        let long = "é".repeat(100);
        let r = reason_text(&long);
        assert!(r.len() <= 123 && r.len() == 122, "{}", r.len());
    }

    #[test]
    fn io_errors_classify_by_kind() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(ConnectCause::from_io(&e), ConnectCause::Refused);
        let e = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(ConnectCause::from_io(&e), ConnectCause::TimedOut);
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(ConnectCause::from_io(&e), ConnectCause::Reset);
    }

    #[test]
    fn protocol_rules_map_to_rfc6455_codes() {
        assert_eq!(ProtocolRule::InvalidUtf8.close_code(), 1007);
        assert_eq!(ProtocolRule::MessageTooLarge.close_code(), 1009);
        assert_eq!(ProtocolRule::ReservedOpcode.close_code(), 1002);
    }
}
