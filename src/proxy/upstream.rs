//! Dialing the dashboard (primary first, then backups in order) and forwarding one request to it, with
//! typed failures: nothing listening or reset → 502, no answer in time → 504.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use super::head::{header, MAX_HEADERS};
use super::Shared;
use crate::config::Upstream;
use crate::events::{ConnectCause, EventKind, SessionInfo};

/// Why the upstream could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection could not be made.
    #[error("upstream unavailable ({})", .0.as_str())]
    Connect(ConnectCause),
    /// The connection or the answer took longer than `limits.upstream_timeout_ms`.
    #[error("upstream timed out")]
    Timeout,
    /// The upstream broke the HTTP exchange.
    #[error("upstream sent a bad response")]
    Protocol,
}

impl UpstreamError {
    /// The HTTP status the client gets: 504 for timeouts, 502 otherwise.
    pub fn status(self) -> u16 {
        match self {
            UpstreamError::Timeout | UpstreamError::Connect(ConnectCause::TimedOut) => 504,
            _ => 502,
        }
    }

    /// The status while the dashboard is known to be down (restarting) and no backup took the request:
    /// 503 (+ Retry-After), so clients retry instead of treating it as broken; else [`Self::status`].
    pub fn status_when(self, known_down: bool) -> u16 {
        if known_down {
            503
        } else {
            self.status()
        }
    }
}

/// A dialed upstream: the stream, and which configured upstream it is.
pub struct Dialed {
    /// The TCP connection.
    pub stream: TcpStream,
    /// `primary` or `backup-N`.
    pub name: String,
    /// Its address.
    pub upstream: Upstream,
}

/// `info` now naming the upstream `name` at `up` (unchanged when it already does).
pub fn retarget(info: &mut Arc<SessionInfo>, name: &str, up: &Upstream) {
    if info.upstream_name != name {
        let mut i = (**info).clone();
        i.upstream_name = name.to_string();
        i.upstream_host = up.host.clone();
        i.upstream_port = up.port;
        *info = Arc::new(i);
    }
}

/// Dials the primary, then each backup, until one connects; emits an event for every attempt.
pub async fn dial(
    shared: &Shared,
    session: Option<&Arc<SessionInfo>>,
) -> Result<Dialed, UpstreamError> {
    dial_reporting(shared, |kind| shared.sink.emit(session, kind)).await
}

/// [`dial`] without events: a held session dials many times while its dashboard restarts, and only the
/// resume (or giving up) is reported.
pub async fn dial_quietly(shared: &Shared) -> Result<Dialed, UpstreamError> {
    dial_reporting(shared, |_| {}).await
}

async fn dial_reporting(
    shared: &Shared,
    report: impl Fn(EventKind),
) -> Result<Dialed, UpstreamError> {
    let timeout = shared.config.limits.upstream_timeout;
    let mut last = UpstreamError::Connect(ConnectCause::Refused);
    for (i, (name, up)) in shared.upstreams.iter().enumerate() {
        report(EventKind::UpstreamConnectStarted);
        let t0 = Instant::now();
        let res =
            tokio::time::timeout(timeout, TcpStream::connect((up.host.as_str(), up.port))).await;
        let duration = t0.elapsed();
        let cause = match res {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                report(EventKind::UpstreamConnected { duration });
                if i == 0 {
                    shared.readiness.set_upstream(true);
                }
                return Ok(Dialed {
                    stream,
                    name: name.clone(),
                    upstream: up.clone(),
                });
            }
            Ok(Err(e)) => ConnectCause::from_io(&e),
            Err(_) => ConnectCause::TimedOut,
        };
        if i == 0 {
            shared.readiness.set_upstream(false);
        }
        report(EventKind::UpstreamConnectFailed { duration, cause });
        last = UpstreamError::Connect(cause);
    }
    Err(last)
}

/// Opens an HTTP/1 client connection on `stream` (driven by its own task, upgrades enabled).
pub async fn handshake(stream: TcpStream) -> Result<SendRequest<Incoming>, UpstreamError> {
    let (sender, conn) = Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| UpstreamError::Protocol)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// Sends `req` and waits for the response head, within `timeout`.
pub async fn send(
    sender: &mut SendRequest<Incoming>,
    req: Request<Incoming>,
    timeout: Duration,
) -> Result<Response<Incoming>, UpstreamError> {
    match tokio::time::timeout(timeout, sender.send_request(req)).await {
        Err(_) => Err(UpstreamError::Timeout),
        Ok(Err(e)) if e.is_timeout() => Err(UpstreamError::Timeout),
        Ok(Err(e)) if e.is_closed() || e.is_incomplete_message() => {
            Err(UpstreamError::Connect(ConnectCause::Reset))
        }
        Ok(Err(_)) => Err(UpstreamError::Protocol),
        Ok(Ok(resp)) => Ok(resp),
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
