//! Connections that did not start with an upgrade, served by hyper: plain requests relayed streamed
//! (the client connection's upstream connection reused while it stays open), and upgrades that come
//! later on the same keep-alive connection, handed to the relay like the fast path's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONNECTION, RETRY_AFTER, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::handshake::{self, Begun};
use super::listener::Permit;
use super::prefixed::Prefixed;
use super::upstream::{self, UpstreamError};
use super::Shared;
use crate::events::{EventKind, RejectCause, SessionInfo};

type Body = Either<Incoming, Full<Bytes>>;

struct Conn {
    shared: Arc<Shared>,
    client: SocketAddr,
    permit: Arc<Permit>,
    pooled: std::sync::Mutex<Option<SendRequest<Incoming>>>,
}

/// Serves the rest of a connection that did not start with an upgrade: plain requests, and upgrades
/// later on the same keep-alive connection.
pub(super) async fn serve(
    io: Prefixed,
    client: SocketAddr,
    permit: Arc<Permit>,
    shared: Arc<Shared>,
) {
    let limits = &shared.config.limits;
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        client,
        permit,
        pooled: Default::default(),
    });
    let svc = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(req, conn).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .max_buf_size(limits.max_header_size.max(8192))
        .preserve_header_case(true);
    let served = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(served);
    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        _ = &mut served => {}
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name, token: &str| {
        let mut values = req.headers().get_all(name).iter();
        values.any(|v| handshake::lists_token(v.as_bytes(), token))
    };
    has(UPGRADE, "websocket") && has(CONNECTION, "upgrade")
}

fn plain(status: u16, msg: &str, retry: bool) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(format!("{msg}\n")))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    if retry {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// The size of a parsed request's head as sent with single spaces and no folding (what hyper keeps of
/// it): request line, `name: value` lines, the empty line. A head the client padded is larger still,
/// so a head measured over the limit here is over it on the wire too.
fn head_size(req: &Request<Incoming>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2
}

async fn handle(mut req: Request<Incoming>, conn: Arc<Conn>) -> Response<Body> {
    let shared = &conn.shared;
    let t0 = Instant::now();
    // hyper's own limit cannot go below 8 KiB: smaller configured limits are enforced here.
    if head_size(&req) > shared.config.limits.max_header_size {
        let mut r = plain(431, "request header fields too large", false);
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let upgrade = is_upgrade(&req);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    shared
        .config
        .forwarded
        .apply(req.headers_mut(), conn.client.ip());
    if upgrade {
        return handle_upgrade(req, conn, path).await;
    }
    let head = EventKind::RequestHead {
        method: method.clone(),
        path: path.clone(),
        upgrade,
    };
    shared.sink.emit(None, head);
    if *shared.shutdown.borrow() {
        return plain(503, "sidecar shutting down", true);
    }
    // Plain HTTP: reuse this client connection's upstream connection while it stays open.
    let pooled = conn.pooled.lock().ok().and_then(|mut p| p.take());
    let mut sender = match pooled {
        Some(s) if !s.is_closed() => s,
        _ => {
            let known_down = shared.readiness.upstream_known_down();
            match dial_and_handshake(shared, None).await {
                Ok(s) => s,
                Err(e) => return plain(e.status_when(known_down), &e.to_string(), true),
            }
        }
    };
    let _ = sender.ready().await;
    req.headers_mut().remove("proxy-connection");
    let timeout = shared.config.limits.upstream_timeout;
    let res = upstream::send(&mut sender, req, timeout).await;
    if let Ok(mut p) = conn.pooled.lock() {
        *p = Some(sender);
    }
    let status = res
        .as_ref()
        .map_or_else(|e| e.status(), |r| r.status().as_u16());
    let kind = EventKind::HttpRelayed {
        method,
        path,
        status,
        duration: t0.elapsed(),
    };
    shared.sink.emit(None, kind);
    match res {
        Ok(resp) => resp.map(Either::Left),
        Err(e) => plain(e.status(), &e.to_string(), true),
    }
}

async fn dial_and_handshake(
    shared: &Shared,
    session: Option<&Arc<SessionInfo>>,
) -> Result<SendRequest<Incoming>, UpstreamError> {
    let d = upstream::dial(shared, session).await?;
    upstream::handshake(d.stream).await
}

fn header_str(req_or_resp: &hyper::HeaderMap, name: &str) -> Option<String> {
    req_or_resp
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn handle_upgrade(
    mut req: Request<Incoming>,
    conn: Arc<Conn>,
    path: String,
) -> Response<Body> {
    let shared = conn.shared.clone();
    let ua = header_str(req.headers(), "user-agent");
    let mut begun = Begun::new(&shared, conn.client, req.method().as_str(), path, ua);
    let values = |name: &'static str| req.headers().get_all(name).iter().map(|v| v.as_bytes());
    let invalid =
        handshake::check_ws_headers(values("sec-websocket-version"), values("sec-websocket-key"));
    if let Some(bad) = invalid {
        begun.reject(&shared, bad.status(), RejectCause::InvalidRequest);
        let mut r = plain(bad.status(), bad.message(), false);
        if bad == handshake::Invalid::Version {
            r.headers_mut()
                .insert("sec-websocket-version", HeaderValue::from_static("13"));
        }
        return r;
    }
    let dialed = match begun.dial(&shared).await {
        Ok(d) => d,
        Err((status, msg)) => return plain(status, &msg, true),
    };
    let on_client = hyper::upgrade::on(&mut req);
    let held = shared.config.resume.enabled().then(|| request_head(&req));
    let timeout = shared.config.limits.upstream_timeout;
    let resp = match upstream::handshake(dialed.stream).await {
        Ok(mut sender) => upstream::send(&mut sender, req, timeout).await,
        Err(e) => Err(e),
    };
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => return plain(begun.upstream_failed(&shared, e), &e.to_string(), true),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        begun.reject(&shared, resp.status().as_u16(), RejectCause::UpstreamStatus);
        return resp.map(Either::Left);
    }
    let on_upstream = hyper::upgrade::on(&mut resp);
    let subprotocol = header_str(resp.headers(), "sec-websocket-protocol");
    let extensions = header_str(resp.headers(), "sec-websocket-extensions");
    let (mut parts, _) = resp.into_parts();
    let no_takeover = extensions
        .as_deref()
        .filter(|_| held.is_some())
        .and_then(super::resume::deflate::with_client_no_context_takeover)
        .and_then(|v| HeaderValue::from_str(&v).ok());
    if let Some(v) = no_takeover {
        parts.headers.insert("sec-websocket-extensions", v);
    }
    let resume = held.map(|request| super::resume::Head {
        request,
        subprotocol: subprotocol.clone(),
        extensions: extensions.clone(),
    });
    let client_resp = Response::from_parts(parts, Either::Right(Full::new(Bytes::new())));
    let permit = conn.permit.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let (c, u) = tokio::join!(on_client, on_upstream);
        // Unwrapped in a plain function, so that none of the upgrade's leftovers stay in this task's
        // future while the session runs.
        let Some((client, upstream)) = unwrap_upgrades(c, u) else {
            return;
        };
        let ctx = begun.completed(&shared, subprotocol, extensions);
        let opened = handshake::Opened {
            client,
            upstream,
            ctx,
            resume,
        };
        opened.run(&shared).await;
    });
    client_resp
}

/// The request head hyper will send upstream, as bytes (kept to dial again on a resume).
fn request_head(req: &Request<Incoming>) -> Bytes {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!("{} {target} HTTP/1.1\r\n", req.method()).into_bytes();
    for (name, value) in req.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.into()
}

type Upgrade = hyper::Result<hyper::upgrade::Upgraded>;

/// Both upgrades done: the two sockets, each with the bytes read past its HTTP head.
fn unwrap_upgrades(c: Upgrade, u: Upgrade) -> Option<((TcpStream, Bytes), (TcpStream, Bytes))> {
    let (Ok(c), Ok(u)) = (c, u) else { return None };
    let (Ok(c), Ok(u)) = (
        c.downcast::<TokioIo<Prefixed>>(),
        u.downcast::<TokioIo<TcpStream>>(),
    ) else {
        return None;
    };
    let (unread, client) = c.io.into_inner().into_parts();
    let client_pre = if unread.is_empty() {
        c.read_buf
    } else {
        [unread, c.read_buf].concat().into()
    };
    Some(((client, client_pre), (u.io.into_inner(), u.read_buf)))
}
