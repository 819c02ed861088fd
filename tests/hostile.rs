//! Hostile and unlucky clients (issue 12), from outside the process over real sockets against real
//! peers: a request smuggled behind a refused upgrade never reaches a keep-alive upstream; a pong flood
//! is forwarded, not measured; an admin-port flood under a 1024-descriptor limit leaves the proxy
//! serving (tests/admin_limits.rs); `X-Forwarded-For` / `X-Forwarded-Proto` reach the upstream on both paths; the 431 limit is
//! exact below hyper's 8 KiB floor. The RSS bound of aborted handshakes and the chaos scenarios run in
//! tests/chaos.rs (release binary).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use iskra_ws_sidecar::app;
use iskra_ws_sidecar::events::{EventKind, RejectCause};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use support::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// tests/peers/http-keepalive.js: answers 200 to every request head and keeps the connection.
struct KeepAlive {
    proc: Proc,
    port: u16,
}

fn keepalive_upstream() -> KeepAlive {
    let dir = root().join("tests/peers");
    let mut cmd = std::process::Command::new("node");
    cmd.arg(dir.join("http-keepalive.js"));
    let mut proc = spawn_piped(cmd, &[]);
    let port = proc.wait_json(|v| v.get("port").is_some())["port"]
        .as_u64()
        .unwrap() as u16;
    KeepAlive { proc, port }
}

impl KeepAlive {
    /// The request heads it has read so far (after a short settle), in order.
    fn requests(&mut self) -> Vec<Value> {
        std::thread::sleep(Duration::from_millis(300));
        let out = self.proc.stdout.take().unwrap();
        let fd_lines = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut out = out;
            let mut got = Vec::new();
            let mut line = String::new();
            while out.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                    got.push(v);
                }
                line.clear();
            }
            got
        });
        // The upstream only prints while requests come: stop it to read what it printed.
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        fd_lines.join().unwrap()
    }
}

/// Sends `raw` and reads until the sidecar closes: (whole response text, closed within 5 s).
async fn exchange(addr: SocketAddr, raw: &str) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .is_ok_and(|r| r.is_ok());
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

fn upgrade(extra: &str) -> String {
    format!(
        "GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
    )
}

const PIPELINED: &str = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn nothing_pipelined_behind_a_refused_upgrade_reaches_a_keep_alive_upstream() {
    let mut up = keepalive_upstream();
    let sc = sidecar_of(&binary(), &format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    // The upstream answers the valid upgrade with 200 and keeps its socket: relayed, then closed.
    let valid = upgrade(&format!(
        "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ));
    let v12 = upgrade(&format!(
        "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 12\r\n"
    ));
    let short_key = upgrade("Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n");
    let mut got = Vec::new();
    for head in [valid, upgrade(""), v12, short_key] {
        got.push(exchange(sc.addr, &format!("{head}{PIPELINED}")).await);
    }
    let seen = up.requests();
    for (text, closed) in &got {
        println!("client got (closed: {closed}):\n{text}");
    }
    println!("the upstream saw: {seen:?}");
    // Relayed with Connection: close, one answer, then the connection ends.
    let (text, _) = &got[0];
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close\r\n"));
    assert!(!text.to_ascii_lowercase().contains("keep-alive"));
    assert!(text.ends_with("\r\n\r\nok\n"), "{text:?}");
    // The sidecar refuses the others itself, without dialing.
    let (text, _) = &got[1];
    assert!(
        text.starts_with("HTTP/1.1 426 ") || text.starts_with("HTTP/1.1 400 "),
        "{text}"
    );
    let (text, _) = &got[2];
    assert!(
        text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{text}"
    );
    assert!(text
        .to_ascii_lowercase()
        .contains("sec-websocket-version: 13\r\n"));
    let (text, _) = &got[3];
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    for (text, closed) in &got {
        assert_eq!(
            text.matches("HTTP/1.1").count(),
            1,
            "one answer only: {text}"
        );
        assert!(
            closed,
            "the sidecar closes the connection after the refusal"
        );
    }
    // (The prober's own upgrades go to `/`.)
    let lines: Vec<&str> = seen
        .iter()
        .filter_map(|v| v["request"].as_str())
        .filter(|l| *l != "GET / HTTP/1.1")
        .collect();
    assert_eq!(
        lines,
        ["GET /live HTTP/1.1"],
        "only the valid upgrade reaches it"
    );
}

/// RTT samples recorded so far, both peers.
async fn rtt_samples(sc: &app::Running) -> f64 {
    let (_, _, body) = http_get(sc.admin_addr, "/metrics").await;
    let name = "websocket_ping_rtt_seconds_count";
    iskra_ws_sidecar::cmd::chaos::wire::metric_sum(&body, name, &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pong_flood_is_forwarded_untouched_and_records_no_rtt_and_no_events() {
    const PONGS: u64 = 200_000;
    let up = node_ws(&[]);
    let (sc, mut rx) = in_process(|t| {
        upstream(t, up.port);
        t["websocket"]["heartbeat"]["interval"] = 200.into();
        // The client does not read (so does not answer pings) while it floods: give it time.
        t["websocket"]["heartbeat"]["timeout"] = 10000.into();
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/flood", sc.addr))
        .await
        .unwrap();
    // Real heartbeats first: the sidecar's own pings are still measured.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rtt_before = rtt_samples(&sc).await;
    let t0 = Instant::now();
    for i in 0..PONGS {
        let mut p = b"iskra-hb:".to_vec();
        p.extend_from_slice(&i.to_be_bytes());
        ws.feed(Message::Pong(p.into())).await.unwrap();
    }
    ws.send(Message::text("pongs?")).await.unwrap();
    let pongs_at_upstream = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => break serde_json::from_str::<Value>(&t).unwrap()["pongs"].clone(),
            _ => continue,
        }
    };
    let flood = t0.elapsed();
    ws.close(None).await.unwrap();
    let kinds = until(&mut rx, "the flood session's end", |k| {
        matches!(k, EventKind::SessionEnded { .. })
    })
    .await;
    let pingpongs = kinds
        .iter()
        .filter(|k| matches!(k, EventKind::PingPong { .. }))
        .count() as f64;
    let rtt_after = rtt_samples(&sc).await;
    let samples = rtt_after - rtt_before;
    // Two peers, one ping each per 200 ms interval, over the flood, plus slack.
    let heartbeats = 2.0 * (flood.as_secs_f64() / 0.2 + 2.0);
    println!(
        "pong flood: {PONGS} pongs in {flood:?}; upstream received {pongs_at_upstream}; RTT samples +{samples} (heartbeats allow {heartbeats:.0}); {} events, {pingpongs} PingPong; events dropped {}",
        kinds.len(),
        sc.telemetry.sink.dropped()
    );
    assert!(
        pongs_at_upstream.as_u64().unwrap() >= PONGS,
        "every unsolicited pong is forwarded: {pongs_at_upstream}"
    );
    assert!(
        samples >= 1.0,
        "the sidecar's own heartbeats are still measured"
    );
    assert!(samples <= heartbeats, "{samples} RTT samples from a flood");
    assert!(pingpongs <= heartbeats && (kinds.len() as f64) < 50.0 + heartbeats);
    assert_eq!(sc.telemetry.sink.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subprotocol_is_named_only_when_listed() {
    let up = node_ws(&[]);
    for (listed, want) in [(vec![], "other"), (vec!["iskra.v1"], "iskra.v1")] {
        let (sc, mut rx) = in_process(|t| {
            upstream(t, up.port);
            t["telemetry"]["record_subprotocols"] = listed.into();
        })
        .await;
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{}/p", sc.addr),
            )
            .unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", "iskra.v1".parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers()["sec-websocket-protocol"], "iskra.v1");
        let kinds = until(&mut rx, "handshake", |k| {
            matches!(k, EventKind::HandshakeCompleted { .. })
        })
        .await;
        let Some(EventKind::HandshakeCompleted { subprotocol, .. }) = kinds.last() else {
            unreachable!()
        };
        assert_eq!(subprotocol.as_deref(), Some(want));
        ws.close(None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_resets_after_its_head_still_ends_its_session() {
    // An upstream that accepts and never answers: the client gives up first.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (sc, mut rx) = in_process(|t| {
        upstream(t, silent.local_addr().unwrap().port());
        t["limits"]["upstream_timeout_ms"] = 300.into();
    })
    .await;
    let mut s = TcpStream::connect(sc.addr).await.unwrap();
    let head = upgrade(&format!(
        "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ));
    s.write_all(head.as_bytes()).await.unwrap();
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let kinds = until(&mut rx, "the handshake's end", |k| {
        matches!(k, EventKind::HandshakeRejected { .. })
    })
    .await;
    assert!(
        matches!(
            kinds.last(),
            Some(EventKind::HandshakeRejected {
                cause: RejectCause::UpstreamTimeout | RejectCause::ClientGone,
                ..
            })
        ),
        "{kinds:?}"
    );
    eventually(Duration::from_secs(5), "the span builder to let go", || {
        sc.telemetry
            .registry
            .render_prometheus(&[])
            .contains("iskra_sidecar_sessions_tracked{iskra_dashboard=\"pulse\"} 0")
    })
    .await;
}

/// The upstream's view of one plain GET and one WebSocket session through a sidecar started with `env`.
async fn forwarded_seen(env: &[(&str, &str)]) -> (Value, Value) {
    let mut up = keepalive_upstream();
    let ws_up = node_ws(&[]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], env);
    let raw = "GET /page HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n";
    let (status, _, _) = http_request(sc.addr, raw).await;
    assert_eq!(status, 200);
    // The prober's own upgrades reach this upstream too: pick the GET.
    let seen = up.requests();
    let page = seen.iter().find(|v| v["request"] == "GET /page HTTP/1.1");
    let http = page.expect("the GET reached the upstream")["headers"].clone();
    let sc_ws = sidecar(&format!("ws://127.0.0.1:{}", ws_up.port), &[], env);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/live", sc_ws.addr),
    )
    .unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("hello?")).await.unwrap();
    let seen = loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            break serde_json::from_str::<Value>(&t).unwrap()["headers"].clone();
        }
    };
    (http, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_reaches_the_upstream_on_both_paths_kept_only_from_trusted_proxies() {
    let (http, ws) = forwarded_seen(&[]).await;
    println!("untrusted client: HTTP {http}\nWebSocket {ws}");
    for h in [&http, &ws] {
        assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
        assert_eq!(h["x-forwarded-proto"], "http", "{h}");
    }
    let trusted = [(
        "ISKRA_SIDECAR_FORWARDED__TRUSTED_PROXIES",
        "10.0.0.0/8,127.0.0.0/8",
    )];
    let (http, ws) = forwarded_seen(&trusted).await;
    println!("behind a trusted proxy: HTTP {http}\nWebSocket {ws}");
    for h in [&http, &ws] {
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 127.0.0.1", "{h}");
    }
    assert_eq!(http["x-forwarded-proto"], "https");
    let (http, ws) = forwarded_seen(&[("ISKRA_SIDECAR_FORWARDED__ENABLED", "false")]).await;
    assert_eq!(
        http["x-forwarded-for"], "6.6.6.6",
        "passed through untouched when off"
    );
    assert!(ws.get("x-forwarded-proto").is_none());
}

#[test]
fn a_bad_trusted_proxy_cidr_exits_64_naming_the_key_and_value() {
    let env = [(
        "ISKRA_SIDECAR_FORWARDED__TRUSTED_PROXIES",
        "10.0.0.0/8, 10.0.0.0/33",
    )];
    let (code, _, err) = run(
        &["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        &env,
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("forwarded.trusted_proxies.1"), "{err}");
    assert!(err.contains("10.0.0.0/33") && err.contains("CIDR"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_431_limit_is_exact_below_hypers_8_kib_floor_on_both_paths() {
    const MAX: usize = 2000;
    let up = node_ws(&[]);
    let env = [("ISKRA_SIDECAR_LIMITS__MAX_HEADER_SIZE", "2000")];
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &env);
    // A head of exactly `len` bytes: padded with an X-Pad header.
    let head = |start: &str, len: usize| {
        let base = format!("{start}X-Pad: \r\n\r\n");
        let pad = "a".repeat(len - base.len());
        format!("{start}X-Pad: {pad}\r\n\r\n")
    };
    let plain = "GET /health HTTP/1.1\r\nHost: x\r\n";
    for (len, want) in [(MAX, 200), (MAX + 1, 431)] {
        let (text, _) = exchange(
            sc.addr,
            &head(&format!("{plain}Connection: close\r\n"), len),
        )
        .await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want} ")),
            "first head of {len}: {text}"
        );
        // The same size as the second request of a keep-alive connection (hyper's path).
        let first = format!("{plain}\r\n");
        let second = head(&format!("{plain}Connection: close\r\n"), len);
        let (text, _) = exchange(sc.addr, &format!("{first}{second}")).await;
        let statuses: Vec<&str> = text
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &text[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["200", &want.to_string()], "second head of {len}");
    }
    let ws = format!("GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n");
    for (len, want) in [(MAX, 101), (MAX + 1, 431)] {
        let mut s = TcpStream::connect(sc.addr).await.unwrap();
        s.write_all(head(&ws, len).as_bytes()).await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        let got = String::from_utf8_lossy(&buf).into_owned();
        assert_eq!(got, format!("HTTP/1.1 {want}"), "upgrade head of {len}");
    }
}

/// The binary under test: this build's, or `ISKRA_HOSTILE_BIN` (to measure another build, e.g. the
/// previous release, with the same test; its figures are printed before any assertion).
fn binary() -> std::path::PathBuf {
    std::env::var_os("ISKRA_HOSTILE_BIN").map_or_else(|| bin().into(), Into::into)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_flood_cannot_fill_the_event_channel_with_per_message_events() {
    let up = node_ws(&[]);
    let (sc, mut rx) = in_process(|t| {
        upstream(t, up.port);
        t["telemetry"]["frame_events"] = true.into();
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/flood", sc.addr))
        .await
        .unwrap();
    let t0 = Instant::now();
    const N: usize = 5000;
    for i in 0..N {
        ws.feed(Message::text(format!("{i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    let mut echoed = 0;
    while echoed < N {
        if let Message::Text(_) = ws.next().await.unwrap().unwrap() {
            echoed += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    ws.close(None).await.unwrap();
    let kinds = until(&mut rx, "the session's end", |k| {
        matches!(k, EventKind::SessionEnded { .. })
    })
    .await;
    let frames = kinds
        .iter()
        .filter(|k| matches!(k, EventKind::FrameRelayed { .. }))
        .count();
    let suppressed = sc
        .proxy
        .stats
        .events_suppressed
        .load(std::sync::atomic::Ordering::Relaxed);
    println!("{N} messages each way in {secs:.2} s: {frames} FrameRelayed events, {suppressed} suppressed");
    // 100 a second per session (both directions share it), over the whole session.
    assert!(frames as f64 <= 100.0 * (secs + 2.0), "{frames} events");
    assert_eq!(
        frames as u64 + suppressed,
        2 * N as u64,
        "every message is counted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_upgrade_later_on_a_keep_alive_connection_is_refused_by_the_sidecar_too() {
    let up = node_ws(&[]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    // The first request is plain, so the upgrade behind it takes hyper's path.
    let first = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let v12 = format!(
        "GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 12\r\n\r\n"
    );
    let no_key = "GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n";
    let (text, _) = exchange(sc.addr, &format!("{first}{v12}{no_key}")).await;
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "426", "400"], "{text}");
    assert!(text
        .to_ascii_lowercase()
        .contains("sec-websocket-version: 13\r\n"));
}
