//! Telemetry: lifecycle events → metrics, spans and logs, all off the data path in one consumer task,
//! exported over OTLP by a sender task with a spool, both on a thread of their own.
//!
//! - `consumer`: that thread, and the loop that takes events in batches and describes each once.
//! - [`names`]: every metric definition, attribute key, log line key and span (event) name, once.
//! - [`registry`]: the store `/metrics` and OTLP both read; [`otlp_metrics`] turns it into OTLP,
//!   [`exposition`] into Prometheus text or OpenMetrics (with exemplars).
//! - [`metrics`]: events, and the counters of the relay and the prober's outbox (pulled) → registry.
//! - [`window`]: the health score's inputs over the last `health.window_ms`; [`health`]: the score.
//! - [`spans`], [`logs`], [`attrs`]: events → OTLP spans and log records (and stdout JSON lines);
//!   [`context`]: the D rule's inputs (reconnections, fallback, latency) followed from the events;
//!   [`own_logs`]: the sidecar's own WARN/ERROR lines ([`crate::diag`]) → OTLP log records.
//! - [`env`]: the `OTEL_*` variables; [`export`]: transports and the sender ([`raw_grpc`]: gRPC without
//!   re-encoding); [`spool`]: the queue.

pub mod attrs;
mod consumer;
pub mod context;
pub mod env;
pub mod export;
pub mod exposition;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod names;
pub mod otlp_metrics;
pub mod own_logs;
pub mod pb;
pub mod raw_grpc;
pub mod registry;
pub mod spans;
pub mod spool;
pub mod window;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::events::EventSink;
use crate::probe::outbox::Outbox;
use crate::proxy::Stats;
use crate::semantics::{self, LogLevel};
use env::{OtelEnv, Signal};
use export::Batch;
use metrics::MetricsRecorder;
use registry::Registry;

/// How telemetry is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// pulse, seams or voices.
    pub dashboard: String,
    /// The OTEL_* settings.
    pub env: OtelEnv,
    /// Lowest level written as a log (stdout and OTLP).
    pub log_level: LogLevel,
    /// Write JSON log lines to stdout.
    pub stdout_logs: bool,
    /// Spool directory (None: memory only).
    pub spool_dir: Option<PathBuf>,
    /// Spool budget in bytes.
    pub spool_max_bytes: u64,
    /// The longest a handshake can take (head read, dials, the upstream's answer): the span builder
    /// ends a session that has had no outcome for longer ([`spans::SpanBuilder::expire`]).
    pub handshake_max_age: Duration,
    /// The window the health score reads (`health.window_ms`).
    pub health_window: Duration,
    /// The latency SLO the health score grades against.
    pub slo_latency_ms: crate::config::Slo,
    /// The seed's switches (metrics export, ∆DΩΛ and voice fields).
    pub switches: crate::config::Switches,
    /// A session's steps as child spans (`telemetry.step_spans`) rather than span events.
    pub step_spans: bool,
}

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
    /// The prober's outbox, whose counters are pulled like the relay's.
    outbox: Option<Arc<Outbox>>,
    /// The health score's inputs over the last window.
    pub window: Arc<window::Window>,
    /// Which events are logged (a refused prober once per change, not per attempt).
    quiet: logs::Quiet,
    opts: Options,
    resource: Resource,
    /// The resource and the scope, encoded once for every trace request.
    encoded_resource: (Vec<u8>, Vec<u8>),
    started: SystemTime,
    export_tx: Option<mpsc::UnboundedSender<Batch>>,
    flush_tx: mpsc::Sender<oneshot::Sender<()>>,
    flush_rx: std::sync::Mutex<Option<mpsc::Receiver<oneshot::Sender<()>>>>,
    drained: Arc<Notify>,
    /// Whether a fallback is active (mirrors `websocket.fallback.active`, which only a `FallbackChanged`
    /// event sets): read for every event's context without a registry lookup.
    fallback: std::sync::atomic::AtomicBool,
}

/// Parses a log level name, as the sidecar's own lines read it ([`crate::diag::rank`]).
pub fn parse_level(s: &str) -> LogLevel {
    match crate::diag::rank(s) {
        0 => LogLevel::Debug,
        2 => LogLevel::Warn,
        3 => LogLevel::Error,
        _ => LogLevel::Info,
    }
}

impl Telemetry {
    /// Creates the registry, recorder and (unless disabled) the OTLP sender; the relay's `stats` and the
    /// prober's `outbox` counters are pulled from at scrape and export time.
    pub fn new(
        opts: Options,
        stats: Arc<Stats>,
        outbox: Option<Arc<Outbox>>,
        sink: EventSink,
    ) -> Arc<Telemetry> {
        let registry = Arc::new(Registry::default());
        let recorder = MetricsRecorder::new(registry.clone(), &opts.dashboard)
            .counting_voices(opts.switches.voice_system);
        let recorder = Arc::new(recorder);
        let resource = export::resource(&opts.env);
        let drained = Arc::new(Notify::new());
        let mut export_tx = None;
        if !opts.env.disabled && !opts.env.targets.is_empty() {
            let mut clients = Vec::new();
            for (signal, target) in &opts.env.targets {
                match export::Client::new(*signal, target.clone()) {
                    Ok(c) => clients.push(c),
                    Err(e) => tracing::error!(
                        target: crate::diag::EXPORTER,
                        event_type = "exporter_config",
                        message = %e
                    ),
                }
            }
            let spool = spool::Spool::open(opts.spool_dir.as_deref(), opts.spool_max_bytes)
                .unwrap_or_else(|e| {
                    tracing::warn!(
                        target: crate::diag::EXPORTER,
                        event_type = "spool_unavailable",
                        message = %format!("{e}; spooling in memory")
                    );
                    spool::Spool::open(None, opts.spool_max_bytes).expect("memory spool")
                });
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(export::sender(
                spool,
                clients,
                registry.clone(),
                rx,
                drained.clone(),
            ));
            export_tx = Some(tx);
        }
        let (flush_tx, flush_rx) = mpsc::channel(4);
        Arc::new(Telemetry {
            registry,
            recorder,
            stats,
            sink,
            outbox,
            window: Arc::new(window::Window::new(opts.health_window)),
            quiet: logs::Quiet::default(),
            opts,
            encoded_resource: (resource.encode_to_vec(), export::scope().encode_to_vec()),
            resource,
            started: SystemTime::now(),
            export_tx,
            flush_tx,
            flush_rx: std::sync::Mutex::new(Some(flush_rx)),
            drained,
            fallback: Default::default(),
        })
    }

    /// Brings hot-path counters and the health score into the registry (before a scrape or an export).
    pub fn sync(&self) {
        self.recorder.sync_stats(&self.stats, self.sink.dropped());
        if let Some(o) = &self.outbox {
            self.recorder.sync_outbox(o);
        }
        let h = self.health();
        let level = health::STATUS
            .iter()
            .position(|s| h["status"] == *s)
            .unwrap_or(0);
        let score = h["score"].as_f64().unwrap_or(0.0);
        self.recorder.set_health(score, level as f64);
    }

    /// The `/health` body: the seed's score over the last `health.window_ms`.
    pub fn health(&self) -> serde_json::Value {
        health::score(&self.window, &self.opts.slo_latency_ms)
    }

    fn ship(&self, signal: Signal, items: u64, data: Vec<u8>) {
        if let Some(tx) = &self.export_tx {
            let _ = tx.send(Batch {
                signal,
                items,
                data: data.into(),
            });
        }
    }

    /// Whether `signal` goes anywhere (metrics only while `metrics_enabled`).
    fn exports(&self, signal: Signal) -> bool {
        let switched_off = signal == Signal::Metrics && !self.opts.switches.metrics;
        self.export_tx.is_some() && self.opts.env.targets.contains_key(&signal) && !switched_off
    }

    /// Whether metrics are exported at all (`websocket.monitoring.metrics_enabled`): OTLP and `/metrics`.
    pub fn metrics_enabled(&self) -> bool {
        self.opts.switches.metrics
    }

    /// The spans' and logs' dashboard and vocabularies (the `iskra.*` switches).
    fn scope(&self) -> attrs::Scope {
        attrs::Scope {
            dashboard: self.opts.dashboard.clone(),
            ddol: self.opts.switches.fractal_logging,
            voices: self.opts.switches.voice_system,
        }
    }

    /// Whether `websocket.fallback.active` is set on any series.
    fn fallback_active(&self) -> bool {
        self.fallback.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn ship_metrics(&self) {
        if !self.exports(Signal::Metrics) {
            return;
        }
        self.sync();
        let now = spans::nanos(SystemTime::now());
        let (req, points) = otlp_metrics::request(
            &self.registry,
            &self.resource,
            spans::nanos(self.started),
            now,
        );
        self.ship(Signal::Metrics, points, req.encode_to_vec());
    }

    fn flush(&self, spans: &mut spans::Encoded, logs: &mut Vec<LogRecord>) {
        if !spans.is_empty() {
            let (res, scope) = &self.encoded_resource;
            let req = export::trace_request(res, scope, &spans.buf);
            self.ship(Signal::Traces, spans.count, req);
            // The buffer keeps its capacity: one allocation for the process, not a growing one per batch.
            spans.clear();
        }
        if !logs.is_empty() {
            let n = logs.len() as u64;
            self.ship(
                Signal::Logs,
                n,
                export::logs_request(&self.resource, std::mem::take(logs)).encode_to_vec(),
            );
        }
    }

    /// Asks the consumer to export what it holds now and waits (up to `timeout`) for the spool to drain.
    pub async fn flush_and_wait(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.flush_tx.send(tx).await.is_ok() {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
        if self.export_tx.is_some() {
            let _ = tokio::time::timeout(timeout, self.drained.notified()).await;
        }
    }
}
