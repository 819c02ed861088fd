//! The admin server (default :8080, the seed's port):
//! - `GET /health`: liveness, with the seed's health score over the last `health.window_ms`
//!   (HEALTHY / WARNING / CRITICAL, the score, the issues and the inputs, clients and prober apart:
//!   [`crate::telemetry::health`]) as JSON; 200 unless the process itself is broken.
//! - `GET /ready`: "this sidecar can serve": 200 while the client listener is up, it is not draining,
//!   and the upstream (or, failing it, a backup) accepts a TCP connection, checked on each request
//!   within a second. Whether the prober's WebSocket upgrade works is health, telemetry and alerts
//!   (`/health`), not readiness — unless `probe.gates_readiness` is true. Like Envoy's `/ready` (200
//!   once the server is LIVE, 503 while initializing or draining) and linkerd's proxy readiness (ready
//!   once the proxy can route), it does not depend on an application-level handshake that a third-party
//!   dashboard may refuse; unlike them it also needs the upstream's port open, since a sidecar in front
//!   of a dead dashboard has nothing to serve.
//! - `GET /metrics`: Prometheus text 0.0.4, the same names, labels and units as the OTLP stream; or
//!   OpenMetrics 1.0 with exemplars when the scraper's `Accept` asks for `application/openmetrics-text`;
//!   no series at all while `websocket.monitoring.metrics_enabled` is false.
//!
//! Limits (a hostile or unlucky client of the admin port must not starve the proxy): a request-head
//! timeout, a cap on connections, and backoff on accept errors — see [`Admin::serve`].
//! - `POST /probe/send`: queue a message for the prober to deliver to the dashboard ([`send`]); only
//!   with `Authorization: Bearer <probe.send_token>`, and off (404) while no token is configured.

pub mod send;

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::proxy::Shared;
use crate::telemetry::exposition::{self, Format};
use crate::telemetry::Telemetry;

/// What the admin endpoints read.
pub struct Admin {
    /// Proxy state (readiness, shutdown).
    pub proxy: Arc<Shared>,
    /// Metrics.
    pub telemetry: Arc<Telemetry>,
    /// Set once the client listener is bound.
    pub listening: std::sync::atomic::AtomicBool,
    /// The prober's outbox (`POST /probe/send`), when there is one.
    pub outbox: Option<Arc<crate::probe::outbox::Outbox>>,
}

pub(crate) fn reply(
    status: StatusCode,
    ctype: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static(ctype),
    );
    r
}

/// Why the sidecar is not ready (the `/ready` body says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The client listener is not bound yet.
    NotListening,
    /// SIGTERM: draining.
    Draining,
    /// Neither the upstream nor a backup accepts a TCP connection.
    UpstreamUnreachable,
    /// `probe.gates_readiness` is on and the prober holds no WebSocket.
    ProbeDown,
}

impl NotReady {
    fn text(self) -> &'static str {
        match self {
            NotReady::NotListening => "not ready: not listening yet\n",
            NotReady::Draining => "not ready: draining\n",
            NotReady::UpstreamUnreachable => {
                "not ready: the upstream accepts no connection (nor does any backup)\n"
            }
            NotReady::ProbeDown => {
                "not ready: the prober holds no WebSocket (probe.gates_readiness is on; see /health)\n"
            }
        }
    }
}

impl Admin {
    /// Whether the sidecar can serve: listening, not draining, the upstream (or a backup) accepts a
    /// TCP connection, and — with `probe.gates_readiness` — the prober holds a WebSocket.
    pub async fn ready(&self) -> Result<(), NotReady> {
        let p = &self.proxy;
        if !self.listening.load(Relaxed) {
            return Err(NotReady::NotListening);
        }
        if *p.shutdown.borrow() {
            return Err(NotReady::Draining);
        }
        if !self.upstream_accepts().await {
            return Err(NotReady::UpstreamUnreachable);
        }
        if p.config.probe.gates_readiness && !p.probe_ws_up.load(Relaxed) {
            return Err(NotReady::ProbeDown);
        }
        Ok(())
    }

    /// Connects to the primary, then each backup, until one accepts (at most a second each); records
    /// the primary's answer for the proxy's restart detection.
    async fn upstream_accepts(&self) -> bool {
        let p = &self.proxy;
        let wait = p.config.limits.upstream_timeout.min(Duration::from_secs(1));
        for (i, (_, up)) in p.upstreams.iter().enumerate() {
            let ok = matches!(
                tokio::time::timeout(wait, tokio::net::TcpStream::connect(up.authority())).await,
                Ok(Ok(_))
            );
            if i == 0 {
                p.upstream_up.store(ok, Relaxed);
                if ok {
                    p.upstream_seen.store(true, Relaxed);
                }
            }
            if ok {
                return true;
            }
        }
        false
    }

    async fn route(&self, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/health" | "/healthz" => {
                self.telemetry.sync();
                let h = self.telemetry.health();
                reply(StatusCode::OK, "application/json", h.to_string())
            }
            "/ready" | "/readyz" => match self.ready().await {
                Ok(()) => reply(StatusCode::OK, "text/plain", "ready\n".into()),
                Err(why) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    why.text().into(),
                ),
            },
            "/metrics" => {
                let accept = req.headers().get(hyper::header::ACCEPT);
                let format = Format::negotiate(accept.and_then(|a| a.to_str().ok()));
                let body = if self.telemetry.metrics_enabled() {
                    self.telemetry.sync();
                    self.telemetry.registry.render(format, &[])
                } else {
                    // No series, but a valid answer: the target stays up (no SidecarDown alert).
                    exposition::switched_off(format)
                };
                reply(StatusCode::OK, format.content_type(), body)
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "try /health, /ready, /metrics or POST /probe/send\n".into(),
            ),
        }
    }

    /// Serves until the process ends. Every connection must send a whole request head within
    /// `limits.admin_header_timeout_ms` (also between requests on a keep-alive connection) or is
    /// closed; at most `limits.admin_max_connections` are served at once, and one over that is closed
    /// as soon as it is accepted; accept errors (EMFILE, ENFILE, …) back off instead of spinning. A
    /// flood of the admin port therefore holds a bounded number of descriptors, and the proxy keeps
    /// the rest.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let limits = &self.proxy.config.limits;
        let slots = Arc::new(tokio::sync::Semaphore::new(limits.admin_max_connections));
        let header_timeout = limits.admin_header_timeout;
        let mut backoff = AcceptBackoff::default();
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => {
                    backoff.reset();
                    s
                }
                Err(_) => {
                    backoff.wait().await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Over the cap: closed at once (a reset, so it holds nothing in TIME_WAIT either).
                let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
                self.proxy.stats.admin_refused.fetch_add(1, Relaxed);
                drop(stream);
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let svc = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move {
                        let r = if req.uri().path() == "/probe/send" {
                            me.probe_send(req).await
                        } else {
                            me.route(&req).await
                        };
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}

/// Backoff after a failed accept (EMFILE, ENFILE, ENOBUFS…): 5 ms doubling to 1 s, reset by the next
/// accepted connection. Retrying at once would spin a core while the condition lasts.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    next: std::time::Duration,
}

impl AcceptBackoff {
    /// Sleeps for the current delay and doubles it.
    pub async fn wait(&mut self) {
        let min = std::time::Duration::from_millis(5);
        let max = std::time::Duration::from_secs(1);
        self.next = (self.next * 2).clamp(min, max);
        tokio::time::sleep(self.next).await;
    }

    /// A connection was accepted: back to the shortest delay.
    pub fn reset(&mut self) {
        self.next = std::time::Duration::ZERO;
    }
}
