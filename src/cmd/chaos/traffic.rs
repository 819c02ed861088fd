//! Scenarios that push traffic through the sidecar to an echoing upstream: clients vanishing mid-message
//! (random_disconnection) and the seed's load (server_overload).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use super::wire::{self, Got, Reader, Target};
use super::{echo_check, ms, ChaosOptions, ScenarioResult};

const ACTIVE: &str = "websocket_server_active_connections";

/// Clients that vanish in random_disconnection.
pub const DISCONNECTING_CLIENTS: usize = 40;

/// One client's plan: where it cuts its stream and how it leaves.
#[derive(Debug, Clone)]
struct Cut {
    during_handshake: bool,
    frame_len: usize,
    cut_at: usize,
    reset: bool,
    pause_ms: u64,
}

/// Clients drop TCP abruptly (RST or FIN) at random points of the request head or of a large frame; the
/// sidecar must keep serving (a fresh session echoes) and release their sessions.
pub async fn random_disconnection(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let name = "random_disconnection";
    let seed = o.seed.unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let head_len = wire::upgrade_request(t).len();
    let cuts: Vec<Cut> = (0..DISCONNECTING_CLIENTS)
        .map(|i| {
            let during_handshake = i % 4 == 0;
            let frame_len = rng.random_range(1..=256 * 1024);
            let whole = if during_handshake {
                head_len
            } else {
                frame_len + 14
            };
            Cut {
                during_handshake,
                frame_len,
                cut_at: rng.random_range(1..whole),
                reset: rng.random(),
                pause_ms: rng.random_range(0..50),
            }
        })
        .collect();
    let active_before = match &o.admin {
        Some(a) => wire::scrape_sum(a, ACTIVE, &[]).await.ok(),
        None => None,
    };
    let mut set = tokio::task::JoinSet::new();
    for c in cuts.clone() {
        let t = t.clone();
        set.spawn(async move { vanish(&t, &c).await });
    }
    let mut problems = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(e),
            Err(e) => problems.push(format!("client task: {e}")),
        }
    }
    problems.dedup();
    let fresh = echo_check(t, "still serving after abrupt disconnects").await;
    if let Err(e) = &fresh {
        problems.push(e.clone());
    }
    let mut active_after = None;
    if let (Some(a), Some(before)) = (&o.admin, active_before) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = wire::scrape_sum(a, ACTIVE, &[]).await.ok();
            active_after = now;
            if now.is_some_and(|n| n <= before) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if active_after.is_none_or(|n| n > before) {
            problems.push(format!("{ACTIVE} stayed at {active_after:?} (was {before} before the drops): sessions of vanished clients were not released within 5 s"));
        }
    }
    let measured = json!({
        "seed": seed, "clients": cuts.len(),
        "during_handshake": cuts.iter().filter(|c| c.during_handshake).count(),
        "mid_frame": cuts.iter().filter(|c| !c.during_handshake).count(),
        "reset": cuts.iter().filter(|c| c.reset).count(),
        "cuts": cuts.iter().take(8).map(|c| format!("{}{}/{}", if c.during_handshake {"head "} else {"frame "}, c.cut_at, if c.during_handshake {head_len} else {c.frame_len})).collect::<Vec<_>>(),
        "fresh_session_ms": fresh.as_ref().ok().map(|d| ms(*d)),
        "active_before": active_before, "active_after": active_after,
    });
    ScenarioResult::judge(name, measured, problems)
}

async fn vanish(t: &Target, c: &Cut) -> Result<(), String> {
    let pause = Duration::from_millis(c.pause_ms);
    if c.during_handshake {
        let mut s = tokio::net::TcpStream::connect(t.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let req = wire::upgrade_request(t);
        let _ = s.write_all(&req.as_bytes()[..c.cut_at]).await;
        tokio::time::sleep(pause).await;
        if c.reset {
            wire::reset_on_drop(&s);
        }
        return Ok(());
    }
    let limit = Duration::from_secs(10);
    let (mut s, rest) = wire::raw_session(t, limit).await?;
    let mut reader = Reader::new(rest);
    // One whole message first, so the session is relaying when the client vanishes.
    s.write_all(&wire::masked(0x2, b"warm-up"))
        .await
        .map_err(|e| format!("send: {e}"))?;
    match reader.next_data(&mut s, limit).await {
        Got::Frame(0x2, p) if p == b"warm-up" => {}
        other => {
            return Err(format!(
                "warm-up message not echoed before the drop: {other:?}"
            ))
        }
    }
    let payload: Vec<u8> = (0..c.frame_len).map(|i| (i % 251) as u8).collect();
    let frame = wire::masked(0x2, &payload);
    let cut = c.cut_at.min(frame.len() - 1);
    let _ = s.write_all(&frame[..cut]).await;
    tokio::time::sleep(pause).await;
    if c.reset {
        wire::reset_on_drop(&s);
    }
    Ok(())
}

/// Connections of server_overload (the seed's 50 per endpoint).
pub const OVERLOAD_CONNECTIONS: usize = 50;
/// Messages each connection sends.
pub const OVERLOAD_MESSAGES: usize = 100;
/// Bytes per message.
pub const OVERLOAD_SIZE: usize = 1000;

fn overload_payload(conn: usize, seq: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..OVERLOAD_SIZE)
        .map(|i| (conn * 31 + seq * 7 + i) as u8)
        .collect();
    p[..2].copy_from_slice(&(conn as u16).to_be_bytes());
    p[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    p
}

#[derive(Default)]
struct ConnTally {
    echoed: usize,
    corrupted: usize,
    latencies: Vec<Duration>,
    error: Option<String>,
}

async fn overload_conn(t: Target, conn: usize) -> ConnTally {
    let mut tally = ConnTally::default();
    let url = format!("ws://{}{}", t.authority, t.path);
    let limit = Duration::from_secs(60);
    let ws = match tokio::time::timeout(limit, tokio_tungstenite::connect_async(url.as_str())).await
    {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            tally.error = Some(format!("connect: {e}"));
            return tally;
        }
        Err(_) => {
            tally.error = Some("connect timed out".into());
            return tally;
        }
    };
    let (mut tx, mut rx) = ws.split();
    let sent_at = Arc::new(Mutex::new(vec![None::<Instant>; OVERLOAD_MESSAGES]));
    let times = sent_at.clone();
    let writer = async move {
        for seq in 0..OVERLOAD_MESSAGES {
            if let Ok(mut v) = times.lock() {
                v[seq] = Some(Instant::now());
            }
            if let Err(e) = tx.send(Message::binary(overload_payload(conn, seq))).await {
                return Err(format!("send: {e}"));
            }
        }
        Ok(tx)
    };
    let reader = async {
        let mut next = 0;
        while next < OVERLOAD_MESSAGES {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) => {
                    let at = sent_at
                        .lock()
                        .ok()
                        .and_then(|v| v.get(next).copied().flatten());
                    if let Some(at) = at {
                        tally.latencies.push(at.elapsed());
                    }
                    if b.as_ref() == overload_payload(conn, next).as_slice() {
                        tally.echoed += 1;
                    } else {
                        tally.corrupted += 1;
                    }
                    next += 1;
                }
                Some(Ok(Message::Close(f))) => return Err(format!("closed: {f:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("receive: {e}")),
                None => return Err("stream ended".into()),
            }
        }
        Ok(())
    };
    let (w, r) = match tokio::time::timeout(limit, futures_util::future::join(writer, reader)).await
    {
        Ok(x) => x,
        Err(_) => (Err("timed out".into()), Err("timed out after 60 s".into())),
    };
    tally.error = r.err().or(w.as_ref().err().cloned());
    if let Ok(tx) = w {
        if let Ok(mut ws) = tx.reunite(rx) {
            let _ = ws.close(None).await;
        }
    }
    tally
}

/// The seed's load: 50 connections × 100 messages of 1000 bytes, all echoed back byte-identical.
pub async fn server_overload(t: &Target, _o: &ChaosOptions) -> ScenarioResult {
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for conn in 0..OVERLOAD_CONNECTIONS {
        set.spawn(overload_conn(t.clone(), conn));
    }
    let (mut echoed, mut corrupted, mut lat, mut errors) = (0, 0, Vec::new(), Vec::new());
    while let Some(r) = set.join_next().await {
        let tally = r.unwrap_or_default();
        echoed += tally.echoed;
        corrupted += tally.corrupted;
        lat.extend(tally.latencies);
        errors.extend(tally.error);
    }
    let elapsed = t0.elapsed();
    let sent = OVERLOAD_CONNECTIONS * OVERLOAD_MESSAGES;
    let lost = sent - echoed - corrupted;
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| ms(*d))
    };
    let mut problems = Vec::new();
    if echoed != sent {
        problems.push(format!(
            "{echoed} of {sent} messages echoed intact ({lost} lost, {corrupted} corrupted)"
        ));
    }
    errors.sort();
    errors.dedup();
    if !errors.is_empty() {
        problems.push(format!("connection errors: {}", errors.join(" | ")));
    }
    let measured = json!({
        "connections": OVERLOAD_CONNECTIONS, "messages_each": OVERLOAD_MESSAGES, "bytes_each": OVERLOAD_SIZE,
        "sent": sent, "echoed": echoed, "lost": lost, "corrupted": corrupted,
        "seconds": elapsed.as_secs_f64(), "messages_per_s": (echoed as f64 / elapsed.as_secs_f64()).round(),
        "rtt_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": lat.last().map(|d| ms(*d))},
    });
    ScenarioResult::judge("server_overload", measured, problems)
}
