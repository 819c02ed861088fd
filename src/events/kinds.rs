//! [`EventKind`]: one step of a connection's life, as the proxy or the prober saw it.

use std::net::SocketAddr;
use std::time::Duration;

use super::causes::*;
use super::SessionTotals;

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
