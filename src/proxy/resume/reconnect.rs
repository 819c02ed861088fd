//! Dialing the dashboard again for a held session: the primary, then the backups, quietly (a thousand
//! held sessions dialing every 50–400 ms must not log a failed connect each: only the resume or giving
//! up is reported, with the attempts counted), the same request head with a fresh `Sec-WebSocket-Key`,
//! and a 101 that must agree with the first one: same subprotocol, same extensions and parameters, the
//! right `Sec-WebSocket-Accept`.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::deflate::same_extensions;
use super::Plan;
use crate::events::ResumeGaveUp;
use crate::proxy::{handshake, upstream};

/// A new upstream connection whose 101 agreed with the first.
pub struct Connected {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read past the 101's head (the dashboard's first frames).
    pub pre: Bytes,
    /// `primary` or `backup-N`.
    pub name: String,
    /// Its address.
    pub upstream: crate::config::Upstream,
}

/// Why one attempt did not give a session.
enum Attempt {
    /// Nothing connected, or the answer was not a good 101: try again after a pause.
    Retry,
    /// The 101 disagrees with the first: the session cannot be resumed.
    Mismatch,
}

/// A fresh `Sec-WebSocket-Key`.
fn fresh_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with (RFC 6455 §4.2.2).
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// `head` with its `Sec-WebSocket-Key` value replaced by `key` (every other byte as it was).
pub fn with_key(head: &[u8], key: &str) -> Vec<u8> {
    let name = b"sec-websocket-key:";
    let mut out = Vec::with_capacity(head.len());
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name) {
            out.extend_from_slice(&line[..name.len()]);
            out.extend_from_slice(b" ");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Reconnects until a 101 agrees or `deadline` passes; `attempts` counts the rounds.
pub async fn until(
    plan: &Plan,
    deadline: Instant,
    attempts: &AtomicU32,
) -> Result<Connected, ResumeGaveUp> {
    let mut pause = Duration::from_millis(50);
    loop {
        attempts.fetch_add(1, Relaxed);
        match once(plan).await {
            Ok(c) => return Ok(c),
            Err(Attempt::Mismatch) => return Err(ResumeGaveUp::Mismatch),
            Err(Attempt::Retry) => {}
        }
        let now = Instant::now();
        if now + pause >= deadline {
            // The hold's own deadline ends the session; this future just stops trying.
            std::future::pending::<()>().await;
        }
        // Jittered, so that the sessions held by one restart do not dial in step.
        tokio::time::sleep(pause.mul_f64(0.5 + rand::random::<f64>() / 2.0)).await;
        pause = (pause * 2).min(Duration::from_millis(400));
    }
}

/// One round: dial (primary, then backups), send the head, read and check the 101.
async fn once(plan: &Plan) -> Result<Connected, Attempt> {
    let shared = &plan.shared;
    let d = upstream::dial_quietly(shared)
        .await
        .map_err(|_| Attempt::Retry)?;
    let mut up = d.stream;
    let key = fresh_key();
    let head = with_key(&plan.head.request, &key);
    let max = shared.config.limits.max_header_size.max(8192);
    let mut resp = BytesMut::new();
    let exchange = async {
        up.write_all(&head).await.ok()?;
        handshake::read_answer(&mut up, &mut resp, max).await.ok()
    };
    let timeout = shared.config.limits.upstream_timeout;
    let a = tokio::time::timeout(timeout, exchange)
        .await
        .ok()
        .flatten()
        .ok_or(Attempt::Retry)?;
    if a.status != 101 || a.accept.as_deref() != Some(accept_for(&key).as_str()) {
        return Err(Attempt::Retry);
    }
    let first = &plan.head;
    if a.subprotocol != first.subprotocol
        || !same_extensions(a.extensions.as_deref(), first.extensions.as_deref())
    {
        return Err(Attempt::Mismatch);
    }
    let pre = resp.split_off(a.len).freeze();
    Ok(Connected {
        stream: up,
        pre,
        name: d.name,
        upstream: d.upstream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_replaced_and_nothing_else() {
        let head =
            b"GET /live?x=1 HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Cookie: a=b\r\n\r\n";
        let out = with_key(head, "AAAAAAAAAAAAAAAAAAAAAA==");
        let want =
            b"GET /live?x=1 HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\
                     Cookie: a=b\r\n\r\n";
        assert_eq!(out, want.to_vec());
        // RFC 6455 §1.3's example.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_ne!(fresh_key(), fresh_key());
    }
}
