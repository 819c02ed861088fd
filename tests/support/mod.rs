//! Shared helpers for the integration tests: real peers (node `ws`, the sidecar binary), port 0 always.
#![allow(dead_code)]

pub mod otlp;
pub mod third_party;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Reads stdout lines until one is JSON and `pred` accepts it.
    pub fn wait_json(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let out = self.stdout.as_mut().expect("stdout piped");
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).expect("read child stdout");
            assert!(n > 0, "child exited before printing the expected line");
            if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                if pred(&v) {
                    return v;
                }
            }
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

/// Starts `cmd` with `env` added, stdout piped (for [`Proc::wait_json`]) and stderr inherited.
pub fn spawn_piped(mut cmd: Command, env: &[(&str, &str)]) -> Proc {
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start (is it installed?): {e}"));
    let stdout = BufReader::new(child.stdout.take().unwrap());
    Proc {
        child,
        stdout: Some(stdout),
    }
}

/// node `ws` must be installed by scripts/install-test-deps.sh; fail loudly if not.
fn node_modules() -> PathBuf {
    let nm = root().join("tests/peers/node_modules/ws");
    assert!(
        nm.exists(),
        "node `ws` is missing: run scripts/install-test-deps.sh (it runs npm ci in tests/peers)"
    );
    root().join("tests/peers")
}

/// A node `ws` dashboard-like server on a free port (see tests/peers/ws-server.js).
pub struct NodeWs {
    pub proc: Proc,
    pub port: u16,
}

pub fn node_ws(env: &[(&str, &str)]) -> NodeWs {
    node_ws_on(0, env)
}

pub fn node_ws_on(port: u16, env: &[(&str, &str)]) -> NodeWs {
    let dir = node_modules();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("ws-server.js"))
        .arg(port.to_string())
        .current_dir(&dir);
    let mut proc = spawn_piped(cmd, env);
    let v = proc.wait_json(|v| v.get("port").is_some());
    let port = v["port"].as_u64().unwrap() as u16;
    NodeWs { proc, port }
}

/// The sidecar binary, started with `args` (listen and admin on port 0 unless given).
pub struct Sidecar {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_iskra-ws-sidecar")
}

/// The release build of the sidecar, the binary users run: memory figures of a debug build (its
/// futures are many times larger, its allocations different) say little about it. scripts/test.sh builds
/// it before the tests; a missing or stale one fails the test that needs it, saying so.
pub fn release_bin() -> PathBuf {
    let p = root().join("target/release/iskra-ws-sidecar");
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build --release` first (scripts/test.sh does)",
                p.display()
            )
        });
    let newest = newest_mtime(&root().join("src"));
    assert!(
        built >= newest,
        "{} is older than the sources: run `cargo build --release` again",
        p.display()
    );
    p
}

fn newest_mtime(dir: &std::path::Path) -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            e.metadata().and_then(|m| m.modified()).unwrap_or(newest)
        };
        newest = newest.max(t);
    }
    newest
}

pub fn sidecar(upstream: &str, extra: &[&str], env: &[(&str, &str)]) -> Sidecar {
    sidecar_of(std::path::Path::new(bin()), upstream, extra, env)
}

/// The JSON lines a sidecar printed, collected as it prints them.
pub type Lines = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

/// [`sidecar`], keeping every JSON line it prints on stdout (after `sidecar_started`).
pub fn sidecar_logged(upstream: &str, extra: &[&str], env: &[(&str, &str)]) -> (Sidecar, Lines) {
    let lines = Lines::default();
    let sc = spawn_sidecar(
        std::path::Path::new(bin()),
        upstream,
        extra,
        env,
        Some(lines.clone()),
    );
    (sc, lines)
}

/// [`sidecar`] with a given binary.
pub fn sidecar_of(
    binary: &std::path::Path,
    upstream: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Sidecar {
    spawn_sidecar(binary, upstream, extra, env, None)
}

fn spawn_sidecar(
    binary: &std::path::Path,
    upstream: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    keep: Option<Lines>,
) -> Sidecar {
    let mut cmd = Command::new(binary);
    cmd.args([
        "run",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--upstream",
        upstream,
    ]);
    cmd.args(extra);
    let mut proc = spawn_piped(cmd, env);
    let v = proc.wait_json(|v| v["event_type"] == "sidecar_started");
    let addr = v["listen"].as_str().unwrap().parse().unwrap();
    let admin = v["admin"].as_str().unwrap().parse().unwrap();
    // Keep draining its log lines so a busy sidecar never blocks on a full pipe.
    if let Some(mut out) = proc.stdout.take() {
        match keep {
            None => {
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            }
            Some(lines) => {
                std::thread::spawn(move || {
                    for l in out.lines().map_while(Result::ok) {
                        if let Ok(v) = serde_json::from_str::<Value>(&l) {
                            lines.lock().unwrap().push(v);
                        }
                    }
                });
            }
        }
    }
    Sidecar { proc, addr, admin }
}

/// Runs a command to completion, returning (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A minimal HTTP/1.1 GET over a fresh connection; returns (status, headers, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await
}

pub async fn http_request(addr: SocketAddr, raw: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_string(), body)
}

/// Decodes a chunked body.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A free port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits until `f` is true or panics after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text messages a `RECORD=FILE` node dashboard received (tests/peers/ws-server.js), in order.
pub fn recorded(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON string per line"))
        .collect()
}

/// The `POST /probe/send` token the tests configure (`probe.send_token`).
pub const SEND_TOKEN: &str = "test-probe-send-token-7f3a9c2e51";

/// `POST /probe/send` with a raw body and the tests' token: (status, head, JSON body).
pub async fn post_probe_send(admin: SocketAddr, body: &[u8]) -> (u16, String, serde_json::Value) {
    let auth = format!("Bearer {SEND_TOKEN}");
    post_probe_send_as(admin, Some(&auth), body).await
}

/// `POST /probe/send` with a raw body and the given `Authorization` header (None: no header).
pub async fn post_probe_send_as(
    admin: SocketAddr,
    authorization: Option<&str>,
    body: &[u8],
) -> (u16, String, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let head = format!("POST /probe/send HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null);
    (status, head.to_ascii_lowercase(), json)
}

/// The value of the series `name` whose labels include `labels`, from the sidecar's /metrics.
pub async fn metric(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (_, _, body) = http_get(admin, "/metrics").await;
    body.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        let ok = n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        ok.then(|| value.parse().ok()).flatten()
    })
}

/// Waits (up to 20 s) for an event matching `f` on a sidecar's tap, returning it and every event seen
/// before it.
pub async fn until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<iskra_ws_sidecar::events::Event>,
    what: &str,
    f: impl Fn(&iskra_ws_sidecar::events::EventKind) -> bool,
) -> Vec<iskra_ws_sidecar::events::EventKind> {
    let t0 = std::time::Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = Duration::from_secs(20).saturating_sub(t0.elapsed());
        let ev = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; saw {seen:?}"))
            .unwrap();
        let hit = f(&ev.kind);
        seen.push(ev.kind);
        if hit {
            return seen;
        }
    }
}

/// The sidecar's `/health` body.
pub async fn health(admin: SocketAddr) -> Value {
    let (st, _, body) = http_get(admin, "/health").await;
    assert_eq!(st, 200, "/health answers 200");
    serde_json::from_str(&body).unwrap()
}

/// Waits (up to 20 s) until `/health` satisfies `f`, returning it.
pub async fn health_until(admin: SocketAddr, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let t0 = std::time::Instant::now();
    loop {
        let h = health(admin).await;
        if f(&h) {
            return h;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{what}: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The heartbeats the in-process tests use: a ping every 200 ms, 150 ms to answer, dead after 2 misses.
pub fn fast_heartbeats() -> Value {
    serde_json::json!({"enabled": true, "interval": 200, "timeout": 150, "failure_threshold": 2})
}

/// The events an in-process sidecar saw, each after telemetry recorded it.
pub type Events = tokio::sync::mpsc::UnboundedReceiver<iskra_ws_sidecar::events::Event>;

/// Sets the upstream of a config tree to the dashboard on `port` of this host.
pub fn upstream(tree: &mut Value, port: u16) {
    tree["upstream"] = format!("ws://127.0.0.1:{port}").into();
}

/// Starts a sidecar in this process: the default config with listen and admin on port 0, changed by
/// `edit`; OTLP export off (the events come through the tap, the metrics from `/metrics`).
pub async fn in_process(edit: impl FnOnce(&mut Value)) -> (iskra_ws_sidecar::app::Running, Events) {
    let mut tree = iskra_ws_sidecar::config::defaults();
    tree["listen"] = "127.0.0.1:0".into();
    tree["admin"] = "127.0.0.1:0".into();
    edit(&mut tree);
    let config = iskra_ws_sidecar::config::from_tree(&tree).expect("a valid test config");
    let off = |k: &str| (k == "OTEL_SDK_DISABLED").then(|| "true".to_string());
    let (tap, events) = tokio::sync::mpsc::unbounded_channel();
    let embed = iskra_ws_sidecar::app::Embed {
        tap: Some(tap),
        otel: Some(iskra_ws_sidecar::telemetry::env::OtelEnv::from_lookup(
            &off,
            "test",
            &[],
        )),
        quiet: true,
    };
    let running = iskra_ws_sidecar::app::start_embedded(config, embed)
        .await
        .expect("the sidecar starts");
    (running, events)
}

/// A python3 script of tests/peers with its arguments, started with [`spawn_piped`].
pub fn python_peer(script: &str, args: &[&std::ffi::OsStr]) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/peers").join(script)).args(args);
    spawn_piped(cmd, &[])
}
