//! Wiring of one sidecar (the `run` command, the demo and the tests start it here): bind the listeners, start the proxy, telemetry and admin tasks, and drain on
//! SIGTERM/SIGINT (stop accepting, 1001 Going Away to open sessions, wait the grace period, exit 0).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::admin::Admin;
use crate::config::Config;
use crate::events::{Event, EventSink};
use crate::proxy::{self, Stats};
use crate::telemetry::env::OtelEnv;
use crate::telemetry::{parse_level, Options, Telemetry};

/// A started sidecar.
pub struct Running {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The admin server.
    pub admin_addr: SocketAddr,
    /// Proxy state.
    pub proxy: Arc<proxy::Shared>,
    /// Telemetry state.
    pub telemetry: Arc<Telemetry>,
    shutdown: watch::Sender<bool>,
}

/// Why a sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        /// The config key.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The telemetry thread could not start.
    #[error("cannot start the telemetry thread: {0}")]
    Telemetry(std::io::Error),
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { key, addr, source })
}

/// How a sidecar is embedded (tests and the demo override the defaults).
#[derive(Default)]
pub struct Embed {
    /// Receives every event after telemetry has seen it.
    pub tap: Option<mpsc::UnboundedSender<Event>>,
    /// Telemetry settings instead of the process's `OTEL_*` environment.
    pub otel: Option<OtelEnv>,
    /// Keep stdout free of JSON log lines (the demo draws there).
    pub quiet: bool,
}

/// Starts an embedded sidecar (no JSON log lines on stdout); `tap` receives every event after
/// telemetry has seen it (tests, the demo).
pub async fn start(
    config: Config,
    tap: Option<mpsc::UnboundedSender<Event>>,
) -> Result<Running, StartError> {
    start_embedded(
        config,
        Embed {
            tap,
            otel: None,
            quiet: true,
        },
    )
    .await
}

/// Starts a sidecar with embedding options.
pub async fn start_embedded(config: Config, embed: Embed) -> Result<Running, StartError> {
    let tap = embed.tap;
    let config = Arc::new(config);
    let listener = bind("listen", config.listen).await?;
    // Accepted connections inherit TCP_NODELAY from the listener (Linux): one system call, not one per
    // connection. The listener checks the first accepted socket and sets it per connection otherwise.
    let _ = socket2::SockRef::from(&listener).set_tcp_nodelay(true);
    let admin_listener = bind("admin", config.admin).await?;
    let (sink, rx) = EventSink::channel(config.telemetry.events_capacity);
    let stats = Arc::new(Stats::default());
    let (tx, shutdown) = watch::channel(false);
    let shared = proxy::Shared::new(config.clone(), sink.clone(), stats.clone(), shutdown);
    let dashboard = config.dashboard.clone();
    let env = embed.otel.unwrap_or_else(|| {
        OtelEnv::from_process(
            &format!("iskra-ws-sidecar-{dashboard}"),
            &[("iskra.dashboard".into(), dashboard.clone())],
        )
    });
    crate::diag::init();
    crate::diag::set_level(&config.telemetry.log_level);
    let otel_warnings = env.warnings.clone();
    let opts = Options {
        dashboard,
        env,
        log_level: parse_level(&config.telemetry.log_level),
        stdout_logs: !embed.quiet,
        spool_dir: config.telemetry.spool_dir.clone(),
        spool_max_bytes: config.telemetry.spool_max_bytes,
        handshake_max_age: config.limits.handshake_timeout
            + config.limits.upstream_timeout * (config.backup_upstreams.len() as u32 + 2),
        health_window: config.telemetry.health_window,
        slo_latency_ms: config.slo_latency_ms,
        switches: config.switches,
        step_spans: config.telemetry.step_spans,
    };
    // The prober's outbox (the seed's offline buffer): fed by POST /probe/send, flushed by the prober.
    let outbox = (config.probe.enabled && config.outbox.enabled)
        .then(|| crate::probe::outbox::for_sidecar(&config, shared.sink.clone()));
    let parts = (stats, outbox.clone(), sink);
    let telemetry = Telemetry::spawn(opts, parts, rx, tap)
        .await
        .map_err(StartError::Telemetry)?;
    if !embed.quiet {
        // The process's own WARN and ERROR lines go out with this sidecar's logs (said from here on).
        crate::diag::export_to(telemetry.own_logs());
    }
    for w in &otel_warnings {
        tracing::warn!(event_type = "otel_env", message = %w);
    }
    let admin = Arc::new(Admin {
        proxy: shared.clone(),
        telemetry: telemetry.clone(),
        listening: true.into(),
        outbox: outbox.clone(),
    });
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        key: "listen",
        addr: config.listen,
        source,
    })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            key: "admin",
            addr: config.admin,
            source,
        })?;
    tokio::spawn(admin.serve(admin_listener));
    tokio::spawn(proxy::listener::serve(listener, shared.clone()));
    if config.probe.enabled {
        let prober = crate::probe::Prober {
            target: crate::probe::target_of(&config),
            config: config.clone(),
            sink: shared.sink.clone(),
            readiness: Some(shared.readiness.clone()),
            outbox,
            rejected: Default::default(),
        };
        tokio::spawn(prober.run(shared.shutdown.clone()));
    }
    tokio::spawn(give_back_memory(shared.clone()));
    // Readiness needs the upstream reached once: try it now rather than waiting for the first client.
    let probe = shared.clone();
    tokio::spawn(async move {
        while !probe.readiness.upstream_seen.load(Relaxed) && !*probe.shutdown.borrow() {
            if let Ok(d) = proxy::upstream::dial(&probe, None).await {
                drop(d);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    Ok(Running {
        addr,
        admin_addr,
        proxy: shared,
        telemetry,
        shutdown: tx,
    })
}

impl Running {
    /// Stops accepting, sends 1001 to open sessions, and waits up to the grace period for them to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let deadline = Instant::now() + self.proxy.config.shutdown_grace;
        while self.proxy.stats.open_connections.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Give the session-end events a moment to reach telemetry, then export what is held.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        self.telemetry
            .flush_and_wait(std::time::Duration::from_secs(2))
            .await;
    }
}

/// After a burst of connections has passed, hands the allocator's free memory back to the system, so
/// that a flood (of aborted handshakes, say) does not leave the process at its high-water mark. A burst
/// has passed when, since the last trim, open connections fell by at least 512 to at most half of their
/// peak, or the accept rate fell to a quarter of a peak of at least 1,000 per 5 s. Checked every 5 s;
/// glibc only (elsewhere a no-op).
async fn give_back_memory(shared: Arc<proxy::Shared>) {
    let (mut peak_open, mut peak_rate, mut last_accepted) = (0i64, 0u64, 0u64);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        if *shared.shutdown.borrow() {
            return;
        }
        let open = shared.stats.open_connections.load(Relaxed);
        let accepted = shared.stats.accepted.load(Relaxed);
        let rate = accepted - std::mem::replace(&mut last_accepted, accepted);
        peak_open = peak_open.max(open);
        peak_rate = peak_rate.max(rate);
        let fewer_open = peak_open - open >= 512 && open <= peak_open / 2;
        let calmer = peak_rate >= 1000 && rate <= peak_rate / 4;
        if fewer_open || calmer {
            (peak_open, peak_rate) = (open, rate);
            crate::heap::give_back_free_memory();
        }
    }
}
