//! `iskra-ws-sidecar run`: the sidecar itself — load the configuration (exit 64 on a bad one), start
//! it ([`crate::app`]), say so, and drain on SIGTERM/SIGINT (exit 0).

use serde_json::{json, Value};

use crate::app::{start_embedded, Embed};
use crate::cli::RunArgs;
use crate::config::{self, Sources};
use crate::diag::LIFECYCLE;
use crate::exit;

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
    tracing::info!(
        event_type = "nofile_limit",
        soft_before = before,
        soft,
        hard = lim.rlim_max
    );
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
pub async fn command(args: RunArgs) -> u8 {
    let sources = Sources {
        file: args.cfg.config.clone(),
        flags: flag_overrides(&args),
    };
    let config = match config::load(&sources) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("hint: `iskra-ws-sidecar config` prints every key with its default");
            return exit::CONFIG;
        }
    };
    crate::diag::set_level(&config.telemetry.log_level);
    tracing::debug!(
        event_type = "config_loaded",
        file = sources.file.as_deref().map(|p| p.display().to_string()),
        dashboard = %config.dashboard,
        log_level = %config.telemetry.log_level
    );
    raise_nofile();
    let running = match start_embedded(config, Embed::default()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                crate::app::StartError::Bind { .. } => exit::BIND,
                crate::app::StartError::Telemetry(_) => exit::FAILURE,
            };
        }
    };
    let cfg = running.proxy.config.clone();
    tracing::info!(
        target: LIFECYCLE,
        event_type = "sidecar_started",
        delta = "sidecar_started",
        listen = %running.addr,
        admin = %running.admin_addr,
        upstream = %cfg.upstream.url,
        dashboard = %cfg.dashboard,
        version = env!("CARGO_PKG_VERSION"),
    );
    if cfg.probe.enabled {
        // Said out loud: where the prober upgrades, and with what (header names only).
        let t = crate::probe::target_of(&cfg);
        let mut line = crate::probe::target::describe(&t.urls, &cfg.probe);
        line["endpoint"] = json!(t.endpoint);
        tracing::info!(event_type = "probe_target", json = %line);
    }
    wait_for_signal().await;
    tracing::info!(
        target: LIFECYCLE,
        event_type = "sidecar_draining",
        delta = "sidecar_draining",
        grace_ms = cfg.shutdown_grace.as_millis() as u64
    );
    running.shutdown().await;
    tracing::info!(
        target: LIFECYCLE,
        event_type = "sidecar_stopped",
        delta = "sidecar_stopped"
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
