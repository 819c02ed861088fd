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
use support::third_party::{client, config, rates_add_up, ready_within, server, TOKEN};
use support::*;

fn otel_env(receiver: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_METRICS_EXPORTER", "none".into()),
        ("OTEL_LOGS_EXPORTER", "none".into()),
    ]
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
    // …and keeps it: the servers drop a client that does not speak their protocol within 0.6 s
    // (Socket.IO's pings, graphql-ws's connection_init): probe.init_messages / probe.replies do.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let h = health(sc.admin).await;
    let p = &h["inputs"]["prober"];
    assert_eq!(
        (&p["state"], &p["failed"]),
        (&"connected".into(), &0.0.into()),
        "{h}"
    );

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

    // …and so does `monitor`.
    let (code, out, err) = run(
        &[
            "monitor",
            "--json",
            "--count",
            "1",
            "--config",
            &cfg_path,
            &format!("ws://{}{}", sc.addr, c.check_path),
        ],
        &[],
    );
    let last: Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("{out} {err}"));
    assert_eq!(last["event"], "checkComplete", "{out}");
    assert_eq!(
        (code, &last["endpoints"][0]["success_rate"]),
        (0, &1.0.into()),
        "{out}"
    );
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
async fn the_seeds_demo_dashboards_at_the_root() {
    for name in ["pulse", "seams", "voices"] {
        let port = dead_port();
        let child = Command::new(bin())
            .args(["demo-dashboard", "--name", name, "--listen"])
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
}
