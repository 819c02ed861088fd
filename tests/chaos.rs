//! The chaos suite against real peers: the sidecar binary in front of a node `ws` echo server, driven by
//! `iskra_ws_sidecar::chaos::run` (the same code as `iskra-ws-sidecar chaos TARGET`) for the scenarios
//! that run from outside; [`host`] has the ones that need control of the host: a network partition
//! (iptables), a SIGSTOPped Python `websockets` client, and an OTLP collector outage. Every test asserts
//! numbers and prints what it measured. SIGTERM drain lives in tests/relay.rs (`sigterm_sends_1001_…`).
//!
//! Tests run one at a time (a shared lock): they measure timings on a small CI machine.
//! Knobs: `ISKRA_CHAOS_CYCLES` (memory_leak, default 100000, the figure) and
//! `ISKRA_CHAOS_OUTAGE_SECS` (collector outage, default 60 — the figure, and what CI runs; set
//! it lower for a quick local run).

#[path = "chaos/host.rs"]
mod host;
mod support;

use std::time::Duration;

use iskra_ws_sidecar::chaos::{self, ChaosOptions, ScenarioResult};

use support::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Heartbeats of every sidecar here: interval 300 ms, timeout 200 ms, threshold 2.
const HB: &[(&str, &str)] = &[
    ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__INTERVAL", "300"),
    ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__TIMEOUT", "200"),
    ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__FAILURE_THRESHOLD", "2"),
];
/// The detection bound for those settings: interval + timeout × threshold.
const HB_BUDGET: Duration = Duration::from_millis(300 + 200 * 2);
/// What the relay's timer needs: unanswered pings are retried every timeout, so the same bound.
const HB_TIMER_BOUND: Duration = Duration::from_millis(300 + 200 * 2);

/// Starts the sidecar binary (support::sidecar drains its stdout so a busy run never blocks).
fn sidecar_drained(upstream: &str, env: &[(&str, &str)]) -> Sidecar {
    sidecar(upstream, &[], env)
}

struct Rig {
    _up: NodeWs,
    sc: Sidecar,
}

fn rig(env: &[(&str, &str)]) -> Rig {
    rig_of(std::path::Path::new(bin()), env)
}

fn rig_of(binary: &std::path::Path, env: &[(&str, &str)]) -> Rig {
    let up = node_ws(&[]);
    let mut all = HB.to_vec();
    all.extend_from_slice(env);
    let sc = sidecar_of(binary, &format!("ws://127.0.0.1:{}", up.port), &[], &all);
    Rig { _up: up, sc }
}

fn opts(sc: &Sidecar, scenario: &str) -> ChaosOptions {
    let mut o = ChaosOptions::new(format!("ws://{}/chaos", sc.addr));
    o.admin = Some(format!("http://{}", sc.admin));
    o.scenarios = vec![scenario.to_string()];
    o.heartbeat_budget = HB_BUDGET;
    o.pid = Some(sc.proc.child.id());
    o
}

/// Runs one scenario, prints the report, and returns its single result.
async fn one(o: &ChaosOptions) -> ScenarioResult {
    let report = chaos::run(o).await;
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report.scenarios.len(), 1);
    let r = report.scenarios[0].clone();
    assert_eq!(
        (report.passed, report.failed, report.skipped),
        (
            usize::from(r.passed),
            usize::from(!r.passed && !r.skipped),
            usize::from(r.skipped)
        )
    );
    r
}

fn passed(r: &ScenarioResult) {
    assert!(r.passed && !r.skipped, "{} failed: {:?}", r.name, r.why);
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_timeout_a_silent_upstream_gets_504_within_the_upstream_timeout() {
    let _serial = SERIAL.lock().await;
    // An upstream that accepts TCP (the kernel completes the handshake) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let sc = sidecar_drained(
        &format!("ws://127.0.0.1:{port}"),
        &[("ISKRA_SIDECAR_LIMITS__UPSTREAM_TIMEOUT_MS", "500")],
    );
    let mut o = opts(&sc, "connection_timeout");
    o.upstream_timeout = Duration::from_millis(500);
    let r = one(&o).await;
    passed(&r);
    for a in r.measured["attempts"].as_array().unwrap() {
        assert_eq!(a["status"], 504, "{a}");
        let took = a["ms"].as_f64().unwrap();
        assert!((450.0..1000.0).contains(&took), "answered after {took} ms");
    }
    // The same check against a live upstream: 101 at once.
    let live = rig(&[]);
    let r = one(&opts(&live.sc, "connection_timeout")).await;
    passed(&r);
    for a in r.measured["attempts"].as_array().unwrap() {
        assert_eq!(a["status"], 101, "{a}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_disconnection_leaves_the_sidecar_serving_and_releases_every_session() {
    let _serial = SERIAL.lock().await;
    let rig = rig(&[]);
    let r = one(&opts(&rig.sc, "random_disconnection")).await;
    passed(&r);
    let m = &r.measured;
    assert_eq!(m["clients"], 40);
    assert!(m["mid_frame"].as_u64().unwrap() >= 20 && m["reset"].as_u64().unwrap() >= 1);
    assert!(m["fresh_session_ms"].is_number());
    assert!(m["active_after"].as_f64().unwrap() <= m["active_before"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_overload_delivers_all_5000_messages_byte_identical() {
    let _serial = SERIAL.lock().await;
    let rig = rig(&[]);
    let r = one(&opts(&rig.sc, "server_overload")).await;
    passed(&r);
    let m = &r.measured;
    assert_eq!(
        (m["sent"].as_u64(), m["echoed"].as_u64()),
        (Some(5000), Some(5000))
    );
    assert_eq!(
        (m["lost"].as_u64(), m["corrupted"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_violations_get_their_rfc_codes_and_count_as_protocol_errors() {
    let _serial = SERIAL.lock().await;
    let rig = rig(&[]);
    let r = one(&opts(&rig.sc, "protocol_violation")).await;
    passed(&r);
    let m = &r.measured;
    for (name, f) in m["frames"].as_object().unwrap() {
        assert_eq!(f["got"], f["expected"], "{name}");
    }
    assert_eq!(m["frames"]["invalid UTF-8 text"]["got"], 1007);
    assert_eq!(m["frames"]["bad opcode"]["got"], 1002);
    for (input, outcome) in m["seed_inputs"].as_object().unwrap() {
        assert_eq!(outcome, "echoed", "{input}");
    }
    assert_eq!(m["seed_inputs"].as_object().unwrap().len(), 8);
    let sidecar_detected = m["sidecar_detected"].as_f64().unwrap();
    assert_eq!(sidecar_detected, 8.0);
    assert!(m["protocol_error_metric_delta"].as_f64().unwrap() >= sidecar_detected);
}

/// The release binary (what users run, see support::release_bin) exporting to a reachable collector:
/// with none, spans and logs pile up in the in-memory spool (bounded by telemetry.spool_max_bytes),
/// which is RSS growth but not a leak of the relay.
async fn release_rig_with_collector() -> (Rig, support::otlp::Received, tokio::task::JoinHandle<()>)
{
    let (otlp, rec, h) = support::otlp::grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let rig = rig_of(
        &release_bin(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    (rig, rec, h)
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_leak_rss_returns_within_10_percent_of_the_warm_baseline() {
    let _serial = SERIAL.lock().await;
    let (rig, rec, _h) = release_rig_with_collector().await;
    let mut o = opts(&rig.sc, "memory_leak");
    o.cycles = env_u64("ISKRA_CHAOS_CYCLES", 100_000);
    let r = one(&o).await;
    let rss = &r.measured["rss_kib"];
    println!(
        "memory_leak: {} cycles ({} warm-up) at {} cycles/s; RSS KiB start {} warm baseline {} peak {} after {} ({} %)",
        o.cycles, r.measured["warm_cycles"], r.measured["cycles_per_s"], rss["start"],
        rss["warm_baseline"], rss["peak"], rss["after"], r.measured["growth_pct"]
    );
    println!(
        "memory_leak: the collector received {} spans",
        rec.spans().len()
    );
    passed(&r);
    assert_eq!(r.measured["warm_cycles"], 5000.min(o.cycles / 4).max(1));
    let (base, after) = (
        rss["warm_baseline"].as_f64().unwrap(),
        rss["after"].as_f64().unwrap(),
    );
    assert!(
        after <= base * 1.10,
        "RSS {after} KiB vs baseline {base} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_failure_a_silent_raw_client_is_dropped_within_the_budget() {
    let _serial = SERIAL.lock().await;
    let rig = rig(&[]);
    let r = one(&opts(&rig.sc, "heartbeat_failure")).await;
    passed(&r);
    let after = r.measured["closed_after_ms"].as_f64().unwrap();
    println!(
        "heartbeat_failure: dropped after {after} ms; issue bound {HB_BUDGET:?} (+{:?} slack), relay timer bound {HB_TIMER_BOUND:?}",
        chaos::slack(HB_BUDGET)
    );
    assert!(
        after >= 500.0,
        "closed before two beats could be missed: {after} ms"
    );
    assert!(r.measured["pings_seen"].as_u64().unwrap() >= 2);
    assert!(r.measured["heartbeat_missed_delta"].as_f64().unwrap() >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_failure_fails_honestly_when_the_sidecar_has_heartbeats_disabled() {
    let _serial = SERIAL.lock().await;
    let rig = rig(&[("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__ENABLED", "false")]);
    let o = opts(&rig.sc, "heartbeat_failure");
    let report = chaos::run(&o).await;
    println!("{}", chaos::render_text(&report));
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let r = &report.scenarios[0];
    assert!(
        !r.passed && !r.skipped,
        "a broken sidecar must fail the scenario"
    );
    let why = r.why.as_deref().unwrap();
    assert!(why.contains("heartbeats are off"), "{why}");
    assert_eq!(r.measured["pings_seen"], 0);
    assert!(r.measured["closed_after_ms"].is_null());
    assert_eq!((report.passed, report.failed), (0, 1));
    assert_eq!(chaos::exit_code(&report), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_heads_are_cut_within_the_handshake_timeout() {
    let _serial = SERIAL.lock().await;
    let rig = rig(&[("ISKRA_SIDECAR_LIMITS__HANDSHAKE_TIMEOUT_MS", "1000")]);
    let mut o = opts(&rig.sc, "slowloris");
    o.handshake_timeout = Duration::from_millis(1000);
    let r = one(&o).await;
    passed(&r);
    let conns = r.measured["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 6);
    for c in conns {
        let closed = c["closed_ms"].as_f64().unwrap();
        assert!((900.0..1500.0).contains(&closed), "{c}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_flood_gets_503_with_retry_after_and_recovers() {
    let _serial = SERIAL.lock().await;
    let limited = rig(&[("ISKRA_SIDECAR_LIMITS__MAX_CONNECTIONS", "50")]);
    let mut o = opts(&limited.sc, "connection_flood");
    o.flood_cap = 1000;
    let r = one(&o).await;
    passed(&r);
    let at = r.measured["refused_at_connections"].as_u64().unwrap();
    assert!((50..=75).contains(&at), "refused at {at} held connections");
    assert_eq!(r.measured["retry_after"], "1");
    // Over a cap it never reaches, the scenario fails and says how far it got.
    let big = rig(&[]);
    let mut o = opts(&big.sc, "connection_flood");
    o.flood_cap = 40;
    let r = one(&o).await;
    assert!(!r.passed && !r.skipped);
    assert!(r.why.unwrap().contains("no 503 after 40 connections"));
}

#[tokio::test]
async fn scenarios_that_need_the_host_are_reported_skipped_with_reasons() {
    let mut o = ChaosOptions::new(format!("ws://127.0.0.1:{}", dead_port()));
    o.scenarios = [
        "network_partition",
        "collector_outage",
        "sigterm_drain",
        "memory_leak",
        "aborted_handshakes",
        "pong_flood",
        "bogus",
        "dashboard_restart",
    ]
    .map(String::from)
    .to_vec();
    let report = chaos::run(&o).await;
    println!("{}", chaos::render_text(&report));
    assert_eq!((report.passed, report.failed, report.skipped), (0, 1, 7));
    for r in report.scenarios[..6].iter().chain(&report.scenarios[7..]) {
        assert!(r.skipped && !r.passed, "{}", r.name);
        assert!(r.why.as_deref().is_some_and(|w| w.len() > 20), "{}", r.name);
    }
    for (i, flag) in [(3, "--pid"), (4, "--pid"), (5, "--admin")] {
        let why = report.scenarios[i].why.as_deref().unwrap();
        assert!(why.contains(flag), "{why}");
    }
    assert!(report.scenarios[6]
        .why
        .as_deref()
        .unwrap()
        .contains("unknown scenario"));
    let why = report.scenarios[7].why.as_deref().unwrap();
    assert!(why.contains("--restart-command"), "{why}");
    assert_eq!(chaos::exit_code(&report), 1);
}

/// A command restarting `dash` (SIGKILL, 1.5 s down, the same port again); the new dashboard's PID is
/// written to `pidfile`, for the test to end it.
fn restart_command(dash: &NodeWs, pidfile: &std::path::Path) -> String {
    let peers = root().join("tests/peers");
    format!(
        "kill -KILL {pid} && sleep 1.5 && cd {dir} && (node ws-server.js {port} >/dev/null 2>&1 & echo $! > {file}) && sleep 0.5",
        pid = dash.proc.child.id(),
        dir = peers.display(),
        port = dash.port,
        file = pidfile.display()
    )
}

/// Ends the dashboard a restart command started (by its PID).
fn end_restarted(pidfile: &std::path::Path) {
    if let Some(pid) = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_restart_every_session_survives_and_no_handshake_is_caused() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut figures = Vec::new();
    for hold in ["0", "5000"] {
        let dash = node_ws(&[]);
        let pidfile = dir.path().join(format!("dash-{hold}.pid"));
        let env = [
            ("ISKRA_SIDECAR_RESUME__HOLD_MS", hold),
            ("ISKRA_SIDECAR_PROBE__ENABLED", "false"),
        ];
        let sc = sidecar_drained(&format!("ws://127.0.0.1:{}", dash.port), &env);
        let mut o = opts(&sc, "dashboard_restart");
        o.restart_command = Some(restart_command(&dash, &pidfile));
        o.restart_clients = 20;
        let r = one(&o).await;
        end_restarted(&pidfile);
        let m = r.measured.clone();
        figures.push((hold, m.clone()));
        if hold == "0" {
            // Without resume the scenario fails, and says why: every session closed, handshakes caused.
            assert!(!r.passed && !r.skipped, "{r:?}");
            assert_eq!(m["survived"], 0, "{m}");
            assert!(m["handshakes_caused"].as_u64().unwrap() >= 20, "{m}");
            assert_eq!(m["closes_seen"]["1012"], 20, "{m}");
        } else {
            passed(&r);
            assert_eq!(
                (m["survived"].as_u64(), m["handshakes_caused"].as_u64()),
                (Some(20), Some(0)),
                "{m}"
            );
        }
    }
    for (hold, m) in figures {
        println!("resume.hold_ms={hold}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aborted_handshakes_leave_rss_within_a_few_mib_and_every_session_ended() {
    let _serial = SERIAL.lock().await;
    let (rig, _rec, _h) = release_rig_with_collector().await;
    let mut o = opts(&rig.sc, "aborted_handshakes");
    o.cycles = env_u64("ISKRA_CHAOS_CYCLES", 100_000);
    let r = one(&o).await;
    let rss = &r.measured["rss_kib"];
    println!(
        "aborted_handshakes: {} at {} /s; RSS KiB start {} warm baseline {} peak {} after {} (+{} KiB); sessions tracked after {}",
        o.cycles, r.measured["cycles_per_s"], rss["start"], rss["warm_baseline"], rss["peak"],
        rss["after"], r.measured["growth_kib"], r.measured["sessions_tracked_after"]
    );
    passed(&r);
    let admin = rig.sc.admin;
    let expired = metric(admin, "iskra_sidecar_sessions_expired_total", &[]).await;
    assert_eq!(
        expired,
        Some(0.0),
        "every end arrived: the backstop found nothing"
    );
    assert_eq!(
        metric(admin, "iskra_sidecar_sessions_tracked", &[]).await,
        Some(0.0)
    );
    assert_eq!(
        metric(admin, "websocket_server_active_connections", &[]).await,
        Some(0.0),
        "every session that started ended in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_upgrade_answers_once_and_closes_with_nothing_tunnelled() {
    let _serial = SERIAL.lock().await;
    let rig = rig(&[]);
    let r = one(&opts(&rig.sc, "refused_upgrade")).await;
    passed(&r);
    assert_eq!(r.measured["no_key"]["bytes_after_answer"], 0);
    assert_eq!(r.measured["version_12"]["status"], 426);
    assert_eq!(r.measured["version_12"]["sec_websocket_version"], "13");
}

#[tokio::test(flavor = "multi_thread")]
async fn pong_flood_records_no_rtt_samples_and_drops_no_events() {
    let _serial = SERIAL.lock().await;
    // The scenario's client does not answer pings while it floods: a longer pong timeout.
    let rig = rig(&[("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__TIMEOUT", "10000")]);
    let r = one(&opts(&rig.sc, "pong_flood")).await;
    println!("pong_flood: {}", r.measured);
    passed(&r);
    assert_eq!(r.measured["pongs"], 200_000);
    assert!(r.measured["rtt_samples"].as_f64().unwrap() < 1000.0);
    assert_eq!(r.measured["events_dropped"], 0.0);
}
