//! Unit tests of the outbox: order, put-back, both caps (messages and bytes) without eviction, waiting
//! for room under either, the batch trigger, the counters (`telemetry::metrics` pulls them into the
//! registry). The spool file's tests are in `file.rs`.

use super::*;
use futures_util::FutureExt;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn settings(capacity: usize, flush_batch: usize) -> OutboxConfig {
    OutboxConfig {
        enabled: true,
        capacity,
        max_bytes: 8 << 20,
        flush_interval: Duration::from_millis(5000),
        flush_batch,
    }
}

pub(super) fn hooks() -> (Hooks, tokio::sync::mpsc::Receiver<crate::events::Event>) {
    let (sink, rx) = EventSink::channel(64);
    let hooks = Hooks {
        endpoint: "pulse".into(),
        sink,
    };
    (hooks, rx)
}

fn memory(capacity: usize, flush_batch: usize) -> Outbox {
    Outbox::open(settings(capacity, flush_batch), None, hooks().0).unwrap()
}

pub(super) fn texts(batch: Option<Vec<Utf8Bytes>>) -> Vec<String> {
    batch
        .unwrap_or_default()
        .iter()
        .map(|m| m.as_str().to_string())
        .collect()
}

#[test]
fn a_flush_takes_everything_in_order_and_an_ack_removes_exactly_that() {
    let o = memory(10, 10);
    for m in ["a", "b", "c"] {
        o.offer(m).unwrap();
    }
    assert_eq!(texts(o.begin_flush()), ["a", "b", "c"]);
    assert_eq!(o.begin_flush(), None, "one unconfirmed flush at a time");
    assert_eq!(o.offer("d"), Ok(4), "in-flight messages still count");
    assert_eq!(o.ack(), 1, "only the flushed three leave");
    assert_eq!(texts(o.begin_flush()), ["d"]);
    o.ack();
    assert!(o.is_empty());
    let c = o.counts();
    assert_eq!((c.accepted, c.delivered, c.dropped, c.queued), (4, 4, 0, 0));
}

#[test]
fn an_unconfirmed_flush_is_put_back_at_the_front_in_order() {
    let o = memory(10, 10);
    for m in ["1", "2", "3"] {
        o.offer(m).unwrap();
    }
    assert_eq!(texts(o.begin_flush()), ["1", "2", "3"]);
    o.offer("4").unwrap();
    assert_eq!(o.abort(), 3);
    o.offer("5").unwrap();
    assert_eq!(texts(o.begin_flush()), ["1", "2", "3", "4", "5"]);
    assert_eq!(o.abort(), 5);
    assert_eq!(o.abort(), 0, "nothing in flight: no-op");
    assert_eq!(o.counts().delivered, 0);
}

#[test]
fn a_full_outbox_refuses_the_new_message_and_keeps_every_old_one() {
    let (h, mut rx) = hooks();
    let o = Outbox::open(settings(2, 10), None, h).unwrap();
    o.offer("old-1").unwrap();
    o.offer("old-2").unwrap();
    let e = o.offer("new").unwrap_err();
    assert_eq!(
        e,
        Rejected::Full {
            capacity: 2,
            queued: 2
        }
    );
    assert!(e
        .to_string()
        .contains("capacity (websocket.fallback.buffer_max_size) is 2"));
    assert_eq!(texts(o.begin_flush()), ["old-1", "old-2"]);
    assert_eq!(o.dropped(DropReason::Full), 1);
    assert_eq!(o.counts().dropped, 1);
    let ev = rx.try_recv().unwrap();
    assert!(matches!(
        ev.kind,
        EventKind::BufferRejected {
            reason: DropReason::Full,
            capacity: 2,
            queued: 2,
            ..
        }
    ));
}

#[test]
fn the_batch_signal_fires_when_flush_batch_messages_wait() {
    let o = memory(100, 3);
    o.offer("a").unwrap();
    o.offer("b").unwrap();
    assert!(
        o.batch_ready().now_or_never().is_none(),
        "2 < 3: wait for the interval"
    );
    o.offer("c").unwrap();
    assert!(
        o.batch_ready().now_or_never().is_some(),
        "3 queued: flush now"
    );
}

#[test]
fn the_gauge_follows_the_queue_and_each_confirmed_flush_is_an_event() {
    let (h, mut rx) = hooks();
    let o = Outbox::open(settings(10, 10), None, h).unwrap();
    for m in ["a", "b"] {
        o.offer(m).unwrap();
    }
    assert_eq!(o.counts().queued, 2);
    o.begin_flush();
    o.ack();
    assert_eq!(o.counts().queued, 0);
    assert_eq!(o.counts().delivered, 2);
    let ev = rx.try_recv().unwrap();
    assert!(matches!(
        ev.kind,
        EventKind::BufferFlushed {
            messages: 2,
            queued: 0,
            ..
        }
    ));
}

#[tokio::test]
async fn offer_waiting_waits_for_room_instead_of_refusing() {
    let o = Arc::new(memory(1, 10));
    o.offer("a").unwrap();
    let o2 = o.clone();
    let waiting = tokio::spawn(async move { o2.offer_waiting("b").await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    o.begin_flush();
    o.ack();
    assert_eq!(waiting.await.unwrap(), Ok(1));
    assert_eq!(texts(o.begin_flush()), ["b"]);
    assert_eq!(o.counts().dropped, 0, "waiting is not dropping");
}

fn bytes_capped(max_bytes: u64) -> (Outbox, tokio::sync::mpsc::Receiver<crate::events::Event>) {
    let (h, rx) = hooks();
    let s = OutboxConfig {
        max_bytes,
        ..settings(100, 100)
    };
    (Outbox::open(s, None, h).unwrap(), rx)
}

#[test]
fn a_message_that_would_pass_the_byte_budget_is_refused_and_nothing_is_evicted() {
    let (o, mut rx) = bytes_capped(10);
    assert_eq!(o.offer("abcd"), Ok(1));
    assert_eq!(o.offer("éfg"), Ok(2), "bytes, not characters: é is 2");
    assert_eq!(o.bytes(), 8);
    let e = o.offer("ijk").unwrap_err();
    assert_eq!(
        e,
        Rejected::FullBytes {
            max_bytes: 10,
            bytes: 8,
            size: 3
        }
    );
    assert!(e
        .to_string()
        .contains("byte budget (websocket.fallback.buffer_max_bytes) of 10"));
    assert_eq!(o.offer("ij"), Ok(3), "exactly the budget fits");
    let count = |reason| o.dropped(reason);
    assert_eq!(
        (count(DropReason::FullBytes), count(DropReason::Full)),
        (1, 0)
    );
    let ev = rx.try_recv().unwrap();
    assert!(matches!(
        ev.kind,
        EventKind::BufferRejected {
            reason: DropReason::FullBytes,
            queued: 2,
            ..
        }
    ));
    assert_eq!(texts(o.begin_flush()), ["abcd", "éfg", "ij"]);
    assert_eq!(
        (o.abort(), o.bytes()),
        (3, 10),
        "a put-back batch still counts"
    );
    o.begin_flush();
    o.ack();
    assert_eq!(o.bytes(), 0, "a confirmed flush frees its bytes");
    assert_eq!(o.offer("ijk"), Ok(1));
}

#[tokio::test]
async fn offer_waiting_waits_for_byte_room_and_refuses_at_once_what_can_never_fit() {
    let o = Arc::new(bytes_capped(8).0);
    o.offer("abcdef").unwrap();
    let o2 = o.clone();
    let waiting = tokio::spawn(async move { o2.offer_waiting("xyz").await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "6 + 3 > 8: it waits");
    o.begin_flush();
    o.ack();
    assert_eq!(waiting.await.unwrap(), Ok(1));
    let never = o.offer_waiting("123456789").now_or_never();
    assert!(
        matches!(never, Some(Err(Rejected::FullBytes { size: 9, .. }))),
        "longer than the whole budget: refused, not waited for: {never:?}"
    );
    assert_eq!(o.counts().dropped, 1);
    assert_eq!(texts(o.begin_flush()), ["xyz"]);
}
