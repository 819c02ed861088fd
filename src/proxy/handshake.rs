//! The WebSocket handshake: the listener reads each connection's first request head itself (httparse);
//! an upgrade is forwarded to the dashboard byte for byte, the answer's head is read and relayed, and the
//! session starts on the same task — no HTTP machinery on the hot path. Anything else (plain HTTP, SSE,
//! heads httparse refuses) goes to hyper with the bytes already read. The steps both paths share —
//! the session's identity, dialing with its rejection events, the session's context — live here too.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::upstream::{self, Dialed, UpstreamError};
use super::{relay, resume, SessionCtx, Shared};
use crate::events::{ConnectCause, EventKind, RejectCause, SessionInfo};

/// Headers httparse looks at; a head with more goes to hyper, which allows up to 100.
const MAX_HEADERS: usize = 48;

/// What a connection's first request head is.
pub enum First {
    /// A WebSocket upgrade, taken on the fast path.
    Upgrade(UpgradeHead),
    /// Anything else: hyper serves it, starting from the bytes read so far.
    Other,
}

/// What the fast path needs from an upgrade request.
pub struct UpgradeHead {
    /// Length of the head in the buffer (bytes after it are the client's first frames).
    pub len: usize,
    /// Path without the query string.
    pub path: String,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
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
    Some(First::Upgrade(UpgradeHead {
        len,
        path: target_path(req.path.unwrap_or("/")),
        user_agent: header(h, "user-agent"),
    }))
}

/// Reads the first request head into `buf`. `None`: the client closed, or sent no complete head before
/// `timeout` (the connection is dropped, as hyper does). A head over `max` goes to hyper, which answers 431.
pub async fn read_first(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    max: usize,
    timeout: Duration,
) -> Option<First> {
    let read = async {
        loop {
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(1024);
            }
            if stream.read_buf(buf).await.ok()? == 0 {
                return None;
            }
            if let Some(first) = classify(buf) {
                return Some(first);
            }
            if buf.len() >= max {
                return Some(First::Other);
            }
        }
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}

/// A plain-text answer with `Connection: close`, as raw bytes.
fn plain_response(status: u16, msg: &str, retry: bool) -> Vec<u8> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let retry = if retry { "retry-after: 1\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n{retry}content-length: {}\r\n\
         connection: close\r\n\r\n{msg}\n",
        msg.len() + 1
    )
    .into_bytes()
}

/// A session being set up: its identity so far and when its head arrived.
pub struct Begun {
    /// Identity (the upstream fields change if a backup takes the session).
    pub info: Arc<SessionInfo>,
    /// When the request head was read.
    pub t0: Instant,
}

impl Begun {
    /// Names a new session and emits its RequestHead event.
    pub fn new(
        shared: &Shared,
        client: SocketAddr,
        method: &str,
        path: String,
        ua: Option<String>,
    ) -> Begun {
        let primary = &shared.upstreams[0];
        let info = Arc::new(SessionInfo {
            id: shared.next_id.fetch_add(1, Relaxed),
            client,
            path,
            user_agent: ua,
            upstream_name: primary.0.clone(),
            upstream_host: primary.1.host.clone(),
            upstream_port: primary.1.port,
        });
        let head = EventKind::RequestHead {
            method: method.to_string(),
            path: info.path.clone(),
            upgrade: true,
        };
        shared.sink.emit(Some(&info), head);
        Begun {
            info,
            t0: Instant::now(),
        }
    }

    /// Emits HandshakeRejected with `status`.
    pub fn reject(&self, shared: &Shared, status: u16, cause: RejectCause) {
        let kind = EventKind::HandshakeRejected {
            duration: self.t0.elapsed(),
            status,
            cause,
        };
        shared.sink.emit(Some(&self.info), kind);
    }

    /// The upstream failed the handshake: emits the rejection and returns the status for the client.
    pub fn upstream_failed(&self, shared: &Shared, e: UpstreamError) -> u16 {
        let cause = match e {
            UpstreamError::Timeout | UpstreamError::Connect(ConnectCause::TimedOut) => {
                RejectCause::UpstreamTimeout
            }
            _ => RejectCause::UpstreamUnavailable(ConnectCause::BadResponse),
        };
        self.reject(shared, e.status(), cause);
        e.status()
    }

    /// Refuses while draining, else dials the primary then the backups; on failure the rejection is
    /// emitted and the status and message for the client are returned.
    pub async fn dial(&mut self, shared: &Shared) -> Result<Dialed, (u16, String)> {
        if *shared.shutdown.borrow() {
            self.reject(shared, 503, RejectCause::ShuttingDown);
            return Err((503, "sidecar shutting down".into()));
        }
        let known_down = shared.upstream_known_down();
        match upstream::dial(shared, Some(&self.info)).await {
            Ok(d) => {
                upstream::retarget(&mut self.info, &d.name, &d.upstream);
                Ok(d)
            }
            Err(e) => {
                let cause = match e {
                    UpstreamError::Connect(c) => RejectCause::UpstreamUnavailable(c),
                    _ => RejectCause::UpstreamTimeout,
                };
                let status = e.status_when(known_down);
                self.reject(shared, status, cause);
                Err((status, e.to_string()))
            }
        }
    }

    /// The upstream answered 101: emits HandshakeCompleted and builds the session's context.
    pub fn completed(
        self,
        shared: &Shared,
        subprotocol: Option<String>,
        extensions: Option<String>,
    ) -> SessionCtx {
        let ext = extensions
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let kind = EventKind::HandshakeCompleted {
            duration: self.t0.elapsed(),
            subprotocol,
            extensions,
        };
        shared.sink.emit(Some(&self.info), kind);
        let names: Vec<&str> = ext
            .split(',')
            .filter_map(|e| e.split(';').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let limits = &shared.config.limits;
        let hb = &shared.config.heartbeat;
        SessionCtx {
            info: self.info,
            sink: shared.sink.clone(),
            stats: shared.stats.clone(),
            deflate: names.contains(&"permessage-deflate"),
            any_extension: names.iter().any(|n| *n != "permessage-deflate"),
            max_frame_size: limits.max_frame_size,
            max_message_size: limits.max_message_size,
            close_timeout: limits.close_timeout,
            idle_timeout: limits.idle_timeout,
            frame_events: shared.frame_events,
            resume: None,
            heartbeat: super::heartbeat::Heartbeats {
                enabled: hb.enabled,
                interval: hb.interval,
                timeout: hb.timeout,
                threshold: hb.failure_threshold,
            },
        }
    }
}

/// A session whose handshake completed: both sockets, each with the bytes read past its HTTP head.
pub struct Opened {
    /// The client's socket and bytes.
    pub client: (TcpStream, Bytes),
    /// The dashboard's socket and bytes.
    pub upstream: (TcpStream, Bytes),
    /// The session's context.
    pub ctx: SessionCtx,
    /// The handshake as the upstream saw it, kept when sessions are held through restarts.
    pub resume: Option<resume::Head>,
}

impl Opened {
    /// Runs the session to its end (the relay's own future, nothing around it).
    pub fn run(mut self, shared: &Arc<Shared>) -> impl std::future::Future<Output = ()> + Send {
        self.ctx.resume = self.resume.map(|head| {
            let settings = shared.config.resume;
            Box::new(resume::Plan::new(settings, head, shared.clone()))
        });
        let (c, u) = (self.client, self.upstream);
        relay::run(c.0, c.1, u.0, u.1, self.ctx, shared.shutdown.clone())
    }
}

/// The upstream's answer to the upgrade.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) len: usize,
    pub(super) subprotocol: Option<String>,
    pub(super) extensions: Option<String>,
    pub(super) accept: Option<String>,
}

fn header(headers: &[httparse::Header], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_string)
}

/// Reads the upstream's response head into `buf`.
pub(super) async fn read_answer(
    up: &mut TcpStream,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Answer, UpstreamError> {
    loop {
        buf.reserve(1024);
        match up.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(UpstreamError::Connect(ConnectCause::Reset)),
            Ok(_) => {}
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                return Ok(Answer {
                    status: resp.code.unwrap_or(0),
                    len,
                    subprotocol: header(resp.headers, "sec-websocket-protocol"),
                    extensions: header(resp.headers, "sec-websocket-extensions"),
                    accept: header(resp.headers, "sec-websocket-accept"),
                })
            }
            Ok(httparse::Status::Partial) if buf.len() < max => {}
            _ => return Err(UpstreamError::Protocol),
        }
    }
}

/// The fast path: forwards the upgrade in `head` to the dashboard; on 101 the session is ready to run,
/// `None` when no session follows (an answer was sent instead).
pub async fn open(
    mut client: TcpStream,
    mut head: BytesMut,
    req: UpgradeHead,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<Opened> {
    let mut begun = Begun::new(shared, peer, "GET", req.path, req.user_agent);
    let answer = |status: u16, msg: &str| plain_response(status, msg, true);
    let Dialed { stream: mut up, .. } = match begun.dial(shared).await {
        Ok(d) => d,
        Err((status, msg)) => return finish(client, &answer(status, &msg)).await,
    };
    let client_pre = head.split_off(req.len).freeze();
    let mut resp = BytesMut::new();
    let max = shared.config.limits.max_header_size.max(8192);
    let exchange = async {
        up.write_all(&head)
            .await
            .map_err(|_| UpstreamError::Connect(ConnectCause::Reset))?;
        read_answer(&mut up, &mut resp, max).await
    };
    let got = match tokio::time::timeout(shared.config.limits.upstream_timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout),
    };
    // Copied out, so that the session keeps the head's few hundred bytes and not the read buffer.
    let held = shared
        .config
        .resume
        .enabled()
        .then(|| Bytes::copy_from_slice(&head));
    drop(head);
    let a = match got {
        Ok(a) => a,
        Err(e) => {
            let status = begun.upstream_failed(shared, e);
            return finish(client, &answer(status, &e.to_string())).await;
        }
    };
    let upstream_pre = resp.split_off(a.len).freeze();
    let rewritten = held
        .as_ref()
        .and_then(|_| resume::deflate::rewrite_101(&resp));
    client
        .write_all(rewritten.as_deref().unwrap_or(&resp))
        .await
        .ok()?;
    if a.status != 101 {
        // Relayed as is; the rest of the connection is a byte stream between the two.
        begun.reject(shared, a.status, RejectCause::UpstreamStatus);
        let _ = client.write_all(&upstream_pre).await;
        let _ = up.write_all(&client_pre).await;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
        return None;
    }
    let resume = held.map(|request| resume::Head {
        request,
        subprotocol: a.subprotocol.clone(),
        extensions: a.extensions.clone(),
    });
    let ctx = begun.completed(shared, a.subprotocol, a.extensions);
    Some(Opened {
        client: (client, client_pre),
        upstream: (up, upstream_pre),
        ctx,
        resume,
    })
}

/// Writes a final answer and closes the connection.
async fn finish(mut client: TcpStream, bytes: &[u8]) -> Option<Opened> {
    let _ = client.write_all(bytes).await;
    let _ = client.shutdown().await;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
