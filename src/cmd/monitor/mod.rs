//! `iskra-ws-sidecar monitor` (the seed's real-time monitor): every interval, per endpoint, connect,
//! ping and report success rate, p50/p95/p99 and SLO violations; `--send FILE` delivers lines through an
//! outbox ([`send`]).

pub mod send;

use std::time::{Duration, Instant};

use serde_json::json;

use super::check::steps::check;
use super::{load, slo, targets};
use crate::cli::MonitorArgs;
use crate::exit;
use crate::probe::redact;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `monitor`: every interval, per endpoint, connect, ping, and report; `--json` prints events as lines.
pub async fn command(args: MonitorArgs) -> u8 {
    let cfg = match load(&args.cfg, &args.probe) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let urls = targets(&cfg, &args.urls);
    let sending = match (&args.send, urls.first()) {
        (Some(input), Some(url)) => match send::Sending::start(&cfg, url, input).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::CONFIG;
            }
        },
        _ => None,
    };
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); urls.len()];
    let (mut ok, mut total) = (vec![0u64; urls.len()], vec![0u64; urls.len()]);
    let mut violations = vec![0u64; urls.len()];
    let mut round = 0u64;
    loop {
        let t0 = Instant::now();
        round += 1;
        let results = futures_util::future::join_all(
            urls.iter()
                .map(|u| check(u, Duration::from_secs(5), slo(&cfg), &cfg.probe)),
        )
        .await;
        for (i, r) in results.iter().enumerate() {
            total[i] += 1;
            let latency = r.ping.as_ref().filter(|p| p.ok).map(|p| p.ms);
            if r.healthy {
                ok[i] += 1;
            } else if args.json {
                println!(
                    "{}",
                    json!({"event": "connectionFailed", "url": r.url, "error": r.websocket.as_ref().and_then(|w| w.error)})
                );
            }
            if let Some(l) = latency {
                lat[i].push(l);
            }
            let avg = if lat[i].is_empty() {
                0.0
            } else {
                lat[i].iter().sum::<f64>() / lat[i].len() as f64
            };
            if cfg.switches.slo_monitoring && avg > cfg.slo_latency_ms.warning {
                violations[i] += 1;
                if args.json {
                    println!(
                        "{}",
                        json!({"event": "sloViolation", "url": r.url, "avg_latency_ms": avg, "threshold_ms": cfg.slo_latency_ms.warning})
                    );
                }
            }
        }
        if args.json {
            let eps: Vec<_> = urls.iter().enumerate().map(|(i, u)| {
                let mut s = lat[i].clone();
                s.sort_by(f64::total_cmp);
                json!({"url": redact(u), "checks": total[i], "success_rate": ok[i] as f64 / total[i] as f64,
                       "p50_ms": percentile(&s, 0.5), "p95_ms": percentile(&s, 0.95), "p99_ms": percentile(&s, 0.99), "slo_violations": violations[i]})
            }).collect();
            let mut line = json!({"event": "checkComplete", "round": round, "endpoints": eps});
            if let Some(s) = &sending {
                line["send"] = s.report();
            }
            println!("{line}");
        } else {
            println!(
                "round {round}  {:<34} {:>8} {:>8} {:>8} {:>8} {:>6}",
                "ENDPOINT", "SUCCESS", "P50", "P95", "P99", "SLO!"
            );
            for (i, u) in urls.iter().enumerate() {
                let mut s = lat[i].clone();
                s.sort_by(f64::total_cmp);
                println!(
                    "         {:<34} {:>7.1}% {:>6.1}ms {:>6.1}ms {:>6.1}ms {:>6}",
                    redact(u),
                    100.0 * ok[i] as f64 / total[i] as f64,
                    percentile(&s, 0.5),
                    percentile(&s, 0.95),
                    percentile(&s, 0.99),
                    violations[i]
                );
            }
            if let Some(s) = &sending {
                println!("         {}", s.text());
            }
        }
        if args.count.is_some_and(|c| round >= c) {
            let failed = ok.iter().zip(&total).any(|(o, t)| o < t);
            let sent = match sending {
                Some(s) => s.finish(args.json).await,
                None => true,
            };
            return u8::from(failed || !sent);
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval.saturating_sub(t0.elapsed())) => {}
            _ = tokio::signal::ctrl_c() => return sending.map_or(0, |s| u8::from(!s.stop(args.json))),
        }
    }
}
