//! Scenarios about the sidecar's limits and timers: a slow upstream (connection_timeout), a client that
//! stops answering (heartbeat_failure), half-sent request heads (slowloris) and more connections than the
//! limit (connection_flood).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::{self, Got, Reader, Target};
use super::{echo_check, ms, slack, ChaosOptions, ScenarioResult};

/// Handshakes must be answered (101, or 504 when the upstream is silent) within the upstream timeout.
pub async fn connection_timeout(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let budget = o.upstream_timeout;
    let deadline = budget + slack(budget);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let t = t.clone();
        set.spawn(async move {
            let t0 = Instant::now();
            let req = wire::upgrade_request(&t);
            let r = wire::request(t.addr, req.as_bytes(), deadline + Duration::from_secs(1)).await;
            let took = t0.elapsed();
            let status = match r {
                Ok((mut s, head)) => {
                    if head.status == 101 {
                        let _ = s
                            .write_all(&wire::masked(0x8, &1000u16.to_be_bytes()))
                            .await;
                    }
                    Ok(head.status)
                }
                Err(e) => Err(e),
            };
            (status, took)
        });
    }
    let mut problems = Vec::new();
    let mut attempts = Vec::new();
    while let Some(j) = set.join_next().await {
        let Ok((status, took)) = j else { continue };
        attempts.push(json!({"status": status.as_ref().ok(), "ms": ms(took)}));
        match status {
            Ok(101 | 504) if took <= deadline => {}
            Ok(s @ (101 | 504)) => problems.push(format!(
                "answered {s} after {took:?}, over the upstream timeout {budget:?} + {:?} slack",
                slack(budget)
            )),
            Ok(502) => problems.push("answered 502: the upstream refused the connection, so the timeout path was not exercised".into()),
            Ok(s) => problems.push(format!("answered {s}; expected 101 or 504")),
            Err(e) => problems.push(format!("no answer within {deadline:?}: {e}")),
        }
    }
    problems.dedup();
    let measured =
        json!({"attempts": attempts, "budget_ms": ms(budget), "slack_ms": ms(slack(budget))});
    ScenarioResult::judge("connection_timeout", measured, problems)
}

/// A client completes the upgrade and then never answers (no pong, no close, nothing written): the
/// sidecar must drop it within the heartbeat budget. Fails when heartbeats are off.
pub async fn heartbeat_failure(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let name = "heartbeat_failure";
    let budget = o.heartbeat_budget;
    let deadline = budget + slack(budget);
    let missed = ("websocket_peer", "client");
    let metric = "websocket_heartbeat_missed_total";
    let before = match &o.admin {
        Some(a) => wire::scrape_sum(a, metric, &[missed]).await.ok(),
        None => None,
    };
    let (mut s, rest) = match wire::raw_session(t, Duration::from_secs(10)).await {
        Ok(x) => x,
        Err(e) => return ScenarioResult::failed(name, e),
    };
    let t0 = Instant::now();
    let mut reader = Reader::new(rest);
    let (mut pings, mut close) = (0u32, None);
    // The kernel keeps reading for us; the client itself never writes a byte.
    let end = loop {
        let left = deadline.saturating_sub(t0.elapsed());
        match reader.next(&mut s, left).await {
            Got::Frame(0x9, _) => pings += 1,
            Got::Frame(..) => {}
            Got::Close(c, r) => close = Some(json!({"code": c, "reason": r})),
            Got::Eof => break Some("closed (FIN)".to_string()),
            Got::Error(e) => break Some(format!("reset ({e})")),
            Got::Timeout => break None,
        }
    };
    let after = t0.elapsed();
    let mut problems = Vec::new();
    if end.is_none() {
        let cause = if pings == 0 {
            "it sent no pings at all: heartbeats are off on the target".to_string()
        } else {
            format!("it sent {pings} pings that went unanswered but did not close")
        };
        problems.push(format!(
            "the sidecar kept a silent client open for {after:?}, past the heartbeat budget {budget:?} + {:?} slack; {cause}",
            slack(budget)
        ));
    }
    let mut delta = None;
    if let (Some(a), Some(b), Some(_)) = (&o.admin, before, &end) {
        let stop = Instant::now() + Duration::from_secs(3);
        loop {
            delta = wire::scrape_sum(a, metric, &[missed])
                .await
                .ok()
                .map(|n| n - b);
            if delta.is_some_and(|d| d >= 1.0) || Instant::now() > stop {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if delta.is_none_or(|d| d < 1.0) {
            problems.push(format!(
                "{metric}{{websocket_peer=\"client\"}} did not grow ({delta:?})"
            ));
        }
    }
    let measured = json!({
        "closed_after_ms": end.as_ref().map(|_| ms(after)), "ended_by": end, "pings_seen": pings,
        "close_frame": close, "budget_ms": ms(budget), "slack_ms": ms(slack(budget)),
        "heartbeat_missed_delta": delta,
    });
    ScenarioResult::judge(name, measured, problems)
}

/// Half-sent request heads, silent or trickling a byte at a time, must be cut within the handshake timeout.
pub async fn slowloris(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let budget = o.handshake_timeout;
    let deadline = budget + slack(budget);
    let trickle = (budget / 8).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..6 {
        let addr = t.addr;
        set.spawn(async move {
            let kind = if i % 2 == 0 { "silent" } else { "trickle" };
            (kind, held_open(addr, i % 2 == 1, trickle, deadline).await)
        });
    }
    let mut problems = Vec::new();
    let mut closed = Vec::new();
    while let Some(j) = set.join_next().await {
        let Ok((kind, r)) = j else { continue };
        match r {
            Ok(d) => closed.push(json!({"kind": kind, "closed_ms": ms(d)})),
            Err(e) => problems.push(format!("{kind}: {e}")),
        }
    }
    problems.dedup();
    let fresh = echo_check(t, "still serving after slowloris").await;
    if let Err(e) = &fresh {
        problems.push(e.clone());
    }
    let measured = json!({
        "connections": closed, "budget_ms": ms(budget), "slack_ms": ms(slack(budget)),
        "trickle_every_ms": ms(trickle), "fresh_session_ms": fresh.as_ref().ok().map(|d| ms(*d)),
    });
    ScenarioResult::judge("slowloris", measured, problems)
}

/// Sends half a head (then a byte per `every` when trickling); returns when the sidecar closed it.
async fn held_open(
    addr: std::net::SocketAddr,
    trickling: bool,
    every: Duration,
    deadline: Duration,
) -> Result<Duration, String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let t0 = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Slow: ")
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 1024];
    loop {
        let tick = if trickling { every } else { deadline };
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Ok(t0.elapsed()),
                Ok(_) => continue, // an error response (408/400) before the close is fine
            },
            _ = tokio::time::sleep(tick) => {
                if t0.elapsed() > deadline {
                    return Err(format!("a half-sent request head was held open for {:?} (handshake timeout {:?} + slack)", t0.elapsed(), deadline));
                }
                if trickling && s.write_all(b"a").await.is_err() {
                    return Ok(t0.elapsed());
                }
            }
        }
    }
}

/// Opens idle connections until the sidecar answers 503 with Retry-After (or `flood_cap` is reached);
/// after releasing them, a normal session must work again.
pub async fn connection_flood(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let name = "connection_flood";
    let t0 = Instant::now();
    let mut held: Vec<TcpStream> = Vec::new();
    let (mut refused, mut local_limit, mut statuses) =
        (None, None, BTreeMap::<String, usize>::new());
    let batch = (o.flood_cap / 40).clamp(1, 250);
    'flood: while held.len() < o.flood_cap {
        for _ in 0..batch.min(o.flood_cap - held.len()) {
            match TcpStream::connect(t.addr).await {
                Ok(s) => held.push(s),
                Err(e) => {
                    local_limit = Some(e.to_string());
                    break 'flood;
                }
            }
        }
        let req = wire::upgrade_request(t);
        match wire::request(t.addr, req.as_bytes(), Duration::from_secs(5)).await {
            Ok((_, head)) if head.status == 503 => {
                refused = Some((held.len(), head));
                break;
            }
            Ok((mut s, head)) => {
                *statuses.entry(head.status.to_string()).or_default() += 1;
                if head.status == 101 {
                    let _ = s
                        .write_all(&wire::masked(0x8, &1000u16.to_be_bytes()))
                        .await;
                }
            }
            Err(e) => *statuses.entry(e).or_default() += 1,
        }
    }
    let opened = held.len();
    let flood_ms = ms(t0.elapsed());
    drop(held);
    let mut problems = Vec::new();
    let retry_after = refused
        .as_ref()
        .and_then(|(_, h)| h.header("retry-after").map(str::to_string));
    match (&refused, &local_limit) {
        (Some(_), _) if retry_after.is_none() => problems.push("503 without Retry-After".into()),
        (Some(_), _) => {}
        (None, Some(e)) => problems.push(format!("this client ran out of sockets after {opened} connections ({e}) before the sidecar refused any: raise `ulimit -n` or lower the target's limits.max_connections")),
        (None, None) => problems.push(format!("no 503 after {opened} connections (flood cap {}): the connection limit is not enforced or is higher than the cap", o.flood_cap)),
    }
    // Slots free up as the sidecar notices the closes.
    let stop = Instant::now() + Duration::from_secs(15);
    let after = loop {
        match echo_check(t, "a slot freed after the flood").await {
            Ok(d) => break Ok(d),
            Err(e) if Instant::now() > stop => break Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    if let Err(e) = &after {
        problems.push(format!("after releasing the flood: {e}"));
    }
    let measured = json!({
        "refused_at_connections": refused.as_ref().map(|(n, _)| n), "retry_after": retry_after,
        "refusal_body": refused.as_ref().map(|(_, h)| String::from_utf8_lossy(&h.rest).trim().to_string()),
        "opened": opened, "cap": o.flood_cap, "probe_answers": statuses, "flood_ms": flood_ms,
        "session_after_release_ms": after.as_ref().ok().map(|d| ms(*d)),
    });
    ScenarioResult::judge(name, measured, problems)
}
