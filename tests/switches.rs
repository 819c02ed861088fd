//! The seed's switches do what they say, through the sidecar binary and its real outputs:
//! `WEBSOCKET_ENABLE_METRICS=false` → no OTLP metrics and no series on `/metrics`; `FRACTAL_LOGGING_ENABLED=false`
//! → no ∆DΩΛ fields on spans and logs; `VOICE_SYSTEM_ENABLED=false` → no voice fields and no voice
//! activations counted; `SLO_MONITORING_ENABLED=false` → `monitor` reports no SLO violation; a value
//! that is not a boolean → exit 64 naming the key. (`WEBSOCKET_ENABLE_ALERTS` is in tests/webhooks.rs.)

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::otlp::{grpc_receiver, Received};
use support::*;
use tokio::io::AsyncWriteExt;

const FAST: [(&str, &str); 3] = [
    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
];

async fn wait_for(rec: &Received, what: &str, f: impl Fn(&Received) -> bool) {
    let t0 = std::time::Instant::now();
    while !f(rec) {
        assert!(t0.elapsed() < Duration::from_secs(15), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A sidecar exporting to its own receiver, with `switches` set in its environment.
async fn traced(upstream_port: u16, switches: &[(&str, &str)]) -> (Sidecar, Received) {
    let (otlp, rec, _h) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let mut env = FAST.to_vec();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()));
    env.extend_from_slice(switches);
    let upstream = format!("ws://127.0.0.1:{upstream_port}");
    (sidecar(&upstream, &[], &env), rec)
}

/// One clean session, then one that breaks RFC 6455 (an unmasked client frame: the alarm voice).
async fn clean_and_broken_sessions(addr: std::net::SocketAddr) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.close(None).await.unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let tokio_tungstenite::MaybeTlsStream::Plain(mut raw) = ws.into_inner() else {
        unreachable!()
    };
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
}

/// Every attribute key on exported spans and log records.
fn keys(rec: &Received) -> BTreeSet<String> {
    let mut k: BTreeSet<String> = rec
        .spans()
        .iter()
        .flat_map(|s| s.attributes.iter().map(|a| a.key.clone()))
        .collect();
    k.extend(
        rec.log_records()
            .iter()
            .flat_map(|l| l.attributes.iter().map(|a| a.key.clone())),
    );
    k
}

const DDOL: [&str; 5] = [
    "iskra.delta",
    "iskra.dimension",
    "iskra.omega",
    "iskra.lambda",
    "iskra.seam.id",
];
const VOICE: [&str; 5] = [
    "iskra.voice.pain",
    "iskra.voice.trust",
    "iskra.voice.chaos",
    "iskra.voice.active",
    "iskra.voice.lambda",
];

async fn two_sessions_exported(switches: &[(&str, &str)]) -> Received {
    let up = node_ws(&[]);
    let (sc, rec) = traced(up.port, switches).await;
    clean_and_broken_sessions(sc.addr).await;
    wait_for(&rec, "two session spans and their logs", |r| {
        r.spans().iter().filter(|s| s.name == "ws.session").count() == 2
            && r.log_records()
                .iter()
                .any(|l| l.event_name == "protocol_violation")
    })
    .await;
    wait_for(&rec, "metrics", |r| {
        r.latest_sum("websocket_connections_total", &[("state", "disconnected")]) == Some(2.0)
    })
    .await;
    drop(sc);
    rec
}

#[tokio::test(flavor = "multi_thread")]
async fn fractal_logging_and_voice_system_switches_remove_their_fields() {
    let on = two_sessions_exported(&[]).await;
    let k = keys(&on);
    for key in DDOL.iter().chain(&VOICE) {
        assert!(k.contains(*key), "with the switches on, {key} is exported");
    }
    assert_eq!(
        on.latest_sum("websocket_voice_alerts_total", &[("voice", "alarm")]),
        Some(1.0)
    );

    let no_fractal = two_sessions_exported(&[("FRACTAL_LOGGING_ENABLED", "false")]).await;
    let k = keys(&no_fractal);
    for key in DDOL {
        assert!(
            !k.contains(key),
            "fractal logging off, yet {key} is exported"
        );
    }
    assert!(k.contains("iskra.voice.active") && k.contains("iskra.dashboard"));

    let no_voices = two_sessions_exported(&[("VOICE_SYSTEM_ENABLED", "false")]).await;
    let k = keys(&no_voices);
    for key in VOICE {
        assert!(!k.contains(key), "voice system off, yet {key} is exported");
    }
    assert!(k.contains("iskra.delta") && k.contains("error.type"));
    assert_eq!(
        no_voices.latest_sum("websocket_voice_alerts_total", &[]),
        None,
        "voice system off: no voice activation counted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_switch_off_exports_no_metrics_anywhere() {
    let up = node_ws(&[]);
    let (sc, rec) = traced(up.port, &[("WEBSOCKET_ENABLE_METRICS", "false")]).await;
    clean_and_broken_sessions(sc.addr).await;
    wait_for(&rec, "spans still exported", |r| {
        r.spans().iter().filter(|s| s.name == "ws.session").count() == 2
    })
    .await;
    // Several export intervals (200 ms) have passed since the start.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rec.metrics.lock().unwrap().len(), 0, "no OTLP metrics");
    // /metrics answers (the target stays up for Prometheus) but holds no series.
    let (status, _, body) = http_get(sc.admin, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("metrics_enabled"), "{body}");
    let series: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(series.is_empty(), "{series:?}");
    // The control: the same sidecar with metrics on exports and serves them.
    let (sc, rec) = traced(up.port, &[("WEBSOCKET_ENABLE_METRICS", "true")]).await;
    wait_for(&rec, "OTLP metrics", |r| {
        !r.metrics.lock().unwrap().is_empty()
    })
    .await;
    let (status, _, body) = http_get(sc.admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("\nwebsocket_connections_total{"), "{body}");
}

#[test]
fn a_switch_that_is_not_a_boolean_exits_64_naming_its_key() {
    for (var, key) in [
        (
            "WEBSOCKET_ENABLE_METRICS",
            "websocket.monitoring.metrics_enabled",
        ),
        (
            "WEBSOCKET_ENABLE_ALERTS",
            "websocket.monitoring.alerting_enabled",
        ),
        ("FRACTAL_LOGGING_ENABLED", "iskra.fractal_logging"),
        ("SLO_MONITORING_ENABLED", "iskra.slo_monitoring"),
        ("VOICE_SYSTEM_ENABLED", "iskra.voice_system"),
    ] {
        let (code, _, err) = run(&["check", "http://127.0.0.1:1/"], &[(var, "maybe")]);
        assert_eq!(code, 64, "{var}=maybe: {err}");
        assert!(err.contains(key) && err.contains("maybe"), "{err}");
    }
}

#[test]
fn slo_monitoring_switch_off_reports_no_slo_violation() {
    let up = node_ws(&[]);
    let url = format!("ws://127.0.0.1:{}", up.port);
    // Any round trip is over a 0 ms warning threshold.
    let strict = (
        "ISKRA_SIDECAR_WEBSOCKET__SLO_THRESHOLDS__CONNECTION_LATENCY_MS__WARNING",
        "0",
    );
    let monitor = |slo: &str| {
        let (code, out, err) = run(
            &[
                "monitor",
                "--json",
                "--count",
                "2",
                "--interval",
                "100ms",
                &url,
            ],
            &[strict, ("SLO_MONITORING_ENABLED", slo)],
        );
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    let on = monitor("true");
    assert!(on.contains("\"sloViolation\""), "{on}");
    let off = monitor("false");
    assert!(!off.contains("\"sloViolation\""), "{off}");
    assert!(off.contains("\"checkComplete\""), "{off}");
}
