//! The seed's health score: starts at 100; error rate > 10 % CRITICAL (−30), > 5 % WARNING (−10);
//! average latency > 1000 ms CRITICAL (−25), > 500 ms WARNING (−5); heartbeat failures ≥ 5 CRITICAL,
//! ≥ 2 WARNING; connection stability < 0.8 CRITICAL, < 0.9 WARNING. The seed gives no deductions for the
//! last two; we take −20 (critical) and −5 (warning) for both.

use serde_json::{json, Value};

use crate::config::Config;
use crate::telemetry::names as n;
use crate::telemetry::registry::Registry;

/// Inputs of the score, read from the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Inputs {
    /// Errors / connection attempts, in %.
    pub error_rate_pct: f64,
    /// Mean ping RTT in ms (None when nothing measured).
    pub avg_latency_ms: Option<f64>,
    /// Missed heartbeats.
    pub heartbeat_failures: f64,
    /// Successful / attempted connections.
    pub stability: f64,
}

/// Reads the inputs from the registry's cumulative series.
pub fn inputs(r: &Registry) -> Inputs {
    let connected = r.sum(n::SEED_CONNECTIONS.name, &[("state", "connected")]);
    let failed = r.sum(n::SEED_CONNECTIONS.name, &[("state", "failed")]);
    let attempts = connected + failed;
    let errors = r.sum(n::SEED_ERRORS.name, &[]);
    let lat = r.sum(n::SEED_AVG_LATENCY.name, &[]);
    let lat_n = r.count(n::SEED_AVG_LATENCY.name);
    Inputs {
        error_rate_pct: if attempts > 0.0 {
            100.0 * errors / attempts
        } else {
            0.0
        },
        avg_latency_ms: (lat_n > 0).then(|| 1000.0 * lat / lat_n as f64),
        heartbeat_failures: r.sum(n::HEARTBEAT_MISSED.name, &[]),
        stability: if attempts > 0.0 {
            connected / attempts
        } else {
            1.0
        },
    }
}

/// Scores `i` against the seed's thresholds (the latency ones from the config's SLO block).
pub fn evaluate(i: &Inputs, cfg: &Config) -> Value {
    let mut score: i32 = 100;
    let mut issues = Vec::new();
    let mut worst = 0; // 0 healthy, 1 warning, 2 critical
    let mut hit = |level: i32, cost: i32, msg: String| {
        score -= cost;
        worst = worst.max(level);
        issues.push(json!({"severity": if level == 2 {"CRITICAL"} else {"WARNING"}, "issue": msg}));
    };
    let e = i.error_rate_pct;
    if e > 10.0 {
        hit(2, 30, format!("error rate {e:.1}% > 10%"));
    } else if e > 5.0 {
        hit(1, 10, format!("error rate {e:.1}% > 5%"));
    }
    if let Some(l) = i.avg_latency_ms {
        let (w, c) = (cfg.slo_latency_ms.warning, cfg.slo_latency_ms.critical);
        if l > c {
            hit(2, 25, format!("average latency {l:.0} ms > {c} ms"));
        } else if l > w {
            hit(1, 5, format!("average latency {l:.0} ms > {w} ms"));
        }
    }
    let hb = i.heartbeat_failures;
    if hb >= 5.0 {
        hit(2, 20, format!("{hb} heartbeat failures"));
    } else if hb >= 2.0 {
        hit(1, 5, format!("{hb} heartbeat failures"));
    }
    let s = i.stability;
    if s < 0.8 {
        hit(2, 20, format!("connection stability {s:.2} < 0.8"));
    } else if s < 0.9 {
        hit(1, 5, format!("connection stability {s:.2} < 0.9"));
    }
    let status = ["HEALTHY", "WARNING", "CRITICAL"][worst as usize];
    json!({"status": status, "score": score.max(0), "issues": issues,
           "inputs": {"error_rate_percent": i.error_rate_pct, "avg_latency_ms": i.avg_latency_ms,
                      "heartbeat_failures": i.heartbeat_failures, "connection_stability": i.stability}})
}

/// The `/health` body.
pub fn score(r: &Registry, cfg: &Config) -> Value {
    evaluate(&inputs(r), cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        crate::config::from_tree(&crate::config::defaults()).unwrap()
    }

    #[test]
    fn a_quiet_sidecar_is_healthy() {
        let v = evaluate(
            &Inputs {
                stability: 1.0,
                ..Default::default()
            },
            &cfg(),
        );
        assert_eq!(
            (v["status"].as_str(), v["score"].as_i64()),
            (Some("HEALTHY"), Some(100))
        );
    }

    #[test]
    fn the_seed_thresholds_and_deductions_apply() {
        let i = Inputs {
            error_rate_pct: 6.0,
            avg_latency_ms: Some(600.0),
            heartbeat_failures: 0.0,
            stability: 1.0,
        };
        let v = evaluate(&i, &cfg());
        assert_eq!(
            (v["status"].as_str(), v["score"].as_i64()),
            (Some("WARNING"), Some(85))
        );
        let i = Inputs {
            error_rate_pct: 11.0,
            avg_latency_ms: Some(1001.0),
            heartbeat_failures: 5.0,
            stability: 0.5,
        };
        let v = evaluate(&i, &cfg());
        assert_eq!(
            (v["status"].as_str(), v["score"].as_i64()),
            (Some("CRITICAL"), Some(5))
        );
        assert_eq!(v["issues"].as_array().unwrap().len(), 4);
        let i = Inputs {
            error_rate_pct: 5.0,
            avg_latency_ms: Some(500.0),
            heartbeat_failures: 1.0,
            stability: 0.9,
        };
        assert_eq!(evaluate(&i, &cfg())["status"], "HEALTHY");
    }
}
