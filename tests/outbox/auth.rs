//! `POST /probe/send` is secure by default: off (404, saying how to turn it on) until a bearer token is
//! configured; then 401 with a `Bearer` challenge for a missing or wrong token, checked before the body
//! is read; 202 only with the token, from `probe.send_token` or a Secret-like file. And the token never
//! appears anywhere the sidecar writes: stdout, stderr, `/metrics`, `/health`, OTLP spans, logs and
//! metrics — nor does a wrong one a caller sent.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use iskra_ws_sidecar::events::EventKind;

use super::support::otlp::grpc_receiver;
use super::support::*;
use super::{env_refs, fast_prober, gauge, messages, record_env, until, until_recorded};

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_the_endpoint_is_off_with_a_404_that_says_how_to_turn_it_on() {
    let port = dead_port();
    let (sc, _rx) = in_process(|t| {
        fast_prober(t);
        t["upstream"] = format!("ws://127.0.0.1:{port}").into();
        t["probe"]["send_token"] = "".into();
    })
    .await;
    let bearer = format!("Bearer {SEND_TOKEN}");
    for auth in [None, Some(bearer.as_str())] {
        let (status, head, body) = post_probe_send_as(sc.admin_addr, auth, b"hello").await;
        assert_eq!(status, 404, "{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let msg = body["error"].as_str().unwrap();
        for how in [
            "probe.send_token",
            "ISKRA_SIDECAR_PROBE__SEND_TOKEN",
            "probe.send_token_file",
            "Authorization: Bearer <token>",
        ] {
            assert!(msg.contains(how), "{how:?} missing from {msg}");
        }
    }
    assert_eq!(gauge(sc.admin_addr).await, Some(0.0), "nothing was queued");
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_wrong_token_gets_401_with_a_bearer_challenge_and_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("received.jsonl");
    let up = node_ws(&env_refs(&record_env(&rec)));
    let (sc, mut rx) = in_process(|t| {
        fast_prober(t);
        t["upstream"] = format!("ws://127.0.0.1:{}", up.port).into();
    })
    .await;
    until(&mut rx, "prober connected", |k| {
        matches!(k, EventKind::ProbeSucceeded { .. })
    })
    .await;
    let short = &SEND_TOKEN[..SEND_TOKEN.len() - 1];
    let cases = [
        (None, false),
        (Some(SEND_TOKEN.to_string()), false), // no scheme
        (Some(format!("Basic {SEND_TOKEN}")), false),
        (Some("Bearer wrong-token-4c1d9e8f7a6b".to_string()), true),
        (Some(format!("Bearer {SEND_TOKEN}x")), true),
        (Some(format!("Bearer {short}")), true),
        (Some(format!("Bearer {}", SEND_TOKEN.to_uppercase())), true),
    ];
    for (auth, invalid) in &cases {
        let (status, head, body) =
            post_probe_send_as(sc.admin_addr, auth.as_deref(), b"not authorized").await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        let challenge = head
            .lines()
            .find_map(|l| l.strip_prefix("www-authenticate: "))
            .unwrap_or_else(|| panic!("{auth:?}: no WWW-Authenticate in {head}"));
        assert!(challenge.starts_with("bearer realm="), "{challenge}");
        assert_eq!(challenge.contains("invalid_token"), *invalid, "{challenge}");
        assert!(!body.to_string().contains("wrong-token"), "echoed: {body}");
    }
    // Authorization comes first: not 405 for a GET, and a huge body is never read.
    assert_eq!(http_get(sc.admin_addr, "/probe/send").await.0, 401);
    let t0 = Instant::now();
    let huge = "POST /probe/send HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n";
    assert_eq!(http_request(sc.admin_addr, huge).await.0, 401);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(gauge(sc.admin_addr).await, Some(0.0), "nothing was queued");
    // The right token (the scheme in any case) is taken, and only that message reaches the dashboard.
    let ok = format!("bearer {SEND_TOKEN}");
    let (status, _, body) = post_probe_send_as(sc.admin_addr, Some(&ok), b"authorized").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(until_recorded(&rec, 1).await, ["authorized"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorded(&rec), ["authorized"]);
    sc.shutdown().await;
}

/// The sidecar binary with stdout and stderr captured whole.
struct Captured {
    proc: Proc,
    admin: std::net::SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn capture(upstream: &str, env: &[(&str, &str)]) -> Captured {
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--upstream", upstream])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let (out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (stdout, stderr) = (
        Arc::<Mutex<String>>::default(),
        Arc::<Mutex<String>>::default(),
    );
    let (tx, started) = std_mpsc::channel();
    let sink = Arc::clone(&stdout);
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("\"sidecar_started\"") {
                let _ = tx.send(line.clone());
            }
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        sink.lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&buf));
    });
    let line = started.recv_timeout(Duration::from_secs(20)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let admin = v["admin"].as_str().unwrap().parse().unwrap();
    let proc = Proc {
        child,
        stdout: None,
    };
    Captured {
        proc,
        admin,
        stdout,
        stderr,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_a_file_admits_the_right_caller_and_never_appears_in_any_output() {
    const TOKEN: &str = "probe-send-secret-5b1e0c7d9a3f4e21";
    const WRONG: &str = "caller-sent-wrong-token-8d2f6a";
    let dir = tempfile::tempdir().unwrap();
    let (token_file, rec) = (dir.path().join("token"), dir.path().join("received.jsonl"));
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap(); // as `kubectl create secret --from-file`
    let up = node_ws(&env_refs(&record_env(&rec)));
    let (otlp, received, _h) = grpc_receiver().await;
    let (file, endpoint) = (token_file.display().to_string(), format!("http://{otlp}"));
    let env = [
        ("ISKRA_SIDECAR_PROBE__SEND_TOKEN_FILE", file.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ("WEBSOCKET_LOG_LEVEL", "debug"),
        ("ISKRA_SIDECAR_WEBSOCKET__FALLBACK__FLUSH_INTERVAL", "100"),
    ];
    let sc = capture(&format!("ws://127.0.0.1:{}", up.port), &env);
    let sent = messages(3);
    let bearer = format!("Bearer {TOKEN}");
    for m in &sent {
        let (status, _, body) = post_probe_send_as(sc.admin, Some(&bearer), m.as_bytes()).await;
        assert_eq!(status, 202, "{body}");
    }
    for wrong in [format!("Bearer {WRONG}"), format!("Bearer {TOKEN}-x")] {
        let (status, _, body) = post_probe_send_as(sc.admin, Some(&wrong), b"no").await;
        assert_eq!(status, 401, "{body}");
    }
    assert_eq!(until_recorded(&rec, 3).await, sent);
    let t0 = Instant::now();
    while gauge(sc.admin).await != Some(0.0) || received.log_records().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no flush or no logs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, metrics) = http_get(sc.admin, "/metrics").await;
    let (_, _, health) = http_get(sc.admin, "/health").await;
    assert!(
        metrics.contains("websocket_buffer_delivered_total"),
        "{metrics}"
    );
    sc.proc.signal("TERM");
    let Captured {
        mut proc,
        stdout,
        stderr,
        ..
    } = sc;
    assert_eq!(proc.child.wait().unwrap().code(), Some(0));
    std::thread::sleep(Duration::from_millis(100)); // the reader threads reach EOF
    let (stdout, stderr) = (stdout.lock().unwrap(), stderr.lock().unwrap());
    assert!(
        stdout.contains("sidecar_stopped"),
        "stdout was captured:\n{stdout}"
    );
    let exported = received.dump();
    assert!(!received.spans().is_empty() && !exported.is_empty());
    let places = [
        ("stdout", stdout.as_str()),
        ("stderr", stderr.as_str()),
        ("/metrics", metrics.as_str()),
        ("/health", health.as_str()),
        ("OTLP export", exported.as_str()),
    ];
    for (place, text) in places {
        for secret in [TOKEN, WRONG] {
            assert!(
                !text.contains(secret),
                "{secret} appeared in {place}:\n{text}"
            );
        }
    }
}
