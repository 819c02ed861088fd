//! Command-line definitions (clap) only; `main.rs` dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The OpenTelemetry-native WebSocket sidecar for the Iskra dashboards.
#[derive(Debug, Parser)]
#[command(name = "iskra-ws-sidecar", version, about, long_about = None,
    after_help = "Examples:\n  iskra-ws-sidecar run --upstream ws://127.0.0.1:3001\n  iskra-ws-sidecar run --config sidecar.yaml\n  iskra-ws-sidecar config --check sidecar.json\n\nExit codes: 0 ok, 1 failure, 64 bad configuration or usage, 69 cannot bind an address.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Config sources shared by every command.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// Config file (TOML, YAML or JSON by extension; the seed's JSON shape loads as is).
    #[arg(long, short = 'c', env = "ISKRA_SIDECAR_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The prober's options, for `check` and `monitor` (the same keys as `probe.*` in a config file or
/// `ISKRA_SIDECAR_PROBE__*`; a flag wins).
#[derive(Debug, Args, Clone, Default)]
pub struct ProbeArgs {
    /// Upgrade at this path (and query) instead of the URL's own, e.g. '/socket.io/?EIO=4&transport=websocket'.
    #[arg(long, value_name = "PATH")]
    pub probe_path: Option<String>,
    /// Offer this subprotocol (repeatable), e.g. graphql-transport-ws.
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// Send this Origin.
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// Add a header to the upgrade, 'Name: value' (repeatable). Visible to `ps`: for tokens prefer
    /// probe.header_files in a config file or ISKRA_SIDECAR_PROBE__HEADER_FILES__<NAME>.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

impl ProbeArgs {
    /// The flags as config overrides (validated with everything else).
    pub fn overrides(&self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::Value;
        let mut out = Vec::new();
        if let Some(p) = &self.probe_path {
            out.push(("probe.path", Value::String(p.clone())));
        }
        if !self.subprotocols.is_empty() {
            out.push(("probe.subprotocols", serde_json::json!(self.subprotocols)));
        }
        if let Some(o) = &self.origin {
            out.push(("probe.origin", Value::String(o.clone())));
        }
        if !self.headers.is_empty() {
            let map: serde_json::Map<String, Value> = self
                .headers
                .iter()
                .map(|h| match h.split_once(':') {
                    Some((n, v)) => (n.trim().to_string(), Value::String(v.trim().to_string())),
                    None => (h.trim().to_string(), Value::String(String::new())),
                })
                .collect();
            out.push(("probe.headers", Value::Object(map)));
        }
        out
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar in front of one dashboard.
    #[command(
        after_help = "Examples:\n  iskra-ws-sidecar run\n  iskra-ws-sidecar run --listen 0.0.0.0:8000 --upstream ws://127.0.0.1:3001 --admin 0.0.0.0:8080\n  ISKRA_SIDECAR_LIMITS__MAX_CONNECTIONS=5000 iskra-ws-sidecar run -c sidecar.toml"
    )]
    Run(RunArgs),
    /// Print the effective configuration, or check a file (`--check FILE`: exit 0 valid, 64 invalid).
    #[command(
        after_help = "Examples:\n  iskra-ws-sidecar config\n  iskra-ws-sidecar config --json\n  iskra-ws-sidecar config --check sidecar.yaml"
    )]
    Config(ConfigCmd),
    /// The embedded default: three demo dashboards, a sidecar in front of each, synthetic clients, a live view.
    #[command(
        after_help = "Examples:\n  iskra-ws-sidecar demo\n  iskra-ws-sidecar demo --duration 30s\n  OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 iskra-ws-sidecar demo --duration 2m"
    )]
    Demo(DemoArgs),
    /// Health-check endpoints (the seed's script): HTTP health, WebSocket connect, ping, latency vs SLO.
    #[command(
        after_help = "Examples:\n  iskra-ws-sidecar check\n  iskra-ws-sidecar check --json ws://127.0.0.1:8000 ws://127.0.0.1:3002\n  iskra-ws-sidecar check http://127.0.0.1:8080/ready   # a Kubernetes exec probe\n\nExit codes: 0 all healthy, 1 any failed, 64 bad configuration."
    )]
    Check(CheckArgs),
    /// Watch endpoints (the seed's real-time monitor): success rate, latency percentiles, SLO violations.
    #[command(
        after_help = "Examples:\n  iskra-ws-sidecar monitor\n  iskra-ws-sidecar monitor --json --interval 5s ws://127.0.0.1:8000\n  iskra-ws-sidecar monitor --json --count 1 --send messages.txt ws://127.0.0.1:3001   # deliver each line, then exit\n  tail -f updates.log | iskra-ws-sidecar monitor --send - ws://127.0.0.1:3001\n\nWith --send, each line is queued and delivered in order to the first endpoint through reconnects\n(confirmed by a pong); --json adds queued/delivered/dropped/pending counts to checkComplete and ends\nwith a sendComplete line. Exit 1 if a check failed or a line was dropped or left undelivered."
    )]
    Monitor(MonitorArgs),
    /// Run the seed's chaos scenarios against a running sidecar (whose upstream echoes); a JSON report.
    #[command(
        after_help = "Examples:\n  iskra-ws-sidecar chaos ws://127.0.0.1:8000 --admin http://127.0.0.1:8080\n  iskra-ws-sidecar chaos ws://127.0.0.1:8000 --scenario server_overload --scenario protocol_violation --json\n  iskra-ws-sidecar chaos ws://127.0.0.1:8000 --pid $(pidof iskra-ws-sidecar) --cycles 100000 --scenario memory_leak\n  iskra-ws-sidecar chaos ws://127.0.0.1:8000 --admin http://127.0.0.1:8080 --pid $(pidof iskra-ws-sidecar) --scenario aborted_handshakes --scenario pong_flood\n\nScenarios: connection_timeout, random_disconnection, server_overload, protocol_violation, memory_leak,\nheartbeat_failure, slowloris, connection_flood, aborted_handshakes (RSS via --pid), refused_upgrade, pong_flood\n(network_partition, collector outage and SIGTERM drain need\nprocess control and run in the test suite). Exit codes: 0 all passed, 1 any failed (or none ran)."
    )]
    Chaos(ChaosArgs),
    /// Run a demo dashboard: a small WebSocket server streaming JSON updates, with /health and an SSE feed.
    #[command(
        name = "demo-dashboard",
        after_help = "Examples:\n  iskra-ws-sidecar demo-dashboard --name pulse --listen 127.0.0.1:3001"
    )]
    DemoDashboard(DemoDashboardArgs),
}

/// `run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config sources.
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Address clients connect to (default 0.0.0.0:8000).
    #[arg(long)]
    pub listen: Option<String>,
    /// The dashboard's WebSocket server (default ws://127.0.0.1:3001).
    #[arg(long)]
    pub upstream: Option<String>,
    /// Admin server address for /health, /ready, /metrics (default 0.0.0.0:8080).
    #[arg(long)]
    pub admin: Option<String>,
    /// Which dashboard this is: pulse, seams or voices.
    #[arg(long)]
    pub dashboard: Option<String>,
}

/// `config` flags.
#[derive(Debug, Args)]
pub struct ConfigCmd {
    /// Config sources.
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Validate this file and exit 0 (valid) or 64 (invalid).
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `demo-dashboard` flags.
#[derive(Debug, Args)]
pub struct DemoDashboardArgs {
    /// pulse, seams or voices (shapes the JSON it streams).
    #[arg(long, default_value = "pulse")]
    pub name: String,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub listen: String,
    /// Interval between streamed updates, e.g. 1s or 250ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
}

/// `demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this long (e.g. 10s, 2m); without it, run until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Synthetic clients per dashboard.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
}

/// `check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config sources (default targets: the configured dashboards).
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Endpoints: ws://… (health, connect, ping) or http://… (a GET that must answer 2xx).
    pub urls: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Per-step timeout, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// The prober's target options.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// POST a Slack-format alert here (http:// or https://) when anything failed; default
    /// `alerts.slack_webhook_url` (SLACK_WEBHOOK_URL). PagerDuty too when PAGERDUTY_API_KEY is set.
    #[arg(long)]
    pub webhook: Option<String>,
}

/// `monitor` flags.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Config sources (default targets: the configured dashboards).
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// Endpoints to watch.
    pub urls: Vec<String>,
    /// The prober's target options.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Between rounds.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Stop after this many rounds.
    #[arg(long)]
    pub count: Option<u64>,
    /// Print events as JSON lines (connectionFailed, sloViolation, checkComplete, sendComplete).
    #[arg(long)]
    pub json: bool,
    /// Deliver each line of FILE (`-`: stdin) to the first endpoint, through reconnects.
    #[arg(long, value_name = "FILE")]
    pub send: Option<PathBuf>,
}

/// `chaos` flags.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// ws://host:port of a running sidecar (its upstream must echo).
    pub target: String,
    /// http://host:port of its admin server, for /metrics checks.
    #[arg(long)]
    pub admin: Option<String>,
    /// Run only these scenarios (repeatable).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The sidecar's PID, for the memory_leak scenario's RSS readings.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Connect/close cycles of memory_leak, and aborted handshakes of aborted_handshakes.
    #[arg(long, default_value_t = 100_000)]
    pub cycles: u64,
    /// Unsolicited heartbeat-shaped pongs pong_flood sends on one session.
    #[arg(long, default_value_t = 200_000)]
    pub pongs: u64,
    /// The target's heartbeat interval + timeout × threshold (the seed's: 30s + 10s × 3).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub heartbeat_budget: std::time::Duration,
    /// The target's request-head timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: std::time::Duration,
    /// The target's upstream timeout.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: std::time::Duration,
    /// Most connections the flood opens looking for 503 (needs `ulimit -n` above it).
    #[arg(long, default_value_t = 11_000)]
    pub flood_cap: usize,
    /// Random seed, for a repeatable run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// dashboard_restart: a shell command that restarts the dashboard behind the target and returns
    /// once it was started again (e.g. `kubectl rollout restart deploy/pulse && sleep 2`).
    #[arg(long, value_name = "CMD")]
    pub restart_command: Option<String>,
    /// dashboard_restart: clients holding sessions through the restart.
    #[arg(long, default_value_t = 20)]
    pub restart_clients: usize,
}
