//! A demo dashboard: a WebSocket server that streams realistic JSON updates every interval, echoes what
//! it receives, answers the seed's app-level `{"type":"ping"}`, and serves `/health` and an SSE feed at
//! `/events`. Used by the demo, the tests and the compose stack.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::cli::DemoDashboardArgs;

type Body = BoxBody<Bytes, Infallible>;

/// A running demo dashboard's shared state.
pub struct Dashboard {
    /// pulse, seams or voices.
    pub name: String,
    /// Interval between updates.
    pub interval: Duration,
    seq: AtomicU64,
    stop: tokio::sync::watch::Sender<bool>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Dashboard {
    /// A dashboard named `name` streaming every `interval`.
    pub fn new(name: &str, interval: Duration) -> Arc<Dashboard> {
        Arc::new(Dashboard {
            name: name.to_string(),
            interval,
            seq: AtomicU64::new(0),
            stop: tokio::sync::watch::channel(false).0,
        })
    }

    /// The next update, shaped by the dashboard's name.
    pub fn update(&self) -> String {
        let n = self.seq.fetch_add(1, Relaxed);
        let wave = |k: f64| ((n as f64 / k).sin() * 0.5 + 0.5 * 100.0).round() / 100.0;
        let body = match self.name.as_str() {
            "seams" => json!({"seams": [{"id": "network_infrastructure", "tension": wave(3.0)},
                                        {"id": "data_contract", "tension": wave(5.0)}]}),
            "voices" => {
                json!({"voices": {"alarm": wave(7.0), "courage": wave(4.0), "celebration": wave(9.0)}})
            }
            _ => json!({"cpu": wave(2.0), "memory": wave(6.0), "active_users": 100 + n % 17}),
        };
        json!({"type": "update", "dashboard": self.name, "seq": n, "timestamp": now_ms(),
               "delta": "state_update", "omega": 0.9, "data": body})
        .to_string()
    }

    /// Serves until the listener fails.
    /// Stops like a crashed server: the listener closes and every open connection is dropped.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Serves until [`Dashboard::stop`].
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.stopped() => return,
            };
            let Ok((stream, _)) = accepted else {
                continue;
            };
            let me = self.clone();
            let me2 = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.route(req)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades();
                let stopper = me2.clone();
                tokio::select! {
                    _ = conn => {}
                    _ = stopper.stopped() => {}
                }
            });
        }
    }

    fn route(self: Arc<Self>, mut req: Request<Incoming>) -> Response<Body> {
        let full = |s: StatusCode, ct: &'static str, b: String| {
            let mut r = Response::new(Full::new(Bytes::from(b)).boxed());
            *r.status_mut() = s;
            r.headers_mut()
                .insert("content-type", hyper::header::HeaderValue::from_static(ct));
            r
        };
        if let Some(key) = req.headers().get("sec-websocket-key").cloned() {
            let accept = derive_accept_key(key.as_bytes());
            let on = hyper::upgrade::on(&mut req);
            let me = self.clone();
            tokio::spawn(async move {
                if let Ok(up) = on.await {
                    let ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None)
                        .await;
                    me.session(ws).await;
                }
            });
            let mut r = Response::new(Full::new(Bytes::new()).boxed());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = r.headers_mut();
            h.insert("upgrade", "websocket".parse().unwrap());
            h.insert("connection", "Upgrade".parse().unwrap());
            h.insert("sec-websocket-accept", accept.parse().unwrap());
            return r;
        }
        match req.uri().path() {
            "/health" => full(
                StatusCode::OK,
                "application/json",
                json!({"status": "HEALTHY", "dashboard": self.name}).to_string(),
            ),
            "/events" => {
                let me = self.clone();
                let stream = futures_util::stream::unfold(0u64, move |i| {
                    let me = me.clone();
                    async move {
                        if i > 0 {
                            tokio::time::sleep(me.interval).await;
                        }
                        let ev = format!("event: update\ndata: {}\n\n", me.update());
                        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(ev))), i + 1))
                    }
                });
                let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
                r.headers_mut()
                    .insert("content-type", "text/event-stream".parse().unwrap());
                r.headers_mut()
                    .insert("cache-control", "no-cache".parse().unwrap());
                r
            }
            _ => full(
                StatusCode::OK,
                "text/html",
                format!("<h1>Iskra {} (demo)</h1>\n", self.name),
            ),
        }
    }

    async fn session(&self, ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) {
        let (mut tx, mut rx) = ws.split();
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                _ = self.stopped() => return,
                _ = tick.tick() => {
                    if tx.send(Message::text(self.update())).await.is_err() { return; }
                }
                m = rx.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let reply = match serde_json::from_str::<serde_json::Value>(&t) {
                            Ok(v) if v["type"] == "ping" => json!({"type": "pong", "timestamp": v["timestamp"], "delta": "heartbeat_received", "omega": 0.9}).to_string(),
                            _ => json!({"type": "echo", "data": t.as_str()}).to_string(),
                        };
                        if tx.send(Message::text(reply)).await.is_err() { return; }
                    }
                    Some(Ok(Message::Binary(b))) => { if tx.send(Message::Binary(b)).await.is_err() { return; } }
                    // Answer a close before leaving (tungstenite queued the reply): the client sees its own
                    // code back, not 1006.
                    Some(Ok(Message::Close(_))) => { let _ = tx.close().await; return; }
                    None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// `iskra-ws-sidecar demo-dashboard`.
pub async fn command(args: DemoDashboardArgs) -> u8 {
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return crate::exit::BIND;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        event_type = "demo_dashboard_started",
        dashboard = %args.name,
        listen = %addr
    );
    let d = Dashboard::new(&args.name, args.interval);
    tokio::select! {
        _ = d.serve(listener) => 1,
        _ = tokio::signal::ctrl_c() => 0,
    }
}
