//! What a hostile or unlucky client does to the sidecar, as chaos scenarios:
//! - aborted_handshakes: 100,000 upgrade heads, each connection reset (SO_LINGER 0) right after it —
//!   mobile clients dropping mid-handshake; RSS must come back within [`ABORT_RSS_BOUND_KIB`] of the
//!   warm baseline once telemetry has drained (needs the sidecar's PID).
//! - refused_upgrade: upgrades the sidecar must refuse itself (no `Sec-WebSocket-Key`; version 12),
//!   each with a request pipelined behind it: exactly one answer (400 / 426 with
//!   `Sec-WebSocket-Version: 13`), then the connection closes — nothing is tunnelled.
//! - pong_flood: 200,000 unsolicited pongs shaped like the sidecar's heartbeat (`iskra-hb:` + 8 bytes)
//!   on one session: they must be forwarded, not taken as RTT samples (needs the admin address).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::memory::{pid_and_rss, rss_within, PeakRss};
use super::wire::{self, Got, Reader, Target};
use super::{ChaosOptions, ScenarioResult};

/// How far above the warm baseline RSS may stay after aborted_handshakes (a few MiB).
pub const ABORT_RSS_BOUND_KIB: u64 = 8 * 1024;

const RTT_COUNT: &str = "websocket_ping_rtt_seconds_count";
const TRACKED: &str = "iskra_sidecar_sessions_tracked";

/// One aborted handshake: connect, send an upgrade head, reset.
async fn abort_one(t: &Target) -> Result<(), String> {
    let mut s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(t.addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(wire::upgrade_request(t).as_bytes())
        .await
        .map_err(|e| format!("send head: {e}"))?;
    wire::reset_on_drop(&s);
    Ok(())
}

async fn abort_many(t: &Target, n: u64, failed: &Arc<AtomicU64>) {
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16u64.min(n.max(1)) {
        let (t, next, failed) = (t.clone(), next.clone(), failed.clone());
        set.spawn(async move {
            while next.fetch_add(1, Relaxed) < n {
                if abort_one(&t).await.is_err() {
                    failed.fetch_add(1, Relaxed);
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Waits (up to `limit`) until the sidecar holds no more sessions than `floor` in its span builder
/// and its telemetry spool is empty; returns the last count of tracked sessions, when scraped.
async fn settle(admin: Option<&str>, floor: f64, limit: Duration) -> Option<f64> {
    let admin = admin?;
    let t0 = Instant::now();
    let mut last = None;
    while t0.elapsed() < limit {
        let tracked = wire::scrape_sum(admin, TRACKED, &[]).await.ok();
        let spool = wire::scrape_sum(admin, "iskra_sidecar_telemetry_spool_usage_bytes", &[])
            .await
            .unwrap_or(0.0);
        last = tracked;
        if tracked.is_some_and(|t| t <= floor) && spool == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

/// `o.cycles` aborted handshakes; RSS must return within [`ABORT_RSS_BOUND_KIB`] of the warm baseline.
pub async fn aborted_handshakes(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let name = "aborted_handshakes";
    let (pid, start) = match pid_and_rss(name, o) {
        Ok(x) => x,
        Err(skipped) => return skipped,
    };
    let admin = o.admin.as_deref();
    let failed = Arc::new(AtomicU64::new(0));
    let warm = (o.cycles / 4).clamp(1, 5000).min(o.cycles);
    let t0 = Instant::now();
    abort_many(t, warm, &failed).await;
    settle(admin, 0.0, Duration::from_secs(30)).await;
    let baseline = wire::rss_kib(pid).unwrap_or(0);
    let peak = PeakRss::start(pid, baseline);
    let t1 = Instant::now();
    abort_many(t, o.cycles - warm, &failed).await;
    let main_s = t1.elapsed().as_secs_f64();
    let peak = peak.stop();
    let drain = Instant::now();
    let tracked = settle(admin, 0.0, Duration::from_secs(60)).await;
    let drain_s = drain.elapsed().as_secs_f64();
    let limit = baseline + ABORT_RSS_BOUND_KIB;
    // The sidecar hands free memory back once the burst has passed (checked every 5 s).
    let after = rss_within(pid, limit, Duration::from_secs(15)).await;
    let mut problems = Vec::new();
    if after > limit {
        problems.push(format!(
            "RSS {after} KiB is {} KiB above the warm baseline {baseline} KiB after {} aborted handshakes (bound {ABORT_RSS_BOUND_KIB} KiB)",
            after.saturating_sub(baseline),
            o.cycles
        ));
    }
    if let Some(n) = tracked.filter(|n| *n > 0.0) {
        problems.push(format!(
            "the span builder still holds {n} sessions after the drain"
        ));
    }
    let failed = failed.load(Relaxed);
    if failed > (o.cycles / 100).max(10) {
        problems.push(format!("{failed} of {} connects failed", o.cycles));
    }
    let measured = json!({
        "pid": pid, "cycles": o.cycles, "warm_cycles": warm, "failed": failed,
        "cycles_per_s": ((o.cycles - warm) as f64 / main_s.max(1e-9)).round(),
        "rss_kib": {"start": start, "warm_baseline": baseline, "peak": peak, "after": after},
        "growth_kib": after as i64 - baseline as i64, "sessions_tracked_after": tracked,
        "drain_s": (drain_s * 10.0).round() / 10.0, "seconds": t0.elapsed().as_secs_f64(),
    });
    ScenarioResult::judge(name, measured, problems)
}

/// Sends `raw` (an upgrade with a request pipelined behind it) and reads everything until the
/// connection closes: (status, the first response's head, bytes after its body, closed).
async fn one_refusal(t: &Target, raw: &str) -> Result<(u16, String, Vec<u8>, bool), String> {
    let limit = Duration::from_secs(10);
    let (mut s, head) = wire::request(t.addr, raw.as_bytes(), limit).await?;
    let mut rest = head.rest;
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .is_ok();
    let len = head
        .text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(rest.len());
    let after = rest.get(len..).unwrap_or_default().to_vec();
    Ok((head.status, head.text, after, closed))
}

/// Two upgrades the sidecar must answer itself, each with `GET /health` pipelined behind it.
pub async fn refused_upgrade(t: &Target, _o: &ChaosOptions) -> ScenarioResult {
    let name = "refused_upgrade";
    let pipelined = format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", t.authority);
    let cases = [
        (
            "no_key",
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n{pipelined}",
                t.path, t.authority
            ),
            &[400u16, 426][..],
        ),
        (
            "version_12",
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 12\r\n\r\n{pipelined}",
                t.path,
                t.authority,
                wire::KEY
            ),
            &[426u16][..],
        ),
    ];
    let mut problems = Vec::new();
    let mut measured = serde_json::Map::new();
    for (case, raw, want) in cases {
        match one_refusal(t, &raw).await {
            Err(e) => problems.push(format!("{case}: {e}")),
            Ok((status, head, after, closed)) => {
                let version = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("sec-websocket-version")
                        .then(|| v.trim().to_string())
                });
                measured.insert(
                    case.into(),
                    json!({"status": status, "bytes_after_answer": after.len(), "closed": closed, "sec_websocket_version": version}),
                );
                if !want.contains(&status) {
                    problems.push(format!("{case}: answered {status}, expected {want:?}"));
                }
                if status == 426 && version.as_deref() != Some("13") {
                    problems.push(format!("{case}: 426 without Sec-WebSocket-Version: 13"));
                }
                if !after.is_empty() {
                    let text = String::from_utf8_lossy(&after[..after.len().min(80)]).into_owned();
                    problems.push(format!(
                        "{case}: {} more bytes came after the answer — the pipelined request was served: {text:?}",
                        after.len()
                    ));
                }
                if !closed {
                    problems.push(format!(
                        "{case}: the connection stayed open after the answer"
                    ));
                }
            }
        }
    }
    ScenarioResult::judge(name, measured.into(), problems)
}

/// `o.pongs` heartbeat-shaped pongs on one session, then an echo; the RTT histogram must not move
/// by more than the sidecar's own heartbeats could explain.
pub async fn pong_flood(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let name = "pong_flood";
    let Some(admin) = o.admin.as_deref() else {
        return ScenarioResult::skipped(name, "needs --admin to read the RTT samples on /metrics");
    };
    let before = match wire::scrape_sum(admin, RTT_COUNT, &[]).await {
        Ok(v) => v,
        Err(e) => return ScenarioResult::failed(name, format!("scrape: {e}")),
    };
    let dropped = |admin| wire::scrape_sum(admin, "iskra_sidecar_events_dropped_total", &[]);
    let dropped_before = dropped(admin).await.unwrap_or(0.0);
    let limit = Duration::from_secs(30);
    let (mut s, rest) = match wire::raw_session(t, limit).await {
        Ok(x) => x,
        Err(e) => return ScenarioResult::failed(name, e),
    };
    let t0 = Instant::now();
    let mut batch = Vec::with_capacity(64 * 1024);
    for i in 0..o.pongs {
        let mut payload = crate::proxy::heartbeat::HB_PREFIX.to_vec();
        payload.extend_from_slice(&i.to_be_bytes());
        batch.extend(wire::masked(0xA, &payload));
        if batch.len() >= 60 * 1024 || i + 1 == o.pongs {
            if let Err(e) = s.write_all(&batch).await {
                return ScenarioResult::failed(name, format!("sending pongs: {e}"));
            }
            batch.clear();
        }
    }
    let marker = "after the pong flood";
    let _ = s.write_all(&wire::masked(0x1, marker.as_bytes())).await;
    let echoed = match Reader::new(rest).next_data(&mut s, limit).await {
        Got::Frame(0x1, p) => String::from_utf8_lossy(&p) == marker,
        _ => false,
    };
    let flood_s = t0.elapsed().as_secs_f64();
    let _ = s
        .write_all(&wire::masked(0x8, &1000u16.to_be_bytes()))
        .await;
    // Let the session's events reach telemetry before reading the counters.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = wire::scrape_sum(admin, RTT_COUNT, &[])
        .await
        .unwrap_or(f64::NAN);
    let dropped_after = dropped(admin).await.unwrap_or(f64::NAN);
    let samples = after - before;
    // The sidecar's own pings to both peers of every session, at most one pair per 100 ms.
    let allowed = 10.0 + 20.0 * (flood_s + 1.0);
    let mut problems = Vec::new();
    if !echoed {
        problems.push("the session did not echo after the flood".to_string());
    }
    if samples.is_nan() || samples > allowed {
        problems.push(format!(
            "{samples} RTT samples were recorded during {} unsolicited pongs (at most {allowed:.0} heartbeats could explain)",
            o.pongs
        ));
    }
    if dropped_after - dropped_before > 0.0 {
        problems.push(format!(
            "{} telemetry events were dropped: the flood filled the shared channel",
            dropped_after - dropped_before
        ));
    }
    let measured = json!({
        "pongs": o.pongs, "rtt_samples": samples, "events_dropped": dropped_after - dropped_before,
        "flood_s": (flood_s * 1000.0).round() / 1000.0, "echoed": echoed,
    });
    ScenarioResult::judge(name, measured, problems)
}
