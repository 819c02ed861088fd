//! `iskra-ws-sidecar check` (the seed's health-check script): every endpoint once — HTTP health,
//! WebSocket connect, ping round trip, latency against the SLO ([`steps`]) — printed as a table or JSON;
//! on failure, the alerts of [`alert`] (a Slack-format webhook, PagerDuty). Default targets are the
//! configured dashboards, by priority.

pub mod alert;
pub mod steps;

use serde_json::json;

use super::{load, slo, targets};
use crate::cli::CheckArgs;
use crate::config::AlertUrl;
use crate::exit;
use steps::{check, CheckResult};

fn step_text(s: Option<&steps::Step>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.ok => format!("ok {:.0}ms", s.ms),
        Some(s) => format!("FAIL {}", s.error.unwrap_or("?")),
    }
}

/// `check`: exit 0 all healthy, 1 any failed, 64 bad config.
pub async fn command(args: CheckArgs) -> u8 {
    let cfg = match load(&args.cfg, &args.probe) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(hook) = args
        .webhook
        .as_deref()
        .filter(|h| AlertUrl::parse(h).is_none())
    {
        let shown = crate::probe::redact(hook);
        eprintln!("--webhook {shown:?}: expected an http:// or https:// URL with a host");
        return exit::CONFIG;
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
            let sent =
                alert::send_alerts(&cfg.alerts, args.webhook.as_deref(), &failed, args.timeout)
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
