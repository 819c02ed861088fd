//! Why the sessions' log lines do not go through `tracing` (docs/architecture.md, "Decision: `tracing`
//! for the sidecar's own diagnostics"), held as a test: a session's close written by
//! `telemetry::logs::line` into its reused buffer allocates nothing, while the same fields as a `tracing`
//! event, collected as `diag`'s layer collects them, allocate for every field.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use iskra_ws_sidecar::diag::fields::Fields;
use iskra_ws_sidecar::events::{Event, EventKind, Initiator, SessionInfo};
use iskra_ws_sidecar::telemetry::{attrs::Scope, logs};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

thread_local! {
    /// Allocations made by this thread while counting (other threads, the harness's, are not counted).
    static ALLOCS: Cell<Option<u64>> = const { Cell::new(None) };
}

struct Counting;

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get().map(|n| n + 1)));
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: allocated by `System` above.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|a| a.set(Some(0)));
    f();
    ALLOCS.with(|a| a.take()).unwrap_or(0)
}

/// Collects an event's fields as `diag::layer::Own` does, and drops them.
struct Collect;
impl<S: tracing::Subscriber> Layer<S> for Collect {
    fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
        std::hint::black_box(Fields::of(e));
    }
}

#[test]
fn a_session_line_allocates_nothing_and_the_same_fields_through_tracing_do() {
    let info = Arc::new(SessionInfo {
        id: 42,
        client: "10.0.0.9:5555".parse().unwrap(),
        path: "/live".into(),
        user_agent: None,
        upstream_name: "primary".into(),
        upstream_host: "127.0.0.1".into(),
        upstream_port: 3001,
    });
    let ev = Event {
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000),
        session: Some(info),
        kind: EventKind::Close {
            code: 1000,
            upstream_code: 1000,
            reason: "bye".into(),
            initiator: Initiator::Client,
        },
    };
    let sem = iskra_ws_sidecar::semantics::describe(&ev.kind, &Default::default());
    let scope = Scope::new("pulse");
    let ids = Some(([7; 16], [8; 8]));
    let mut buf = Vec::with_capacity(1024);
    logs::line(&mut buf, &ev, &sem, &scope, ids); // the buffer has grown to a line once
    let direct = allocations(|| {
        for _ in 0..100 {
            logs::line(&mut buf, &ev, &sem, &scope, ids);
        }
    });
    assert_eq!(direct, 0, "a session's line allocates");
    assert!(buf.ends_with(b"}\n"));

    let sub = tracing_subscriber::registry().with(Collect);
    let traced = tracing::subscriber::with_default(sub, || {
        allocations(|| {
            for i in 0..100u64 {
                tracing::info!(
                    event_type = "other",
                    "iskra.dashboard" = "pulse",
                    delta = sem.delta,
                    omega = sem.omega,
                    lambda = %sem.lambda,
                    session_id = i,
                    "websocket.close.code" = 1000i64,
                    "websocket.upstream.close.code" = 1000i64,
                    "websocket.close.reason" = "bye",
                    "websocket.close.initiator" = "client",
                );
            }
        })
    });
    // A String per key and per text value, at least one per field: the cost the session lines avoid.
    assert!(traced >= 100 * 9, "{traced} allocations for 100 events");
}
