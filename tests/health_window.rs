//! `/health` over a short `health.window_ms` (set by `ISKRA_SIDECAR_HEALTH__WINDOW_MS`), against a real
//! `ws` dashboard: errors make it CRITICAL, and once they are older than the window it is HEALTHY again
//! (the score no longer reads counters since start); a browser that stops answering heartbeats is
//! reported apart from the dashboard and costs nothing; the score and status are gauges
//! (`iskra_sidecar_health_score`, `iskra_sidecar_health_status`).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;

/// A client that completes the upgrade and then never reads again: it answers no ping.
async fn zombie(addr: SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /zombie HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    s
}

async fn echo_session(addr: SocketAddr) {
    use futures_util::{SinkExt, StreamExt};
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_errors_leaves_the_window_and_browsers_missed_heartbeats_count_apart() {
    let up = node_ws(&[]);
    let port = up.port;
    let env = [
        ("OTEL_SDK_DISABLED", "true"),
        ("ISKRA_SIDECAR_HEALTH__WINDOW_MS", "3000"),
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "200"),
        ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__TIMEOUT", "150"),
        ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__FAILURE_THRESHOLD", "2"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__INITIAL_DELAY", "50"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__MAX_DELAY", "200"),
    ];
    let sc = sidecar(&format!("ws://127.0.0.1:{port}"), &[], &env);
    let h = health_until(sc.admin, "healthy with the prober connected", |h| {
        h["status"] == "HEALTHY" && h["inputs"]["prober"]["state"] == "connected"
    })
    .await;
    assert_eq!(h["window_ms"], 3000);

    // A browser that stops answering pings: reported, apart from the dashboard, and still HEALTHY.
    let _z = zombie(sc.addr).await;
    let h = health_until(sc.admin, "the browser's missed heartbeats", |h| {
        h["inputs"]["clients"]["heartbeat_failures"].as_f64() >= Some(1.0)
    })
    .await;
    assert_eq!(h["inputs"]["heartbeat_failures"], 0.0, "{h}");
    assert_eq!(h["status"], "HEALTHY", "{h}");

    // A burst of errors: the dashboard is down and clients are refused.
    drop(up);
    for _ in 0..5 {
        assert!(
            tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
                .await
                .is_err()
        );
    }
    let h = health_until(sc.admin, "CRITICAL", |h| h["status"] == "CRITICAL").await;
    let rate = h["inputs"]["clients"]["error_rate_percent"]
        .as_f64()
        .unwrap();
    assert!(rate > 10.0 && rate <= 100.0, "{h}");
    assert_eq!(
        metric(sc.admin, "iskra_sidecar_health_status", &[]).await,
        Some(2.0)
    );
    let score = metric(sc.admin, "iskra_sidecar_health_score", &[])
        .await
        .unwrap();
    assert_eq!(score, h["score"].as_f64().unwrap());

    // Recovery: the dashboard is back, sessions succeed; once the errors are older than the window
    // the score is the seed's 100 again, without a restart.
    let _up = node_ws_on(port, &[]);
    let t0 = Instant::now();
    let h = loop {
        echo_session(sc.addr).await;
        let h = health(sc.admin).await;
        if h["status"] == "HEALTHY" {
            break h;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "never recovered: {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(h["score"], 100, "{h}");
    assert_eq!(h["inputs"]["clients"]["errors"], 0.0, "{h}");
    assert_eq!(
        metric(sc.admin, "iskra_sidecar_health_status", &[]).await,
        Some(0.0)
    );
    assert_eq!(
        metric(sc.admin, "iskra_sidecar_health_score", &[]).await,
        Some(100.0)
    );
}
