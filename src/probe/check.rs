//! One-shot checks of an endpoint (the seed's health-check script and the real-time monitor's probe):
//! HTTP health, WebSocket connect, a ping round trip, and the seed's app-level JSON ping; every status is
//! measured, none is a constant.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use super::target::Upgrade;
use super::transports;
use crate::config::probe::ProbeSettings;
use crate::config::Slo;
use crate::events::ConnectCause;
use crate::semantics::{classify_connect, classify_probe, ErrorClass};

/// The outcome of one step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Step {
    /// It worked.
    pub ok: bool,
    /// Time taken (ms).
    pub ms: f64,
    /// HTTP status when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The Iskra error class on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn failed(t0: Instant, class: ErrorClass, status: Option<u16>) -> Step {
    failed_after(t0.elapsed(), class, status)
}

fn failed_after(took: Duration, class: ErrorClass, status: Option<u16>) -> Step {
    Step {
        ok: false,
        ms: ms(took),
        status,
        error: Some(class.as_str()),
    }
}

/// Everything `check` reports for one URL.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The URL checked (query and credentials removed).
    pub url: String,
    /// GET /health (or the URL itself for http:// targets).
    pub http: Step,
    /// WebSocket handshake (ws:// targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<Step>,
    /// WebSocket ping → pong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping: Option<Step>,
    /// The seed's app-level JSON ping → any reply within 2 s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_ping: Option<Step>,
    /// Latency judged against the SLO: ok / warning / critical (off: SLO monitoring is off).
    pub latency_slo: &'static str,
    /// All required steps passed and latency is not critical.
    pub healthy: bool,
}

/// Grades a latency against the seed's SLO thresholds; `off` when SLO monitoring is off (None).
pub fn grade(latency_ms: f64, slo: Option<&Slo>) -> &'static str {
    let Some(slo) = slo else { return "off" };
    if latency_ms > slo.critical {
        "critical"
    } else if latency_ms > slo.warning {
        "warning"
    } else {
        "ok"
    }
}

async fn http_step(host: &str, port: u16, path: &str, timeout: Duration) -> Step {
    let t0 = Instant::now();
    match transports::get(host, port, path, timeout, false).await {
        Ok(d) => Step {
            ok: true,
            ms: ms(d),
            status: Some(200),
            error: None,
        },
        Err(f) => failed(t0, classify_probe(f.cause, f.status), f.status),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends `msg` and times the first message `is_reply` accepts, within `timeout`.
async fn round_trip(
    ws: &mut Ws,
    msg: Message,
    is_reply: impl Fn(&Message) -> bool,
    timeout: Duration,
) -> Step {
    let t0 = Instant::now();
    let wait = async {
        ws.send(msg).await.ok()?;
        while let Some(Ok(m)) = ws.next().await {
            if is_reply(&m) {
                return Some(());
            }
        }
        None
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Some(())) => Step {
            ok: true,
            ms: ms(t0.elapsed()),
            status: None,
            error: None,
        },
        _ => failed(t0, classify_connect(ConnectCause::TimedOut), None),
    }
}

/// Checks one URL: `http://…` is a plain GET; `ws://…` is GET /health, then the upgrade the prober
/// makes (`probe.path` or the URL's own path, `probe.headers`, subprotocols, origin, init messages),
/// ping, app ping. Latency is graded against `slo` (None: `iskra.slo_monitoring` is off).
pub async fn check(
    url: &str,
    timeout: Duration,
    slo: Option<&Slo>,
    probe: &ProbeSettings,
) -> CheckResult {
    let shown = if url.starts_with("http://") {
        super::redact(url)
    } else {
        super::redact(&super::target::url_for(url, probe))
    };
    let Some((host, port)) = transports::host_port(url) else {
        let step = Step {
            ok: false,
            ms: 0.0,
            status: None,
            error: Some(classify_connect(ConnectCause::Unreachable).as_str()),
        };
        return CheckResult {
            url: shown,
            http: step,
            websocket: None,
            ping: None,
            app_ping: None,
            latency_slo: "critical",
            healthy: false,
        };
    };
    if url.starts_with("http://") {
        let path = url
            .splitn(4, '/')
            .nth(3)
            .map_or("/".to_string(), |p| format!("/{p}"));
        let http = http_step(&host, port, &path, timeout).await;
        let latency_slo = grade(http.ms, slo);
        let healthy = http.ok && latency_slo != "critical";
        return CheckResult {
            url: shown,
            http,
            websocket: None,
            ping: None,
            app_ping: None,
            latency_slo,
            healthy,
        };
    }
    let http = http_step(&host, port, "/health", timeout).await;
    let probe_url = super::target::url_for(url, probe);
    let (websocket, mut ws) = match super::target::upgrade(&probe_url, probe, timeout).await {
        Upgrade::Open(ws, d) => (
            Step {
                ok: true,
                ms: ms(d),
                status: Some(101),
                error: None,
            },
            Some(*ws),
        ),
        Upgrade::Refused(st, d) => (
            failed_after(d, classify_probe(ConnectCause::BadResponse, st), st),
            None,
        ),
        Upgrade::Status(st, d) => (
            failed_after(
                d,
                classify_probe(ConnectCause::BadResponse, Some(st)),
                Some(st),
            ),
            None,
        ),
        Upgrade::Failed(cause, d) => (failed_after(d, classify_connect(cause), None), None),
    };
    let (mut ping, mut app_ping) = (None, None);
    if let Some(ws) = ws.as_mut() {
        let ping_msg = Message::Ping(b"iskra-check".to_vec().into());
        ping = Some(round_trip(ws, ping_msg, |m| matches!(m, Message::Pong(_)), timeout).await);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let msg = serde_json::json!({"type": "ping", "timestamp": now_ms, "delta": "heartbeat_sent", "omega": 1.0}).to_string();
        let is_reply = |m: &Message| m.is_text() || m.is_binary();
        app_ping = Some(round_trip(ws, Message::text(msg), is_reply, Duration::from_secs(2)).await);
        let _ = ws.close(None).await;
    }
    let latency = ping
        .as_ref()
        .filter(|p| p.ok)
        .map_or(websocket.ms, |p| p.ms.max(websocket.ms));
    let latency_slo = if websocket.ok {
        grade(latency, slo)
    } else {
        "critical"
    };
    let healthy = websocket.ok && ping.as_ref().is_some_and(|p| p.ok) && latency_slo != "critical";
    CheckResult {
        url: shown,
        http,
        websocket: Some(websocket),
        ping,
        app_ping,
        latency_slo,
        healthy,
    }
}
