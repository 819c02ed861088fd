//! The active prober (the seed's IskraWebSocket client and real-time monitor): keeps its own WebSocket to
//! the dashboard, reconnects with jittered exponential backoff, fails over primary → backups and back,
//! pings for RTT, notices missed pongs and a silent dashboard, and after `max_attempts` failures enters
//! degraded mode (`fallback_activated`), finds which downgrade transport works, and keeps trying at the
//! max delay — it never gives up. Every step is a lifecycle event.
//!
//! - [`backoff`]: the delay formula; [`transports`]: SSE, long-polling and polling checks.

pub mod backoff;
pub mod check;
pub mod cmd;
pub mod transports;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::config::Config;
use crate::events::{ConnectCause, EventKind, EventSink, Peer, Transport};
use transports::Paths;

/// What one prober watches.
#[derive(Debug, Clone)]
pub struct Target {
    /// Endpoint name (the dashboard).
    pub endpoint: String,
    /// Primary first, then backups.
    pub urls: Vec<String>,
}

/// Builds the target of a sidecar: its upstream and backups.
pub fn target_of(cfg: &Config) -> Target {
    let mut urls = vec![cfg.upstream.url.clone()];
    urls.extend(cfg.backup_upstreams.iter().map(|u| u.url.clone()));
    Target {
        endpoint: cfg.dashboard.clone(),
        urls,
    }
}

/// The prober.
pub struct Prober {
    /// What to watch.
    pub target: Target,
    /// Settings.
    pub config: Arc<Config>,
    /// Events out.
    pub sink: EventSink,
    /// Readiness flag of the proxy (set while the primary answers).
    pub primary_up: Option<Arc<crate::proxy::Shared>>,
    /// Fallback transport paths.
    pub paths: Paths,
}

fn cause_of(e: &tungstenite::Error) -> (ConnectCause, Option<u16>) {
    match e {
        tungstenite::Error::Io(io) => (ConnectCause::from_io(io), None),
        tungstenite::Error::Http(r) => (ConnectCause::BadResponse, Some(r.status().as_u16())),
        _ => (ConnectCause::BadResponse, None),
    }
}

impl Prober {
    fn emit(&self, kind: EventKind) {
        self.sink.emit(None, kind);
    }

    fn set_primary(&self, up: bool) {
        if let Some(s) = &self.primary_up {
            s.upstream_up.store(up, Relaxed);
            if up {
                s.upstream_seen.store(true, Relaxed);
            }
        }
    }

    async fn connect(
        &self,
        i: usize,
        attempt: u32,
    ) -> Result<
        (
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
            Duration,
        ),
        (),
    > {
        let url = &self.target.urls[i];
        let endpoint = self.target.endpoint.clone();
        self.emit(EventKind::ProbeAttempt {
            endpoint: endpoint.clone(),
            url: redact(url),
            attempt,
            transport: Transport::WebSocket,
        });
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            self.config.limits.upstream_timeout,
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await;
        let duration = t0.elapsed();
        let (cause, status) = match r {
            Ok(Ok((ws, _))) => return Ok((ws, duration)),
            Ok(Err(e)) => cause_of(&e),
            Err(_) => (ConnectCause::TimedOut, None),
        };
        if i == 0 {
            self.set_primary(false);
        }
        self.emit(EventKind::ProbeFailed {
            endpoint,
            transport: Transport::WebSocket,
            duration,
            cause,
            status,
        });
        Err(())
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let cfg = self.config.reconnection.clone();
        let mut attempt: u32 = 0;
        let mut failed_before = false;
        let mut fallback = false;
        let mut last_server: Option<usize> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut connected = None;
            for i in 0..self.target.urls.len() {
                if let Ok((ws, d)) = self.connect(i, attempt).await {
                    connected = Some((i, ws, d));
                    break;
                }
            }
            match connected {
                Some((i, ws, duration)) => {
                    if let Some(prev) = last_server.filter(|p| *p != i) {
                        let (from, to) = (
                            redact(&self.target.urls[prev]),
                            redact(&self.target.urls[i]),
                        );
                        self.emit(EventKind::Failover {
                            endpoint: self.target.endpoint.clone(),
                            from,
                            to,
                        });
                    }
                    last_server = Some(i);
                    if i == 0 {
                        self.set_primary(true);
                    }
                    self.emit(EventKind::ProbeSucceeded {
                        endpoint: self.target.endpoint.clone(),
                        transport: Transport::WebSocket,
                        duration,
                        recovered: failed_before,
                    });
                    attempt = 0;
                    fallback = false;
                    let lost = tokio::select! {
                        lost = self.hold(ws, i) => lost,
                        _ = shutdown.wait_for(|s| *s) => return,
                    };
                    failed_before = lost;
                    if !lost {
                        continue; // moved back to the primary on purpose
                    }
                }
                None => {
                    failed_before = true;
                    attempt = attempt.saturating_add(1);
                    if attempt >= cfg.max_attempts && !fallback {
                        fallback = true;
                        self.emit(EventKind::FallbackActivated {
                            endpoint: self.target.endpoint.clone(),
                        });
                        self.downgrade().await;
                    }
                }
            }
            let n = if fallback {
                u32::MAX
            } else {
                attempt.saturating_sub(1)
            };
            let wait = backoff::delay(n, &cfg, rand::random::<f64>());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    /// Finds the first downgrade transport that works on the primary.
    async fn downgrade(&self) {
        let url = &self.target.urls[0];
        for t in [Transport::Sse, Transport::LongPolling, Transport::Polling] {
            let endpoint = self.target.endpoint.clone();
            self.emit(EventKind::ProbeAttempt {
                endpoint: endpoint.clone(),
                url: redact(url),
                attempt: 0,
                transport: t,
            });
            match transports::check(t, url, &self.paths, self.config.limits.upstream_timeout).await
            {
                Ok(duration) => {
                    self.emit(EventKind::Downgrade {
                        endpoint: endpoint.clone(),
                        to: t,
                    });
                    self.emit(EventKind::ProbeSucceeded {
                        endpoint,
                        transport: t,
                        duration,
                        recovered: false,
                    });
                    return;
                }
                Err(f) => self.emit(EventKind::ProbeFailed {
                    endpoint,
                    transport: t,
                    duration: Duration::ZERO,
                    cause: f.cause,
                    status: f.status,
                }),
            }
        }
    }

    /// Holds a connection: pings every interval, watches pongs and the dashboard's own messages; returns
    /// true when the link was lost, false when it left a backup because the primary is back.
    async fn hold(
        &self,
        ws: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        server: usize,
    ) -> bool {
        let hb = &self.config.heartbeat;
        let endpoint = self.target.endpoint.clone();
        let (mut tx, mut rx) = ws.split();
        let mut ping = tokio::time::interval(hb.interval);
        ping.tick().await;
        let mut outstanding: Option<Instant> = None;
        let mut missed = 0u32;
        let mut last_msg: Option<Instant> = None;
        let mut silence_reported = false;
        let silence_after = hb.interval + hb.timeout;
        let mut primary_check = tokio::time::interval(self.config.reconnection.max_delay);
        primary_check.tick().await;
        loop {
            tokio::select! {
                m = rx.next() => match m {
                    Some(Ok(Message::Pong(_))) => {
                        if let Some(sent) = outstanding.take() {
                            missed = 0;
                            self.emit(EventKind::PingPong { peer: Peer::Upstream, rtt: Some(sent.elapsed()) });
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        self.emit(EventKind::ProbeFailed { endpoint, transport: Transport::WebSocket, duration: Duration::ZERO, cause: ConnectCause::Reset, status: None });
                        if server == 0 { self.set_primary(false); }
                        return true;
                    }
                    Some(Ok(_)) => { last_msg = Some(Instant::now()); silence_reported = false; }
                },
                _ = ping.tick() => {
                    if !hb.enabled { continue; }
                    if let Some(sent) = outstanding {
                        if sent.elapsed() >= hb.timeout {
                            missed += 1;
                            outstanding = None;
                            if missed >= hb.failure_threshold {
                                self.emit(EventKind::HeartbeatTimeout { peer: Peer::Upstream, missed });
                                if server == 0 { self.set_primary(false); }
                                return true;
                            }
                        }
                    }
                    if let Some(t) = last_msg.filter(|t| !silence_reported && t.elapsed() > silence_after) {
                        silence_reported = true;
                        self.emit(EventKind::MissingHeartbeat { endpoint: endpoint.clone(), silence: t.elapsed() });
                    }
                    if outstanding.is_none() {
                        outstanding = Some(Instant::now());
                        if tx.send(Message::Ping(b"iskra-probe".to_vec().into())).await.is_err() { return true; }
                    }
                }
                _ = primary_check.tick(), if server != 0 => {
                    if let Ok(Ok(_)) = tokio::time::timeout(self.config.limits.upstream_timeout, tokio_tungstenite::connect_async(self.target.urls[0].as_str())).await {
                        let _ = tx.send(Message::Close(None)).await;
                        return false;
                    }
                }
            }
        }
    }
}

/// A URL without credentials or query string (for events and logs).
pub fn redact(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or("");
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{rest}")
        }
        None => no_query.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(super::redact("ws://user:pw@h:1/p?token=x"), "ws://h:1/p");
        assert_eq!(super::redact("ws://h:1"), "ws://h:1");
    }
}
