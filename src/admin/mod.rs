//! The admin server (default :8080, the seed's port):
//! - `GET /health`: liveness, with the seed's health score (HEALTHY / WARNING / CRITICAL), the score and
//!   the list of issues as JSON; 200 unless the process itself is broken.
//! - `GET /ready`: 503 until the listener is up and the upstream has been reached once; then it follows
//!   the upstream (503 while the last dial of the primary failed and no backup is configured).
//! - `GET /metrics`: Prometheus text 0.0.4, the same names, labels and units as the OTLP stream; or
//!   OpenMetrics 1.0 with exemplars when the scraper's `Accept` asks for `application/openmetrics-text`;
//!   no series at all while `websocket.monitoring.metrics_enabled` is false.
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

    /// Serves until the process ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
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
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}
