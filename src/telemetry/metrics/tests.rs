//! The recorder's tests: the outbox's pulled counters, the last voice counted.

use super::*;
use crate::config::OutboxConfig;
use crate::events::EventSink;
use crate::probe::outbox::Hooks;

#[test]
fn the_outbox_counters_are_pulled_exactly_with_full_and_full_bytes_from_zero() {
    let settings = OutboxConfig {
        enabled: true,
        capacity: 2,
        max_bytes: 8 << 20,
        flush_interval: Duration::from_secs(5),
        flush_batch: 10,
    };
    let hooks = Hooks {
        endpoint: "pulse".into(),
        sink: EventSink::disabled(),
    };
    let o = Outbox::open(settings, None, hooks).unwrap();
    let m = MetricsRecorder::new(Arc::new(Registry::default()), "pulse");
    let d = (attr::DASHBOARD, "pulse");
    let dropped = |m: &MetricsRecorder, reason: &'static str| {
        m.registry
            .value(n::BUFFER_DROPPED.name, &[d, (attr::REASON, reason)])
    };
    m.sync_outbox(&o);
    assert_eq!(
        (dropped(&m, "full"), dropped(&m, "full_bytes")),
        (Some(0.0), Some(0.0))
    );
    assert_eq!(dropped(&m, "spool_error"), None, "only once it happens");
    for t in ["a", "b", "c"] {
        let _ = o.offer(t);
    }
    o.begin_flush();
    o.ack();
    m.sync_outbox(&o);
    assert_eq!(dropped(&m, "full"), Some(1.0));
    assert_eq!(m.registry.value(n::BUFFER_DELIVERED.name, &[d]), Some(2.0));
    assert_eq!(m.registry.value(n::BUFFER_QUEUED.name, &[d]), Some(0.0));
}

/// The demo's voice column reads the voice the pipeline counted, with the delta of its event; a
/// routine step does not change it, and with the voice system off there is none.
#[test]
fn the_last_voice_is_the_one_the_pipeline_counted() {
    use crate::events::{ConnectCause, Transport};
    let failed = Event {
        at: std::time::SystemTime::now(),
        session: None,
        kind: EventKind::ProbeFailed {
            endpoint: "pulse".into(),
            transport: Transport::WebSocket,
            cause: ConnectCause::Refused,
            status: None,
            duration: Duration::ZERO,
        },
    };
    let sem = semantics::describe(&failed.kind, &Default::default());
    let voice = sem.voice.expect("a refused probe is answered by a voice");
    let m = MetricsRecorder::new(Arc::new(Registry::default()), "pulse");
    assert_eq!(m.last_voice(), None);
    m.record(&failed, &sem);
    assert_eq!(m.last_voice(), Some((voice, sem.delta)));
    let off = MetricsRecorder::new(Arc::new(Registry::default()), "pulse").counting_voices(false);
    off.record(&failed, &sem);
    assert_eq!(off.last_voice(), None);
}
