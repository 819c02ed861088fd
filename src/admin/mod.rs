//! The admin server (default :8080, the seed's port):
//! - `GET /health`: liveness, with the seed's health score (HEALTHY / WARNING / CRITICAL), the score and
//!   the list of issues as JSON; 200 unless the process itself is broken.
//! - `GET /ready`: 503 until the listener is up and the upstream has been reached once; then it follows
//!   the upstream (503 while the last dial of the primary failed and no backup is configured).
//! - `GET /metrics`: Prometheus text, the same names, labels and units as the OTLP stream.
//!
//! Limits (a hostile or unlucky client of the admin port must not starve the proxy): a request-head
//! timeout, a cap on connections, and backoff on accept errors — see [`Admin::serve`].
//! - `POST /probe/send`: queue a message for the prober to deliver to the dashboard ([`send`]); only
//!   with `Authorization: Bearer <probe.send_token>`, and off (404) while no token is configured.

pub mod health;
pub mod send;

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::proxy::Shared;
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

impl Admin {
    /// Whether the sidecar should receive traffic.
    pub fn ready(&self) -> bool {
        let p = &self.proxy;
        self.listening.load(Relaxed)
            && !*p.shutdown.borrow()
            && p.upstream_seen.load(Relaxed)
            && (p.upstream_up.load(Relaxed) || p.upstreams.len() > 1)
    }

    fn route(&self, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/health" | "/healthz" => {
                self.telemetry.sync();
                let h = health::score(&self.telemetry.registry, &self.proxy.config);
                reply(StatusCode::OK, "application/json", h.to_string())
            }
            "/ready" | "/readyz" => {
                if self.ready() {
                    reply(StatusCode::OK, "text/plain", "ready\n".into())
                } else {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "not ready\n".into(),
                    )
                }
            }
            "/metrics" => {
                self.telemetry.sync();
                let body = self.telemetry.registry.render_prometheus(&[]);
                reply(StatusCode::OK, "text/plain; version=0.0.4", body)
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
                            me.route(&req)
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
