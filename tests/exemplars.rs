//! Exemplars: the histogram points of handshakes, upstream connects, ping round trips and session
//! durations point at the trace of a session that was exported — in OTLP (an in-process receiver on the
//! official protos) and in `/metrics` when a real Prometheus scrapes OpenMetrics with its exemplar
//! storage on. Everyone else keeps the 0.0.4 text format.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use tokio_tungstenite::tungstenite::Message;

use support::otlp::{grpc_receiver, Received};
use support::*;

const HISTOGRAMS: [&str; 4] = [
    "websocket.handshake.duration",
    "websocket.upstream.connect.duration",
    "websocket.ping.rtt",
    "websocket.server.connection.duration",
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// (trace id, span id) in hex of every exported span.
fn span_traces(rec: &Received) -> BTreeSet<(String, String)> {
    rec.spans()
        .iter()
        .map(|s| (hex(&s.trace_id), hex(&s.span_id)))
        .collect()
}

/// (histogram name, (trace id, span id)) of every exemplar of the latest metrics request.
fn otlp_exemplars(rec: &Received) -> Vec<(String, (String, String))> {
    let reqs = rec.metrics.lock().unwrap();
    let Some(last) = reqs.last() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in last
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        if let Some(Data::Histogram(h)) = &m.data {
            for p in &h.data_points {
                for e in &p.exemplars {
                    assert_eq!(e.span_id.len(), 8, "{} exemplar has a span id", m.name);
                    out.push((m.name.clone(), (hex(&e.trace_id), hex(&e.span_id))));
                }
            }
        }
    }
    out
}

/// Sessions that exchange messages long enough for a few heartbeat round trips, then close.
async fn sessions(addr: std::net::SocketAddr, n: usize) {
    for i in 0..n {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/live/{i}"))
            .await
            .unwrap();
        for _ in 0..4 {
            ws.send(Message::text("hello")).await.unwrap();
            ws.next().await.unwrap().unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    }
}

async fn traced_sidecar() -> (NodeWs, Sidecar, Received) {
    let up = node_ws(&[]);
    let (otlp, rec, _h) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        // Pings every 50 ms, so that every session has round trips to measure.
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "50"),
    ];
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &env);
    (up, sc, rec)
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_histogram_points_carry_exemplars_of_exported_traces() {
    let (_up, sc, rec) = traced_sidecar().await;
    sessions(sc.addr, 3).await;
    let t0 = Instant::now();
    loop {
        let names: BTreeSet<String> = otlp_exemplars(&rec).into_iter().map(|(n, _)| n).collect();
        if HISTOGRAMS.iter().all(|h| names.contains(*h)) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "histograms with exemplars: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every exemplar names a span that was exported (its session's span, exported when it ended).
    let t0 = Instant::now();
    loop {
        let traces = span_traces(&rec);
        let missing: Vec<_> = otlp_exemplars(&rec)
            .into_iter()
            .filter(|(_, t)| !traces.contains(t))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "exemplars of spans never exported: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scraping_openmetrics_stores_exemplars_of_exported_traces() {
    let (_up, sc, rec) = traced_sidecar().await;
    sessions(sc.addr, 3).await;
    // Plain scrapers keep the 0.0.4 text; OpenMetrics is only for those who ask.
    let (_, head, body) = http_get(sc.admin, "/metrics").await;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!body.contains("trace_id") && !body.contains("# EOF"));
    let om_req = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\nConnection: close\r\n\r\n";
    let (_, head, body) = http_request(sc.admin, om_req).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# TYPE websocket_messages counter\n"));
    assert!(body.contains("websocket_handshake_duration_seconds_bucket{"));
    assert!(body.contains(" # {trace_id=\""), "{body}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: iskra-ws-sidecar\n    static_configs: [{{targets: ['{}']}}]\n", sc.admin)).unwrap();
    let port = dead_port();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=exemplar-storage")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "prometheus is missing: run scripts/install-test-deps.sh (apt-get install prometheus)",
        );
    let prom_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(prom_addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "prometheus did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut found = BTreeSet::new();
    for metric in [
        "websocket_handshake_duration_seconds_bucket",
        "websocket_upstream_connect_duration_seconds_bucket",
        "websocket_ping_rtt_seconds_bucket",
        "websocket_server_connection_duration_seconds_bucket",
    ] {
        let path = format!(
            "/api/v1/query_exemplars?query={metric}&start={}&end={}",
            now - 600,
            now + 600
        );
        let traces: Vec<(String, String)> = loop {
            let (_, _, body) = http_get(prom_addr, &path).await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let traces: Vec<(String, String)> = v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| {
                    let l = &e["labels"];
                    Some((
                        l["trace_id"].as_str()?.into(),
                        l["span_id"].as_str()?.into(),
                    ))
                })
                .collect();
            if !traces.is_empty() {
                break traces;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(40),
                "Prometheus stored no exemplar for {metric}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        found.extend(traces);
    }
    let _ = prom.kill();
    let _ = prom.wait();
    let t0 = Instant::now();
    loop {
        let exported = span_traces(&rec);
        let missing: Vec<_> = found.difference(&exported).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "Prometheus exemplars of spans never exported: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
