//! The transparent relay against real peers: tokio-tungstenite clients through the sidecar binary to a
//! node `ws` upstream (tests/peers/ws-server.js).

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use support::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_data(ws: &mut Ws) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("timed out")
            .expect("stream ended")
            .expect("ws error");
        if m.is_text() || m.is_binary() || m.is_close() {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_binary_and_16_mib_messages_round_trip_unchanged() {
    let up = node_ws(&[]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    let (mut ws, resp) = connect_async(format!("ws://{}/live", sc.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello ∆DΩΛ")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("hello ∆DΩΛ"));
    let bin: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    ws.send(Message::binary(bin.clone())).await.unwrap();
    assert_eq!(next_data(&mut ws).await.into_data().as_ref(), &bin[..]);
    let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    let got = next_data(&mut ws).await.into_data();
    assert_eq!(got.len(), big.len());
    assert!(
        got.as_ref() == &big[..],
        "16 MiB payload changed in transit"
    );
    ws.send(Message::text("stream:200")).await.unwrap();
    for i in 0..200 {
        assert_eq!(
            next_data(&mut ws).await,
            Message::text(format!("msg {i}")),
            "order kept"
        );
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_headers_and_subprotocol_reach_the_upstream_and_come_back() {
    let up = node_ws(&[]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    let mut req = format!("ws://{}/feed?room=7", sc.addr)
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert(
        "Sec-WebSocket-Protocol",
        "iskra.v0, iskra.v2".parse().unwrap(),
    );
    h.insert("Cookie", "session=abc".parse().unwrap());
    h.insert("Authorization", "Bearer t0k3n".parse().unwrap());
    h.insert("Origin", "https://pulse.iskra.local".parse().unwrap());
    let (mut ws, resp) = connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "iskra.v2");
    ws.send(Message::text("hello?")).await.unwrap();
    let seen: serde_json::Value =
        serde_json::from_str(next_data(&mut ws).await.to_text().unwrap()).unwrap();
    assert_eq!(seen["url"], "/feed?room=7");
    assert_eq!(seen["headers"]["cookie"], "session=abc");
    assert_eq!(seen["headers"]["authorization"], "Bearer t0k3n");
    assert_eq!(seen["headers"]["origin"], "https://pulse.iskra.local");
    assert_eq!(seen["protocol"], "iskra.v2");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_close_code_class_round_trips_with_its_reason() {
    let up = node_ws(&[]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    // Upstream-initiated closes.
    for code in [
        1000u16, 1001, 1003, 1007, 1008, 1009, 1011, 3000, 3999, 4000, 4999,
    ] {
        let (mut ws, _) = connect_async(format!("ws://{}/", sc.addr)).await.unwrap();
        ws.send(Message::text(format!("close:{code}:reason {code}")))
            .await
            .unwrap();
        match next_data(&mut ws).await {
            Message::Close(Some(f)) => {
                assert_eq!(
                    (u16::from(f.code), f.reason.as_str()),
                    (code, format!("reason {code}").as_str())
                )
            }
            other => panic!("expected close {code}, got {other:?}"),
        }
    }
    // Client-initiated closes: the upstream echoes the code back through the sidecar.
    for code in [1000u16, 1001, 4001] {
        let (mut ws, _) = connect_async(format!("ws://{}/", sc.addr)).await.unwrap();
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "client bye".into(),
        };
        ws.close(Some(frame)).await.unwrap();
        match next_data(&mut ws).await {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), code),
            other => panic!("expected close echo {code}, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_and_sse_pass_through_streamed() {
    let up = node_ws(&[]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    let (st, _, body) = http_get(sc.addr, "/health").await;
    assert_eq!((st, body.as_str()), (200, "{\"status\":\"HEALTHY\"}"));
    let raw = "POST /echo?x=1 HTTP/1.1\r\nHost: x\r\nX-Custom: yes\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world";
    let (st, head, body) = http_request(sc.addr, raw).await;
    assert_eq!(st, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-upstream: node-ws"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            v["method"].as_str(),
            v["body"].as_str(),
            v["headers"]["x-custom"].as_str()
        ),
        (Some("POST"), Some("hello world"), Some("yes"))
    );
    let (st, _, _) = http_get(sc.addr, "/status/418").await;
    assert_eq!(st, 418);
    // SSE: the first event must arrive long before the stream ends (5 events, 200 ms apart).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET /sse HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains("data: {\"n\": 0") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let first = t0.elapsed();
    while !got.contains("data: {\"n\": 4") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let all = t0.elapsed();
    assert!(
        first < Duration::from_millis(600),
        "first event took {first:?}"
    );
    assert!(
        all >= Duration::from_millis(800),
        "events not spread out: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_refused_gives_502_and_timeout_gives_504_and_statuses_pass_as_is() {
    let sc = sidecar(&format!("ws://127.0.0.1:{}", dead_port()), &[], &[]);
    let err = connect_async(format!("ws://{}/", sc.addr))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 502);
            assert!(r.headers().contains_key("retry-after"));
        }
        e => panic!("expected HTTP 502, got {e}"),
    }
    assert_eq!(http_get(sc.addr, "/health").await.0, 502);

    // An upstream that accepts TCP and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let sc2 = sidecar(
        &format!("ws://127.0.0.1:{port}"),
        &[],
        &[("ISKRA_SIDECAR_LIMITS__UPSTREAM_TIMEOUT_MS", "500")],
    );
    let t0 = Instant::now();
    match connect_async(format!("ws://{}/", sc2.addr))
        .await
        .unwrap_err()
    {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 504),
        e => panic!("expected HTTP 504, got {e}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(silent);

    let up = node_ws(&[]);
    let sc3 = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    match connect_async(format!("ws://{}/forbidden-ws", sc3.addr))
        .await
        .unwrap_err()
    {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 401),
        e => panic!("expected the upstream's 401, got {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_dying_mid_session_closes_the_client_with_1012() {
    let mut up = node_ws(&[]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    let (mut ws, _) = connect_async(format!("ws://{}/", sc.addr)).await.unwrap();
    ws.send(Message::text("ping me")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("ping me"));
    up.proc.child.kill().unwrap();
    match next_data(&mut ws).await {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1012),
        other => panic!("expected close 1012, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_sent_request_head_is_dropped_within_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = node_ws(&[]);
    let sc = sidecar(
        &format!("ws://127.0.0.1:{}", up.port),
        &[],
        &[("ISKRA_SIDECAR_LIMITS__HANDSHAKE_TIMEOUT_MS", "1000")],
    );
    let mut s = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 512];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("slowloris connection was kept open");
    let elapsed = t0.elapsed();
    assert!(matches!(r, Ok(_) | Err(_)), "closed");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    // The sidecar is still serving.
    assert_eq!(http_get(sc.addr, "/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_connection_limit_clients_get_503_with_retry_after() {
    let up = node_ws(&[]);
    let sc = sidecar(
        &format!("ws://127.0.0.1:{}", up.port),
        &[],
        &[("ISKRA_SIDECAR_LIMITS__MAX_CONNECTIONS", "2")],
    );
    let (mut a, _) = connect_async(format!("ws://{}/", sc.addr)).await.unwrap();
    let (_b, _) = connect_async(format!("ws://{}/", sc.addr)).await.unwrap();
    match connect_async(format!("ws://{}/", sc.addr))
        .await
        .unwrap_err()
    {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 503);
            assert_eq!(r.headers()["retry-after"], "1");
        }
        e => panic!("expected 503, got {e}"),
    }
    a.close(None).await.unwrap();
    while a.next().await.is_some() {}
    let mut ok = false;
    for _ in 0..50 {
        if connect_async(format!("ws://{}/", sc.addr)).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "a slot freed by a close is reusable");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_sends_1001_to_open_sessions_and_exits_0() {
    let up = node_ws(&[]);
    let mut sc = sidecar(
        &format!("ws://127.0.0.1:{}", up.port),
        &[],
        &[("ISKRA_SIDECAR_SHUTDOWN__GRACE_MS", "3000")],
    );
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect_async(format!("ws://{}/", sc.addr)).await.unwrap().0);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    sc.proc.signal("TERM");
    for ws in clients.iter_mut() {
        match next_data(ws).await {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1001),
            other => panic!("expected 1001, got {other:?}"),
        }
    }
    drop(clients);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = sc.proc.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sidecar did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn python_websockets_with_permessage_deflate_and_fragments_passes_through() {
    let up = node_ws(&[("DEFLATE", "1")]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    let script = root().join("tests/peers/py_client.py");
    let addr = sc.addr;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(format!("ws://{addr}/py"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "python websockets client failed (is `websockets` installed? scripts/install-test-deps.sh): {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["extensions"]
            .as_str()
            .unwrap_or("")
            .contains("permessage-deflate"),
        "{v}"
    );
    assert_eq!(v["fragmented_echo"], "frag-mented");
    assert_eq!(v["fragmented_binary_echo"], serde_json::json!([0, 1, 2]));
    assert_eq!(v["big_ok"], true);
    assert_eq!(
        (v["close_code"].as_u64(), v["close_reason"].as_str()),
        (Some(4002), Some("py bye"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_over_the_limit_gets_431() {
    let up = node_ws(&[]);
    let sc = sidecar(
        &format!("ws://127.0.0.1:{}", up.port),
        &[],
        &[("ISKRA_SIDECAR_LIMITS__MAX_HEADER_SIZE", "16384")],
    );
    let big = "a".repeat(40_000);
    let (st, _, _) = http_request(
        sc.addr,
        &format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
    )
    .await;
    assert_eq!(st, 431);
    let ok = "b".repeat(4_000);
    let (st, _, _) = http_request(
        sc.addr,
        &format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Ok: {ok}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(st, 200);
}

/// Reads until `buf` holds a complete HTTP head followed by at least `extra` bytes; returns the head.
async fn read_head(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, extra: usize) -> String {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if buf.len() >= i + 4 + extra {
                let head = String::from_utf8_lossy(&buf[..i + 4]).into_owned();
                buf.drain(..i + 4);
                return head;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("timed out reading a head")
            .unwrap();
        assert!(
            n > 0,
            "connection closed; got {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_after_plain_requests_on_one_keep_alive_connection_is_relayed() {
    // The first head of a connection decides the path: upgrades take the fast path, anything else goes
    // to the HTTP server, which must still relay an upgrade that comes later on the same connection.
    use tokio::io::AsyncWriteExt;
    let up = node_ws(&[]);
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &[]);
    let mut s = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s, &mut buf, 0).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // node answers chunked: read to the last chunk.
    while !buf.ends_with(b"0\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        let n = tokio::io::AsyncReadExt::read(&mut s, &mut chunk)
            .await
            .unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&buf).contains("HEALTHY"));
    buf.clear();
    // The upgrade, with the first frame sent right behind the head (pipelined).
    let mut req = b"GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    let key = [1u8, 2, 3, 4];
    req.extend_from_slice(&[0x81, 0x80 | 5]);
    req.extend_from_slice(&key);
    req.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    s.write_all(&req).await.unwrap();
    let head = read_head(&mut s, &mut buf, 7).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    assert_eq!(&buf[..7], b"\x81\x05hello");
}
