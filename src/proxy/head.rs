//! The first request head of a connection, read by the listener itself: its end found by one linear
//! scan (a head sent a byte per segment costs linear work), parsed once with httparse, classified as a
//! WebSocket upgrade (with RFC 6455's key and version checks) or anything else, and measured against
//! `limits.max_header_size` exactly. Also the plain-text answers the sidecar writes itself.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Headers httparse looks at; a head with more goes to hyper, which allows up to 100.
pub(super) const MAX_HEADERS: usize = 48;

/// What a connection's first request head is.
pub enum First {
    /// A WebSocket upgrade, taken on the fast path.
    Upgrade(UpgradeHead),
    /// Anything else: hyper serves it, starting from the bytes read so far.
    Other,
    /// The head is longer than `limits.max_header_size`: answered 431 here, at any configured size.
    TooLarge,
}

/// What the fast path needs from an upgrade request.
pub struct UpgradeHead {
    /// Length of the head in the buffer (bytes after it are the client's first frames).
    pub len: usize,
    /// Path without the query string.
    pub path: String,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
    /// Why the handshake is not valid (`Sec-WebSocket-Key`, `Sec-WebSocket-Version`), if it is not.
    pub invalid: Option<Invalid>,
}

/// An upgrade request that is not a valid WebSocket handshake, answered by the sidecar itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// `Sec-WebSocket-Version` is missing or not 13: 426 with `Sec-WebSocket-Version: 13`.
    Version,
    /// `Sec-WebSocket-Key` is missing, repeated, or not 16 bytes in base64: 400.
    Key,
}

impl Invalid {
    /// The status the client gets.
    pub fn status(self) -> u16 {
        match self {
            Invalid::Version => 426,
            Invalid::Key => 400,
        }
    }

    /// The message in the answer's body.
    pub fn message(self) -> &'static str {
        match self {
            Invalid::Version => "unsupported WebSocket version: this server speaks 13",
            Invalid::Key => "Sec-WebSocket-Key must be 16 bytes in base64",
        }
    }

    /// The whole answer, with `Connection: close` (and `Sec-WebSocket-Version: 13` for a 426).
    pub fn response(self) -> Vec<u8> {
        let extra = match self {
            Invalid::Version => "sec-websocket-version: 13\r\n",
            Invalid::Key => "",
        };
        plain_response_with(self.status(), self.message(), extra)
    }
}

/// RFC 6455 §4.2.1 checks on an upgrade's version and key header values (every value of each).
pub fn check_ws_headers<'v>(
    versions: impl Iterator<Item = &'v [u8]>,
    keys: impl Iterator<Item = &'v [u8]>,
) -> Option<Invalid> {
    use base64::Engine as _;
    // Exactly one value of each, checked without collecting them (no allocation per handshake).
    fn only<'v>(mut it: impl Iterator<Item = &'v [u8]>) -> Option<&'v [u8]> {
        let first = it.next()?;
        it.next().is_none().then_some(first)
    }
    if only(versions).map(<[u8]>::trim_ascii) != Some(b"13") {
        return Some(Invalid::Version);
    }
    // A 16-byte nonce is 24 base64 characters; decoded into a stack buffer with room to spare, so that
    // a longer key fails on its length rather than on the buffer.
    let mut nonce = [0u8; 18];
    let decoded = only(keys).and_then(|k| {
        base64::engine::general_purpose::STANDARD
            .decode_slice(k.trim_ascii(), &mut nonce)
            .ok()
    });
    match decoded {
        Some(16) => None,
        _ => Some(Invalid::Key),
    }
}

/// Whether a comma-separated header value (`Connection`, `Upgrade`) lists `token`, in any case.
pub fn lists_token(value: &[u8], token: &str) -> bool {
    std::str::from_utf8(value)
        .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn has_token(headers: &[httparse::Header], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .any(|h| lists_token(h.value, token))
}

/// The path of a request target (origin or absolute form), without its query.
pub fn target_path(target: &str) -> String {
    if target.starts_with('/') {
        target.split(['?', '#']).next().unwrap_or("/").to_string()
    } else {
        target
            .parse::<hyper::Uri>()
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| "/".to_string())
    }
}

/// Classifies a complete head; `None` while it is incomplete.
fn classify(buf: &[u8]) -> Option<First> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(First::Other),
    };
    let h = &*req.headers;
    let body = h.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
    });
    let upgrade = req.method == Some("GET")
        && req.version == Some(1)
        && !body
        && has_token(h, "upgrade", "websocket")
        && has_token(h, "connection", "upgrade");
    if !upgrade {
        return Some(First::Other);
    }
    let values = |name: &'static str| {
        h.iter()
            .filter(move |x| x.name.eq_ignore_ascii_case(name))
            .map(|x| x.value)
    };
    Some(First::Upgrade(UpgradeHead {
        len,
        path: target_path(req.path.unwrap_or("/")),
        user_agent: header(h, "user-agent"),
        invalid: check_ws_headers(values("sec-websocket-version"), values("sec-websocket-key")),
    }))
}

/// Where the first empty line of `buf` ends (the end of a request head), looking only at bytes from
/// `from` on (the caller passes what it had already scanned, less 3): each byte is looked at a bounded
/// number of times however the head is cut into segments.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = buf[i..].iter().position(|b| *b == b'\n') {
        let nl = i + off;
        if buf.get(nl + 1) == Some(&b'\n') {
            return Some(nl + 2);
        }
        if buf.get(nl + 1) == Some(&b'\r') && buf.get(nl + 2) == Some(&b'\n') {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// Work done reading first heads (bytes scanned, parses), for tests of the linear bound.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeadWork {
    /// Bytes looked at while searching for the end of the head.
    pub scanned: usize,
    /// Times the head was handed to the parser.
    pub parses: usize,
}

/// Reads the first request head into `buf`. `None`: the client closed, or sent no complete head before
/// `timeout` (the connection is dropped, as hyper does). A head longer than `max` bytes is
/// [`First::TooLarge`], whatever `max` is. The head is parsed only once its end (an empty line) has
/// arrived, so a head sent a byte at a time costs linear, not quadratic, work.
pub async fn read_first(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    max: usize,
    timeout: Duration,
) -> Option<First> {
    read_first_counted(stream, buf, max, timeout, &mut HeadWork::default()).await
}

/// [`read_first`], counting its work in `work`.
pub async fn read_first_counted(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    max: usize,
    timeout: Duration,
    work: &mut HeadWork,
) -> Option<First> {
    let read = async {
        let mut scanned = 0usize;
        loop {
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(1024);
            }
            if stream.read_buf(buf).await.ok()? == 0 {
                return None;
            }
            loop {
                let from = scanned.saturating_sub(3);
                let end = head_end(buf, from);
                work.scanned += end.unwrap_or(buf.len()) - from;
                let Some(end) = end else {
                    scanned = buf.len();
                    break;
                };
                if end > max {
                    return Some(First::TooLarge);
                }
                work.parses += 1;
                if let Some(first) = classify(buf) {
                    return Some(first);
                }
                // Empty lines before the request line (allowed): look for the next end.
                scanned = end;
            }
            if buf.len() > max {
                return Some(First::TooLarge);
            }
        }
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}

/// A plain-text answer with `Connection: close`, as raw bytes.
pub fn plain_response(status: u16, msg: &str, retry: bool) -> Vec<u8> {
    plain_response_with(status, msg, if retry { "retry-after: 1\r\n" } else { "" })
}

/// [`plain_response`] with `extra` header lines (each ending in CRLF).
fn plain_response_with(status: u16, msg: &str, extra: &str) -> Vec<u8> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n{extra}content-length: {}\r\n\
         connection: close\r\n\r\n{msg}\n",
        msg.len() + 1
    )
    .into_bytes()
}

/// The first value of header `name`, as text.
pub(super) fn header(headers: &[httparse::Header], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn upgrades_are_told_from_everything_else() {
        let ws = b"GET /live?token=s3cret HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\
                  Connection: keep-alive, Upgrade\r\nUser-Agent: t/1\r\n\r\n\x81\x00";
        let Some(First::Upgrade(u)) = classify(ws) else {
            panic!("not an upgrade")
        };
        assert_eq!(u.path, "/live");
        assert_eq!(u.user_agent.as_deref(), Some("t/1"));
        assert_eq!(u.len, ws.len() - 2);
        for other in [
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 2\r\n\r\nhi",
            "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
            "G\x01T / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(classify(other.as_bytes()), Some(First::Other)), "{other:?}");
        }
        assert!(classify(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n").is_none());
    }

    /// A head arriving one byte per segment is scanned a bounded number of times per byte and parsed
    /// once (re-parsing the whole buffer on every read was quadratic).
    #[tokio::test]
    async fn a_head_sent_a_byte_at_a_time_costs_linear_work() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        c.set_nodelay(true).unwrap();
        let head = format!(
            "GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(3000)
        );
        let len = head.len();
        let writer = tokio::spawn(async move {
            for b in head.as_bytes() {
                c.write_all(&[*b]).await.unwrap();
                tokio::task::yield_now().await;
            }
            c
        });
        let mut buf = BytesMut::new();
        let mut work = HeadWork::default();
        let first = read_first_counted(&mut s, &mut buf, 16384, Duration::from_secs(10), &mut work);
        let first = first.await;
        let _c = writer.await.unwrap();
        let Some(First::Upgrade(u)) = first else {
            panic!("not an upgrade")
        };
        assert_eq!((u.len, u.invalid), (len, None));
        assert_eq!(work.parses, 1, "parsed once, when its end arrived");
        assert!(
            work.scanned <= 4 * len,
            "{} bytes scanned for {len}",
            work.scanned
        );
    }

    #[test]
    fn heads_over_the_limit_and_bad_handshakes_are_told_apart() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\nA: b\n\n", 0), Some(21));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        let key = [&b"dGhlIHNhbXBsZSBub25jZQ=="[..]];
        let v = |x: &'static [u8]| vec![x];
        assert_eq!(
            check_ws_headers(v(b"13").into_iter(), key.into_iter()),
            None
        );
        assert_eq!(
            check_ws_headers(v(b"12").into_iter(), key.into_iter()),
            Some(Invalid::Version)
        );
        assert_eq!(
            check_ws_headers(v(b"13").into_iter(), [&b"c2hvcnQ="[..]].into_iter()),
            Some(Invalid::Key)
        );
        assert_eq!(
            check_ws_headers(v(b"13").into_iter(), [key[0], key[0]].into_iter()),
            Some(Invalid::Key),
            "two keys"
        );
        let r = String::from_utf8(Invalid::Version.response()).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 426 Upgrade Required\r\n")
                && r.contains("sec-websocket-version: 13\r\n")
        );
    }

    #[test]
    fn absolute_targets_keep_only_the_path() {
        assert_eq!(target_path("http://h:1/a/b?x=1"), "/a/b");
        assert_eq!(target_path("/a#f"), "/a");
    }

    #[test]
    fn plain_answers_say_close_and_count_their_body() {
        let r = String::from_utf8(plain_response(503, "down", true)).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
        assert!(r.contains("retry-after: 1\r\n") && r.contains("content-length: 5\r\n"));
        assert!(r.ends_with("\r\n\r\ndown\n"));
    }
}
