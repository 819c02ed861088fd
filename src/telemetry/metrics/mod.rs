//! Events and hot-path counters → the metric registry (off the data path: runs in the telemetry task
//! and at scrape/export time).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::names::{self as n, attr};
use super::registry::{Def, Registry, TraceRef};
use crate::events::{Direction, DropReason, Event, EventKind, FallbackMode, Initiator, Transport};
use crate::probe::outbox::Outbox;
use crate::proxy::Stats;
use crate::semantics::{self, Semantics, Voice};

/// Turns events into metric updates for one dashboard.
pub struct MetricsRecorder {
    /// The shared registry.
    pub registry: Arc<Registry>,
    dashboard: String,
    rtts: Mutex<VecDeque<(Instant, f64)>>,
    /// Count voice activations (`iskra.voice_system`).
    voices: bool,
    /// The last voice that answered an event, and the event's delta (the demo's view shows it).
    last_voice: Mutex<Option<(Voice, &'static str)>>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Whether an event can activate a voice (routine steps — accepts, request heads, frames — never do).
fn can_voice(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::FrameRelayed { .. } | EventKind::Accepted { .. } | EventKind::RequestHead { .. }
    )
}

/// Whether an event can carry an error (so that each failure is counted once, at its source).
fn counts_as_error(kind: &EventKind) -> bool {
    match kind {
        EventKind::HandshakeRejected { .. }
        | EventKind::ProtocolError { .. }
        | EventKind::HeartbeatTimeout { .. }
        | EventKind::ProbeFailed { .. } => true,
        EventKind::Close { initiator, .. } => *initiator != Initiator::Sidecar,
        _ => false,
    }
}

impl MetricsRecorder {
    /// A recorder labelling everything with `dashboard`.
    pub fn new(registry: Arc<Registry>, dashboard: &str) -> Self {
        let me = MetricsRecorder {
            registry,
            dashboard: dashboard.to_string(),
            rtts: Mutex::new(VecDeque::new()),
            voices: true,
            last_voice: Mutex::new(None),
        };
        me.zero_known_series();
        me
    }

    /// The last voice counted ([`Self::counting_voices`]) and the delta of the event it answered, as the
    /// pipeline described it.
    pub fn last_voice(&self) -> Option<(Voice, &'static str)> {
        *self.last_voice.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether voice activations are counted (`websocket_voice_alerts_total`); the voice system's switch.
    pub fn counting_voices(mut self, on: bool) -> Self {
        self.voices = on;
        self
    }

    /// Creates at 0 the series that alerts compute `increase()` over, so their first increment counts.
    fn zero_known_series(&self) {
        let r = &self.registry;
        let d = (attr::DASHBOARD, self.dashboard.as_str());
        for state in ["connected", "disconnected", "failed"] {
            r.add(&n::SEED_CONNECTIONS, &[d, (attr::STATE, state)], 0.0);
        }
        for peer in ["client", "upstream"] {
            r.add(&n::HEARTBEAT_MISSED, &[d, (attr::PEER, peer)], 0.0);
        }
        for class in [
            "CONNECTION_TIMEOUT",
            "AUTHENTICATION_FAILED",
            "SERVER_OVERLOAD",
            "NETWORK_ERROR",
            "PROTOCOL_ERROR",
            "UNKNOWN",
        ] {
            r.add(&n::SEED_ERRORS, &[d, (attr::SEED_ERROR_TYPE, class)], 0.0);
        }
        r.add(&n::ACTIVE, &[d], 0.0);
        r.add(
            &n::RESUMES,
            &[d, (attr::OUTCOME, "resumed"), (attr::REASON, "")],
            0.0,
        );
        for reason in crate::events::ResumeGaveUp::ALL {
            let l = [
                d,
                (attr::OUTCOME, "gave_up"),
                (attr::REASON, reason.as_str()),
            ];
            r.add(&n::RESUMES, &l, 0.0);
        }
        r.add(&n::SESSIONS_EXPIRED, &[d], 0.0);
        for m in FallbackMode::ALL {
            r.set(
                &n::FALLBACK_ACTIVE,
                &[d, (attr::FALLBACK_MODE, m.as_str())],
                0.0,
            );
        }
        r.set(&n::HEALTH_SCORE, &[d], 100.0);
        r.set(&n::HEALTH_STATUS, &[d], 0.0);
        // 0 until the prober's outbox exists; then `sync_outbox` pulls this gauge and its counters from
        // it, so that they stay exact even when the event channel overflows.
        r.set(&n::BUFFER_QUEUED, &[d], 0.0);
        for signal in ["traces", "metrics", "logs"] {
            let s = [(attr::SIGNAL, signal)];
            r.add(&n::TELEMETRY_EXPORTED, &s, 0.0);
            r.add(&n::TELEMETRY_FAILED, &s, 0.0);
            r.add(&n::TELEMETRY_DROPPED, &s, 0.0);
        }
    }

    /// Applies one event, with its semantics (described once, by the caller).
    pub fn record(&self, ev: &Event, sem: &Semantics) {
        self.record_traced(ev, sem, None);
    }

    /// Applies one event with its semantics; the histogram values it adds carry `trace` (its session's
    /// trace and span) as their exemplar.
    pub fn record_traced(&self, ev: &Event, sem: &Semantics, trace: TraceRef) {
        let r = &self.registry;
        let at = super::spans::nanos(ev.at);
        let observe =
            |def: &Def, l: &[(&'static str, &str)], v: f64| r.observe_traced(def, l, v, trace, at);
        let d = (attr::DASHBOARD, self.dashboard.as_str());
        let upstream = ev
            .session
            .as_ref()
            .map_or("primary", |s| s.upstream_name.as_str());
        match &ev.kind {
            EventKind::HandshakeCompleted { duration, .. } => {
                observe(&n::HANDSHAKE, &[d, (attr::STATUS, "101")], secs(*duration));
                r.add(&n::SEED_CONNECTIONS, &[d, (attr::STATE, "connected")], 1.0);
                r.add(&n::ACTIVE, &[d], 1.0);
            }
            EventKind::HandshakeRejected {
                duration, status, ..
            } => {
                let st = status.to_string();
                observe(&n::HANDSHAKE, &[d, (attr::STATUS, &st)], secs(*duration));
                if *status >= 500 {
                    r.add(&n::SEED_CONNECTIONS, &[d, (attr::STATE, "failed")], 1.0);
                }
            }
            EventKind::UpstreamConnected { duration } => {
                let l = [d, (attr::UPSTREAM_NAME, upstream), (attr::ERROR_TYPE, "")];
                observe(&n::UPSTREAM_CONNECT, &l, secs(*duration));
            }
            EventKind::UpstreamConnectFailed { duration, cause } => {
                let l = [
                    d,
                    (attr::UPSTREAM_NAME, upstream),
                    (attr::ERROR_TYPE, cause.as_str()),
                ];
                observe(&n::UPSTREAM_CONNECT, &l, secs(*duration));
            }
            EventKind::SessionEnded {
                duration,
                initiator,
                ..
            } => {
                let l = [d, (attr::CLOSE_INITIATOR, initiator.as_str())];
                observe(&n::SESSION_DURATION, &l, secs(*duration));
                r.add(
                    &n::SEED_CONNECTIONS,
                    &[d, (attr::STATE, "disconnected")],
                    1.0,
                );
                r.add(&n::ACTIVE, &[d], -1.0);
            }
            EventKind::Close {
                code,
                upstream_code,
                initiator,
                ..
            } => {
                let (c, u) = (code.to_string(), upstream_code.to_string());
                let l = [
                    d,
                    (attr::CLOSE_CODE, c.as_str()),
                    (attr::UPSTREAM_CLOSE_CODE, u.as_str()),
                    (attr::CLOSE_INITIATOR, initiator.as_str()),
                ];
                r.add(&n::CLOSES, &l, 1.0);
            }
            EventKind::ProtocolError { rule, .. } => {
                r.add(&n::PROTOCOL_ERRORS, &[d, (attr::RULE, rule.as_str())], 1.0);
            }
            EventKind::PingPong {
                peer,
                rtt: Some(rtt),
            } => {
                observe(&n::PING_RTT, &[d, (attr::PEER, peer.as_str())], secs(*rtt));
                if ev.session.is_none() {
                    // The prober's round trips are the seed monitor's per-endpoint latency.
                    self.note_rtt(secs(*rtt));
                }
            }
            EventKind::HeartbeatTimeout { peer, .. } => {
                r.add(&n::HEARTBEAT_MISSED, &[d, (attr::PEER, peer.as_str())], 1.0);
            }
            EventKind::Resumed { .. } => {
                let l = [d, (attr::OUTCOME, "resumed"), (attr::REASON, "")];
                r.add(&n::RESUMES, &l, 1.0);
            }
            EventKind::ResumeGaveUp { reason, .. } => {
                let l = [
                    d,
                    (attr::OUTCOME, "gave_up"),
                    (attr::REASON, reason.as_str()),
                ];
                r.add(&n::RESUMES, &l, 1.0);
            }
            EventKind::ProbeAttempt {
                endpoint, attempt, ..
            } if *attempt > 0 => {
                r.add(
                    &n::SEED_RECONNECTIONS,
                    &[d, (attr::ENDPOINT, endpoint)],
                    1.0,
                );
            }
            EventKind::ProbeSucceeded {
                endpoint,
                transport,
                duration,
                ..
            } => self.probe_result(endpoint, *transport, *duration, None),
            EventKind::ProbeFailed {
                endpoint,
                transport,
                duration,
                cause,
                ..
            } => self.probe_result(endpoint, *transport, *duration, Some(cause.as_str())),
            EventKind::Failover { .. } => {
                r.add(&n::FALLBACKS, &[d, (attr::TRANSPORT, "websocket")], 1.0);
            }
            EventKind::Downgrade { to, .. } => {
                r.add(&n::FALLBACKS, &[d, (attr::TRANSPORT, to.as_str())], 1.0);
            }
            EventKind::FallbackChanged { mode, .. } => {
                for m in FallbackMode::ALL {
                    let on = f64::from(u8::from(*mode == Some(m)));
                    r.set(
                        &n::FALLBACK_ACTIVE,
                        &[d, (attr::FALLBACK_MODE, m.as_str())],
                        on,
                    );
                }
            }
            EventKind::ProbeRejected {
                endpoint, duration, ..
            } => {
                let l = [
                    d,
                    (attr::ENDPOINT, endpoint.as_str()),
                    (attr::TRANSPORT, "websocket"),
                ];
                r.set(&n::PROBE_SUCCESS, &l, 0.0);
                r.set(
                    &n::PROBE_DURATION,
                    &[d, (attr::ENDPOINT, endpoint)],
                    secs(*duration),
                );
                let l = [
                    d,
                    (attr::UPSTREAM_NAME, endpoint.as_str()),
                    (attr::ERROR_TYPE, "probe_rejected"),
                ];
                r.add(&n::RECONNECTS, &l, 1.0);
            }
            _ => {}
        }
        if counts_as_error(&ev.kind) {
            if let Some(class) = semantics::classify(&ev.kind) {
                r.add(
                    &n::SEED_ERRORS,
                    &[d, (attr::SEED_ERROR_TYPE, class.as_str())],
                    1.0,
                );
            }
        }
        if let Some(voice) = sem.voice.filter(|_| self.voices && can_voice(&ev.kind)) {
            r.add(
                &n::SEED_VOICE_ALERTS,
                &[d, (attr::VOICE, voice.as_str())],
                1.0,
            );
            *self.last_voice.lock().unwrap_or_else(|e| e.into_inner()) = Some((voice, sem.delta));
        }
    }

    /// A prober attempt's outcome: the blackbox-style gauges, and the reconnect it counts (`error_type`
    /// empty when it worked).
    fn probe_result(&self, endpoint: &str, t: Transport, took: Duration, error: Option<&str>) {
        let r = &self.registry;
        let d = (attr::DASHBOARD, self.dashboard.as_str());
        let l = [d, (attr::ENDPOINT, endpoint), (attr::TRANSPORT, t.as_str())];
        r.set(
            &n::PROBE_SUCCESS,
            &l,
            if error.is_none() { 1.0 } else { 0.0 },
        );
        r.set(
            &n::PROBE_DURATION,
            &[d, (attr::ENDPOINT, endpoint)],
            secs(took),
        );
        let l = [
            d,
            (attr::UPSTREAM_NAME, endpoint),
            (attr::ERROR_TYPE, error.unwrap_or("")),
        ];
        r.add(&n::RECONNECTS, &l, 1.0);
    }

    /// Sets the health gauges (score 0–100; status 0 HEALTHY, 1 WARNING, 2 CRITICAL).
    pub fn set_health(&self, score: f64, status: f64) {
        let d = (attr::DASHBOARD, self.dashboard.as_str());
        self.registry.set(&n::HEALTH_SCORE, &[d], score);
        self.registry.set(&n::HEALTH_STATUS, &[d], status);
    }

    fn note_rtt(&self, v: f64) {
        let mut q = self.rtts.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back((Instant::now(), v));
        self.refresh_latency(&mut q);
    }

    /// The seed's average and maximum latency over the last minute, per endpoint (the dashboard).
    fn refresh_latency(&self, q: &mut VecDeque<(Instant, f64)>) {
        let window = Duration::from_secs(60);
        while q.front().is_some_and(|(t, _)| t.elapsed() > window) {
            q.pop_front();
        }
        if q.is_empty() {
            return;
        }
        let d = (attr::DASHBOARD, self.dashboard.as_str());
        let avg = q.iter().map(|(_, v)| v).sum::<f64>() / q.len() as f64;
        let max = q.iter().map(|(_, v)| *v).fold(0.0, f64::max);
        let e = (attr::ENDPOINT, self.dashboard.as_str());
        self.registry.set(&n::SEED_AVG_LATENCY, &[d, e], avg);
        self.registry.set(&n::SEED_MAX_LATENCY, &[d, e], max);
    }

    /// Copies the relay's cumulative atomics into the registry (call before each scrape or export).
    pub fn sync_stats(&self, stats: &Stats, events_dropped: u64) {
        let r = &self.registry;
        let d = (attr::DASHBOARD, self.dashboard.as_str());
        for dir in [Direction::ClientToUpstream, Direction::UpstreamToClient] {
            let t = stats.traffic(dir);
            let io = (attr::DIRECTION, dir.io_direction());
            r.set(
                &n::MESSAGES,
                &[d, io, (attr::FRAME_TYPE, "text")],
                t.text() as f64,
            );
            r.set(
                &n::MESSAGES,
                &[d, io, (attr::FRAME_TYPE, "binary")],
                t.binary() as f64,
            );
            r.set(&n::PAYLOAD, &[d, io], t.bytes() as f64);
            let (counts, sum) = t.sizes();
            r.set_histogram(&n::MESSAGE_SIZE, &[d, io], &counts, sum as f64);
        }
        r.set(&n::EVENTS_DROPPED, &[], events_dropped as f64);
        r.set(
            &n::ADMIN_REFUSED,
            &[],
            stats
                .admin_refused
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        let mut q = self.rtts.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh_latency(&mut q);
    }

    /// Pulls the prober's outbox counters into the registry: the queue gauge, the confirmed messages,
    /// and the refusals by reason (`full` and `full_bytes` from 0, `spool_error` once it happens).
    pub fn sync_outbox(&self, outbox: &Outbox) {
        let r = &self.registry;
        let d = (attr::DASHBOARD, self.dashboard.as_str());
        let c = outbox.counts();
        r.set(&n::BUFFER_QUEUED, &[d], c.queued as f64);
        r.set(&n::BUFFER_DELIVERED, &[d], c.delivered as f64);
        for reason in DropReason::ALL {
            let dropped = outbox.dropped(reason);
            if dropped > 0 || reason != DropReason::SpoolError {
                let labels = [d, (attr::REASON, reason.as_str())];
                r.set(&n::BUFFER_DROPPED, &labels, dropped as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests;
