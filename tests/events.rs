//! The lifecycle event stream of scripted sessions (exact sequences), and protocol violations sent as raw
//! frames: each closes that one connection with its RFC 6455 code while the sidecar carries on.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use iskra_ws_sidecar::app;
use iskra_ws_sidecar::config::{defaults, from_tree};
use iskra_ws_sidecar::events::{Event, EventKind, Initiator, ProtocolRule};
use iskra_ws_sidecar::proxy::frame::{build_frame, close_frame, parse_close, parse_header, Parsed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use support::*;

async fn start(upstream_port: u16) -> (app::Running, mpsc::UnboundedReceiver<Event>) {
    let mut tree = defaults();
    tree["listen"] = "127.0.0.1:0".into();
    tree["admin"] = "127.0.0.1:0".into();
    tree["upstream"] = format!("ws://127.0.0.1:{upstream_port}").into();
    let (tx, rx) = mpsc::unbounded_channel();
    let running = app::start(from_tree(&tree).unwrap(), Some(tx))
        .await
        .unwrap();
    (running, rx)
}

/// Collects events until `SessionEnded` (or a timeout).
async fn session_events(rx: &mut mpsc::UnboundedReceiver<Event>) -> Vec<EventKind> {
    let mut out = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("event timeout")
            .unwrap();
        let end = matches!(ev.kind, EventKind::SessionEnded { .. });
        out.push(ev.kind);
        if end {
            return out;
        }
    }
}

fn name(k: &EventKind) -> &'static str {
    match k {
        EventKind::Accepted { .. } => "accepted",
        EventKind::RequestHead { .. } => "request_head",
        EventKind::UpstreamConnectStarted => "upstream_connect_started",
        EventKind::UpstreamConnected { .. } => "upstream_connected",
        EventKind::UpstreamConnectFailed { .. } => "upstream_connect_failed",
        EventKind::HandshakeCompleted { .. } => "handshake_completed",
        EventKind::HandshakeRejected { .. } => "handshake_rejected",
        EventKind::Close { .. } => "close",
        EventKind::ProtocolError { .. } => "protocol_error",
        EventKind::SessionEnded { .. } => "session_ended",
        EventKind::HttpRelayed { .. } => "http_relayed",
        _ => "other",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_session_yields_exactly_these_events() {
    let up = node_ws(&[]);
    let (sc, mut rx) = start(up.port).await;
    // Drain the readiness dial the sidecar makes at start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while rx.try_recv().is_ok() {}
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/live?token=s3cret", sc.addr))
            .await
            .unwrap();
    ws.send(Message::text("one")).await.unwrap();
    ws.send(Message::binary(vec![1u8; 300])).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "done".into(),
    }))
    .await
    .unwrap();
    while ws.next().await.is_some() {}
    let evs = session_events(&mut rx).await;
    let names: Vec<_> = evs.iter().map(name).collect();
    assert_eq!(
        names,
        [
            "accepted",
            "request_head",
            "upstream_connect_started",
            "upstream_connected",
            "handshake_completed",
            "close",
            "session_ended"
        ]
    );
    let EventKind::RequestHead { path, upgrade, .. } = &evs[1] else {
        unreachable!()
    };
    assert_eq!(
        (path.as_str(), *upgrade),
        ("/live", true),
        "query strings never reach events"
    );
    let EventKind::Close {
        code,
        upstream_code,
        reason,
        initiator,
    } = &evs[5]
    else {
        unreachable!()
    };
    assert_eq!(
        (*code, *upstream_code, reason.as_str(), *initiator),
        (1000, 1000, "done", Initiator::Client)
    );
    let EventKind::SessionEnded { totals, code, .. } = &evs[6] else {
        unreachable!()
    };
    assert_eq!(
        (
            totals.messages_in,
            totals.messages_out,
            totals.bytes_in,
            totals.bytes_out,
            *code
        ),
        (2, 2, 303, 303, 1000)
    );
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upstream_yields_connect_failed_then_rejected_502() {
    let (sc, mut rx) = start(dead_port()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    while rx.try_recv().is_ok() {}
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
            .await
            .is_err()
    );
    let mut names = Vec::new();
    while names.last() != Some(&"handshake_rejected") {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let EventKind::HandshakeRejected { status, .. } = ev.kind {
            assert_eq!(status, 502);
        }
        names.push(name(&ev.kind));
    }
    assert_eq!(
        names,
        [
            "accepted",
            "request_head",
            "upstream_connect_started",
            "upstream_connect_failed",
            "handshake_rejected"
        ]
    );
    sc.shutdown().await;
}

/// Opens a raw upgraded connection through the sidecar.
async fn raw_session(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Reads frames until a close; returns its code.
async fn read_close(s: &mut tokio::net::TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Parsed::Header(h) = parse_header(&buf) {
            let total = h.header_len + h.len as usize;
            if buf.len() >= total {
                if h.opcode == 8 {
                    return parse_close(&buf[h.header_len..total]).unwrap().0;
                }
                buf.drain(..total);
                continue;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut tmp))
            .await
            .expect("no close frame")
            .unwrap();
        assert!(n > 0, "connection dropped without a close frame");
        buf.extend_from_slice(&tmp[..n]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_frame_closes_its_connection_with_the_rfc_code_and_the_sidecar_carries_on() {
    let up = node_ws(&[]);
    let (sc, mut rx) = start(up.port).await;
    let m = Some([1, 2, 3, 4]);
    let mut fragmented_ping = build_frame(0x9, b"x", m);
    fragmented_ping[0] &= 0x7F;
    let mut rsv = build_frame(0x1, b"x", m);
    rsv[0] |= 0x20;
    let mut bad_utf8_close = close_frame(1000, "", m);
    bad_utf8_close[1] += 1;
    bad_utf8_close.push(0xFF ^ 1);
    let cases: Vec<(&str, Vec<u8>, u16, ProtocolRule)> = vec![
        (
            "reserved opcode",
            build_frame(0x3, b"x", m),
            1002,
            ProtocolRule::ReservedOpcode,
        ),
        (
            "unmasked client frame",
            build_frame(0x1, b"x", None),
            1002,
            ProtocolRule::UnmaskedClientFrame,
        ),
        ("reserved bits", rsv, 1002, ProtocolRule::ReservedBits),
        (
            "oversized control frame",
            [vec![0x89, 0x80 | 126, 0, 126, 1, 2, 3, 4], vec![0; 126]].concat(),
            1002,
            ProtocolRule::ControlFrameTooLong,
        ),
        (
            "fragmented control frame",
            fragmented_ping,
            1002,
            ProtocolRule::FragmentedControlFrame,
        ),
        (
            "invalid close code",
            close_frame(1005, "", m),
            1002,
            ProtocolRule::InvalidCloseCode,
        ),
        (
            "invalid UTF-8 close reason",
            bad_utf8_close,
            1007,
            ProtocolRule::InvalidUtf8,
        ),
        (
            "continuation without a message",
            build_frame(0x0, b"x", m),
            1002,
            ProtocolRule::BadContinuation,
        ),
    ];
    for (what, bytes, code, rule) in cases {
        let mut s = raw_session(sc.addr).await;
        s.write_all(&bytes).await.unwrap();
        assert_eq!(read_close(&mut s).await, code, "{what}");
        let mut seen = None;
        while seen.is_none() {
            let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if let EventKind::ProtocolError { rule, .. } = ev.kind {
                seen = Some(rule);
            }
        }
        assert_eq!(seen, Some(rule), "{what}");
    }
    // Still relaying.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
        .await
        .unwrap();
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_the_limit_is_closed_with_1009() {
    let up = node_ws(&[]);
    let mut tree = defaults();
    tree["listen"] = "127.0.0.1:0".into();
    tree["admin"] = "127.0.0.1:0".into();
    tree["upstream"] = format!("ws://127.0.0.1:{}", up.port).into();
    tree["limits"]["max_message_size"] = 1000.into();
    let sc = app::start(from_tree(&tree).unwrap(), None).await.unwrap();
    let mut s = raw_session(sc.addr).await;
    let mut first = build_frame(0x2, &[0u8; 600], Some([9, 9, 9, 9]));
    first[0] &= 0x7F; // not FIN: the message continues
    s.write_all(&first).await.unwrap();
    s.write_all(&build_frame(0x0, &[0u8; 600], Some([9, 9, 9, 9])))
        .await
        .unwrap();
    assert_eq!(read_close(&mut s).await, 1009);
    sc.shutdown().await;
}

async fn start_with(
    upstream_port: u16,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (app::Running, mpsc::UnboundedReceiver<Event>) {
    let mut tree = defaults();
    tree["listen"] = "127.0.0.1:0".into();
    tree["admin"] = "127.0.0.1:0".into();
    tree["upstream"] = format!("ws://127.0.0.1:{upstream_port}").into();
    tree["probe"]["enabled"] = false.into();
    edit(&mut tree);
    let (tx, rx) = mpsc::unbounded_channel();
    (
        app::start(from_tree(&tree).unwrap(), Some(tx))
            .await
            .unwrap(),
        rx,
    )
}

fn fast_heartbeats(t: &mut serde_json::Value) {
    t["websocket"]["heartbeat"] = serde_json::json!({"enabled": true, "interval": 200, "timeout": 150, "failure_threshold": 2});
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_measure_rtt_on_both_sides_and_their_pongs_are_consumed() {
    use iskra_ws_sidecar::events::Peer;
    let up = node_ws(&[]);
    let (sc, mut rx) = start_with(up.port, fast_heartbeats).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
        .await
        .unwrap();
    // Keep reading so tungstenite answers the sidecar's pings; peer pings pass through untouched.
    ws.send(Message::Ping(b"user-ping".to_vec().into()))
        .await
        .unwrap();
    let mut user_pong = false;
    let reader = async {
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Pong(p) if p.as_ref() == b"user-ping" => user_pong = true,
                Message::Pong(p) => panic!("a sidecar pong leaked to the client: {p:?}"),
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(900), reader).await;
    assert!(
        user_pong,
        "the client's own ping was answered by the upstream through the sidecar"
    );
    let mut rtt = std::collections::BTreeSet::new();
    while let Ok(ev) = rx.try_recv() {
        match ev.kind {
            EventKind::PingPong { peer, rtt: Some(r) } => {
                assert!(r < Duration::from_millis(150), "{r:?}");
                rtt.insert(format!("{peer:?}"));
            }
            EventKind::HeartbeatTimeout { .. } => panic!("a live peer was declared dead"),
            _ => {}
        }
    }
    assert_eq!(
        rtt.into_iter().collect::<Vec<_>>(),
        [
            format!("{:?}", Peer::Client),
            format!("{:?}", Peer::Upstream)
        ]
    );
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_answering_is_declared_dead_and_the_upstream_gets_1001() {
    use iskra_ws_sidecar::events::Peer;
    let up = node_ws(&[]);
    let (sc, mut rx) = start_with(up.port, fast_heartbeats).await;
    let _silent = raw_session(sc.addr).await; // never reads, never answers pings
    let t0 = std::time::Instant::now();
    let (mut timeout, mut close) = (None, None);
    while close.is_none() {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no heartbeat timeout")
            .unwrap();
        match ev.kind {
            EventKind::HeartbeatTimeout { peer, missed } => {
                timeout = Some((peer, missed, t0.elapsed()))
            }
            EventKind::Close {
                code, initiator, ..
            } if timeout.is_some() => close = Some((code, initiator)),
            _ => {}
        }
    }
    let (peer, missed, after) = timeout.unwrap();
    assert_eq!((peer, missed), (Peer::Client, 2));
    // Detection bound: interval + timeout × threshold (200 + 150 × 2 = 500 ms), plus scheduling slack.
    assert!(
        after >= Duration::from_millis(450),
        "declared dead too early: {after:?}"
    );
    assert!(
        after <= Duration::from_millis(200 + 150 * 2 + 250),
        "detected after {after:?}"
    );
    assert_eq!(close, Some((1001, Initiator::Sidecar)));
    sc.shutdown().await;
}
