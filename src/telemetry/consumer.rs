//! The consumer: the thread telemetry runs on, and the loop that takes the relay's and the prober's
//! events in batches and hands each, described once, to metrics, spans and logs, exporting as batches
//! fill or their delays pass.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::logs::v1::LogRecord;
use tokio::sync::{mpsc, oneshot};

use super::{
    context, logs, names, semantics, spans, LogLevel, Options, Outbox, Signal, Stats, Telemetry,
};
use crate::events::{Event, EventKind, EventSink};

thread_local! {
    /// The stdout log line being written: one buffer per thread, reused line after line.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What the consumer builds between exports: open sessions' span state, finished spans, log records,
/// and the D rule's context.
type Bufs<'a> = (
    &'a mut spans::SpanBuilder,
    &'a mut spans::Encoded,
    &'a mut Vec<LogRecord>,
    &'a mut context::Tracker,
);

impl Telemetry {
    /// Exports the spans (the log records) held once they make a full batch
    /// (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`): checked after every event,
    /// so that a request holds at most a batch (an event ends at most one span unless
    /// `telemetry.step_spans` is on, when a session's step spans come with it). An export restarts its
    /// signal's schedule delay (`last`: when spans, logs were last exported).
    fn ship_full(&self, (_, span_buf, log_buf, _): &mut Bufs, last: &mut (Instant, Instant)) {
        if span_buf.count >= self.opts.env.span_batch as u64 {
            self.flush(span_buf, &mut Vec::new());
            last.0 = Instant::now();
        }
        if log_buf.len() >= self.opts.env.log_batch {
            self.flush(&mut spans::Encoded::default(), log_buf);
            last.1 = Instant::now();
        }
    }

    /// Records one event: metrics, its spans (if it ends any), and its log line.
    fn on_event(
        &self,
        ev: Event,
        (builder, span_buf, log_buf, tracker): &mut Bufs,
        tap: Option<&mpsc::UnboundedSender<Event>>,
    ) {
        tracker.observe(&ev);
        // The session's trace becomes the exemplar of the histogram points the event adds (when traces
        // are exported: an exemplar must lead to a trace).
        let traced = builder.session_ids(&ev).filter(|_| !span_buf.off);
        let ctx = tracker.context(self.fallback_active());
        // Described once, with the D rule's context; metrics, spans and logs read the same semantics.
        let mut sem = semantics::describe(&ev.kind, &ctx);
        if let EventKind::ProbeRejected { .. } = ev.kind {
            sem.level = LogLevel::Warn; // a setting to change, said once per change
        }
        self.recorder.record_traced(&ev, &sem, traced);
        if let EventKind::FallbackChanged { mode, .. } = &ev.kind {
            let active = mode.is_some();
            self.fallback
                .store(active, std::sync::atomic::Ordering::Relaxed);
        }
        self.window.record(&ev);
        let ids = builder.on_event(&ev, &sem, span_buf);
        if sem.level >= self.opts.log_level && self.quiet.keep(&ev.kind) {
            if self.opts.stdout_logs {
                LINE.with_borrow_mut(|line| {
                    logs::line(line, &ev, &sem, builder.scope(), ids);
                    let _ = std::io::stdout().lock().write_all(line);
                });
            }
            if self.exports(Signal::Logs) {
                log_buf.push(logs::record(&ev, &sem, builder.scope(), ids));
            }
        }
        if let Some(t) = tap {
            let _ = t.send(ev);
        }
    }

    /// Starts the pipeline on a thread of its own, with a current-thread runtime: the consumer and the
    /// exporter never take a turn from the relay's workers (a batch encoded or sent never delays a
    /// handshake), and the relay never waits on them. Events reach it through `rx`; the returned handle
    /// serves scrapes, health and flushes from any thread. The thread ends when every sender is gone.
    pub async fn spawn(
        opts: Options,
        (stats, outbox, sink): (Arc<Stats>, Option<Arc<Outbox>>, EventSink),
        rx: mpsc::Receiver<Event>,
        tap: Option<mpsc::UnboundedSender<Event>>,
    ) -> std::io::Result<Arc<Telemetry>> {
        let (tx, started) = oneshot::channel();
        std::thread::Builder::new()
            .name("iskra-telemetry".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("telemetry runtime");
                rt.block_on(async move {
                    let telemetry = Telemetry::new(opts, stats, outbox, sink);
                    let _ = tx.send(telemetry.clone());
                    telemetry.consume(rx, tap).await;
                });
            })?;
        started.await.map_err(std::io::Error::other)
    }

    /// Consumes events until every sender is gone; `tap` sees each event after it is recorded.
    pub async fn consume(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Event>,
        tap: Option<mpsc::UnboundedSender<Event>>,
    ) {
        let mut flush_rx = self
            .flush_rx
            .lock()
            .ok()
            .and_then(|mut f| f.take())
            .expect("consume runs once");
        let mut builder = spans::SpanBuilder::scoped(self.scope()).step_spans(self.opts.step_spans);
        let mut tracker = context::Tracker::default();
        let mut span_buf = spans::Encoded {
            off: !self.exports(Signal::Traces),
            ..Default::default()
        };
        let mut log_buf = Vec::new();
        // When spans and logs were last exported (their schedule delays run from there), and metrics.
        let mut last = (Instant::now(), Instant::now());
        let mut last_metrics = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_expiry = Instant::now();
        // After a batch the consumer waits a moment before taking the next one, so that under load it
        // is woken about once per `LINGER` for the events of many sessions, not once per event (each
        // wake from another thread is a system call on both sides).
        const LINGER: Duration = Duration::from_millis(1);
        const BATCH: usize = 4096;
        let mut linger = false;
        loop {
            if std::mem::take(&mut linger) {
                tokio::time::sleep(LINGER).await;
            }
            tokio::select! {
                ev = rx.recv() => {
                    let Some(first) = ev else { break };
                    let mut bufs = (&mut builder, &mut span_buf, &mut log_buf, &mut tracker);
                    // This event and whatever else is queued (up to BATCH more) are taken now: the
                    // checks below run once per batch.
                    let mut next = Some(first);
                    for _ in 0..=BATCH {
                        let Some(ev) = next.take().or_else(|| rx.try_recv().ok()) else { break };
                        self.on_event(ev, &mut bufs, tap.as_ref());
                        self.ship_full(&mut bufs, &mut last);
                    }
                    linger = true;
                }
                Some(ack) = flush_rx.recv() => {
                    self.flush(&mut span_buf, &mut log_buf);
                    self.ship_metrics();
                    let _ = ack.send(());
                }
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            if now - last_expiry >= Duration::from_secs(1) {
                last_expiry = now;
                let at = spans::nanos(SystemTime::now());
                let expired = builder.expire(at, self.opts.handshake_max_age, &mut span_buf);
                let d = [(names::attr::DASHBOARD, self.opts.dashboard.as_str())];
                if expired > 0 {
                    self.registry
                        .add(&names::SESSIONS_EXPIRED, &d, expired as f64);
                }
                let tracked = builder.open_sessions() as f64;
                self.registry.set(&names::SESSIONS_TRACKED, &d, tracked);
            }
            if !span_buf.is_empty() && now - last.0 >= self.opts.env.span_delay {
                self.flush(&mut span_buf, &mut Vec::new());
                last.0 = now;
            }
            if !log_buf.is_empty() && now - last.1 >= self.opts.env.log_delay {
                self.flush(&mut spans::Encoded::default(), &mut log_buf);
                last.1 = now;
            }
            if now - last_metrics >= self.opts.env.metric_interval {
                self.ship_metrics();
                last_metrics = now;
            }
        }
    }
}
