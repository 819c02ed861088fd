//! Unit tests of one direction: frames cut at any read boundary, a destination that does not read, a
//! violation in the middle of a batch.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::events::{EventSink, ProtocolRule, SessionInfo};
use crate::proxy::heartbeat::{ping_payload, Heartbeats};
use crate::proxy::Stats;

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (b, _) = l.accept().await.unwrap();
    (a, b)
}

/// A session context for unit tests (heartbeats on, no deflate, no resume).
pub(crate) fn ctx(sink: EventSink) -> SessionCtx {
    SessionCtx {
        info: Arc::new(SessionInfo {
            id: 1,
            client: "127.0.0.1:1".parse().unwrap(),
            path: "/".into(),
            user_agent: None,
            upstream_name: "primary".into(),
            upstream_host: "127.0.0.1".into(),
            upstream_port: 1,
        }),
        sink,
        stats: Arc::new(Stats::default()),
        deflate: false,
        any_extension: false,
        max_frame_size: 16 << 20,
        max_message_size: 64 << 20,
        close_timeout: Duration::from_secs(1),
        idle_timeout: Duration::ZERO,
        frame_events: false,
        resume: None,
        frame_budget: Default::default(),
        heartbeat: Heartbeats {
            enabled: true,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            threshold: 3,
        },
    }
}

/// Upstream → client frames of every length form, a fragmented message, a peer's ping, a pong to
/// the sidecar's own ping (consumed) and a close; returns (stream, what must come out, messages).
fn upstream_stream() -> (Vec<u8>, Vec<u8>, u64) {
    let own_pong = frame::build_frame(0xA, &ping_payload(Duration::from_millis(5)), None);
    let mut fragmented = frame::build_frame(0x1, b"frag-", None);
    fragmented[0] &= 0x7F; // FIN off
    let parts = [
        frame::build_frame(0x1, b"hello", None),
        frame::build_frame(0x2, &[7u8; 300], None),
        frame::build_frame(0x9, b"peer ping", None),
        fragmented,
        frame::build_frame(0x0, b"ment", None),
        frame::build_frame(0x2, &vec![1u8; 70_000], None),
        frame::build_frame(0x2, &[], None),
    ];
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        input.extend_from_slice(p);
        expected.extend_from_slice(p);
        if i == 2 {
            input.extend_from_slice(&own_pong);
        }
    }
    let close = frame::close_frame(1000, "bye", None);
    input.extend_from_slice(&close);
    expected.extend_from_slice(&close);
    (input, expected, 5)
}

#[tokio::test]
async fn frames_cut_at_any_read_boundary_are_forwarded_unchanged_and_own_pongs_consumed() {
    let (input, expected, messages) = upstream_stream();
    for step in [1usize, 2, 3, 5, 9, 13, 139, 140, 4096, 1 << 20] {
        let (src, _src_peer) = pair().await;
        let (dst, mut dst_peer) = pair().await;
        let (sink, _rx) = EventSink::channel(1024);
        let ctx = ctx(sink);
        let shared = Shared::default();
        let own_ping = ping_payload(Duration::from_millis(5));
        shared
            .pongs
            .expect(crate::events::Peer::Upstream, &own_ping);
        let started = Instant::now();
        let dir = Direction::UpstreamToClient;
        let mut pump = Pump::new(&src, &dst, dir, &ctx, &shared, &started);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            dst_peer.read_to_end(&mut out).await.map(|_| out)
        });
        let mut end = None;
        for piece in input.chunks(step) {
            if let Err(o) = pump.process(piece) {
                end = Some(o);
                break;
            }
        }
        let written = std::future::poll_fn(|cx| pump.poll_backlog(cx)).await;
        assert!(written.is_ok(), "step {step}");
        let close = Outcome::Closed {
            code: 1000,
            reason: "bye".into(),
        };
        assert_eq!(end, Some(close), "step {step}");
        assert_eq!(shared.pongs.count(crate::events::Peer::Upstream), 1);
        assert_eq!(shared.messages[idx(dir)].load(Relaxed), messages);
        assert_eq!(ctx.stats.outbound.binary(), 3);
        assert_eq!(ctx.stats.outbound.text(), 2);
        drop(pump);
        drop(dst);
        let out = reader.await.unwrap().unwrap();
        assert_eq!(out.len(), expected.len(), "step {step}");
        assert!(out == expected, "step {step}: bytes differ");
    }
}

#[tokio::test]
async fn a_destination_that_does_not_read_gets_everything_in_order_once_it_does() {
    let (src, mut src_peer) = pair().await;
    let (dst, mut dst_peer) = pair().await;
    // Small kernel buffers, so that the destination blocks early.
    let _ = socket2::SockRef::from(&dst).set_send_buffer_size(16 * 1024);
    let _ = socket2::SockRef::from(&dst_peer).set_recv_buffer_size(16 * 1024);
    let (sink, _rx) = EventSink::channel(1024);
    let ctx = ctx(sink);
    let shared = Shared::default();
    let started = Instant::now();
    let dir = Direction::UpstreamToClient;
    let mut input = Vec::new();
    for i in 0..64u32 {
        input.extend(frame::build_frame(0x2, &vec![i as u8; 64 * 1024], None));
    }
    let mut pump = Pump::new(&src, &dst, dir, &ctx, &shared, &started);
    assert_eq!(pump.process(&input[..1 << 20]), Ok(()));
    assert!(
        !pump.backlog.is_empty(),
        "the destination should have blocked"
    );
    assert!(!shared.at_boundary().0, "mid-write while a backlog waits");
    let rest = input[1 << 20..].to_vec();
    let write = async move {
        src_peer.write_all(&rest).await.unwrap();
        src_peer.shutdown().await.unwrap();
    };
    let run = async {
        let outcome = (&mut pump).await;
        (outcome, pump.backlog.is_empty())
    };
    let read = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut out = vec![0u8; input.len()];
        dst_peer.read_exact(&mut out).await.map(|_| out)
    };
    let (_, (outcome, drained), out) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(write, run, read)
    })
    .await
    .expect("relayed within 30 s");
    assert_eq!(outcome, Outcome::Eof);
    assert!(drained);
    assert!(shared.at_boundary().0);
    assert!(out.unwrap() == input, "bytes differ");
    assert_eq!(shared.messages[idx(dir)].load(Relaxed), 64);
}

#[tokio::test]
async fn a_masked_server_frame_stops_the_direction_after_the_frames_before_it() {
    let (src, _src_peer) = pair().await;
    let (dst, mut dst_peer) = pair().await;
    let (sink, _rx) = EventSink::channel(1024);
    let ctx = ctx(sink);
    let shared = Shared::default();
    let started = Instant::now();
    let mut pump = Pump::new(
        &src,
        &dst,
        Direction::UpstreamToClient,
        &ctx,
        &shared,
        &started,
    );
    let good = frame::build_frame(0x1, b"ok", None);
    let mut input = good.clone();
    input.extend(frame::build_frame(0x1, b"masked", Some([1, 2, 3, 4])));
    let r = pump.process(&input);
    assert_eq!(r, Err(Outcome::Violation(ProtocolRule::MaskedServerFrame)));
    drop(pump);
    drop(dst);
    let mut out = Vec::new();
    dst_peer.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, good);
}
