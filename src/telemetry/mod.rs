//! Telemetry: lifecycle events → metrics (and, with the OTLP exporter, spans and logs), all off the
//! data path in one consumer task.
//!
//! - [`names`]: every metric definition and attribute key, once.
//! - [`registry`]: the store `/metrics` and OTLP both read.
//! - [`metrics`]: events and hot-path counters → registry.

pub mod metrics;
pub mod names;
pub mod registry;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::events::{Event, EventSink};
use crate::proxy::Stats;
use metrics::MetricsRecorder;
use registry::Registry;

/// The telemetry side of one sidecar.
pub struct Telemetry {
    /// Metric store.
    pub registry: Arc<Registry>,
    /// Event → metric recorder.
    pub recorder: Arc<MetricsRecorder>,
    /// Relay counters.
    pub stats: Arc<Stats>,
    /// The sink whose drops are reported.
    pub sink: EventSink,
}

impl Telemetry {
    /// Creates the registry and recorder for `dashboard`.
    pub fn new(dashboard: &str, stats: Arc<Stats>, sink: EventSink) -> Arc<Telemetry> {
        let registry = Arc::new(Registry::default());
        let recorder = Arc::new(MetricsRecorder::new(registry.clone(), dashboard));
        Arc::new(Telemetry {
            registry,
            recorder,
            stats,
            sink,
        })
    }

    /// Brings hot-path counters into the registry (before a scrape or an export).
    pub fn sync(&self) {
        self.recorder.sync_stats(&self.stats, self.sink.dropped());
    }

    /// Consumes events until every sender is gone; `tap` sees each event after it is recorded.
    pub async fn consume(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Event>,
        tap: Option<mpsc::UnboundedSender<Event>>,
    ) {
        while let Some(ev) = rx.recv().await {
            self.recorder.record(&ev);
            if let Some(t) = &tap {
                let _ = t.send(ev);
            }
        }
    }
}
