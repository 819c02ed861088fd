//! Thin entry point: CLI → the command ([`iskra_ws_sidecar::cmd`]) → exit code (64 on bad usage).

use std::process::ExitCode;

use clap::Parser;
use iskra_ws_sidecar::cli::Cli;
use iskra_ws_sidecar::{cmd, exit};

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
    iskra_ws_sidecar::diag::init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(cmd::run(cli.command));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}
