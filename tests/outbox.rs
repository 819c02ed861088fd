//! The prober's outbox (the seed's offline buffer, done right) against real node `ws` dashboards that
//! record every text message they receive (tests/peers/ws-server.js, `RECORD=FILE`): delivery in order
//! and exactly once after the dashboard comes back, the batch trigger, put-back and resend of an
//! unconfirmed flush, and persistence across a sidecar crash. [`refusals`]: a full outbox by count or
//! by bytes (507, counted, nothing evicted) and the endpoint's other refusals. [`auth`]: the bearer
//! token `POST /probe/send` requires, and that it never leaks. `monitor --send` is in tests/commands.rs.

#[path = "outbox/auth.rs"]
mod auth;
#[path = "outbox/refusals.rs"]
mod refusals;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use iskra_ws_sidecar::events::EventKind;
use iskra_ws_sidecar::semantics::{self, LogLevel};
use serde_json::{json, Value};

use support::*;

/// A prober that retries fast, beats fast, and takes `POST /probe/send` with [`SEND_TOKEN`].
pub(crate) fn fast_prober(t: &mut Value) {
    t["websocket"]["reconnection"] = json!({"max_attempts": 1000, "initial_delay": 50, "backoff_multiplier": 1.5, "max_delay": 300, "jitter": true});
    t["websocket"]["heartbeat"] = fast_heartbeats();
    t["limits"]["upstream_timeout_ms"] = 1000.into();
    t["probe"]["send_token"] = SEND_TOKEN.into();
}

async fn gauge(admin: SocketAddr) -> Option<f64> {
    metric(
        admin,
        "websocket_buffer_queued",
        &[("iskra_dashboard", "pulse")],
    )
    .await
}

async fn until_recorded(file: &Path, n: usize) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let got = recorded(file);
        if got.len() >= n {
            return got;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the dashboard got {got:?}, expected {n} messages"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn messages(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("msg-{i:02} «é» \"q\"")).collect()
}

/// Posts each message to `POST /probe/send`; every one must be queued (202).
async fn queue_all(admin: std::net::SocketAddr, msgs: &[String]) {
    for m in msgs {
        assert_eq!(post_probe_send(admin, m.as_bytes()).await.0, 202, "{m}");
    }
}

fn record_env(file: &Path) -> [(&'static str, String); 2] {
    [
        ("RECORD", file.display().to_string()),
        ("PLAIN_ECHO", "1".into()),
    ]
}

fn env_refs<'a>(e: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    e.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_posted_while_the_dashboard_is_down_arrive_in_order_exactly_once_after_it_returns()
{
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("received.jsonl");
    let env = record_env(&rec);
    let up = node_ws(&env_refs(&env));
    let port = up.port;
    let (sc, mut rx) = in_process(|t| {
        fast_prober(t);
        t["upstream"] = format!("ws://127.0.0.1:{port}").into();
    })
    .await;
    until(&mut rx, "prober connected", |k| {
        matches!(k, EventKind::ProbeSucceeded { .. })
    })
    .await;
    drop(up); // the dashboard dies
    until(&mut rx, "prober lost the dashboard", |k| {
        matches!(k, EventKind::ProbeFailed { .. })
    })
    .await;
    let sent = messages(25);
    for (i, m) in sent.iter().enumerate() {
        let (status, _, body) = post_probe_send(sc.admin_addr, m.as_bytes()).await;
        assert_eq!((status, body["queued"].as_u64()), (202, Some(i as u64 + 1)));
    }
    assert_eq!(gauge(sc.admin_addr).await, Some(25.0));
    assert!(
        recorded(&rec).is_empty(),
        "nothing can arrive while it is down"
    );
    let _back = node_ws_on(port, &env_refs(&env));
    let mut flushed = 0;
    while flushed < 25 {
        let seen = until(&mut rx, "buffer_flushed", |k| {
            matches!(k, EventKind::BufferFlushed { .. })
        })
        .await;
        if let Some(EventKind::BufferFlushed { messages, .. }) = seen.last() {
            flushed += messages;
        }
    }
    assert_eq!(flushed, 25, "each message confirmed once");
    assert_eq!(recorded(&rec), sent, "in order, each exactly once");
    assert_eq!(gauge(sc.admin_addr).await, Some(0.0));
    let d = [("iskra_dashboard", "pulse")];
    let delivered = metric(sc.admin_addr, "websocket_buffer_delivered_total", &d).await;
    assert_eq!(delivered, Some(25.0));
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_queued_messages_flush_at_once_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("received.jsonl");
    let up = node_ws(&env_refs(&record_env(&rec)));
    let (sc, mut rx) = in_process(|t| {
        fast_prober(t);
        t["upstream"] = format!("ws://127.0.0.1:{}", up.port).into();
        t["websocket"]["fallback"]["flush_interval"] = 600_000.into(); // only the batch can trigger
    })
    .await;
    // A heartbeat round trip: the (re)connect flush has come and gone with nothing queued.
    until(&mut rx, "a prober heartbeat", |k| {
        matches!(k, EventKind::PingPong { rtt: Some(_), .. })
    })
    .await;
    let sent = messages(10);
    queue_all(sc.admin_addr, &sent).await;
    assert_eq!(until_recorded(&rec, 10).await, sent);
    let seen = until(&mut rx, "buffer_flushed", |k| {
        matches!(k, EventKind::BufferFlushed { .. })
    })
    .await;
    let last = seen.last().unwrap();
    assert!(matches!(
        last,
        EventKind::BufferFlushed {
            messages: 10,
            queued: 0,
            ..
        }
    ));
    let s = semantics::describe(last, &semantics::Context::default());
    assert_eq!(
        (s.delta, s.omega, s.level),
        ("buffer_flushed", 0.8, LogLevel::Info)
    );
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unconfirmed_flush_is_put_back_and_sent_again_after_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let (rec1, rec2) = (dir.path().join("1.jsonl"), dir.path().join("2.jsonl"));
    let port = dead_port();
    let (sc, mut rx) = in_process(|t| {
        fast_prober(t);
        t["upstream"] = format!("ws://127.0.0.1:{port}").into();
        // 3 < flush_batch and no interval: only the flush on (re)connect can send them.
        t["websocket"]["fallback"]["flush_interval"] = 600_000.into();
    })
    .await;
    let sent = messages(3);
    queue_all(sc.admin_addr, &sent).await;
    // A dashboard that reads everything and never answers a ping: no flush is ever confirmed.
    let mut env = record_env(&rec1).to_vec();
    env.push(("NO_PONG", "1".into()));
    let mute = node_ws_on(port, &env_refs(&env));
    until(&mut rx, "the silent link declared dead", |k| {
        matches!(k, EventKind::HeartbeatTimeout { .. })
    })
    .await;
    // After the reconnect the same batch goes again, whole and in order (at-least-once).
    let got = until_recorded(&rec1, 6).await;
    for attempt in got.chunks(3) {
        assert_eq!(
            attempt,
            &sent[..attempt.len()],
            "every attempt in order: {got:?}"
        );
    }
    assert_eq!(
        gauge(sc.admin_addr).await,
        Some(3.0),
        "still held: nothing confirmed"
    );
    drop(mute);
    let _ok = node_ws_on(port, &env_refs(&record_env(&rec2)));
    until(&mut rx, "buffer_flushed", |k| {
        matches!(k, EventKind::BufferFlushed { messages: 3, .. })
    })
    .await;
    assert_eq!(recorded(&rec2), sent);
    assert_eq!(gauge(sc.admin_addr).await, Some(0.0));
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_spool_dir_the_outbox_survives_a_sidecar_crash_and_is_delivered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, rec) = (dir.path().join("spool"), dir.path().join("received.jsonl"));
    let port = dead_port();
    let upstream = format!("ws://127.0.0.1:{port}");
    let spool_s = spool.display().to_string();
    let env = [
        ("ISKRA_SIDECAR_TELEMETRY__SPOOL_DIR", spool_s.as_str()),
        ("ISKRA_SIDECAR_PROBE__SEND_TOKEN", SEND_TOKEN),
        ("OTEL_SDK_DISABLED", "true"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__INITIAL_DELAY", "50"),
        ("ISKRA_SIDECAR_WEBSOCKET__RECONNECTION__MAX_DELAY", "300"),
        // 4 < flush_batch and no interval: only the flush on connect can send them.
        (
            "ISKRA_SIDECAR_WEBSOCKET__FALLBACK__FLUSH_INTERVAL",
            "600000",
        ),
    ];
    let first = sidecar(&upstream, &[], &env);
    let sent = messages(4);
    queue_all(first.admin, &sent).await;
    drop(first); // SIGKILL: no shutdown, no flush
    let file = spool.join("outbox-pulse.jsonl");
    assert_eq!(recorded(&file), sent, "on disk, in order, before the 202s");
    let second = sidecar(&upstream, &[], &env);
    assert_eq!(gauge(second.admin).await, Some(4.0), "reloaded at start");
    let _up = node_ws_on(port, &env_refs(&record_env(&rec)));
    assert_eq!(until_recorded(&rec, 4).await, sent);
    let t0 = Instant::now();
    while gauge(second.admin).await != Some(0.0) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the flush was never confirmed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        recorded(&file).is_empty(),
        "confirmed messages leave the file"
    );
    assert_eq!(recorded(&rec), sent, "delivered once");
}
