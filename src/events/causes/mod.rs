//! The typed values lifecycle events carry: which way, which peer, who closed, which opcode, why a dial
//! failed, which RFC 6455 rule was broken, why a handshake was refused, the prober's transports and
//! fallback modes, why the outbox refused a message. Error classes are decided from these, never from
//! message text. And a close reason as exported ([`reason_text`]).
//!
//! - `probe`: the prober's values (transports, fallback modes, why the outbox refused a message).

mod probe;

pub use probe::*;

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

/// A close reason as exported: at most 123 bytes (RFC 6455's limit, cut on a character boundary) of
/// text, with control characters (line breaks, escapes) replaced by spaces.
pub fn reason_text(reason: &str) -> String {
    let cut = reason.floor_char_boundary(123);
    reason[..cut]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
