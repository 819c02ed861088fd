//! The active prober (the seed's IskraWebSocket client and real-time monitor): keeps its own WebSocket to
//! the dashboard, reconnects with jittered exponential backoff, fails over primary → backups and back,
//! pings for RTT, notices missed pongs and a silent dashboard, and after `max_attempts` failures enters
//! degraded mode (`fallback_activated`), finds which downgrade transport works, and keeps trying at the
//! max delay — it never gives up. Every step is a lifecycle event.
//!
//! - [`backoff`]: the delay formula; [`transports`]: SSE, long-polling and polling checks.
//! - [`outbox`]: the messages the prober delivers to the dashboard (the seed's offline buffer), flushed
//!   by the connection loop in `hold.rs`; [`send`]: `monitor --send`.

pub mod alert;
pub mod backoff;
pub mod check;
pub mod cmd;
mod hold;
pub mod outbox;
pub mod send;
pub mod transports;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_tungstenite::tungstenite;

use crate::config::Config;
use crate::events::{ConnectCause, EventKind, EventSink, Transport};
use transports::Paths;

/// The prober's WebSocket.
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

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
    /// Messages to deliver to the dashboard (None: pings only).
    pub outbox: Option<Arc<outbox::Outbox>>,
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

    async fn connect(&self, i: usize, attempt: u32) -> Result<(Ws, Duration), ()> {
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
