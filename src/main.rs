//! Thin entry point: CLI → config → run → exit code (64 on bad config or usage).

use std::process::ExitCode;

use clap::Parser;
use iskra_ws_sidecar::cli::{Cli, Command};
use iskra_ws_sidecar::{app, config, demo, exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::CONFIG
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        match cli.command {
            Command::Run(args) => app::run_command(args).await,
            Command::Config(args) => config::command::run(args),
            Command::DemoDashboard(args) => demo::dashboard::command(args).await,
            Command::Demo(args) => demo::command(args).await,
            Command::Chaos(args) => iskra_ws_sidecar::chaos::command(args).await,
            Command::Check(args) => iskra_ws_sidecar::probe::cmd::check_command(args).await,
            Command::Monitor(args) => iskra_ws_sidecar::probe::cmd::monitor_command(args).await,
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}
