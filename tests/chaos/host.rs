//! The chaos scenarios that need control of the host, against the sidecar binary: a SIGSTOPped Python
//! `websockets` client (dropped within the heartbeat budget, and told why with a close frame when it
//! wakes), a network partition between the sidecar and the dashboard (iptables: root), and an OTLP
//! collector outage (60 s by default: every span arrives, exactly once and in order, none dropped).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use iskra_ws_sidecar::cmd::chaos;
use tokio_tungstenite::tungstenite::Message;

use super::support::otlp::{attr, grpc_receiver_on};
use super::support::*;
use super::{env_u64, rig, sidecar_drained, HB, HB_BUDGET, HB_TIMER_BOUND, SERIAL};

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_failure_a_sigstopped_python_client_is_dropped_within_the_budget() {
    let _serial = SERIAL.lock().await;
    let rig = rig(&[]);
    let admin = format!("http://{}", rig.sc.admin);
    let metrics = || async {
        let text = chaos::wire::http_get(&admin, "/metrics", Duration::from_secs(5))
            .await
            .unwrap();
        let sum = |n: &str, l: &[(&str, &str)]| chaos::wire::metric_sum(&text, n, l);
        (
            sum(
                "websocket_heartbeat_missed_total",
                &[("websocket_peer", "client")],
            ),
            sum("websocket_server_active_connections", &[]),
        )
    };
    let script = root().join("tests/peers/stalled_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(format!("ws://{}/stalled", rig.sc.addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is required (scripts/install-test-deps.sh)");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut py = Proc {
        child,
        stdout: Some(stdout),
    };
    let hello = py.wait_json(|v| v.get("connected").is_some());
    assert_eq!(
        hello["echo"], "stalled-client hello",
        "python `websockets` installed? {hello}"
    );
    // While it runs, the library answers the sidecar's pings: three intervals, nothing missed.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (missed0, active0) = metrics().await;
    assert_eq!(active0, 1.0, "the live client's session is open");
    py.signal("STOP");
    let t0 = Instant::now();
    let deadline = HB_BUDGET + chaos::slack(HB_BUDGET);
    let detected = loop {
        let (missed, active) = metrics().await;
        if missed > missed0 && active == 0.0 {
            break t0.elapsed();
        }
        if t0.elapsed() > deadline + Duration::from_secs(2) {
            py.signal("CONT");
            panic!("a SIGSTOPped client was not dropped within {deadline:?} (missed {missed}, active {active})");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    py.signal("CONT");
    let bye = py.wait_json(|v| v.get("closed").is_some());
    println!(
        "heartbeat_failure (SIGSTOP python websockets): dropped {detected:?} after SIGSTOP; issue bound {HB_BUDGET:?} + {:?} slack, relay timer bound {HB_TIMER_BOUND:?}; the client saw {bye}",
        chaos::slack(HB_BUDGET)
    );
    assert!(detected <= deadline, "detected after {detected:?}");
    assert_eq!(
        missed0, 0.0,
        "no beat was missed while the client was running"
    );
    // Woken, the client reads what the sidecar left in its socket: a close frame saying why, then the
    // FIN (without the frame the library reports 1006 and no reason).
    assert_eq!(
        (bye["code"].as_u64(), bye["reason"].as_str()),
        (Some(1001), Some("client heartbeat timeout")),
        "the stalled client is told why it was dropped: {bye}"
    );
}

/// iptables rules inserted by a test; Drop deletes exactly those, whatever happens.
struct Rules(Vec<Vec<String>>);

impl Rules {
    fn drop_port(port: u16) -> Rules {
        let probe = Command::new("iptables")
            .args(["-w", "-S", "INPUT"])
            .output();
        match probe {
            Err(e) => panic!("network_partition needs `iptables` ({e}): install it with scripts/install-test-deps.sh"),
            Ok(o) if !o.status.success() => panic!(
                "network_partition needs root (CAP_NET_ADMIN) for iptables: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Ok(_) => {}
        }
        let p = port.to_string();
        let mut rules = Rules(Vec::new());
        for spec in [["INPUT", "--dport"], ["OUTPUT", "--sport"]] {
            let rule: Vec<String> = [spec[0], "-p", "tcp", spec[1], &p, "-j", "DROP"]
                .map(String::from)
                .to_vec();
            let out = Command::new("iptables")
                .args(["-w", "-I"])
                .args(&rule)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "iptables -I {rule:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            rules.0.push(rule);
        }
        rules
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        for rule in self.0.drain(..).rev() {
            let _ = Command::new("iptables")
                .args(["-w", "-D"])
                .args(&rule)
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn network_partition_is_detected_by_heartbeats_within_the_budget() {
    let _serial = SERIAL.lock().await;
    let up = node_ws(&[]);
    let mut env = HB.to_vec();
    env.push(("ISKRA_SIDECAR_PROBE__ENABLED", "false"));
    let sc = sidecar_drained(&format!("ws://127.0.0.1:{}", up.port), &env);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
        .await
        .unwrap();
    ws.send(Message::text("before the partition"))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("before the partition")
    );
    let rules = Rules::drop_port(up.port);
    let t0 = Instant::now();
    // Keep reading (so the client answers the sidecar's pings) until the sidecar closes.
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(f)) = m {
                return f.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("no close within 5 s of the partition");
    let detected = t0.elapsed();
    drop(rules);
    let left = Command::new("iptables")
        .args(["-w", "-S"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.contains(&format!("--dport {} ", up.port))
            && !left.contains(&format!("--sport {} ", up.port)),
        "rules left behind:\n{left}"
    );
    println!(
        "network_partition: client closed with {close:?} {detected:?} after the DROP rules; issue bound {HB_BUDGET:?} + {:?} slack, relay timer bound {HB_TIMER_BOUND:?}",
        chaos::slack(HB_BUDGET)
    );
    assert_eq!(
        close.as_ref().map(|c| c.0),
        Some(1011),
        "upstream heartbeat timeout → 1011"
    );
    assert!(
        detected <= HB_BUDGET + chaos::slack(HB_BUDGET),
        "detected after {detected:?}"
    );
    let admin = format!("http://{}", sc.admin);
    let missed = chaos::wire::scrape_sum(
        &admin,
        "websocket_heartbeat_missed_total",
        &[("websocket_peer", "upstream")],
    )
    .await
    .unwrap();
    assert!(
        missed >= 1.0,
        "the upstream's missed heartbeats are counted"
    );
    // Healed: new sessions work again.
    let target = chaos::wire::resolve(&format!("ws://{}/", sc.addr))
        .await
        .unwrap();
    chaos::echo_check(&target, "after the partition")
        .await
        .unwrap();
}

/// The figure ("60 s down: 0 spans lost"), and what CI runs; `ISKRA_CHAOS_OUTAGE_SECS` overrides.
const OUTAGE_SECS: u64 = 60;
/// The exporter retries with backoff doubling to 30 s: the collector's return is noticed within that,
/// then the spool drains.
const DRAIN_BOUND: Duration = Duration::from_secs(30 + 15);

#[tokio::test(flavor = "multi_thread")]
async fn collector_outage_loses_no_spans_and_delivers_them_in_order() {
    let _serial = SERIAL.lock().await;
    let outage = Duration::from_secs(env_u64("ISKRA_CHAOS_OUTAGE_SECS", OUTAGE_SECS));
    let port = dead_port();
    let spool = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let spool_dir = spool.path().to_str().unwrap().to_string();
    let up = node_ws(&[]);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("ISKRA_SIDECAR_TELEMETRY__SPOOL_DIR", spool_dir.as_str()),
        ("ISKRA_SIDECAR_PROBE__ENABLED", "false"),
    ];
    let sc = sidecar_drained(&format!("ws://127.0.0.1:{}", up.port), &env);
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < outage {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/outage/{n}", sc.addr))
            .await
            .unwrap();
        ws.send(Message::text(format!("during the outage {n}")))
            .await
            .unwrap();
        ws.next().await.unwrap().unwrap();
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spooled = std::fs::read_dir(spool.path()).unwrap().count();
    let admin = format!("http://{}", sc.admin);
    let failed = chaos::wire::scrape_sum(
        &admin,
        "iskra_sidecar_telemetry_failed_total",
        &[("signal", "traces")],
    )
    .await
    .unwrap();
    assert!(
        failed > 0.0,
        "the exporter tried and failed during the outage"
    );
    let down_for = t0.elapsed();
    let (_, rec, _h) = grpc_receiver_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let up_at = Instant::now();
    // The ws.session spans' paths, in the order they arrived.
    let ours = |rec: &super::support::otlp::Received| {
        rec.spans()
            .into_iter()
            .filter(|s| s.name == "ws.session")
            .filter_map(|s| attr(&s.attributes, "url.path"))
            .collect::<Vec<_>>()
    };
    while ours(&rec).len() < n {
        assert!(
            up_at.elapsed() < DRAIN_BOUND,
            "only {} of {n} ws.session spans arrived within {DRAIN_BOUND:?} of the collector's return",
            ours(&rec).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = up_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await; // a late duplicate would arrive meanwhile
    let text = chaos::wire::http_get(&admin, "/metrics", Duration::from_secs(5))
        .await
        .unwrap();
    let dropped = chaos::wire::metric_sum(&text, "iskra_sidecar_telemetry_dropped_total", &[]);
    let exported = chaos::wire::metric_sum(
        &text,
        "iskra_sidecar_telemetry_exported_total",
        &[("signal", "traces")],
    );
    let spans = rec.spans();
    let mut by_name = std::collections::BTreeMap::<String, usize>::new();
    for s in &spans {
        *by_name.entry(s.name.clone()).or_default() += 1;
    }
    println!(
        "collector_outage: collector down {down_for:?}: {n} sessions, {} spans {by_name:?} produced meanwhile \
         ({spooled} spool files, {failed} span export attempts failed); all arrived {drained:?} after it came \
         back; received {}, exported {exported}, dropped {dropped}",
        spans.len(),
        spans.len()
    );
    let want: Vec<String> = (0..n).map(|i| format!("/outage/{i}")).collect();
    assert_eq!(
        ours(&rec),
        want,
        "exactly one ws.session span per session, in the order the sessions ran"
    );
    assert_eq!(
        exported,
        spans.len() as f64,
        "every span exported arrived once: none lost, none sent twice"
    );
    // A session's steps are events of its span by default (telemetry.step_spans off).
    for s in spans.iter().filter(|s| s.name == "ws.session") {
        let steps: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
        for name in ["ws.handshake", "ws.close"] {
            assert!(
                steps.contains(&name),
                "{name}: one per session, in {steps:?}"
            );
        }
    }
    assert_eq!(dropped, 0.0, "nothing dropped, of any signal");
    assert!(spooled > 0, "spans waited on disk during the outage");
}
