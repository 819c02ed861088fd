//! The active prober (the seed's IskraWebSocket client and real-time monitor): keeps its own WebSocket to
//! the dashboard, reconnects with jittered exponential backoff, fails over primary → backups and back,
//! pings for RTT, notices missed pongs and a silent dashboard, and after `max_attempts` failures enters
//! degraded mode (`fallback_activated`), finds which downgrade transport works, and keeps trying at the
//! max delay — it never gives up. Every step is a lifecycle event.
//!
//! - [`backoff`]: the delay formula; [`transports`]: SSE, long-polling and polling checks;
//!   [`target`]: the upgrade request (`probe.path`, `probe.headers`, subprotocols, origin).
//! - A 4xx answer to the upgrade is a refusal, not a failure: the dashboard is up, the prober's request
//!   needs changing. It emits `ProbeRejected` (logged when the status changes) and keeps backing off.
//! - `websocket.fallback.active` follows `FallbackChanged`: backup, degraded, or a downgrade transport.
//! - [`outbox`]: the messages the prober delivers to the dashboard (the seed's offline buffer), flushed
//!   by the connection loop in `hold.rs`; [`send`]: `monitor --send`.

pub mod alert;
pub mod backoff;
pub mod check;
pub mod cmd;
mod hold;
pub mod outbox;
pub mod send;
pub mod target;
pub mod transports;

use std::sync::atomic::{AtomicU16, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::Config;
use crate::events::{ConnectCause, EventKind, EventSink, FallbackMode, Transport};
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
    /// The status of the refusal the prober is in (0: not refused, 1: closed without an answer).
    pub rejected: AtomicU16,
}

/// What one pass over the servers found.
enum Found {
    /// Connected to server `i`.
    Open(usize, Box<Ws>, Duration),
    /// Nothing connected.
    None,
}

impl Prober {
    fn emit(&self, kind: EventKind) {
        self.sink.emit(None, kind);
    }

    /// Records whether the primary accepts connections (any HTTP answer counts) for readiness and
    /// the proxy's restart detection.
    fn set_primary(&self, up: bool) {
        if let Some(s) = &self.primary_up {
            s.upstream_up.store(up, Relaxed);
            if up {
                s.upstream_seen.store(true, Relaxed);
            }
        }
    }

    /// Records whether the prober holds a WebSocket (gates `/ready` with `probe.gates_readiness`).
    fn set_probe_up(&self, up: bool) {
        if let Some(s) = &self.primary_up {
            s.probe_ws_up.store(up, Relaxed);
        }
    }

    /// Moves the fallback state to `to`, announcing a change.
    fn set_mode(&self, mode: &mut Option<FallbackMode>, to: Option<FallbackMode>) {
        if *mode != to {
            *mode = to;
            self.emit(EventKind::FallbackChanged {
                endpoint: self.target.endpoint.clone(),
                mode: to,
            });
        }
    }

    /// Servers the prober tries: all of them, or only the primary with `websocket.fallback.enabled` off.
    fn servers(&self) -> usize {
        if self.config.probe.fallback {
            self.target.urls.len()
        } else {
            1
        }
    }

    async fn connect(&self, i: usize, attempt: u32) -> Result<(Box<Ws>, Duration), ()> {
        let url = target::url_for(&self.target.urls[i], &self.config.probe);
        let endpoint = self.target.endpoint.clone();
        self.emit(EventKind::ProbeAttempt {
            endpoint: endpoint.clone(),
            url: redact(&url),
            attempt,
            transport: Transport::WebSocket,
        });
        let timeout = self.config.limits.upstream_timeout;
        let (cause, status, duration) =
            match target::upgrade(&url, &self.config.probe, timeout).await {
                target::Upgrade::Open(ws, d) => {
                    self.rejected.store(0, Relaxed);
                    return Ok((ws, d));
                }
                target::Upgrade::Refused(status, duration) => {
                    if i == 0 {
                        self.set_primary(true); // it answered: it is up, our request is refused
                    }
                    let code = status.unwrap_or(1); // 0 is "not refused"
                    let changed = self.rejected.swap(code, Relaxed) != code;
                    self.emit(EventKind::ProbeRejected {
                        endpoint,
                        url: redact(&url),
                        status,
                        duration,
                        changed,
                    });
                    return Err(());
                }
                target::Upgrade::Status(status, d) => (ConnectCause::BadResponse, Some(status), d),
                target::Upgrade::Failed(cause, d) => (cause, None, d),
            };
        self.rejected.store(0, Relaxed);
        if i == 0 {
            self.set_primary(status.is_some());
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

    async fn find(&self, attempt: u32) -> Found {
        for i in 0..self.servers() {
            if let Ok((ws, d)) = self.connect(i, attempt).await {
                return Found::Open(i, ws, d);
            }
        }
        Found::None
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let cfg = self.config.reconnection.clone();
        let mut attempt: u32 = 0;
        let mut failed_before = false;
        let mut fallback = false;
        let mut mode: Option<FallbackMode> = None;
        let mut last_server: Option<usize> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.find(attempt).await {
                Found::Open(i, ws, duration) => {
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
                    self.set_probe_up(true);
                    self.emit(EventKind::ProbeSucceeded {
                        endpoint: self.target.endpoint.clone(),
                        transport: Transport::WebSocket,
                        duration,
                        recovered: failed_before,
                    });
                    self.set_mode(&mut mode, (i > 0).then_some(FallbackMode::Backup));
                    attempt = 0;
                    fallback = false;
                    let lost = tokio::select! {
                        lost = self.hold(*ws, i) => lost,
                        _ = shutdown.wait_for(|s| *s) => return,
                    };
                    self.set_probe_up(false);
                    failed_before = lost;
                    if !lost {
                        continue; // moved back to the primary on purpose
                    }
                }
                Found::None => {
                    self.set_probe_up(false);
                    failed_before = true;
                    attempt = attempt.saturating_add(1);
                    let may_fall_back = self.config.probe.fallback;
                    if attempt >= cfg.max_attempts && !fallback && may_fall_back {
                        fallback = true;
                        self.emit(EventKind::FallbackActivated {
                            endpoint: self.target.endpoint.clone(),
                        });
                        self.set_mode(&mut mode, Some(FallbackMode::Degraded));
                        if self.config.probe.downgrade {
                            if let Some(t) = self.downgrade().await {
                                self.set_mode(&mut mode, Some(FallbackMode::of(t)));
                            }
                        }
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

    /// Finds the first downgrade transport that works on the primary, each tried for at most
    /// `websocket.fallback.timeout`.
    async fn downgrade(&self) -> Option<Transport> {
        let url = &self.target.urls[0];
        let timeout = self.config.probe.transport_timeout;
        for t in [Transport::Sse, Transport::LongPolling, Transport::Polling] {
            let endpoint = self.target.endpoint.clone();
            self.emit(EventKind::ProbeAttempt {
                endpoint: endpoint.clone(),
                url: redact(url),
                attempt: 0,
                transport: t,
            });
            let t0 = Instant::now();
            match transports::check(t, url, &self.paths, timeout).await {
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
                    return Some(t);
                }
                Err(f) => self.emit(EventKind::ProbeFailed {
                    endpoint,
                    transport: t,
                    duration: t0.elapsed(),
                    cause: f.cause,
                    status: f.status,
                }),
            }
        }
        None
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
