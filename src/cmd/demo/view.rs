//! The demo's live figures per dashboard, gathered from the sidecars' events and registries, and their
//! rendering: a refreshed 80-column table on a terminal, plain lines otherwise, and the final summary.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::app::Running;
use crate::events::{Event, EventKind};
use crate::telemetry::names as n;

/// What one dashboard's tap has seen.
#[derive(Debug, Default)]
pub struct Seen {
    /// (when, handshake ms).
    pub handshakes: VecDeque<(Instant, f64)>,
    /// (when, ping RTT ms) of the sidecar's session heartbeats.
    pub pings: VecDeque<(Instant, f64)>,
    /// Sessions that completed a handshake.
    pub sessions: u64,
    /// Sessions held through a dashboard restart and resumed.
    pub resumed: u64,
    /// All handshake and ping samples (for the summary).
    pub all_handshakes: Vec<f64>,
    /// All ping samples.
    pub all_pings: Vec<f64>,
}

impl Seen {
    /// Takes one event.
    pub fn record(&mut self, ev: &Event) {
        let now = Instant::now();
        match &ev.kind {
            EventKind::HandshakeCompleted { duration, .. } => {
                let ms = duration.as_secs_f64() * 1e3;
                self.handshakes.push_back((now, ms));
                self.all_handshakes.push(ms);
                self.sessions += 1;
            }
            EventKind::Resumed { .. } => self.resumed += 1,
            EventKind::PingPong { rtt: Some(r), .. } if ev.session.is_some() => {
                let ms = r.as_secs_f64() * 1e3;
                self.pings.push_back((now, ms));
                self.all_pings.push(ms);
            }
            _ => {}
        }
        for q in [&mut self.handshakes, &mut self.pings] {
            while q
                .front()
                .is_some_and(|(t, _)| t.elapsed() > Duration::from_secs(30))
            {
                q.pop_front();
            }
        }
    }
}

/// p50 and p99 of `v` (ms).
pub fn p50_p99(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut s: Vec<f64> = v.collect();
    if s.is_empty() {
        return (0.0, 0.0);
    }
    s.sort_by(f64::total_cmp);
    let at = |p: f64| s[(((s.len() - 1) as f64) * p).round() as usize];
    (at(0.5), at(0.99))
}

const CLASSES: [(&str, &str); 6] = [
    ("CONNECTION_TIMEOUT", "TMO"),
    ("AUTHENTICATION_FAILED", "AUTH"),
    ("SERVER_OVERLOAD", "OVL"),
    ("NETWORK_ERROR", "NET"),
    ("PROTOCOL_ERROR", "PRO"),
    ("UNKNOWN", "UNK"),
];

/// Errors by class, compact (`NET2 PRO1`), or `-`.
pub fn errors(r: &Running) -> (String, u64) {
    let reg = &r.telemetry.registry;
    let mut parts = Vec::new();
    let mut total = 0;
    for (class, short) in CLASSES {
        let v = reg.sum(n::SEED_ERRORS.name, &[("error_type", class)]) as u64;
        if v > 0 {
            parts.push(format!("{short}{v}"));
            total += v;
        }
    }
    (
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(" ")
        },
        total,
    )
}

/// Messages relayed both ways so far.
pub fn messages(r: &Running) -> u64 {
    let s = &r.proxy.stats;
    s.inbound.text() + s.inbound.binary() + s.outbound.text() + s.outbound.binary()
}

/// One table row per dashboard, at most 80 columns.
pub fn row(name: &str, r: &Running, seen: &Seen, msgs_per_s: f64) -> String {
    r.telemetry.sync();
    let conn = r.proxy.stats.active_sessions.load(Relaxed);
    let (h50, h99) = p50_p99(seen.handshakes.iter().map(|x| x.1));
    let (p50, p99) = p50_p99(seen.pings.iter().map(|x| x.1));
    let (errs, _) = errors(r);
    let health = r.telemetry.health();
    // The voice as the pipeline described the event (once, with the D rule's context).
    let voice = r
        .telemetry
        .recorder
        .last_voice()
        .map_or("-", |v| v.0.as_str());
    format!(
        "{:<7}{:>5}{:>6.0} {:>5.1}/{:<5.1}{:>5.1}/{:<5.1} {:<9.9} {:>7} {:<11} {:<8}",
        name,
        conn,
        msgs_per_s,
        h50,
        h99,
        p50,
        p99,
        errs,
        seen.resumed,
        voice,
        health["status"].as_str().unwrap_or("?")
    )
}

/// The table header.
pub const HEADER: &str =
    "DASH    CONN MSG/s HS p50/p99 PING p50/99 ERRORS    RESUMED VOICE       HEALTH";
