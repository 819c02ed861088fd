//! The same export accepted by independent receivers: rotel (a Rust OTLP collector, over gRPC and HTTP)
//! and a real Prometheus scraping the admin server's /metrics.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use support::*;

fn rotel_agent() -> std::path::PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import rotel, os; print(os.path.dirname(rotel.__file__))",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rotel is missing: run scripts/install-test-deps.sh (pip install rotel)"
    );
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("rotel-agent")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn one_session(addr: std::net::SocketAddr) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/rotel"))
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread")]
async fn rotel_receives_the_session_span_over_grpc_and_http() {
    let up = node_ws(&[]);
    let (grpc, http) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rotel.log");
    let mut child = Command::new(rotel_agent())
        .args([
            "start",
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log-verbosity",
            "detailed",
            "--pid-file",
            dir.path().join("rotel.pid").to_str().unwrap(),
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("rotel.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rotel did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (protocol, endpoint, path) in [
        ("grpc", format!("http://127.0.0.1:{grpc}"), "/via-grpc"),
        (
            "http/protobuf",
            format!("http://127.0.0.1:{http}"),
            "/via-http",
        ),
    ] {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ];
        let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &env);
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", sc.addr))
            .await
            .unwrap();
        ws.send(Message::text("hi")).await.unwrap();
        ws.next().await.unwrap().unwrap();
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        let t0 = Instant::now();
        loop {
            let mut text = String::new();
            std::fs::File::open(&log)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            if text.contains("ws.session") && text.contains(path) {
                assert!(
                    text.contains("iskra.delta"),
                    "rotel printed the span without its attributes"
                );
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "rotel never printed the {protocol} session span:\n{}",
                &text[text.len().saturating_sub(2000)..]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_the_seed_dashboard_names() {
    let up = node_ws(&[]);
    let sc = sidecar(
        &format!("ws://127.0.0.1:{}", up.port),
        &["--dashboard", "voices"],
        &[("OTEL_SDK_DISABLED", "true")],
    );
    one_session(sc.addr).await;
    let _ = tokio_tungstenite::connect_async(format!("ws://{}/forbidden-ws", sc.addr)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: iskra-ws-sidecar\n    static_configs: [{{targets: ['{}']}}]\n", sc.admin)).unwrap();
    let port = free_port();
    let bin = if std::path::Path::new("/usr/bin/prometheus").exists() {
        "/usr/bin/prometheus"
    } else {
        "prometheus"
    };
    let mut prom = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "prometheus is missing: run scripts/install-test-deps.sh (apt-get install prometheus)",
        );
    let query = |q: &str| {
        let url = format!(
            "/api/v1/query?query={}",
            q.replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace('=', "%3D")
        );
        async move {
            http_get(format!("127.0.0.1:{port}").parse().unwrap(), &url)
                .await
                .2
        }
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "prometheus did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names = [
        "websocket_connections_total{state=\"connected\"}",
        "websocket_errors_total",
        "websocket_voice_alerts_total",
        "websocket_handshake_duration_seconds_bucket",
        "websocket_messages_total",
        "websocket_server_active_connections",
        "websocket_closes_total",
        "iskra_sidecar_events_dropped_total",
    ];
    for name in names {
        loop {
            let body = query(name).await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let n = v["data"]["result"].as_array().map_or(0, |a| a.len());
            if n > 0 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "Prometheus has no series for {name}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let body =
        query("websocket_connections_total{state=\"connected\",iskra_dashboard=\"voices\"}").await;
    assert!(
        body.contains("\"1\"]"),
        "one connected session counted: {body}"
    );
    let _ = prom.kill();
    let _ = prom.wait();
}
