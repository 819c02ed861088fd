//! The WebSocket handshake: the listener reads each connection's first request head itself
//! ([`super::head`]); an upgrade is forwarded to the dashboard byte for byte, the answer's head is read and relayed, and the
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

pub use super::head::{
    check_ws_headers, lists_token, plain_response, read_first, target_path, First, Invalid,
    UpgradeHead,
};
use super::upstream::{self, Dialed, UpstreamError};
use super::{refused, relay, resume, SessionCtx, Shared};
use crate::events::{ConnectCause, EventKind, RejectCause, SessionInfo};

/// A session being set up: its identity so far and when its head arrived.
///
/// It is also the guard that makes every started session end in telemetry: the only ways to let go of
/// it are [`Begun::reject`] (HandshakeRejected) and [`Begun::completed`] (HandshakeCompleted, after
/// which the relay's own guard owns the end); dropping it any other way — a client reset before the
/// 101, a failed write, an upgrade that cannot be taken over, a cancelled future — emits
/// HandshakeRejected with [`RejectCause::ClientGone`]. Both go through
/// [`crate::events::EventSink::emit_lossless`], so a full channel cannot lose them either.
pub struct Begun {
    /// Identity (the upstream fields change if a backup takes the session).
    pub info: Arc<SessionInfo>,
    /// When the request head was read.
    pub t0: Instant,
    sink: crate::events::EventSink,
    ended: bool,
}

impl Drop for Begun {
    fn drop(&mut self) {
        if !self.ended {
            self.ended = true;
            let kind = EventKind::HandshakeRejected {
                duration: self.t0.elapsed(),
                status: 499,
                cause: RejectCause::ClientGone,
            };
            self.sink.emit_lossless(Some(&self.info), kind);
        }
    }
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
            sink: shared.sink.clone(),
            ended: false,
        }
    }

    /// Emits HandshakeRejected with `status` (once: the session's end).
    pub fn reject(&mut self, _shared: &Shared, status: u16, cause: RejectCause) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let kind = EventKind::HandshakeRejected {
            duration: self.t0.elapsed(),
            status,
            cause,
        };
        self.sink.emit_lossless(Some(&self.info), kind);
    }

    /// The upstream failed the handshake: emits the rejection and returns the status for the client.
    pub fn upstream_failed(&mut self, shared: &Shared, e: UpstreamError) -> u16 {
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
        let known_down = shared.readiness.upstream_known_down();
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

    /// The upstream answered 101: emits HandshakeCompleted and builds the session's context. The
    /// subprotocol is named in telemetry only when `telemetry.record_subprotocols` lists it (apps put
    /// tokens there); any other negotiated value is reported as `other`.
    pub fn completed(
        mut self,
        shared: &Shared,
        subprotocol: Option<String>,
        extensions: Option<String>,
    ) -> SessionCtx {
        self.ended = true;
        let ext = extensions
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let listed = &shared.config.telemetry.record_subprotocols;
        let subprotocol = subprotocol.map(|p| {
            if listed.iter().any(|l| l == p.trim()) {
                p.trim().to_string()
            } else {
                "other".to_string()
            }
        });
        let kind = EventKind::HandshakeCompleted {
            duration: self.t0.elapsed(),
            subprotocol,
            extensions,
        };
        self.sink.emit_lossless(Some(&self.info), kind);
        let names: Vec<&str> = ext
            .split(',')
            .filter_map(|e| e.split(';').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let limits = &shared.config.limits;
        let hb = &shared.config.heartbeat;
        SessionCtx {
            info: self.info.clone(),
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
            frame_budget: Default::default(),
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

/// The fast path: forwards the upgrade in `head` to the dashboard; on 101 the session is ready to run,
/// `None` when no session follows (an answer was sent instead). An invalid handshake is answered here
/// (400 / 426) without dialing; an upstream answer other than 101 is relayed with `Connection: close`
/// and the connection closed, so nothing the client pipelined behind its head ever reaches the upstream.
pub async fn open(
    mut client: TcpStream,
    mut head: BytesMut,
    req: UpgradeHead,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<Opened> {
    let mut begun = Begun::new(shared, peer, "GET", req.path, req.user_agent);
    if let Some(bad) = req.invalid {
        begun.reject(shared, bad.status(), RejectCause::InvalidRequest);
        return finish(client, &bad.response()).await;
    }
    let answer = |status: u16, msg: &str| plain_response(status, msg, true);
    let Dialed { stream: mut up, .. } = match begun.dial(shared).await {
        Ok(d) => d,
        Err((status, msg)) => return finish(client, &answer(status, &msg)).await,
    };
    let client_pre = head.split_off(req.len).freeze();
    if let Some(h) = shared.config.forwarded.rewrite_head(&head, peer.ip()) {
        head = BytesMut::from(&h[..]);
    }
    let mut resp = BytesMut::new();
    let max = shared.config.limits.max_header_size.max(8192);
    let exchange = async {
        up.write_all(&head)
            .await
            .map_err(|_| UpstreamError::Connect(ConnectCause::Reset))?;
        upstream::read_answer(&mut up, &mut resp, max).await
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
    if a.status != 101 {
        begun.reject(shared, a.status, RejectCause::UpstreamStatus);
        drop(client_pre);
        let limit = shared.config.limits.upstream_timeout;
        // Boxed, as is `finish`: a rare path's buffers stay out of the handshake's future, which every
        // connection allocates and moves (its size was ~9.6 KB with the relay's read buffer inline).
        let relay = refused::relay(&mut client, &mut up, &resp, upstream_pre, limit);
        let _ = Box::pin(relay).await;
        let _ = client.shutdown().await;
        return None;
    }
    let resume = held.map(|request| resume::Head {
        request,
        subprotocol: a.subprotocol.clone(),
        extensions: a.extensions.clone(),
    });
    // With resume on and deflate negotiated, the client is told client_no_context_takeover.
    let rewritten = resume
        .as_ref()
        .and_then(|_| resume::deflate::rewrite_101(&resp));
    // A client that vanished here drops `begun`, which reports the session as abandoned.
    client
        .write_all(rewritten.as_deref().unwrap_or(&resp))
        .await
        .ok()?;
    let ctx = begun.completed(shared, a.subprotocol, a.extensions);
    Some(Opened {
        client: (client, client_pre),
        upstream: (up, upstream_pre),
        ctx,
        resume,
    })
}

/// Writes a final answer and closes the connection (reading what the client still sends for a moment,
/// so that closing does not reset the connection under the answer); at most 2 s. `None`: no session.
pub(super) async fn finish(mut client: TcpStream, bytes: &[u8]) -> Option<Opened> {
    let answer = Box::pin(async {
        client.write_all(bytes).await?;
        client.shutdown().await?;
        let mut sink = [0u8; 1024];
        while client.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    });
    let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
    None
}
