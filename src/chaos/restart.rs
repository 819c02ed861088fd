//! dashboard_restart: N clients hold sessions through the sidecar while the dashboard behind it is
//! restarted (a command the operator gives, e.g. `kubectl rollout restart …` or, in the tests, a kill
//! and a start on the same port). Each client sends a message every 100 ms, counts the echoes, and, like
//! a dashboard page, reconnects 300 ms after any close. Reported: how many sessions survived (never
//! closed, echoes after the restart), how many handshakes the restart caused, and the longest gap
//! between echoes. The goal with `resume.hold_ms` above the restart's length: 100 % and 0.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::wire::Target;
use super::{ms, ChaosOptions, ScenarioResult};

/// What one client lived through.
#[derive(Debug, Default)]
struct Lived {
    /// WebSocket handshakes it attempted (the first included).
    attempts: u32,
    /// Handshakes refused (503 while the dashboard was away, 502, …).
    refused: u32,
    /// Close codes it saw (1006: the connection ended without one).
    closes: Vec<u16>,
    /// When each echo arrived.
    echoes: Vec<Instant>,
}

/// One client: sessions until `stop`, reconnecting 300 ms after any close.
async fn client(url: String, id: usize, mut stop: watch::Receiver<bool>) -> Lived {
    let mut lived = Lived::default();
    let mut seq = 0u64;
    while !*stop.borrow() {
        lived.attempts += 1;
        let dial = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(url.as_str()),
        );
        let Ok(Ok((ws, _))) = dial.await else {
            lived.refused += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let (mut tx, mut rx) = ws.split();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let closed = loop {
            tokio::select! {
                _ = tick.tick() => {
                    seq += 1;
                    if tx.send(Message::text(format!("c{id}-{seq}"))).await.is_err() {
                        break Some(1006);
                    }
                }
                m = rx.next() => match m {
                    Some(Ok(Message::Text(_))) => lived.echoes.push(Instant::now()),
                    Some(Ok(Message::Close(f))) => break Some(f.map_or(1005, |f| u16::from(f.code))),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break Some(1006),
                },
                _ = stop.changed() => {
                    let _ = tx.send(Message::Close(None)).await;
                    break None;
                }
            }
        };
        let Some(code) = closed else { break };
        lived.closes.push(code);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    lived
}

/// Runs the operator's restart command with `sh -c`, waiting for it to finish.
async fn run_restart(cmd: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    let status = tokio::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .await
        .map_err(|e| format!("restart command: {e}"))?;
    if !status.success() {
        return Err(format!("restart command failed: {status}"));
    }
    Ok(t0.elapsed())
}

/// The scenario.
pub async fn dashboard_restart(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let name = "dashboard_restart";
    let Some(cmd) = &o.restart_command else {
        return ScenarioResult::skipped(
            name,
            "needs a command that restarts the dashboard behind the target: --restart-command CMD",
        );
    };
    let n = o.restart_clients.max(1);
    let url = format!("ws://{}{}", t.authority, t.path);
    let (stop_tx, stop) = watch::channel(false);
    let clients: Vec<_> = (0..n)
        .map(|i| tokio::spawn(client(url.clone(), i, stop.clone())))
        .collect();
    // Everyone connected and echoing before the restart.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t0 = Instant::now();
    let restart = run_restart(cmd).await;
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop_tx.send(true);
    let mut lived = Vec::new();
    for c in clients {
        lived.push(c.await.unwrap_or_default());
    }
    let restart = match restart {
        Ok(d) => d,
        Err(e) => return ScenarioResult::failed(name, e),
    };
    let survived = lived
        .iter()
        .filter(|l| l.attempts == 1 && l.closes.is_empty() && l.echoes.iter().any(|e| *e > back))
        .count();
    let caused: u32 = lived.iter().map(|l| l.attempts.saturating_sub(1)).sum();
    let refused: u32 = lived.iter().map(|l| l.refused).sum();
    let gaps: Vec<Duration> = lived
        .iter()
        .map(|l| {
            let around: Vec<Instant> = l
                .echoes
                .iter()
                .copied()
                .filter(|e| *e + Duration::from_secs(1) >= t0)
                .collect();
            around
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default()
        })
        .collect();
    let mut codes = std::collections::BTreeMap::<u16, u32>::new();
    for c in lived.iter().flat_map(|l| &l.closes) {
        *codes.entry(*c).or_default() += 1;
    }
    let max_gap = gaps.iter().max().copied().unwrap_or_default();
    let mut problems = Vec::new();
    if survived < n {
        problems.push(format!(
            "{} of {n} sessions did not survive the restart (closes seen: {codes:?})",
            n - survived
        ));
    }
    if caused > 0 {
        problems.push(format!(
            "the restart caused {caused} extra handshakes ({refused} refused)"
        ));
    }
    let measured = json!({
        "clients": n, "survived": survived,
        "survived_percent": (survived as f64 * 1000.0 / n as f64).round() / 10.0,
        "handshakes_caused": caused, "handshakes_refused": refused,
        "closes_seen": codes, "max_gap_ms": ms(max_gap), "restart_command_ms": ms(restart),
    });
    ScenarioResult::judge(name, measured, problems)
}
