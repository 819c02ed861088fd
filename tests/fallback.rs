//! `websocket.fallback.active` against real `ws` dashboards — 1 on the series of the mode the prober is
//! in (backup, sse, long_poll, poll, degraded) exactly while it is not on its primary WebSocket, 0 when
//! back — and the seed's prober switches: `WEBSOCKET_ENABLE_FALLBACK=false` (no failover, no downgrade)
//! and `WEBSOCKET_FALLBACK_TIMEOUT` (each downgrade transport's timeout), set the seed's way: by
//! environment, on the binary.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;

const MODES: [&str; 5] = ["backup", "sse", "long_poll", "poll", "degraded"];

/// The gauge's value per mode.
async fn modes(admin: SocketAddr) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    for m in MODES {
        let v = metric(
            admin,
            "websocket_fallback_active",
            &[("websocket_fallback_mode", m)],
        )
        .await
        .unwrap_or_else(|| panic!("a websocket_fallback_active series for {m}"));
        out.push((m, v));
    }
    out
}

/// Waits until the gauge is 1 on `mode` alone (None: 0 everywhere).
async fn gauge_becomes(admin: SocketAddr, mode: Option<&str>) {
    let want: Vec<(&str, f64)> = MODES
        .iter()
        .map(|m| (*m, f64::from(u8::from(Some(*m) == mode))))
        .collect();
    let t0 = Instant::now();
    loop {
        let got = modes(admin).await;
        if got == want {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "fallback gauge {got:?}, wanted {mode:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fast_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OTEL_SDK_DISABLED", "true"),
        ("WEBSOCKET_MAX_RECONNECT", "3"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__INITIAL_DELAY", "50"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__MAX_DELAY", "300"),
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "200"),
        ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__TIMEOUT", "150"),
        ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__FAILURE_THRESHOLD", "2"),
        ("WEBSOCKET_REQUEST_TIMEOUT", "1000"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gauge_is_1_while_on_the_backup_and_0_once_the_primary_is_back() {
    let primary = node_ws(&[]);
    let primary_port = primary.port;
    let backup = node_ws(&[]);
    let mut env = fast_env();
    let backups = format!("ws://127.0.0.1:{}", backup.port);
    env.push(("ISKRA_SIDECAR_BACKUP_UPSTREAMS", &backups));
    let (sc, lines) = sidecar_logged(&format!("ws://127.0.0.1:{primary_port}"), &[], &env);
    let on_primary = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|v| v["delta"] == "connection_established" && v["endpoint"] == "pulse")
    };
    eventually(
        Duration::from_secs(10),
        "the prober on the primary",
        on_primary,
    )
    .await;
    gauge_becomes(sc.admin, None).await;

    // The primary dies: the prober (and every new session) is served by the backup.
    drop(primary);
    gauge_becomes(sc.admin, Some("backup")).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
        .await
        .expect("a session through the backup");
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text("via backup"))
        .await
        .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "via backup");
    let h = health(sc.admin).await;
    assert_eq!(h["inputs"]["prober"]["fallback"], "backup", "{h}");

    // The primary is back: the prober returns to it (within reconnection.max_delay) and the gauge is 0.
    let _primary = node_ws_on(primary_port, &[]);
    gauge_becomes(sc.admin, None).await;
    let changes: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["delta"] == "fallback_mode_changed" || v["delta"] == "primary_restored")
        .map(|v| {
            v["websocket.fallback.mode"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(changes, ["backup", "primary"], "one line per change");
}

#[tokio::test(flavor = "multi_thread")]
async fn degraded_then_downgraded_modes_show_on_the_gauge() {
    // WebSocket refused (401) at this path, SSE served at /sse: degraded, then on SSE.
    let up = node_ws(&[]);
    let mut env = fast_env();
    env.push(("ISKRA_SIDECAR_PROBE__SSE_PATH", "/sse"));
    let (sc, _lines) = sidecar_logged(
        &format!("ws://127.0.0.1:{}/forbidden-ws", up.port),
        &[],
        &env,
    );
    gauge_becomes(sc.admin, Some("sse")).await;

    // Nothing answers at all: degraded, no transport.
    let dead = dead_port();
    let (sc, _lines) = sidecar_logged(&format!("ws://127.0.0.1:{dead}"), &[], &fast_env());
    gauge_becomes(sc.admin, Some("degraded")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_enable_fallback_false_keeps_the_prober_on_the_primary() {
    let backup = node_ws(&[]);
    let dead = dead_port();
    let mut env = fast_env();
    let backups = format!("ws://127.0.0.1:{}", backup.port);
    env.push(("ISKRA_SIDECAR_BACKUP_UPSTREAMS", &backups));
    env.push(("WEBSOCKET_ENABLE_FALLBACK", "false"));
    let (sc, lines) = sidecar_logged(&format!("ws://127.0.0.1:{dead}"), &[], &env);
    // Well past max_attempts (3), every attempt is on the primary, and nothing falls back.
    let attempts = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["delta"] == "connection_failed" && v["endpoint"] == "pulse")
            .count()
    };
    eventually(Duration::from_secs(15), "6 failed attempts", || {
        attempts() >= 6
    })
    .await;
    let l = lines.lock().unwrap().clone();
    let target = l
        .iter()
        .find(|v| v["event_type"] == "probe_target")
        .unwrap();
    assert_eq!(target["fallback"], false);
    assert_eq!(target["backups"], serde_json::json!([]));
    for d in [
        "server_failover",
        "fallback_activated",
        "protocol_downgraded",
        "fallback_mode_changed",
    ] {
        assert!(!l.iter().any(|v| v["delta"] == d), "{d} with fallback off");
    }
    assert!(
        !l.iter().any(|v| v["delta"] == "connection_established"),
        "the prober never used the backup"
    );
    gauge_becomes(sc.admin, None).await;
    assert_eq!(
        metric(sc.admin, "websocket_fallbacks_total", &[])
            .await
            .unwrap_or(0.0),
        0.0
    );

    // The same sidecar with fallback on (the default) uses the backup.
    let env: Vec<_> = env
        .into_iter()
        .filter(|(k, _)| *k != "WEBSOCKET_ENABLE_FALLBACK")
        .collect();
    let (sc, _l) = sidecar_logged(&format!("ws://127.0.0.1:{dead}"), &[], &env);
    gauge_becomes(sc.admin, Some("backup")).await;
}

/// A server that accepts TCP connections and never answers: every request to it times out.
async fn black_hole() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_fallback_timeout_bounds_each_downgrade_transport() {
    let port = black_hole().await;
    let mut env = fast_env();
    env.retain(|(k, _)| *k != "WEBSOCKET_REQUEST_TIMEOUT");
    env.push(("WEBSOCKET_REQUEST_TIMEOUT", "200"));
    env.push(("WEBSOCKET_FALLBACK_TIMEOUT", "1500"));
    let (_sc, lines) = sidecar_logged(&format!("ws://127.0.0.1:{port}"), &[], &env);
    let timed_out = |t: &str| {
        lines.lock().unwrap().iter().find_map(|v| {
            (v["delta"] == "connection_failed"
                && v["websocket.transport"] == t
                && v["cause"] == "timed_out")
                .then(|| v["duration_ms"].as_f64().unwrap())
        })
    };
    eventually(Duration::from_secs(20), "polling timed out", || {
        timed_out("polling").is_some()
    })
    .await;
    // Each transport waited the seed's fallback timeout (1500 ms), not the 30 s default, and not the
    // WebSocket's request timeout (200 ms).
    for t in ["sse", "long_polling", "polling"] {
        let ms = timed_out(t).unwrap_or_else(|| panic!("{t} timed out"));
        assert!((1500.0..10000.0).contains(&ms), "{t}: {ms} ms");
    }
    let ws = timed_out("websocket").expect("websocket timed out");
    assert!((200.0..1500.0).contains(&ws), "websocket: {ws} ms");
}
