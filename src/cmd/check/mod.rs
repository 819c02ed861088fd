//! `iskra-ws-sidecar check` (the seed's health-check script): every endpoint once — HTTP health,
//! WebSocket connect, ping round trip, latency against the SLO ([`steps`]) — printed as a table or JSON;
//! a Slack-style alert on failure. Default targets are the configured dashboards, by priority.

pub mod steps;

use serde_json::json;

use super::{load, targets};
use crate::cli::CheckArgs;
use steps::{check, CheckResult};

fn step_text(s: Option<&steps::Step>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.ok => format!("ok {:.0}ms", s.ms),
        Some(s) => format!("FAIL {}", s.error.unwrap_or("?")),
    }
}

async fn post_webhook(url: &str, text: &str) -> Result<(), String> {
    let Some((host, port)) = crate::probe::transports::host_port(url) else {
        return Err(format!("bad webhook URL {url}"));
    };
    let path = url
        .splitn(4, '/')
        .nth(3)
        .map_or("/".to_string(), |p| format!("/{p}"));
    let body = json!({"text": text}).to_string();
    let raw = format!("POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(raw.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&buf[..n]);
    if head.starts_with("HTTP/1.1 2") || head.starts_with("HTTP/1.0 2") {
        Ok(())
    } else {
        Err(head.lines().next().unwrap_or("").to_string())
    }
}

/// `check`: exit 0 all healthy, 1 any failed, 64 bad config.
pub async fn command(args: CheckArgs) -> u8 {
    let cfg = match load(&args.cfg, &args.probe) {
        Ok(c) => c,
        Err(code) => return code,
    };
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
            .map(|u| check(u, args.timeout, &cfg.slo_latency_ms, &cfg.probe)),
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
        if let Some(hook) = &args.webhook {
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| !r.healthy)
                .map(|r| r.url.as_str())
                .collect();
            if let Err(e) = post_webhook(
                hook,
                &format!(
                    "[concern] iskra-ws-sidecar check: unhealthy: {}",
                    failed.join(", ")
                ),
            )
            .await
            {
                eprintln!("warning: webhook alert failed: {e}");
            }
        }
    }
    u8::from(!healthy)
}
