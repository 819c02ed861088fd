//! How a session ends on the wire and in events: [`Ending`] (the codes both sides got, the reason, who
//! closed), the sidecar's own close frames (`send_one`, waiting for the peer's close), the half-close,
//! and the `Close` event. Shared by the relay and a held session (`resume::hold`).

use tokio::net::TcpStream;

use super::frame;
use super::pump::write_all;
use super::SessionCtx;
use crate::events::{EventKind, Initiator};

/// How the session ended, for the Close event: the code the client got (or sent) and the one the
/// upstream got (or sent).
pub struct Ending {
    /// The close code the client received or sent.
    pub code: u16,
    /// The close code the upstream received or sent.
    pub upstream_code: u16,
    /// The close reason.
    pub reason: String,
    /// Who closed.
    pub initiator: Initiator,
}

/// A client-side mask for a frame the sidecar sends to the upstream.
pub(super) fn mask() -> [u8; 4] {
    rand::random()
}

/// Emits the session's `Close` event (the reason as exported: see `events::reason_text`).
pub(super) fn emit_close(ctx: &SessionCtx, e: &Ending) {
    let kind = EventKind::Close {
        code: e.code,
        upstream_code: e.upstream_code,
        reason: crate::events::reason_text(&e.reason),
        initiator: e.initiator,
    };
    ctx.sink.emit(Some(&ctx.info), kind);
}

/// Sends a close frame (when the stream is at a frame boundary) and waits for the peer's close or EOF.
pub(super) async fn send_one(
    s: &TcpStream,
    code: u16,
    reason: &str,
    mask: Option<[u8; 4]>,
    at_boundary: bool,
    ctx: &SessionCtx,
) {
    if at_boundary {
        let f = frame::close_frame(code, reason, mask);
        let flag = std::sync::atomic::AtomicBool::new(false);
        let sent = tokio::time::timeout(ctx.close_timeout, write_all(s, &f, &flag)).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(ctx.close_timeout, drain_until_close(s)).await;
        }
    }
    shutdown_write(s);
}

/// Reads and discards frames until a close frame or EOF.
async fn drain_until_close(s: &TcpStream) {
    let mut buf = vec![0u8; 4096];
    let mut have = 0usize;
    let mut skip = 0u64;
    loop {
        if s.readable().await.is_err() {
            return;
        }
        match s.try_read(&mut buf[have..]) {
            Ok(0) => return,
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
        loop {
            if skip > 0 {
                let t = skip.min(have as u64) as usize;
                buf.copy_within(t..have, 0);
                have -= t;
                skip -= t as u64;
                if skip > 0 {
                    break;
                }
            }
            match frame::parse_header(&buf[..have]) {
                frame::Parsed::Header(h) if h.opcode == 0x8 => return,
                frame::Parsed::Header(h) => {
                    buf.copy_within(h.header_len..have, 0);
                    have -= h.header_len;
                    skip = h.len;
                }
                frame::Parsed::Invalid(_) => return,
                frame::Parsed::Incomplete => break,
            }
        }
        if have == buf.len() {
            return;
        }
    }
}

/// Half-closes our sending side (FIN) without needing `&mut`.
pub(super) fn shutdown_write(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
}
