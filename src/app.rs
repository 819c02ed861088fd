//! Wiring of one sidecar: bind the listeners, start the proxy, telemetry and admin tasks, and drain on
//! SIGTERM/SIGINT (stop accepting, 1001 Going Away to open sessions, wait the grace period, exit 0).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::admin::Admin;
use crate::cli::RunArgs;
use crate::config::{self, Config, Sources};
use crate::events::{Event, EventSink};
use crate::proxy::{self, Stats};
use crate::telemetry::env::OtelEnv;
use crate::telemetry::{parse_level, Options, Telemetry};

/// Exit code for a bad configuration or usage (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code when an address cannot be bound (EX_UNAVAILABLE).
pub const EXIT_BIND: u8 = 69;

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
    let (sink, rx) = EventSink::channel(config.events_capacity);
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
    crate::jsonlog::set_min_level(&config.log_level);
    for w in &env.warnings {
        log_line("WARN", "otel_env", json!({"message": w}));
    }
    let opts = Options {
        dashboard,
        env,
        log_level: parse_level(&config.log_level),
        stdout_logs: !embed.quiet,
        spool_dir: config.spool_dir.clone(),
        spool_max_bytes: config.spool_max_bytes,
        handshake_max_age: config.limits.handshake_timeout
            + config.limits.upstream_timeout * (config.backup_upstreams.len() as u32 + 2),
        health_window: config.health_window,
        slo_latency_ms: config.slo_latency_ms,
        switches: config.switches,
        step_spans: config.step_spans,
    };
    let telemetry = Telemetry::new(opts, stats, sink);
    tokio::spawn(telemetry.clone().consume(rx, tap));
    // The prober's outbox (the seed's offline buffer): fed by POST /probe/send, flushed by the prober.
    let outbox = (config.probe_enabled && config.outbox.enabled).then(|| {
        crate::probe::outbox::for_sidecar(&config, shared.sink.clone(), telemetry.registry.clone())
    });
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
    if config.probe_enabled {
        let prober = crate::probe::Prober {
            target: crate::probe::target_of(&config),
            config: config.clone(),
            sink: shared.sink.clone(),
            primary_up: Some(shared.clone()),
            paths: config.probe_paths.clone(),
            outbox,
            rejected: Default::default(),
        };
        tokio::spawn(prober.run(shared.shutdown.clone()));
    }
    tokio::spawn(give_back_memory(shared.clone()));
    // Readiness needs the upstream reached once: try it now rather than waiting for the first client.
    let probe = shared.clone();
    tokio::spawn(async move {
        while !probe.upstream_seen.load(Relaxed) && !*probe.shutdown.borrow() {
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
            trim();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// Raises the soft limit on open descriptors to the hard limit (every connection is one, or two with
/// its upstream; distributions default the soft limit to 1024) and logs both.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let before = lim.rlim_cur;
    let raised = lim.rlim_cur < lim.rlim_max && {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 }
    };
    let soft = if raised { lim.rlim_max } else { before };
    log_line(
        "INFO",
        "nofile_limit",
        json!({"soft_before": before, "soft": soft, "hard": lim.rlim_max}),
    );
}

/// Prints one structured log line of the sidecar's own to stdout, through the one log writer
/// ([`crate::jsonlog`]): at or above `websocket.monitoring.log_level`, except the process's start, drain
/// and stop, which are always said.
pub fn log_line(level: &str, event_type: &str, fields: Value) {
    let always = matches!(
        event_type,
        "sidecar_started" | "sidecar_draining" | "sidecar_stopped"
    );
    let out = crate::jsonlog::Stream::Stdout;
    crate::jsonlog::own(out, always, level, "iskra-ws-sidecar", event_type, &fields);
}

/// Collects the run flags as config overrides.
fn flag_overrides(args: &RunArgs) -> Vec<(&'static str, Value)> {
    let mut flags = Vec::new();
    for (key, v) in [
        ("listen", &args.listen),
        ("upstream", &args.upstream),
        ("admin", &args.admin),
        ("dashboard", &args.dashboard),
    ] {
        if let Some(v) = v {
            flags.push((key, Value::String(v.clone())));
        }
    }
    flags
}

/// `iskra-ws-sidecar run`.
pub async fn run_command(args: RunArgs) -> u8 {
    let sources = Sources {
        file: args.cfg.config.clone(),
        flags: flag_overrides(&args),
    };
    let config = match config::load(&sources) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("hint: `iskra-ws-sidecar config` prints every key with its default");
            return EXIT_CONFIG;
        }
    };
    raise_nofile();
    let running = match start_embedded(config, Embed::default()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BIND;
        }
    };
    let cfg = running.proxy.config.clone();
    log_line(
        "INFO",
        "sidecar_started",
        json!({
            "delta": "sidecar_started", "listen": running.addr.to_string(), "admin": running.admin_addr.to_string(),
            "upstream": cfg.upstream.url, "dashboard": cfg.dashboard, "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    if cfg.probe_enabled {
        // Said out loud: where the prober upgrades, and with what (header names only).
        let t = crate::probe::target_of(&cfg);
        let mut line = crate::probe::target::describe(&t.urls, &cfg.probe);
        line["endpoint"] = json!(t.endpoint);
        log_line("INFO", "probe_target", line);
    }
    wait_for_signal().await;
    log_line(
        "INFO",
        "sidecar_draining",
        json!({"delta": "sidecar_draining", "grace_ms": cfg.shutdown_grace.as_millis() as u64}),
    );
    running.shutdown().await;
    log_line(
        "INFO",
        "sidecar_stopped",
        json!({"delta": "sidecar_stopped"}),
    );
    0
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
