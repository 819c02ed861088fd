//! What the outbox and its endpoint refuse, with real peers: a full outbox by message count
//! (`buffer_max_size`) and by bytes (`buffer_max_bytes`) answers 507 with its reason and `Retry-After`,
//! counts each refusal under that reason and keeps everything it holds; a body that is not UTF-8 (400),
//! too large (413), not a POST (405); no outbox at all (404).

use iskra_ws_sidecar::events::{DropReason, EventKind};
use iskra_ws_sidecar::semantics::{self, LogLevel};

use super::support::*;
use super::{env_refs, fast_prober, gauge, messages, queue_all, record_env, until};

#[tokio::test(flavor = "multi_thread")]
async fn a_full_outbox_answers_507_counts_every_refusal_and_keeps_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("received.jsonl");
    let port = dead_port();
    let (sc, mut rx) = in_process(|t| {
        fast_prober(t);
        t["upstream"] = format!("ws://127.0.0.1:{port}").into();
        t["websocket"]["fallback"]["buffer_max_size"] = 3.into();
    })
    .await;
    let sent = messages(3);
    queue_all(sc.admin_addr, &sent).await;
    for _ in 0..2 {
        let (status, head, body) = post_probe_send(sc.admin_addr, b"one too many").await;
        assert_eq!(status, 507, "{body}");
        assert_eq!(
            (
                body["reason"].as_str(),
                body["capacity"].as_u64(),
                body["queued"].as_u64()
            ),
            (Some("full"), Some(3), Some(3))
        );
        let msg = body["error"].as_str().unwrap();
        assert!(
            msg.contains("capacity (websocket.fallback.buffer_max_size) is 3"),
            "{msg}"
        );
        assert!(head.contains("retry-after: 5"), "{head}");
    }
    let full = [("iskra_dashboard", "pulse"), ("reason", "full")];
    let dropped = metric(sc.admin_addr, "websocket_buffer_dropped_total", &full).await;
    assert_eq!(dropped, Some(2.0));
    assert_eq!(gauge(sc.admin_addr).await, Some(3.0));
    // A refusal is the outbox's own count, not a connection error of the seed's error rate.
    let overload = [("error_type", "SERVER_OVERLOAD")];
    let errors = metric(sc.admin_addr, "websocket_errors_total", &overload).await;
    assert_eq!(errors, Some(0.0));
    for _ in 0..2 {
        let seen = until(&mut rx, "the refusal event", |k| {
            matches!(k, EventKind::BufferRejected { .. })
        })
        .await;
        let k = seen.last().unwrap();
        assert!(matches!(
            k,
            EventKind::BufferRejected {
                reason: DropReason::Full,
                capacity: 3,
                queued: 3,
                ..
            }
        ));
        let s = semantics::describe(k, &semantics::Context::default());
        assert_eq!(
            (s.delta, s.level),
            ("buffer_message_rejected", LogLevel::Warn)
        );
    }
    // What it held is delivered; what it refused never is.
    let _up = node_ws_on(port, &env_refs(&record_env(&rec)));
    until(&mut rx, "buffer_flushed", |k| {
        matches!(k, EventKind::BufferFlushed { .. })
    })
    .await;
    assert_eq!(recorded(&rec), sent);
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_byte_budget_refuses_with_507_full_bytes_and_keeps_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("received.jsonl");
    let port = dead_port();
    let (sc, mut rx) = in_process(|t| {
        fast_prober(t);
        t["upstream"] = format!("ws://127.0.0.1:{port}").into();
        t["websocket"]["fallback"]["buffer_max_bytes"] = 1024.into();
    })
    .await;
    let (a, b) = ("a".repeat(400), "b".repeat(400));
    for m in [&a, &b] {
        assert_eq!(post_probe_send(sc.admin_addr, m.as_bytes()).await.0, 202);
    }
    // 800 + 400 > 1024: refused although 2 messages are far below buffer_max_size (1000).
    let (status, head, body) = post_probe_send(sc.admin_addr, "c".repeat(400).as_bytes()).await;
    assert_eq!(status, 507, "{body}");
    let fields = ["capacity", "queued", "max_bytes", "bytes"].map(|k| body[k].as_u64());
    assert_eq!(body["reason"], "full_bytes", "{body}");
    assert_eq!(
        fields,
        [Some(1000), Some(2), Some(1024), Some(800)],
        "{body}"
    );
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("(websocket.fallback.buffer_max_bytes) of 1024"),
        "{msg}"
    );
    assert!(head.contains("retry-after: 5"), "{head}");
    // Longer than the whole budget: it could never fit, so 413 (not a 507 to retry forever).
    let (status, _, body) = post_probe_send(sc.admin_addr, &[b'x'; 1025]).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("buffer_max_bytes"),
        "{body}"
    );
    // What still fits is taken: the cap is bytes, and nothing was evicted for it.
    let small = "d".repeat(224);
    assert_eq!(
        post_probe_send(sc.admin_addr, small.as_bytes()).await.0,
        202
    );
    let mut dropped = Vec::new();
    for reason in ["full_bytes", "full"] {
        let l = [("iskra_dashboard", "pulse"), ("reason", reason)];
        dropped.push(metric(sc.admin_addr, "websocket_buffer_dropped_total", &l).await);
    }
    assert_eq!(
        dropped,
        [Some(1.0), Some(0.0)],
        "counted under full_bytes only"
    );
    assert_eq!(gauge(sc.admin_addr).await, Some(3.0));
    let seen = until(&mut rx, "the refusal event", |k| {
        matches!(k, EventKind::BufferRejected { .. })
    })
    .await;
    assert!(matches!(
        seen.last().unwrap(),
        EventKind::BufferRejected {
            reason: DropReason::FullBytes,
            ..
        }
    ));
    let _up = node_ws_on(port, &env_refs(&record_env(&rec)));
    until(&mut rx, "buffer_flushed", |k| {
        matches!(k, EventKind::BufferFlushed { messages: 3, .. })
    })
    .await;
    assert_eq!(
        recorded(&rec),
        [a, b, small],
        "what it held, in order; not what it refused"
    );
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_endpoint_refuses_what_it_cannot_send_and_is_absent_when_disabled() {
    let port = dead_port();
    let up = format!("ws://127.0.0.1:{port}");
    let (sc, _rx) = in_process(|t| {
        fast_prober(t);
        t["upstream"] = up.as_str().into();
        t["limits"]["max_message_size"] = 125.into();
    })
    .await;
    let (status, _, body) = post_probe_send(sc.admin_addr, &[b'o', b'k', 0xff, 0xfe]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not UTF-8"));
    let (status, _, body) = post_probe_send(sc.admin_addr, &[b'x'; 126]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("125"));
    assert_eq!(post_probe_send(sc.admin_addr, &[b'x'; 125]).await.0, 202);
    let get = format!("GET /probe/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SEND_TOKEN}\r\nConnection: close\r\n\r\n");
    let (status, head, _) = http_request(sc.admin_addr, &get).await;
    assert_eq!(status, 405);
    assert!(head.to_ascii_lowercase().contains("allow: post"));
    assert_eq!(
        gauge(sc.admin_addr).await,
        Some(1.0),
        "refusals queue nothing"
    );
    sc.shutdown().await;
    for (key, value) in [
        ("buffer_messages", "websocket.fallback.buffer_messages"),
        ("probe", "probe.enabled"),
    ] {
        let (sc, _rx) = in_process(|t| {
            fast_prober(t);
            t["upstream"] = up.as_str().into();
            match key {
                "probe" => t["probe"]["enabled"] = false.into(),
                _ => t["websocket"]["fallback"]["buffer_messages"] = false.into(),
            }
        })
        .await;
        let (status, _, body) = post_probe_send(sc.admin_addr, b"hello").await;
        assert_eq!(status, 404, "{body}");
        assert!(body["error"].as_str().unwrap().contains(value), "{body}");
        sc.shutdown().await;
    }
}
