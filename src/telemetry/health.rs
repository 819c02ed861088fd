//! The seed's health score over the last `health.window_ms` ([`Window`]), starting at 100:
//! - error rate above 10 % CRITICAL (−30), above 5 % WARNING (−10), for client sessions and for the
//!   prober apart, each rate a share of its own attempts;
//! - average latency above 1000 ms CRITICAL (−25), above 500 ms WARNING (−5);
//! - heartbeats the dashboard missed: 5 or more CRITICAL, 2 or more WARNING (browsers' missed heartbeats
//!   are reported apart and cost nothing: a closed laptop is not the dashboard's fault);
//! - connection stability below 0.8 CRITICAL, below 0.9 WARNING (the seed gives no deductions for
//!   these two; we take −20 and −5 for both);
//! - a prober the dashboard refuses (4xx to its upgrade) is a WARNING (−10) naming the status and what
//!   to set, not an error rate.

use serde_json::{json, Value};

use super::window::{Counts, ProbeView, Window};
use crate::config::Slo;

/// Inputs of the score, from the last window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Inputs {
    /// Client upgrades or sessions that failed / client upgrades, in % (0–100).
    pub error_rate_pct: f64,
    /// Prober attempts that failed (no answer, 5xx, link lost) / prober attempts, in % (0–100).
    pub probe_failure_pct: f64,
    /// Mean ping RTT of the prober in ms (None when nothing measured).
    pub avg_latency_ms: Option<f64>,
    /// Heartbeats the dashboard missed.
    pub heartbeat_failures: f64,
    /// Client upgrades that reached 101 / client upgrades.
    pub stability: f64,
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (100.0 * part / whole).clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// The inputs a window's counts give.
pub fn inputs(c: &Counts) -> Inputs {
    Inputs {
        error_rate_pct: pct(c.client_errors, c.client_attempts),
        probe_failure_pct: pct(c.probe_failed, c.probe_attempts),
        avg_latency_ms: (c.rtt_n > 0.0).then(|| 1000.0 * c.rtt_sum / c.rtt_n),
        heartbeat_failures: c.hb_dashboard,
        stability: if c.client_attempts > 0.0 {
            c.client_connected / c.client_attempts
        } else {
            1.0
        },
    }
}

/// The hint logged and shown while the dashboard refuses the prober's upgrade.
pub const REJECTED_HINT: &str = "the dashboard answers, but refuses the prober's upgrade: set probe.path (where its WebSocket lives, with any query) / probe.headers (a token or cookie) / probe.subprotocols / probe.origin";

/// Status names by level; `iskra.sidecar.health.status` exports the level (0, 1, 2).
pub const STATUS: [&str; 3] = ["HEALTHY", "WARNING", "CRITICAL"];

/// Scores `i` against the seed's thresholds (the latency ones from the SLO block); a prober refused by
/// the dashboard is a WARNING with the reason. Returns (level, score, issues).
pub fn evaluate(i: &Inputs, probe: &ProbeView, slo_latency: &Slo) -> (usize, i32, Vec<Value>) {
    let mut score: i32 = 100;
    let mut issues = Vec::new();
    let mut worst = 0; // 0 healthy, 1 warning, 2 critical
    let mut hit = |level: usize, cost: i32, msg: String| {
        score -= cost;
        worst = worst.max(level);
        issues.push(json!({"severity": STATUS[level], "issue": msg}));
    };
    for (what, e) in [
        ("client error rate", i.error_rate_pct),
        ("prober failure rate", i.probe_failure_pct),
    ] {
        if e > 10.0 {
            hit(2, 30, format!("{what} {e:.1}% > 10%"));
        } else if e > 5.0 {
            hit(1, 10, format!("{what} {e:.1}% > 5%"));
        }
    }
    if let Some(l) = i.avg_latency_ms {
        let (w, c) = (slo_latency.warning, slo_latency.critical);
        if l > c {
            hit(2, 25, format!("average latency {l:.0} ms > {c} ms"));
        } else if l > w {
            hit(1, 5, format!("average latency {l:.0} ms > {w} ms"));
        }
    }
    let hb = i.heartbeat_failures;
    if hb >= 5.0 {
        hit(2, 20, format!("the dashboard missed {hb} heartbeats"));
    } else if hb >= 2.0 {
        hit(1, 5, format!("the dashboard missed {hb} heartbeats"));
    }
    let s = i.stability;
    if s < 0.8 {
        hit(2, 20, format!("connection stability {s:.2} < 0.8"));
    } else if s < 0.9 {
        hit(1, 5, format!("connection stability {s:.2} < 0.9"));
    }
    if let Some((status, url)) = &probe.rejected {
        let answer = refusal(*status);
        hit(
            1,
            10,
            format!("probe_rejected: {url} {answer} to the prober's upgrade; set probe.path / probe.headers"),
        );
    }
    (worst, score.max(0), issues)
}

/// How the dashboard refused: `answered HTTP 400`, or closed without an answer.
pub fn refusal(status: Option<u16>) -> String {
    match status {
        Some(st) => format!("answered HTTP {st}"),
        None => "closed the connection without an HTTP answer".into(),
    }
}

fn probe_state(p: &ProbeView) -> &'static str {
    match (p.seen, p.connected, &p.rejected) {
        (false, _, _) => "starting",
        (_, true, _) => "connected",
        (_, _, Some(_)) => "probe_rejected",
        _ => "down",
    }
}

/// The `/health` body, from the last window.
pub fn score(w: &Window, slo_latency: &Slo) -> Value {
    let (c, probe) = w.read();
    let i = inputs(&c);
    let (level, score, issues) = evaluate(&i, &probe, slo_latency);
    let mut prober = json!({
        "state": probe_state(&probe),
        "fallback": probe.mode.map(|m| m.as_str()),
        "attempts": c.probe_attempts, "succeeded": c.probe_ok, "failed": c.probe_failed,
        "rejected": c.probe_rejected,
        "failure_rate_percent": i.probe_failure_pct,
        "rejection_rate_percent": pct(c.probe_rejected, c.probe_attempts),
    });
    if let Some((status, url)) = &probe.rejected {
        prober["status"] = json!(status);
        prober["reason"] = json!(refusal(*status));
        prober["url"] = json!(url);
        prober["hint"] = json!(REJECTED_HINT);
    }
    json!({"status": STATUS[level], "score": score, "issues": issues,
           "window_ms": w.span().as_millis() as u64,
           "inputs": {
               "clients": {"attempts": c.client_attempts, "connected": c.client_connected,
                           "errors": c.client_errors, "error_rate_percent": i.error_rate_pct,
                           "connection_stability": i.stability,
                           "heartbeat_failures": c.hb_clients},
               "prober": prober,
               "error_rate_percent": i.error_rate_pct,
               "avg_latency_ms": i.avg_latency_ms,
               "heartbeat_failures": i.heartbeat_failures,
               "connection_stability": i.stability}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> Slo {
        crate::config::from_tree(&crate::config::defaults())
            .unwrap()
            .slo_latency_ms
    }

    fn eval(i: &Inputs) -> (&'static str, i32, usize) {
        let (l, s, issues) = evaluate(i, &ProbeView::default(), &slo());
        (STATUS[l], s, issues.len())
    }

    #[test]
    fn a_quiet_sidecar_is_healthy() {
        let i = inputs(&Counts::default());
        assert_eq!(eval(&i), ("HEALTHY", 100, 0));
    }

    #[test]
    fn the_seed_thresholds_and_deductions_apply() {
        let i = Inputs {
            error_rate_pct: 6.0,
            avg_latency_ms: Some(600.0),
            stability: 1.0,
            ..Default::default()
        };
        assert_eq!(eval(&i), ("WARNING", 85, 2));
        let i = Inputs {
            error_rate_pct: 11.0,
            probe_failure_pct: 0.0,
            avg_latency_ms: Some(1001.0),
            heartbeat_failures: 5.0,
            stability: 0.5,
        };
        assert_eq!(eval(&i), ("CRITICAL", 5, 4));
        let i = Inputs {
            error_rate_pct: 5.0,
            probe_failure_pct: 5.0,
            avg_latency_ms: Some(500.0),
            heartbeat_failures: 1.0,
            stability: 0.9,
        };
        assert_eq!(eval(&i).0, "HEALTHY");
    }

    #[test]
    fn rates_are_shares_of_their_own_attempts_and_a_refused_prober_warns() {
        let c = Counts {
            client_attempts: 5.0,
            client_connected: 5.0,
            probe_attempts: 12.0,
            probe_rejected: 12.0,
            ..Default::default()
        };
        let i = inputs(&c);
        assert_eq!((i.error_rate_pct, i.probe_failure_pct), (0.0, 0.0));
        let probe = ProbeView {
            seen: true,
            rejected: Some((Some(400), "ws://h:1/".into())),
            ..Default::default()
        };
        let (l, score, issues) = evaluate(&i, &probe, &slo());
        assert_eq!((STATUS[l], score), ("WARNING", 90));
        assert!(issues[0]["issue"].as_str().unwrap().contains("HTTP 400"));
        let c = Counts {
            client_attempts: 2.0,
            client_errors: 9.0,
            ..Default::default()
        };
        assert_eq!(inputs(&c).error_rate_pct, 100.0);
    }
}
