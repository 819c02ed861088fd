//! The D rule with its context, through the sidecar binary: while the dashboard is down, each failed
//! reconnection of the prober carries D = 1 + 2 (error) + N (reconnections so far), and + 3 once
//! fallback is active, capped at 10 — read from the exported `ws.reconnect.attempt` spans.

mod support;

use std::time::Duration;

use support::otlp::{attr, grpc_receiver};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn d_rises_with_each_reconnection_and_with_fallback() {
    let (otlp, rec, _h) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("WEBSOCKET_MAX_RECONNECT", "3"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__INITIAL_DELAY", "20"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__MAX_DELAY", "40"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__JITTER", "false"),
    ];
    // Nothing listens on the dashboard's port.
    let _sc = sidecar(&format!("ws://127.0.0.1:{}", dead_port()), &[], &env);
    // (attempt, D) of the failed WebSocket attempts.
    let failed = || {
        let mut v: Vec<(i64, i64)> = rec
            .spans()
            .iter()
            .filter(|s| s.name == "ws.reconnect.attempt")
            .filter(|s| attr(&s.attributes, "websocket.transport").as_deref() == Some("websocket"))
            .filter(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
            .map(|s| {
                let n = |k| attr(&s.attributes, k).unwrap().parse::<i64>().unwrap();
                (n("websocket.reconnect.attempt"), n("iskra.dimension"))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let t0 = std::time::Instant::now();
    while failed().len() < 6 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "six failed attempts: {:?}",
            failed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = failed();
    // Before fallback: 1 + 2 + N.
    assert_eq!(&got[..3], &[(0, 3), (1, 4), (2, 5)], "{got:?}");
    // After 3 failed attempts the prober is in fallback: + 3, capped at 10.
    for &(n, d) in &got[3..] {
        assert!(n >= 3, "{got:?}");
        assert_eq!(d, (1 + 2 + n + 3).min(10), "attempt {n}: {got:?}");
    }
}
