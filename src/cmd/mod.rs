//! Every command of the binary, one module each (as in tokio's mini-redis): [`run`] (the sidecar),
//! [`config`], [`check`], [`monitor`], [`demo`] (and `demo-dashboard`), [`chaos`]. Each returns its exit
//! code ([`crate::exit`]); what they share — loading the configuration with the prober's flags, the
//! default targets — is here.

pub mod chaos;
pub mod check;
pub mod config;
pub mod demo;
pub mod monitor;
pub mod run;

use crate::cli::Command;
use crate::config::{Config, Sources};
use crate::exit;

/// Runs one command; returns its exit code.
pub async fn run(command: Command) -> u8 {
    match command {
        Command::Run(args) => run::command(args).await,
        Command::Config(args) => config::command(args),
        Command::DemoDashboard(args) => demo::dashboard::command(args).await,
        Command::Demo(args) => demo::command(args).await,
        Command::Chaos(args) => chaos::command(args).await,
        Command::Check(args) => check::command(args).await,
        Command::Monitor(args) => monitor::command(args).await,
    }
}

pub(crate) fn load(
    cfg: &crate::cli::ConfigArgs,
    probe: &crate::cli::ProbeArgs,
) -> Result<Config, u8> {
    crate::config::load(&Sources {
        file: cfg.config.clone(),
        flags: probe.overrides(),
    })
    .map_err(|e| {
        eprintln!("{e}");
        exit::CONFIG
    })
}

/// The latency SLO to judge against, unless `iskra.slo_monitoring` is off.
pub(crate) fn slo(cfg: &Config) -> Option<&crate::config::Slo> {
    cfg.switches.slo_monitoring.then_some(&cfg.slo_latency_ms)
}

pub(crate) fn targets(cfg: &Config, urls: &[String]) -> Vec<String> {
    if !urls.is_empty() {
        return urls.to_vec();
    }
    let mut eps: Vec<_> = cfg.connections.values().collect();
    eps.sort_by_key(|e| e.priority);
    eps.into_iter().map(|e| e.url.clone()).collect()
}
