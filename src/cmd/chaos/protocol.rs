//! protocol_violation: the seed's bad inputs as messages (relayed and echoed; the sidecar stays up) and
//! invalid RFC 6455 frames, each on its own connection, closed with the code the RFC gives it and counted
//! as PROTOCOL_ERROR on `/metrics`.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use super::wire::{self, Got, Reader, Target};
use super::{echo_check, ms, ChaosOptions, ScenarioResult};
use crate::proxy::frame::{build_frame, close_frame};

/// An invalid frame, the close code it must earn, and who detects it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// What is wrong.
    pub name: &'static str,
    /// The raw bytes a client sends.
    pub bytes: Vec<u8>,
    /// The RFC 6455 close code the client must get.
    pub code: u16,
    /// True when the sidecar detects it; false when the upstream does and the sidecar relays its close.
    pub by_sidecar: bool,
}

/// The invalid frames of protocol_violation.
pub fn violations() -> Vec<Violation> {
    let m = Some(rand::random::<[u8; 4]>());
    let mut rsv = build_frame(0x1, b"x", m);
    rsv[0] |= 0x20;
    let mut fragmented_ping = build_frame(0x9, b"x", m);
    fragmented_ping[0] &= 0x7F;
    // Close 1000 with a reason that is not UTF-8.
    let close_bad_utf8 = build_frame(0x8, &[0x03, 0xE8, 0xC3, 0x28], m);
    let v = |name, bytes, code, by_sidecar| Violation {
        name,
        bytes,
        code,
        by_sidecar,
    };
    vec![
        v("bad opcode", build_frame(0x3, b"x", m), 1002, true),
        v(
            "unmasked client frame",
            build_frame(0x1, b"x", None),
            1002,
            true,
        ),
        v("reserved bits", rsv, 1002, true),
        v(
            "control frame over 125 bytes",
            build_frame(0x9, &[7; 126], m),
            1002,
            true,
        ),
        v("fragmented control frame", fragmented_ping, 1002, true),
        v("invalid close code", close_frame(1005, "", m), 1002, true),
        v(
            "continuation without a message",
            build_frame(0x0, b"x", m),
            1002,
            true,
        ),
        v("invalid UTF-8 close reason", close_bad_utf8, 1007, true),
        v(
            "invalid UTF-8 text",
            build_frame(0x1, &[0xC3, 0x28, 0xFF], m),
            1007,
            false,
        ),
    ]
}

/// The seed's bad inputs as messages (relayed, echoed, the sidecar stays up), then each invalid frame on
/// its own connection (closed with its RFC 6455 code, counted as PROTOCOL_ERROR on `/metrics`).
pub async fn protocol_violation(t: &Target, o: &ChaosOptions) -> ScenarioResult {
    let mut problems = Vec::new();
    let metric = ("error_type", "PROTOCOL_ERROR");
    let before = match &o.admin {
        Some(a) => Some(wire::scrape_sum(a, "websocket_errors_total", &[metric]).await),
        None => None,
    };
    let inputs = seed_inputs(t).await;
    let mut seed = serde_json::Map::new();
    for (what, r) in &inputs {
        seed.insert(
            what.to_string(),
            json!(r.as_ref().map(|_| "echoed").unwrap_or_else(|e| e)),
        );
        if let Err(e) = r {
            problems.push(format!("seed input {what}: {e}"));
        }
    }
    let mut frames = serde_json::Map::new();
    let cases = violations();
    for v in &cases {
        let got = match wire::raw_session(t, Duration::from_secs(10)).await {
            Err(e) => Got::Error(e),
            Ok((mut s, rest)) => {
                let _ = s.write_all(&v.bytes).await;
                Reader::new(rest)
                    .next_data(&mut s, Duration::from_secs(5))
                    .await
            }
        };
        let code = match &got {
            Got::Close(c, _) => Some(*c),
            _ => None,
        };
        frames.insert(v.name.into(), json!({"expected": v.code, "got": code, "detected_by": if v.by_sidecar {"sidecar"} else {"upstream"}}));
        if code != Some(v.code) {
            problems.push(format!(
                "{}: expected close {}, got {got:?}",
                v.name, v.code
            ));
        }
    }
    let fresh = echo_check(t, "still serving after protocol violations").await;
    if let Err(e) = &fresh {
        problems.push(e.clone());
    }
    let by_sidecar = cases.iter().filter(|v| v.by_sidecar).count() as f64;
    let mut delta = None;
    if let (Some(a), Some(before)) = (&o.admin, before) {
        match before {
            Err(e) => problems.push(format!("/metrics: {e}")),
            Ok(b) => {
                let deadline = Instant::now() + Duration::from_secs(3);
                loop {
                    let now = wire::scrape_sum(a, "websocket_errors_total", &[metric]).await;
                    delta = now.ok().map(|n| n - b);
                    if delta.is_some_and(|d| d >= by_sidecar) || Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if delta.is_none_or(|d| d < by_sidecar) {
                    problems.push(format!("websocket_errors_total{{error_type=\"PROTOCOL_ERROR\"}} grew by {delta:?}, expected at least {by_sidecar}"));
                }
            }
        }
    }
    let measured = json!({
        "seed_inputs": seed, "frames": frames, "sidecar_detected": by_sidecar,
        "protocol_error_metric_delta": delta, "fresh_session_ms": fresh.as_ref().ok().map(|d| ms(*d)),
    });
    ScenarioResult::judge("protocol_violation", measured, problems)
}

/// Sends the seed's inputs on one session and expects each echoed unchanged.
async fn seed_inputs(t: &Target) -> Vec<(&'static str, Result<(), String>)> {
    let inputs: Vec<(&'static str, Message)> = vec![
        ("null", Message::text("null")),
        ("undefined", Message::text("undefined")),
        ("''", Message::text("")),
        ("'invalid json'", Message::text("invalid json")),
        ("'{incomplete'", Message::text("{incomplete")),
        (
            "1 MiB buffer",
            Message::binary((0..1u32 << 20).map(|i| (i % 253) as u8).collect::<Vec<_>>()),
        ),
        ("emoji", Message::text("🚀∆DΩΛ")),
        ("'ping' × 10000", Message::text("ping".repeat(10_000))),
    ];
    let url = format!("ws://{}{}", t.authority, t.path);
    let limit = Duration::from_secs(10);
    let mut ws =
        match tokio::time::timeout(limit, tokio_tungstenite::connect_async(url.as_str())).await {
            Ok(Ok((ws, _))) => ws,
            other => {
                let e = format!("session did not open: {other:?}");
                return inputs
                    .into_iter()
                    .map(|(n, _)| (n, Err(e.clone())))
                    .collect();
            }
        };
    let mut out = Vec::new();
    for (what, msg) in inputs {
        let r = async {
            ws.send(msg.clone())
                .await
                .map_err(|e| format!("send: {e}"))?;
            loop {
                match tokio::time::timeout(limit, ws.next()).await {
                    Err(_) => {
                        return Err(
                            "not echoed within 10 s (the target's upstream must echo)".into()
                        )
                    }
                    Ok(Some(Ok(m))) if m.is_text() || m.is_binary() => {
                        return if m == msg {
                            Ok(())
                        } else {
                            Err(format!(
                                "echo differs ({} bytes back, {} sent)",
                                m.len(),
                                msg.len()
                            ))
                        };
                    }
                    Ok(Some(Ok(Message::Close(f)))) => {
                        return Err(format!("session closed: {f:?}"))
                    }
                    Ok(Some(Ok(_))) => continue,
                    Ok(Some(Err(e))) => return Err(format!("receive: {e}")),
                    Ok(None) => return Err("session ended".into()),
                }
            }
        }
        .await;
        out.push((what, r));
    }
    let _ = ws.close(None).await;
    out
}
