//! The downgrade transports the prober tries when WebSocket fails, in the seed's order: SSE (read-only),
//! long-polling, plain polling. Each check is one HTTP GET with a timeout; the typed failure says why.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::config::TransportPaths;
use crate::events::{ConnectCause, Transport};

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Typed cause.
    pub cause: ConnectCause,
    /// HTTP status when the server answered.
    pub status: Option<u16>,
}

/// `ws://host:port/x` → (`host`, `port`).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    crate::config::Upstream::parse(url)
        .ok()
        .map(|u| (u.host, u.port))
}

/// One GET; succeeds on 2xx (and, for SSE, a `text/event-stream` body whose first bytes arrive).
pub async fn get(
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
    sse: bool,
) -> Result<Duration, Failure> {
    let t0 = Instant::now();
    let fail = |cause| Failure {
        cause,
        status: None,
    };
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| fail(ConnectCause::from_io(&e)))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| fail(ConnectCause::BadResponse))?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path).header("host", format!("{host}:{port}"));
        if sse {
            req = req.header("accept", "text/event-stream");
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|_| fail(ConnectCause::Other))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| fail(ConnectCause::Reset))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(Failure {
                cause: ConnectCause::BadResponse,
                status: Some(status),
            });
        }
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut body = resp.into_body();
        if sse {
            if !is_sse {
                return Err(Failure {
                    cause: ConnectCause::BadResponse,
                    status: Some(status),
                });
            }
            // The stream is open: wait for its first event bytes.
            loop {
                match body.frame().await {
                    Some(Ok(f)) if f.data_ref().is_some_and(|d| !d.is_empty()) => break,
                    Some(Ok(_)) => continue,
                    _ => return Err(fail(ConnectCause::Reset)),
                }
            }
        } else {
            let _ = body.collect().await;
        }
        Ok(t0.elapsed())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(fail(ConnectCause::TimedOut)),
    }
}

/// Checks one fallback transport against the dashboard at `url`.
pub async fn check(
    t: Transport,
    url: &str,
    paths: &TransportPaths,
    timeout: Duration,
) -> Result<Duration, Failure> {
    let Some((host, port)) = host_port(url) else {
        return Err(Failure {
            cause: ConnectCause::Unreachable,
            status: None,
        });
    };
    match t {
        Transport::Sse => get(&host, port, &paths.sse, timeout, true).await,
        Transport::LongPolling => get(&host, port, &paths.long_poll, timeout, false).await,
        Transport::Polling => get(&host, port, &paths.poll, timeout, false).await,
        Transport::WebSocket => Err(Failure {
            cause: ConnectCause::Other,
            status: None,
        }),
    }
}
