//! A real browser through a dashboard restart: headless Chromium (Debian's `chromium`, installed by
//! scripts/install-test-deps.sh) loads a page through the sidecar; the page opens a WebSocket
//! (permessage-deflate), sends its own messages, counts the dashboard's, and reconnects 300 ms after
//! any close (tests/peers/resume-page.html). The node `ws` dashboard (deflate on) is killed and started
//! again on the same port. Driven over the DevTools protocol (`--remote-debugging-port`), read-only:
//! the test only evaluates `window.state`.
//!
//! With `resume.hold_ms` = 5000 a 1.5 s restart costs the page nothing: one session, no close event,
//! messages both ways after it, and the session's span says `websocket.upstream.resumes` = 1. A restart
//! longer than the window: the page sees 1012 and reconnects. The same restart without resume (this
//! binary with `hold_ms` 0, or the binary named by `ISKRA_RESUME_BASELINE_BIN`, e.g. main's) is run
//! first, for the before/after figures the test prints.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use support::otlp::{attr, grpc_receiver};
use support::*;

/// Headless Chromium with a fresh profile, showing `url`.
struct Browser {
    _proc: Proc,
    _profile: tempfile::TempDir,
    page: String,
}

impl Browser {
    async fn open(url: &str) -> Browser {
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "chromium is missing: run scripts/install-test-deps.sh (it installs Debian's chromium)"
        );
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("/usr/bin/chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromium");
        let proc = Proc {
            child,
            stdout: None,
        };
        // Chromium writes the port it picked to DevToolsActivePort in the profile.
        let active = profile.path().join("DevToolsActivePort");
        let mut port = None;
        eventually(Duration::from_secs(30), "chromium's DevTools port", || {
            port = std::fs::read_to_string(&active)
                .ok()
                .and_then(|s| s.lines().next()?.trim().parse::<u16>().ok());
            port.is_some()
        })
        .await;
        let devtools: std::net::SocketAddr =
            format!("127.0.0.1:{}", port.unwrap()).parse().unwrap();
        let mut page = None;
        let t0 = std::time::Instant::now();
        while page.is_none() {
            assert!(t0.elapsed() < Duration::from_secs(30), "no page target");
            // DevTools answers only requests whose Host is an IP address or localhost.
            let req =
                format!("GET /json/list HTTP/1.1\r\nHost: {devtools}\r\nConnection: close\r\n\r\n");
            let (_, _, body) = http_request(devtools, &req).await;
            let list: Value = serde_json::from_str(&body).unwrap_or(json!([]));
            page = list.as_array().into_iter().flatten().find_map(|t| {
                let is_page = t["type"] == "page" && t["url"].as_str()?.contains("resume-page");
                is_page.then(|| t["webSocketDebuggerUrl"].as_str().map(str::to_string))?
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Browser {
            _proc: proc,
            _profile: profile,
            page: page.unwrap(),
        }
    }

    /// Evaluates `expr` in the page (Runtime.evaluate), returning its JSON value.
    async fn eval(&self, expr: &str) -> Value {
        let (mut ws, _) = tokio_tungstenite::connect_async(self.page.as_str())
            .await
            .unwrap();
        let req = json!({"id": 1, "method": "Runtime.evaluate",
                         "params": {"expression": expr, "returnByValue": true}});
        ws.send(Message::text(req.to_string())).await.unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("DevTools answered")
                .unwrap()
                .unwrap();
            let v: Value = serde_json::from_str(m.to_text().unwrap_or("{}")).unwrap_or_default();
            if v["id"] == 1 {
                return v["result"]["result"]["value"].clone();
            }
        }
    }

    async fn state(&self) -> Value {
        let s = self.eval("JSON.stringify(window.state)").await;
        serde_json::from_str(s.as_str().unwrap_or("{}")).unwrap_or_default()
    }
}

/// What the page lived through in one restart.
#[derive(Debug)]
struct Figures {
    /// WebSocket attempts the page made because of the restart (0: it never noticed).
    handshakes_caused: u64,
    /// Close events the page saw.
    closes: Vec<Value>,
    /// Longest time without a message, around the restart.
    gap_ms: u64,
    /// Messages received after the dashboard was back.
    received_after: u64,
    /// Of the page's own messages, echoes received after the dashboard was back.
    acked_after: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Kills the dashboard, starts it again after `gap`, lets the page settle for `settle`.
async fn restart_under_page(
    b: &Browser,
    dash: NodeWs,
    gap: Duration,
    settle: Duration,
) -> (NodeWs, Figures) {
    let before = b.state().await;
    let port = dash.port;
    drop(dash);
    let killed = now_ms();
    tokio::time::sleep(gap).await;
    let dash = node_ws_on(port, &[("DEFLATE", "1")]);
    let up = now_ms();
    tokio::time::sleep(settle).await;
    let after = b.state().await;
    let times: Vec<u64> = after["times"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let around: Vec<u64> = times
        .iter()
        .copied()
        .filter(|t| *t + 1000 >= killed)
        .collect();
    let gap_ms = around.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let closes =
        after["closes"].as_array().unwrap()[before["closes"].as_array().unwrap().len()..].to_vec();
    let received_after = times.iter().filter(|t| **t > up).count() as u64;
    let f = Figures {
        handshakes_caused: n(&after, "attempts") - n(&before, "attempts"),
        closes,
        gap_ms,
        received_after,
        acked_after: n(&after, "acked") - n(&before, "acked"),
    };
    (dash, f)
}

/// A sidecar in front of `dash`; `hold_ms` None: no `resume.*` setting at all (a binary without it).
fn sidecar_for(binary: &Path, dash: &NodeWs, hold_ms: Option<&str>, otlp: &str) -> Sidecar {
    let mut env = vec![
        ("ISKRA_SIDECAR_PROBE__ENABLED", "false"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
    ];
    if let Some(h) = hold_ms {
        env.push(("ISKRA_SIDECAR_RESUME__HOLD_MS", h));
    }
    sidecar_of(binary, &format!("ws://127.0.0.1:{}", dash.port), &[], &env)
}

/// Opens the page through a sidecar and waits until its session runs.
async fn page_through(sc: &Sidecar) -> Browser {
    let b = Browser::open(&format!("http://{}/resume-page", sc.addr)).await;
    let t0 = std::time::Instant::now();
    loop {
        let s = b.state().await;
        if s["opens"] == 1 && s["received"].as_u64().unwrap_or(0) >= 20 {
            return b;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "page never ran: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_page_never_notices_a_dashboard_restart_inside_the_hold_window() {
    let (otlp, rec, _h) = grpc_receiver().await;
    let otlp = format!("http://{otlp}");
    let restart = Duration::from_millis(1500);
    let settle = Duration::from_millis(2500);

    // Before: the same restart without resume.
    let other = std::env::var_os("ISKRA_RESUME_BASELINE_BIN").map(PathBuf::from);
    let baseline = other.clone().unwrap_or_else(|| PathBuf::from(bin()));
    let dash = node_ws(&[("DEFLATE", "1")]);
    let hold = other.is_none().then_some("0");
    let sc = sidecar_for(&baseline, &dash, hold, &otlp);
    let b = page_through(&sc).await;
    let (dash, before) = restart_under_page(&b, dash, restart, settle).await;
    drop((b, sc, dash));
    println!("without resume ({}): {before:?}", baseline.display());
    assert_eq!(before.closes[0]["code"], 1012, "{before:?}");
    assert!(before.handshakes_caused >= 1, "{before:?}");

    // After: held.
    let dash = node_ws(&[("DEFLATE", "1")]);
    let sc = sidecar_for(Path::new(bin()), &dash, Some("5000"), &otlp);
    let b = page_through(&sc).await;
    let ext = b.state().await["extensions"].to_string();
    assert!(
        ext.contains("permessage-deflate") && ext.contains("client_no_context_takeover"),
        "{ext}"
    );
    let (dash, held) = restart_under_page(&b, dash, restart, settle).await;
    println!("with resume: {held:?}");
    assert!(held.closes.is_empty(), "the page saw a close: {held:?}");
    assert_eq!(held.handshakes_caused, 0, "{held:?}");
    assert!(held.received_after >= 20, "{held:?}");
    assert!(
        held.acked_after >= 10,
        "the page's own messages after the restart: {held:?}"
    );
    let s = b.state().await;
    assert_eq!(
        (s["opens"].as_u64(), s["errors"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );

    // A restart longer than the window: the page sees 1012 and reconnects once the dashboard is back.
    let (_dash, long) = restart_under_page(&b, dash, Duration::from_millis(6500), settle).await;
    println!("past the window: {long:?}");
    assert_eq!(long.closes[0]["code"], 1012, "{long:?}");
    assert!(
        long.closes[0]["reason"]
            .as_str()
            .unwrap()
            .contains("hold_timeout"),
        "{long:?}"
    );
    let s = b.state().await;
    assert_eq!(
        s["opens"], 2,
        "reconnected once the dashboard was back: {s}"
    );
    assert!(long.received_after >= 10, "{long:?}");

    // The first session's span: resumed once, then a resume given up.
    let _ = b.eval("state.stop = true; ws.close(1000, 'bye'); 1").await;
    let mut first = None;
    eventually(Duration::from_secs(10), "the first session's span", || {
        first = rec.spans().into_iter().find(|s| {
            s.name == "ws.session"
                && attr(&s.attributes, "websocket.upstream.resumes").as_deref() == Some("1")
        });
        first.is_some()
    })
    .await;
    let span = first.unwrap();
    // (The session's steps — ws.upstream.connect, ws.handshake, ws.close — are events of the span too.)
    let resumes: Vec<_> = span
        .events
        .iter()
        .filter(|e| e.name.starts_with("websocket.resume"))
        .collect();
    let events: Vec<&str> = resumes.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        events,
        ["websocket.resumed", "websocket.resume_gave_up"],
        "{span:?}"
    );
    let resumed = resumes[0];
    let gap: f64 = attr(&resumed.attributes, "websocket.resume.gap_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(gap >= 1000.0, "gap {gap} ms");
    assert_eq!(
        attr(&resumed.attributes, "websocket.upstream.name").as_deref(),
        Some("primary")
    );
    println!(
        "before/after: handshakes caused {} -> {}, page gap {} ms -> {} ms, closes seen {} -> {}",
        before.handshakes_caused,
        held.handshakes_caused,
        before.gap_ms,
        held.gap_ms,
        before.closes.len(),
        held.closes.len()
    );
}
