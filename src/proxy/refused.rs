//! An upgrade the upstream refused (any answer but 101) on the fast path: its answer is relayed to the
//! client with `Connection: close` — the head, then exactly the body its framing announces
//! (`Content-Length`, chunked, or up to the upstream's close) — and the connection ends there. Bytes the
//! client pipelined behind its upgrade head are never forwarded: no raw tunnel past the sidecar.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most body relayed for a refused upgrade; an upstream sending more is cut off.
pub const MAX_BODY: u64 = 1 << 20;

/// How the refused answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// The head with its `Connection` and `Keep-Alive` lines replaced by `Connection: close`, and how its
/// body is framed.
fn close_head(head: &[u8], status: u16) -> (Vec<u8>, Framing) {
    let mut out = Vec::with_capacity(head.len() + 20);
    let mut framing = if status < 200 || status == 204 || status == 304 {
        Framing::None
    } else {
        Framing::UntilClose
    };
    let mut lines = head.split_inclusive(|b| *b == b'\n');
    if let Some(status_line) = lines.next() {
        out.extend_from_slice(status_line);
    }
    for line in lines {
        let body = line.trim_ascii_end();
        if body.is_empty() {
            break;
        }
        let (name, value) = match body.iter().position(|b| *b == b':') {
            Some(i) => (&body[..i], body[i + 1..].trim_ascii()),
            None => (body, &b""[..]),
        };
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("connection") || is("keep-alive") {
            continue;
        }
        if framing != Framing::None {
            if is("transfer-encoding") {
                let chunked = std::str::from_utf8(value)
                    .is_ok_and(|v| v.to_ascii_lowercase().trim_end().ends_with("chunked"));
                framing = if chunked {
                    Framing::Chunked
                } else {
                    Framing::UntilClose
                };
            } else if is("content-length") && framing == Framing::UntilClose {
                if let Some(n) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                    framing = Framing::Length(n);
                }
            }
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    (out, framing)
}

/// Where a chunked body ends within `buf` (the last-chunk and its trailers), if it has ended.
fn chunked_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let line_end = buf[i..].windows(2).position(|w| w == b"\r\n")? + i;
        let size_text = std::str::from_utf8(&buf[i..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        i = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let e = buf[i..].windows(2).position(|w| w == b"\r\n")? + i;
                if e == i {
                    return Some(e + 2);
                }
                i = e + 2;
            }
        }
        i = i.checked_add(size)?.checked_add(2)?;
        if i > buf.len() {
            return None;
        }
    }
}

/// Relays the refused answer (`head`, then `pre`, the bytes already read past it, and whatever of the
/// body is still to come) to the client. Each read waits at most `limit`; at most [`MAX_BODY`] bytes
/// of body are relayed.
pub async fn relay(
    client: &mut TcpStream,
    up: &mut TcpStream,
    head: &[u8],
    pre: Bytes,
    limit: Duration,
) -> std::io::Result<()> {
    let status = parse_status(head);
    let (head, framing) = close_head(head, status);
    client.write_all(&head).await?;
    let mut body = pre.to_vec();
    let wanted = |body: &[u8]| -> Option<usize> {
        match framing {
            Framing::None => Some(0),
            Framing::Length(n) => (body.len() as u64 >= n.min(MAX_BODY)).then_some(n as usize),
            Framing::Chunked => chunked_end(body),
            Framing::UntilClose => None,
        }
    };
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(n) = wanted(&body) {
            break n.min(body.len());
        }
        if body.len() as u64 >= MAX_BODY {
            break body.len();
        }
        match tokio::time::timeout(limit, up.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break body.len(),
            Ok(Ok(n)) => body.extend_from_slice(&buf[..n]),
        }
    };
    client.write_all(&body[..end]).await
}

fn parse_status(head: &[u8]) -> u16 {
    head.split(|b| *b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_says_close_and_its_framing_is_read() {
        let (h, f) = close_head(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\n",
            200,
        );
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(f, Framing::Length(3));
        let (_, f) = close_head(
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        );
        assert_eq!(f, Framing::Chunked);
        let (_, f) = close_head(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            304,
        );
        assert_eq!(f, Framing::None);
        assert_eq!(parse_status(b"HTTP/1.1 426 Upgrade Required\r\n"), 426);
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let body = b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /next HTTP/1.1\r\n";
        assert_eq!(chunked_end(body), Some(body.len() - 20));
        assert_eq!(chunked_end(b"5\r\nhel"), None);
        assert_eq!(chunked_end(b"0\r\n\r\n"), Some(5));
    }
}
