//! Holding sessions through a dashboard restart (`resume.*`), against real peers: the node `ws` dashboard
//! killed (SIGKILL) and started again on the same port, node `ws` and Python `websockets` clients with
//! permessage-deflate (context takeover offered by the client), a raw dashboard that dies mid-frame or
//! mid-fragmented message, a client that overflows the hold buffer, SIGTERM during a hold, a restart
//! longer than the window, a primary replaced by its backup, a restarted dashboard that answers another
//! 101 (a mismatch), an upstream that stops answering heartbeats, a client's own 1001 close (never a
//! hold), and an upgrade on a keep-alive connection (hyper's path). The rig is tests/resume/rig.rs; the
//! browser test is tests/resume_browser.rs.

#[path = "resume/rig.rs"]
mod rig;
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use rig::*;
use support::*;

/// Tests here restart dashboards on fixed ports they picked: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The checks both library clients must pass after a restart inside the window.
fn assert_survived(c: &Client, summary: &Value, killed: u64, up: u64) {
    let ext = summary["extensions"].to_string();
    assert!(
        ext.contains("client_no_context_takeover"),
        "the client's 101 should carry client_no_context_takeover: {ext}"
    );
    assert_eq!(summary["opens"], 1, "{summary}");
    assert_eq!(summary["bad"], 0, "every echo byte-exact: {summary}");
    let closes = summary["closes"].as_array().unwrap();
    assert_eq!(closes.len(), 1, "only the client's own close: {summary}");
    assert_eq!(closes[0]["code"], 1000, "{summary}");
    let echoes = c.times("echo");
    let after = echoes.iter().filter(|(_, t)| *t > up).count();
    assert!(after >= 10, "echoes after the restart: {after} ({summary})");
    // Everything sent once the loss was seen was held and delivered, in order.
    let echoed: std::collections::BTreeSet<u64> = echoes.iter().map(|(i, _)| *i).collect();
    let held: Vec<u64> = c
        .times("sent")
        .into_iter()
        .filter(|(_, t)| *t >= killed + 200 && *t <= up)
        .map(|(i, _)| i)
        .collect();
    assert!(held.len() >= 5, "messages sent during the gap: {held:?}");
    for i in &held {
        assert!(
            echoed.contains(i),
            "message {i}, sent during the gap, was never echoed"
        );
    }
    let order: Vec<u64> = echoes.iter().map(|(i, _)| *i).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "echoes out of order: {order:?}"
    );
}

/// A library client (`spawn`) through a sidecar (`extra` settings) while the deflate dashboard restarts
/// for 1.5 s inside a 5 s window: it must notice nothing. Returns its summary.
async fn through_a_restart(
    spawn: fn(&str, &[(&str, &str)]) -> Client,
    extra: &[(&'static str, &str)],
) -> (Sidecar, Value) {
    let deflate = [("DEFLATE", "1")];
    let dash = node_ws(&deflate);
    let mut env = resume_env("5000");
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let sc = sidecar_with(dash.port, &env);
    let url = format!("ws://{}/live?token=t0k3n", sc.addr);
    let c = spawn(&url, &[("EVERY", "50"), ("DURATION", "5000")]);
    eventually(Duration::from_secs(10), "10 echoes", || {
        c.count("echo") >= 10
    })
    .await;
    let (_dash, killed, up) = restart(dash, Duration::from_millis(1500), &deflate).await;
    let summary = c.summary(Duration::from_secs(15)).await;
    println!("{summary}");
    assert_survived(&c, &summary, killed, up);
    counted(&sc, &[("outcome", "resumed")]).await;
    (sc, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ws_client_with_deflate_survives_a_restart_and_its_first_message_is_replayed() {
    let _g = SERIAL.lock().await;
    let replay = [("ISKRA_SIDECAR_RESUME__REPLAY_MESSAGES", "1")];
    let (_sc, summary) = through_a_restart(Client::node, &replay).await;
    // replay_messages = 1: the new dashboard got message 0 again and echoed it: one non-echo message.
    assert_eq!(summary["other"], 1, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client_with_deflate_survives_a_restart() {
    let _g = SERIAL.lock().await;
    let (_sc, summary) = through_a_restart(Client::python, &[]).await;
    assert_eq!(summary["other"], 0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_killed_mid_frame_or_mid_message_is_not_held_and_no_frame_is_corrupted() {
    let _g = SERIAL.lock().await;
    let before = frame(0x1, true, b"{\"before\": true}");
    let mut partial = frame(0x2, true, &[7u8; 1000]);
    partial.truncate(600);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        // Inside a fragmented message: the client gets a clean 1012 between fragments.
        (
            "mid_message",
            frame(0x1, false, b"part-1"),
            1012,
            "mid_message",
        ),
        // A header cut short: nothing of the frame was forwarded, so a clean 1012.
        ("mid_header", vec![0x82, 0x7E, 0x03], 1012, "mid_frame"),
        // Half a payload forwarded: no close frame can follow it; the client sees the connection end
        // (1006) and never a message made of the half it got.
        ("mid_payload", partial, 1006, ""),
    ];
    for (name, tail, code, reason) in cases {
        let port = raw_dashboard([before.clone(), tail].concat()).await;
        let sc = sidecar_with(port, &resume_env("5000"));
        let c = Client::node(&format!("ws://{}/raw", sc.addr), &[("EVERY", "0")]);
        let summary = c.summary(Duration::from_secs(10)).await;
        println!("{name}: {summary}");
        assert_eq!(
            summary["other"], 1,
            "{name}: only the whole message before: {summary}"
        );
        let close = &summary["closes"][0];
        assert_eq!(close["code"], code, "{name}: {summary}");
        assert!(
            close["reason"].as_str().unwrap().contains(reason),
            "{name}: {summary}"
        );
        let lines = c.lines.lock().unwrap().clone();
        let other = lines.iter().find_map(|v| v.get("other")).unwrap();
        assert_eq!(other["len"], before.len() - 2, "{name}");
        let why = if name == "mid_message" {
            "mid_message"
        } else {
            "mid_frame"
        };
        counted(&sc, &[("outcome", "gave_up"), ("reason", why)]).await;
    }
}

/// A plain node `ws` dashboard, a sidecar with `env`, and a node client (`client_env`) that got `n` echoes.
async fn echoing(
    env: &[(&'static str, String)],
    client_env: &[(&str, &str)],
    n: usize,
) -> (NodeWs, Sidecar, Client) {
    let dash = node_ws(&[]);
    let sc = sidecar_with(dash.port, env);
    let c = Client::node(&format!("ws://{}/live", sc.addr), client_env);
    eventually(Duration::from_secs(10), "echoes", || c.count("echo") >= n).await;
    (dash, sc, c)
}

/// The client got 1012 naming `why`, within `limit` of `t0`, and the sidecar counted it.
async fn gave_up_within(c: &Client, sc: &Sidecar, t0: Instant, limit: Duration, why: &str) {
    let summary = c.summary(Duration::from_secs(10)).await;
    let took = t0.elapsed();
    println!("{summary} after {took:?}");
    closed_with(&summary, 1012, why);
    assert!(took < limit, "closed after {took:?}, not within {limit:?}");
    counted(sc, &[("outcome", "gave_up"), ("reason", why)]).await;
}

/// The client's (only) close has `code` and a reason containing `why`.
fn closed_with(summary: &Value, code: u16, why: &str) {
    let close = &summary["closes"][0];
    assert_eq!(close["code"], code, "{summary}");
    let reason = close["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(why), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_overflows_the_hold_buffer_is_closed_with_the_reason() {
    let _g = SERIAL.lock().await;
    let mut env = resume_env("5000");
    env.push(("ISKRA_SIDECAR_RESUME__BUFFER_BYTES", "16384".into()));
    let random = [("EVERY", "20"), ("SIZE", "2000"), ("RANDOM", "1")];
    let (dash, sc, c) = echoing(&env, &random, 5).await;
    let t0 = Instant::now();
    drop(dash);
    gave_up_within(&c, &sc, t0, Duration::from_secs(4), "buffer_full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_hold_closes_with_1001() {
    let _g = SERIAL.lock().await;
    let (dash, sc, c) = echoing(&resume_env("10000"), &[("EVERY", "100")], 3).await;
    drop(dash);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.count("close"), 0, "held, not closed");
    sc.proc.signal("TERM");
    let summary = c.summary(Duration::from_secs(10)).await;
    println!("{summary}");
    closed_with(&summary, 1001, "shutting down");
}

/// Settings of a process (name, value).
type Env<'a> = &'a [(&'a str, &'a str)];

/// The dashboard (`before`: its settings) restarts after `gap` as `after` under a sidecar holding
/// `hold_ms`: the client must get 1012 naming `why` within `limit`.
async fn restart_gives_up(
    (before, after): (Env<'_>, Env<'_>),
    hold_ms: &str,
    gap: Duration,
    limit: Duration,
    why: &str,
) {
    let dash = node_ws(before);
    let sc = sidecar_with(dash.port, &resume_env(hold_ms));
    let c = Client::node(&format!("ws://{}/live", sc.addr), &[("EVERY", "100")]);
    eventually(Duration::from_secs(10), "echoes", || c.count("echo") >= 3).await;
    let t0 = Instant::now();
    let (_dash, _, _) = restart(dash, gap, after).await;
    gave_up_within(&c, &sc, t0, limit, why).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_longer_than_the_window_ends_in_1012() {
    let _g = SERIAL.lock().await;
    let (gap, limit) = (Duration::from_millis(2500), Duration::from_secs(5));
    restart_gives_up((&[], &[]), "800", gap, limit, "hold_timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_does_not_come_back_is_replaced_by_the_backup() {
    let _g = SERIAL.lock().await;
    let backup = node_ws(&[]);
    let mut env = resume_env("5000");
    let b = format!("ws://127.0.0.1:{}", backup.port);
    env.push(("ISKRA_SIDECAR_BACKUP_UPSTREAMS", b));
    let (dash, sc, c) = echoing(&env, &[("EVERY", "50"), ("DURATION", "3000")], 10).await;
    drop(dash); // the primary is gone for good
    let killed = now_ms();
    let summary = c.summary(Duration::from_secs(10)).await;
    println!("{summary}");
    assert_eq!(summary["opens"], 1, "{summary}");
    closed_with(&summary, 1000, "done");
    let after = c
        .times("echo")
        .iter()
        .filter(|(_, t)| *t > killed + 500)
        .count();
    assert!(after >= 10, "echoes from the backup: {after}");
    counted(&sc, &[("outcome", "resumed")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_dashboard_that_no_longer_speaks_deflate_is_a_mismatch() {
    let _g = SERIAL.lock().await;
    let deflate: &[(&str, &str)] = &[("DEFLATE", "1")];
    let (gap, limit) = (Duration::from_millis(300), Duration::from_secs(4));
    restart_gives_up((deflate, &[]), "5000", gap, limit, "handshake_mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_answering_heartbeats_is_replaced_without_the_client_noticing() {
    let _g = SERIAL.lock().await;
    let mut env = resume_env("5000");
    for (k, v) in [
        ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__INTERVAL", "300"),
        ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__TIMEOUT", "200"),
        ("ISKRA_SIDECAR_WEBSOCKET__HEARTBEAT__FAILURE_THRESHOLD", "2"),
    ] {
        env.push((k, v.to_string()));
    }
    // A dashboard that reads and echoes but never answers a ping: every connection to it is found
    // dead within interval + timeout × threshold, held, and replaced by a new one.
    let dash = node_ws(&[("NO_PONG", "1")]);
    let sc = sidecar_with(dash.port, &env);
    let c = Client::node(
        &format!("ws://{}/live", sc.addr),
        &[("EVERY", "50"), ("DURATION", "3000")],
    );
    let summary = c.summary(Duration::from_secs(10)).await;
    println!("{summary}");
    assert_eq!(summary["opens"], 1, "{summary}");
    closed_with(&summary, 1000, "done");
    assert_eq!(summary["bad"], 0, "{summary}");
    let late = c.times("echo").iter().filter(|(i, _)| *i > 40).count();
    assert!(late >= 5, "echoes in the last second: {late}");
    counted_at_least(&sc, &[("outcome", "resumed")], 2.0, 20.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_with_1001_gets_the_dashboards_answer_not_a_hold() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    use tokio_tungstenite::tungstenite::Message;
    let _g = SERIAL.lock().await;
    // The dashboard answers a close with the same code: its 1001 is an answer, not a restart.
    let dash = node_ws(&[]);
    let sc = sidecar_with(dash.port, &resume_env("5000"));
    let url = format!("ws://{}/live", sc.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let away = CloseFrame {
        code: CloseCode::Away,
        reason: "tab closed".into(),
    };
    ws.send(Message::Close(Some(away))).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("the dashboard's close answer arrives at once");
    match answer {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1001),
        other => panic!("expected the 1001 answer, got {other:?}"),
    }
    counted_at_least(&sc, &[("outcome", "resumed")], 0.0, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_later_on_a_keep_alive_connection_is_held_too() {
    use iskra_ws_sidecar::chaos::wire::{masked, read_head, Got, Reader};
    let _g = SERIAL.lock().await;
    let dash = node_ws(&[]);
    let sc = sidecar_with(dash.port, &resume_env("5000"));
    // A plain request first: the upgrade that follows on the same connection takes hyper's path.
    let mut s = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
    let limit = Duration::from_secs(5);
    // (204: no body to skip.)
    s.write_all(b"GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let plain = read_head(&mut s, limit).await.unwrap();
    assert_eq!((plain.status, plain.rest.len()), (204, 0), "{}", plain.text);
    let upgrade = "GET /later HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.write_all(upgrade.as_bytes()).await.unwrap();
    let head = read_head(&mut s, limit).await.unwrap();
    assert_eq!(head.status, 101, "{}", head.text);
    let mut r = Reader::new(head.rest);
    s.write_all(&masked(0x1, b"before")).await.unwrap();
    assert!(matches!(r.next_data(&mut s, limit).await, Got::Frame(1, p) if p == b"before"));
    let (_dash, _, _) = restart(dash, Duration::from_millis(1000), &[]).await;
    s.write_all(&masked(0x1, b"after")).await.unwrap();
    let got = r.next_data(&mut s, Duration::from_secs(10)).await;
    assert!(matches!(&got, Got::Frame(1, p) if p == b"after"), "{got:?}");
    counted(&sc, &[("outcome", "resumed")]).await;
}
