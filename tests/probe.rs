//! The active prober against real node `ws` dashboards: reconnect with backoff, degraded mode after max
//! attempts (still retrying), recovery, failover to a backup and back, downgrade to SSE, readiness.

mod support;

use std::time::{Duration, Instant};

use iskra_ws_sidecar::app;
use iskra_ws_sidecar::config::{defaults, from_tree};
use iskra_ws_sidecar::events::{Event, EventKind, Transport};
use tokio::sync::mpsc;

use support::*;

async fn start(
    edit: impl FnOnce(&mut serde_json::Value),
) -> (app::Running, mpsc::UnboundedReceiver<Event>) {
    let mut tree = defaults();
    tree["listen"] = "127.0.0.1:0".into();
    tree["admin"] = "127.0.0.1:0".into();
    tree["websocket"]["reconnection"] = serde_json::json!({"max_attempts": 3, "initial_delay": 50, "backoff_multiplier": 1.5, "max_delay": 300, "jitter": true});
    tree["websocket"]["heartbeat"] = serde_json::json!({"enabled": true, "interval": 200, "timeout": 150, "failure_threshold": 2});
    tree["limits"]["upstream_timeout_ms"] = 1000.into();
    edit(&mut tree);
    let (tx, rx) = mpsc::unbounded_channel();
    (
        app::start(from_tree(&tree).unwrap(), Some(tx))
            .await
            .unwrap(),
        rx,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_dashboard_leads_to_degraded_mode_then_recovery_when_it_returns() {
    let port = dead_port();
    let (sc, mut rx) = start(|t| t["upstream"] = format!("ws://127.0.0.1:{port}").into()).await;
    assert_eq!(
        http_get(sc.admin_addr, "/ready").await.0,
        503,
        "not ready before the upstream answered"
    );
    let seen = until(&mut rx, "fallback_activated", |k| {
        matches!(k, EventKind::FallbackActivated { .. })
    })
    .await;
    let failures = seen
        .iter()
        .filter(|k| {
            matches!(
                k,
                EventKind::ProbeFailed {
                    transport: Transport::WebSocket,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        failures, 3,
        "degraded mode after max_attempts (3) failed attempts"
    );
    // It does not give up: attempts continue in degraded mode, then the dashboard comes back.
    until(&mut rx, "an attempt in degraded mode", |k| matches!(k, EventKind::ProbeAttempt { transport: Transport::WebSocket, attempt, .. } if *attempt >= 3)).await;
    let _up = node_ws_on(port, &[]);
    let seen = until(&mut rx, "recovery", |k| {
        matches!(
            k,
            EventKind::ProbeSucceeded {
                transport: Transport::WebSocket,
                ..
            }
        )
    })
    .await;
    assert!(matches!(
        seen.last(),
        Some(EventKind::ProbeSucceeded {
            recovered: true,
            ..
        })
    ));
    // Heartbeats flow on the prober's own connection.
    until(&mut rx, "prober RTT", |k| {
        matches!(k, EventKind::PingPong { rtt: Some(_), .. })
    })
    .await;
    eventually(Duration::from_secs(5), "ready", || true).await;
    let t0 = Instant::now();
    while http_get(sc.admin_addr, "/ready").await.0 != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "readiness did not follow the upstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_over_to_the_backup_and_back_to_the_primary() {
    let primary_port = dead_port();
    let backup = node_ws(&[]);
    let (sc, mut rx) = start(|t| {
        t["upstream"] = format!("ws://127.0.0.1:{primary_port}").into();
        t["backup_upstreams"] = serde_json::json!([format!("ws://127.0.0.1:{}", backup.port)]);
    })
    .await;
    let seen = until(&mut rx, "connected to the backup", |k| {
        matches!(k, EventKind::ProbeSucceeded { .. })
    })
    .await;
    assert!(
        seen.iter()
            .any(|k| matches!(k, EventKind::ProbeFailed { .. })),
        "the primary was tried first"
    );
    // New client handshakes fail over too.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
        .await
        .expect("handshake through the backup");
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text("via backup"))
        .await
        .unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "via backup"
    );
    let _primary = node_ws_on(primary_port, &[]);
    let seen = until(&mut rx, "failover back to the primary", |k| matches!(k, EventKind::Failover { to, .. } if to.ends_with(&format!(":{primary_port}")))).await;
    assert!(!seen.is_empty());
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_websocket_is_refused_the_prober_finds_sse() {
    let up = node_ws(&[]);
    let (sc, mut rx) = start(|t| {
        t["upstream"] = format!("ws://127.0.0.1:{}/forbidden-ws", up.port).into();
        t["probe"]["sse_path"] = "/sse".into();
    })
    .await;
    let seen = until(&mut rx, "downgrade", |k| {
        matches!(k, EventKind::Downgrade { .. })
    })
    .await;
    assert!(matches!(
        seen.last(),
        Some(EventKind::Downgrade {
            to: Transport::Sse,
            ..
        })
    ));
    assert!(
        seen.iter().any(|k| matches!(
            k,
            EventKind::ProbeRejected {
                status: Some(401),
                ..
            }
        )),
        "the 401 is a typed refusal, not parsed from text"
    );
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_dashboard_restarts_handshakes_get_503_with_retry_after_and_readiness_drops() {
    let up = node_ws(&[]);
    let port = up.port;
    let (sc, mut rx) = start(|t| t["upstream"] = format!("ws://127.0.0.1:{port}").into()).await;
    until(&mut rx, "prober connected", |k| {
        matches!(k, EventKind::ProbeSucceeded { .. })
    })
    .await;
    let (_open, _) = tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
        .await
        .unwrap();
    drop(up); // the dashboard goes down
    let t0 = Instant::now();
    while http_get(sc.admin_addr, "/ready").await.0 != 503 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "readiness did not drop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
        .await
        .unwrap_err()
    {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 503);
            assert!(r.headers().contains_key("retry-after"));
        }
        e => panic!("expected 503, got {e}"),
    }
    sc.shutdown().await;
}
