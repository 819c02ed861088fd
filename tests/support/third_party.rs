//! Third-party dashboards and their own clients from npm (tests/peers/third-party.js), a probe config
//! file, and waiting for readiness: shared by tests/dashboards.rs and tests/probe_rejected.rs.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{http_get, root, spawn_piped, Proc};

/// The bearer token the `token` server wants (never in any output: the tests search for it).
pub const TOKEN: &str = "tok-3f9a1c7e5b2d4680";

/// A third-party server (node) on a free port, or on `port`.
pub fn server(kind: &str, port: u16) -> (Proc, u16) {
    let dir = root().join("tests/peers");
    assert!(
        dir.join("node_modules/socket.io").exists() && dir.join("node_modules/graphql-ws").exists(),
        "socket.io / graphql-ws missing: run scripts/install-test-deps.sh (npm ci in tests/peers)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("third-party.js"))
        .args(["server", kind, &port.to_string()])
        .current_dir(&dir);
    let mut proc = spawn_piped(cmd, &[("TOKEN", TOKEN), ("COOKIE", "c00kie-value-42")]);
    let v = proc.wait_json(|v| v.get("port").is_some());
    (proc, v["port"].as_u64().unwrap() as u16)
}

/// Runs the server's own client against `url`: its transcript, the close code it saw, its path.
pub fn client(kind: &str, url: &str, env: &[(&str, &str)]) -> Value {
    let dir = root().join("tests/peers");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("third-party.js"))
        .args(["client", kind, url])
        .current_dir(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("node");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{kind} client printed {:?}", out.stdout));
    assert!(v.get("error").is_none(), "{kind} client at {url}: {v}");
    v
}

/// A YAML config with `probe` as given.
pub fn config(probe: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    let body = format!(
        "websocket:\n  reconnection: {{initial_delay: 100, max_delay: 300}}\nprobe:\n{probe}\n"
    );
    f.write_all(body.as_bytes()).unwrap();
    f
}

/// Waits until `/ready` answers 200, returning how long it took.
pub async fn ready_within(admin: std::net::SocketAddr, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if http_get(admin, "/ready").await.0 == 200 {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "not ready within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every rate in /health is a share: 0–100.
pub fn rates_add_up(h: &Value) {
    let i = &h["inputs"];
    for r in [
        &i["clients"]["error_rate_percent"],
        &i["prober"]["failure_rate_percent"],
        &i["prober"]["rejection_rate_percent"],
        &i["error_rate_percent"],
    ] {
        let r = r.as_f64().unwrap_or_else(|| panic!("a rate: {h}"));
        assert!((0.0..=100.0).contains(&r), "{r} in {h}");
    }
    let s = i["clients"]["connection_stability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&s), "{h}");
}
