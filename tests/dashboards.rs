//! Dashboards we did not write, behind the sidecar, each driven by its own real client from npm
//! (tests/peers/third-party.js): Socket.IO 4, graphql-ws, a token-protected `ws` server, a server whose
//! WebSocket lives on a sub-path, and the seed's own demo dashboard. For each: the client gets through
//! the sidecar exactly what it gets directly, the sidecar is ready within seconds, `/health` adds up, the
//! exported `ws.session` span has the client's path and close code, and `check --json` with the same
//! probe options says healthy. Also: a refused prober is one log line per change of state.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::otlp::{attr, grpc_receiver, Received};
use support::*;

const TOKEN: &str = "tok-3f9a1c7e5b2d4680";

/// A third-party server (node) on a free port, or on `port`.
fn server(kind: &str, port: u16) -> (Proc, u16) {
    let dir = root().join("tests/peers");
    assert!(
        dir.join("node_modules/socket.io").exists() && dir.join("node_modules/graphql-ws").exists(),
        "socket.io / graphql-ws missing: run scripts/install-test-deps.sh (npm ci in tests/peers)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("third-party.js"))
        .args(["server", kind, &port.to_string()])
        .env("TOKEN", TOKEN)
        .env("COOKIE", "c00kie-value-42")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node is required");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut proc = Proc {
        child,
        stdout: Some(stdout),
    };
    let v = proc.wait_json(|v| v.get("port").is_some());
    (proc, v["port"].as_u64().unwrap() as u16)
}

/// Runs the server's own client against `url`: its transcript, the close code it saw, its path.
fn client(kind: &str, url: &str, env: &[(&str, &str)]) -> Value {
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
fn config(probe: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    let body = format!(
        "websocket:\n  reconnection: {{initial_delay: 100, max_delay: 300}}\nprobe:\n{probe}\n"
    );
    f.write_all(body.as_bytes()).unwrap();
    f
}

fn otel_env(receiver: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_METRICS_EXPORTER", "none".into()),
        ("OTEL_LOGS_EXPORTER", "none".into()),
    ]
}

async fn health(admin: std::net::SocketAddr) -> Value {
    let (st, _, body) = http_get(admin, "/health").await;
    assert_eq!(st, 200);
    serde_json::from_str(&body).unwrap()
}

/// Waits until /health satisfies `f`, returning it.
async fn health_until(admin: std::net::SocketAddr, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let h = health(admin).await;
        if f(&h) {
            return h;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{what}: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every rate in /health is a share: 0–100.
fn rates_add_up(h: &Value) {
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

async fn ready_within(admin: std::net::SocketAddr, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if http_get(admin, "/ready").await.0 == 200 {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "not ready within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the `ws.session` span of the client's path, and returns its close code.
async fn session_close_code(rec: &Received, path: &str) -> String {
    let t0 = Instant::now();
    loop {
        let found = rec
            .spans()
            .into_iter()
            .filter(|s| s.name == "ws.session")
            .find(|s| attr(&s.attributes, "url.path").as_deref() == Some(path));
        if let Some(s) = found {
            return attr(&s.attributes, "websocket.close.code").unwrap_or_default();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no ws.session span for {path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Case<'a> {
    kind: &'a str,
    /// The server, started.
    server: (Proc, u16),
    /// The path the user puts in `--upstream` (the probe's default path).
    upstream_path: &'a str,
    /// The `probe:` block of the sidecar's (and `check`'s) config file.
    probe: String,
    /// Where the client connects (a path, or a full http:// URL for Socket.IO's base).
    client_path: &'a str,
    /// The client's environment (its credentials).
    client_env: &'a [(&'a str, &'a str)],
    /// What `check` is pointed at, on the sidecar.
    check_path: &'a str,
}

async fn through_the_sidecar(c: Case<'_>) {
    let (otlp, rec, _h) = grpc_receiver().await;
    let port = c.server.1;
    let cfg = config(&c.probe);
    let cfg_path = cfg.path().to_str().unwrap().to_string();
    let env = otel_env(&format!("http://{otlp}"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let upstream = format!("ws://127.0.0.1:{port}{}", c.upstream_path);
    let (sc, lines) = sidecar_logged(&upstream, &["--config", &cfg_path], &env);

    // Ready within seconds: the upstream accepts connections.
    let took = ready_within(sc.admin, Duration::from_secs(5)).await;
    println!("{}: ready after {took:?}", c.kind);

    // The relay: what the client gets through the sidecar is what it gets directly.
    let scheme = if c.kind == "socketio" { "http" } else { "ws" };
    let direct = client(
        c.kind,
        &format!("{scheme}://127.0.0.1:{port}{}", c.client_path),
        c.client_env,
    );
    let through = client(
        c.kind,
        &format!("{scheme}://{}{}", sc.addr, c.client_path),
        c.client_env,
    );
    assert_eq!(direct["transcript"], through["transcript"], "{}", c.kind);
    assert_eq!(direct["close_code"], through["close_code"]);
    assert!(!through["transcript"].is_null());

    // /health adds up: the prober holds its WebSocket, the client's session counted apart.
    let h = health_until(sc.admin, "prober connected and the client counted", |h| {
        h["inputs"]["prober"]["state"] == "connected"
            && h["inputs"]["clients"]["attempts"].as_f64() >= Some(1.0)
    })
    .await;
    rates_add_up(&h);
    assert_eq!(h["status"], "HEALTHY", "{h}");
    assert_eq!(h["inputs"]["clients"]["error_rate_percent"], 0.0, "{h}");
    assert_eq!(h["inputs"]["prober"]["rejected"], 0.0, "{h}");

    // The exported session span has the client's path and the close code it saw.
    let path = through["path"].as_str().unwrap();
    let code = session_close_code(&rec, path).await;
    assert_eq!(code, through["close_code"].to_string(), "{}", c.kind);

    // Said out loud at start: the probe URL and transport (no header values).
    let l = lines.lock().unwrap().clone();
    let target = l
        .iter()
        .find(|v| v["event_type"] == "probe_target")
        .expect("a probe_target line");
    let path_only = c.upstream_path.split('?').next().unwrap();
    let path_only = if path_only.is_empty() { "/" } else { path_only };
    assert_eq!(target["url"], format!("ws://127.0.0.1:{port}{path_only}"));
    assert_eq!(target["websocket.transport"], "websocket");
    let all = format!("{l:?}{}", rec.dump());
    assert!(!all.contains(TOKEN), "the token leaked");

    // `check` with the same probe options says healthy.
    let (code, out, err) = run(
        &[
            "check",
            "--json",
            "--config",
            &cfg_path,
            &format!("ws://{}{}", sc.addr, c.check_path),
        ],
        &[],
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out} {err}"));
    assert_eq!((code, &v["healthy"]), (0, &Value::Bool(true)), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_io_4_long_polls_upgrades_acks_and_rooms_through_the_sidecar() {
    through_the_sidecar(Case {
        kind: "socketio",
        server: server("socketio", 0),
        // Socket.IO's WebSocket: the upstream URL's path is the probe's; it joins the default
        // namespace ("40") and answers Engine.IO's pings ("2" → "3").
        upstream_path: "/socket.io/?EIO=4&transport=websocket",
        probe: "  init_messages: ['40']\n  replies: {'2': '3'}".into(),
        client_path: "",
        client_env: &[],
        check_path: "/socket.io/?EIO=4&transport=websocket",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graphql_ws_with_its_required_subprotocol_through_the_sidecar() {
    through_the_sidecar(Case {
        kind: "graphql",
        server: server("graphql", 0),
        upstream_path: "/graphql",
        probe: "  subprotocols: [graphql-transport-ws]\n  init_messages: ['{\"type\":\"connection_init\"}']"
            .into(),
        client_path: "/graphql",
        client_env: &[],
        check_path: "/graphql",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_protected_server_with_the_probe_token_in_a_mounted_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret: PathBuf = dir.path().join("authorization");
    std::fs::write(&secret, format!("Bearer {TOKEN}\n")).unwrap();
    through_the_sidecar(Case {
        kind: "token",
        server: server("token", 0),
        upstream_path: "/",
        probe: format!("  header_files: {{Authorization: {}}}", secret.display()),
        // Its browser client authenticates with a cookie, relayed as is.
        client_path: "/",
        client_env: &[("COOKIE", "c00kie-value-42")],
        check_path: "/",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_whose_websocket_lives_on_a_sub_path() {
    through_the_sidecar(Case {
        kind: "subpath",
        server: server("subpath", 0),
        upstream_path: "/api/v2/live",
        probe: "  origin: https://dashboard.example".into(),
        client_path: "/api/v2/live",
        client_env: &[],
        check_path: "/api/v2/live",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_demo_dashboard_at_the_root() {
    let port = dead_port();
    let child = Command::new(bin())
        .args(["demo-dashboard", "--name", "pulse", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc {
        child,
        stdout: None,
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "demo dashboard up");
        std::thread::sleep(Duration::from_millis(20));
    }
    through_the_sidecar(Case {
        kind: "demo",
        server: (proc, port),
        upstream_path: "",
        probe: "  path: ''".into(),
        client_path: "/",
        client_env: &[],
        check_path: "",
    })
    .await;
}

/// How many of the sidecar's log lines have this event type.
fn count(lines: &Lines, event_type: &str) -> usize {
    lines
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["event_type"] == event_type || v["delta"] == event_type)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_probe_is_one_log_line_per_change_of_state_and_a_warning_not_an_error() {
    let (peer, port) = server("token", 0);
    let cfg = config("  path: ''");
    let cfg_path = cfg.path().to_str().unwrap().to_string();
    let (sc, lines) = sidecar_logged(
        &format!("ws://127.0.0.1:{port}/"),
        &["--config", &cfg_path],
        &[("OTEL_SDK_DISABLED", "true")],
    );
    // Ready: the dashboard accepts connections, whatever it answers the prober.
    ready_within(sc.admin, Duration::from_secs(5)).await;
    let rejected = |v: &Value| v["delta"] == "probe_rejected";
    let h = health_until(sc.admin, "several refused attempts", |h| {
        h["inputs"]["prober"]["rejected"].as_f64() >= Some(4.0)
    })
    .await;
    rates_add_up(&h);
    assert_eq!(h["status"], "WARNING", "{h}");
    let p = &h["inputs"]["prober"];
    assert_eq!((&p["state"], &p["status"]), (&"probe_rejected".into(), &401.into()), "{h}");
    assert!(p["hint"].as_str().unwrap().contains("probe.headers"), "{h}");
    assert_eq!(p["failure_rate_percent"], 0.0);
    assert!(h["issues"][0]["issue"].as_str().unwrap().contains("HTTP 401"));
    // Not a connection error of the dashboard's clients.
    assert_eq!(
        metric(sc.admin, "websocket_errors_total", &[("error_type", "AUTHENTICATION_FAILED")]).await,
        Some(0.0)
    );
    let refusals = metric(
        sc.admin,
        "websocket_reconnects_total",
        &[("error_type", "probe_rejected")],
    )
    .await
    .unwrap();
    assert!(refusals >= 4.0, "{refusals}");
    assert_eq!(lines.lock().unwrap().iter().filter(|v| rejected(v)).count(), 1);
    let line = lines.lock().unwrap().iter().find(|v| rejected(v)).cloned().unwrap();
    assert_eq!((&line["level"], &line["http.response.status_code"]), (&"WARN".into(), &401.into()));
    assert!(line["hint"].as_str().unwrap().contains("probe.path"));
    assert_eq!(count(&lines, "connection_failed"), 0);
    assert_eq!(count(&lines, "reconnection_attempt"), 0);

    // The dashboard goes away (a change: the prober logs its failures), then comes back refusing
    // again on the same port: one more refusal line, not one per attempt.
    drop(peer);
    let t0 = Instant::now();
    while count(&lines, "connection_failed") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no connection_failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_peer, _) = server("token", port);
    health_until(sc.admin, "refused again", |h| {
        h["inputs"]["prober"]["state"] == "probe_rejected"
    })
    .await;
    let before = metric(sc.admin, "websocket_reconnects_total", &[("error_type", "probe_rejected")])
        .await
        .unwrap();
    let t0 = Instant::now();
    while metric(sc.admin, "websocket_reconnects_total", &[("error_type", "probe_rejected")])
        .await
        .unwrap()
        < before + 3.0
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "more refused attempts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lines.lock().unwrap().iter().filter(|v| rejected(v)).count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prober_gates_readiness_only_with_probe_gates_readiness() {
    let (_peer, port) = server("token", 0);
    let upstream = format!("ws://127.0.0.1:{port}/");
    let env = [("OTEL_SDK_DISABLED", "true")];
    // Refused prober, gate on: not ready, and the body says why.
    let gated = config("  gates_readiness: true");
    let gated_path = gated.path().to_str().unwrap().to_string();
    let (sc, _l) = sidecar_logged(&upstream, &["--config", &gated_path], &env);
    health_until(sc.admin, "refused", |h| {
        h["inputs"]["prober"]["state"] == "probe_rejected"
    })
    .await;
    let (st, _, body) = http_get(sc.admin, "/ready").await;
    assert_eq!(st, 503);
    assert!(body.contains("probe.gates_readiness"), "{body}");
    // With its token the prober connects and the same gate opens.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("authorization");
    std::fs::write(&secret, format!("Bearer {TOKEN}")).unwrap();
    let ok = config(&format!(
        "  gates_readiness: true\n  header_files: {{Authorization: {}}}",
        secret.display()
    ));
    let ok_path = ok.path().to_str().unwrap().to_string();
    let (sc, _l) = sidecar_logged(&upstream, &["--config", &ok_path], &env);
    ready_within(sc.admin, Duration::from_secs(5)).await;
}
