//! The rig of tests/resume.rs: client processes (node `ws`, Python `websockets`) whose JSON lines are
//! collected, sidecars with resume settings, a dashboard restarted on its port, the resume counter, and
//! a dashboard at frame level that dies where a test wants it to.

use std::io::BufRead;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::*;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A client process whose JSON lines are collected as they come.
pub struct Client {
    _proc: Proc,
    pub lines: Arc<Mutex<Vec<Value>>>,
}

impl Client {
    pub fn spawn(program: &str, script: &str, url: &str, env: &[(&str, &str)]) -> Client {
        let mut cmd = Command::new(program);
        cmd.arg(root().join("tests/peers").join(script))
            .arg(url)
            .current_dir(root().join("tests/peers"));
        let mut proc = spawn_piped(cmd, env);
        let out = proc.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Client { _proc: proc, lines }
    }

    pub fn node(url: &str, env: &[(&str, &str)]) -> Client {
        Client::spawn("node", "resume-client.js", url, env)
    }

    pub fn python(url: &str, env: &[(&str, &str)]) -> Client {
        Client::spawn("python3", "py_resume_client.py", url, env)
    }

    pub fn count(&self, key: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v.get(key).is_some())
            .count()
    }

    /// Waits for the summary line (the client ended).
    pub async fn summary(&self, within: Duration) -> Value {
        let what = "the client's summary";
        eventually(within, what, || self.count("summary") > 0).await;
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .find_map(|v| v.get("summary").cloned())
            .unwrap()
    }

    /// (index, time) of every line with `key`.
    pub fn times(&self, key: &str) -> Vec<(u64, u64)> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|v| Some((v.get(key)?.as_u64()?, v.get("t")?.as_u64()?)))
            .collect()
    }
}

pub fn resume_env(hold_ms: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ISKRA_SIDECAR_RESUME__HOLD_MS", hold_ms.to_string()),
        ("ISKRA_SIDECAR_PROBE__ENABLED", "false".to_string()),
    ]
}

pub fn sidecar_with(upstream_port: u16, env: &[(&str, String)]) -> Sidecar {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sidecar(&format!("ws://127.0.0.1:{upstream_port}"), &[], &env)
}

/// Kills the dashboard, waits `gap`, starts it again on the same port; returns (killed, up) in ms.
pub async fn restart(dash: NodeWs, gap: Duration, env: &[(&str, &str)]) -> (NodeWs, u64, u64) {
    let port = dash.port;
    drop(dash); // SIGKILL, then reaped
    let killed = now_ms();
    tokio::time::sleep(gap).await;
    let dash = node_ws_on(port, env);
    (dash, killed, now_ms())
}

/// Waits (up to 5 s: metrics follow events off the data path) for `websocket_resumes_total{labels}` = 1.
pub async fn counted(sc: &Sidecar, labels: &[(&str, &str)]) {
    counted_at_least(sc, labels, 1.0, 1.0).await
}

/// Waits (up to 5 s) for `websocket_resumes_total{labels}` to be in `low..=high`.
pub async fn counted_at_least(sc: &Sidecar, labels: &[(&str, &str)], low: f64, high: f64) {
    let t0 = Instant::now();
    loop {
        let n = metric(sc.admin, "websocket_resumes_total", labels).await;
        if n.is_some_and(|n| (low..=high).contains(&n)) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "websocket_resumes_total{labels:?} = {n:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A dashboard at frame level: answers one upgrade with 101, writes `frames`, then drops the connection
/// (the kernel closes it as a killed process's would). Returns its port.
pub async fn raw_dashboard(frames: Vec<u8>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        // The first connection that sends a whole head (a bare TCP check may come first).
        let (mut s, head) = loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b).await {
                    Ok(n) if n > 0 => head.extend_from_slice(&b[..n]),
                    _ => break,
                }
            }
            if head.ends_with(b"\r\n\r\n") {
                break (s, head);
            }
        };
        let text = String::from_utf8_lossy(&head).to_string();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_string();
        let accept = iskra_ws_sidecar::proxy::resume::reconnect::accept_for(&key);
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.write_all(&frames).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Dropped: FIN after the bytes (the rest of the frame never comes).
    });
    port
}

pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = iskra_ws_sidecar::proxy::frame::build_frame(opcode, payload, None);
    if !fin {
        f[0] &= 0x7F;
    }
    f
}
