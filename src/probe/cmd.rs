//! `iskra-ws-sidecar check` (the seed's health-check script) and `monitor` (the seed's real-time
//! monitor): default targets are the configured dashboards, by priority.

use std::time::{Duration, Instant};

use serde_json::json;

use super::check::{check, CheckResult};
use crate::app::EXIT_CONFIG;
use crate::cli::{CheckArgs, MonitorArgs};
use crate::config::{self, Config, Sources};

fn load(cfg: &crate::cli::ConfigArgs, probe: &crate::cli::ProbeArgs) -> Result<Config, u8> {
    config::load(&Sources {
        file: cfg.config.clone(),
        flags: probe.overrides(),
    })
    .map_err(|e| {
        eprintln!("{e}");
        EXIT_CONFIG
    })
}

fn targets(cfg: &Config, urls: &[String]) -> Vec<String> {
    if !urls.is_empty() {
        return urls.to_vec();
    }
    let mut eps: Vec<_> = cfg.connections.values().collect();
    eps.sort_by_key(|e| e.priority);
    eps.into_iter().map(|e| e.url.clone()).collect()
}

/// The latency SLO to judge against, unless `iskra.slo_monitoring` is off.
fn slo(cfg: &Config) -> Option<&config::Slo> {
    cfg.switches.slo_monitoring.then_some(&cfg.slo_latency_ms)
}

fn step_text(s: Option<&super::check::Step>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.ok => format!("ok {:.0}ms", s.ms),
        Some(s) => format!("FAIL {}", s.error.unwrap_or("?")),
    }
}

/// `check`: exit 0 all healthy, 1 any failed, 64 bad config.
pub async fn check_command(args: CheckArgs) -> u8 {
    let cfg = match load(&args.cfg, &args.probe) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(hook) = args
        .webhook
        .as_deref()
        .filter(|h| !super::alert::valid_url(h))
    {
        let shown = super::redact(hook);
        eprintln!("--webhook {shown:?}: expected an http:// or https:// URL with a host");
        return EXIT_CONFIG;
    }
    let urls = targets(&cfg, &args.urls);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "checking {} endpoint(s) (timeout {:?} per step)…",
            urls.len(),
            args.timeout
        );
    }
    let results: Vec<CheckResult> = futures_util::future::join_all(
        urls.iter()
            .map(|u| check(u, args.timeout, slo(&cfg), &cfg.probe)),
    )
    .await;
    let healthy = results.iter().all(|r| r.healthy);
    if args.json {
        println!(
            "{}",
            json!({"healthy": healthy, "slo_latency_ms": cfg.slo_latency_ms, "endpoints": results})
        );
    } else {
        println!(
            "{:<34} {:<14} {:<14} {:<12} {:<9} STATUS",
            "ENDPOINT", "HTTP", "WEBSOCKET", "PING", "LATENCY"
        );
        for r in &results {
            let st = if r.healthy { "HEALTHY" } else { "FAILED" };
            println!(
                "{:<34} {:<14} {:<14} {:<12} {:<9} {}",
                r.url,
                step_text(Some(&r.http)),
                step_text(r.websocket.as_ref()),
                step_text(r.ping.as_ref()),
                r.latency_slo,
                st
            );
        }
    }
    if !healthy {
        let failed: Vec<&CheckResult> = results.iter().filter(|r| !r.healthy).collect();
        if !cfg.switches.alerting {
            eprintln!("alerts are off (websocket.monitoring.alerting_enabled = false): none sent");
        } else {
            let sent = super::alert::send_alerts(
                &cfg.alerts,
                args.webhook.as_deref(),
                &failed,
                args.timeout,
            )
            .await;
            for line in sent {
                match line {
                    Ok(l) => eprintln!("{l}"),
                    Err(l) => eprintln!("warning: {l}"),
                }
            }
        }
    }
    u8::from(!healthy)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `monitor`: every interval, per endpoint, connect, ping, and report; `--json` prints events as lines.
pub async fn monitor_command(args: MonitorArgs) -> u8 {
    let cfg = match load(&args.cfg, &args.probe) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let urls = targets(&cfg, &args.urls);
    let sending = match (&args.send, urls.first()) {
        (Some(input), Some(url)) => match super::send::Sending::start(&cfg, url, input).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_CONFIG;
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
                json!({"url": super::redact(u), "checks": total[i], "success_rate": ok[i] as f64 / total[i] as f64,
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
                    super::redact(u),
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
