//! `check` alerts where people are: a Slack-format message to an https webhook (`--webhook`, else
//! `SLACK_WEBHOOK_URL`), a PagerDuty Events v2 trigger when `PAGERDUTY_API_KEY` is set — against local
//! HTTPS stand-ins (Python's TLS server) whose certificate a test CA signed, the CA trusted through
//! `SSL_CERT_FILE` only. Without it the certificate is refused (verification stays on); with
//! `WEBSOCKET_ENABLE_ALERTS=false` nothing is sent; no secret is ever printed.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// A test CA and a certificate for 127.0.0.1 / localhost signed by it, made with the openssl CLI.
fn test_pki(dir: &Path) {
    let sh = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is required");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=iskra test CA",
    ]);
    sh(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

/// tests/peers/https_standin.py answering `status`, and its port.
fn standin(dir: &Path, status: u16) -> (Proc, u16) {
    let (cert, key, status) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        status.to_string(),
    );
    let args = [cert.as_os_str(), key.as_os_str(), status.as_ref()];
    let mut p = python_peer("https_standin.py", &args);
    let port = p.wait_json(|v| v.get("port").is_some())["port"]
        .as_u64()
        .unwrap() as u16;
    (p, port)
}

/// The requests a stand-in received so far (it is stopped to read them all).
fn received(mut p: Proc) -> Vec<Value> {
    let _ = p.child.kill();
    let _ = p.child.wait();
    let mut out = Vec::new();
    let mut s = String::new();
    use std::io::Read;
    p.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    for l in s.lines() {
        out.push(serde_json::from_str(l).unwrap());
    }
    out
}

const SLACK_PATH: &str = "/services/T0ISKRA/B0TEST/SECRETHOOKTOKEN";
const PD_KEY: &str = "R0UTINGKEYSECRET0123456789abcdef";

/// `check` of an endpoint nobody listens on, with `env`: (exit code, stdout + stderr).
fn failing_check(env: &[(&str, &str)], extra: &[&str]) -> (i32, String) {
    let dead = format!("ws://127.0.0.1:{}", dead_port());
    let mut args = vec!["check", "--timeout", "2s"];
    args.extend_from_slice(extra);
    args.push(&dead);
    let (code, out, err) = run(&args, env);
    (code, format!("{out}{err}"))
}

#[test]
fn slack_webhook_and_pagerduty_over_https_with_a_trusted_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    test_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let (slack, slack_port) = standin(dir.path(), 200);
    let (pd, pd_port) = standin(dir.path(), 202);
    let hook = format!("https://127.0.0.1:{slack_port}{SLACK_PATH}");
    let events = format!("https://localhost:{pd_port}/v2/enqueue");
    let env = [
        ("SSL_CERT_FILE", ca),
        ("SLACK_WEBHOOK_URL", hook.as_str()),
        ("PAGERDUTY_API_KEY", PD_KEY),
        (
            "ISKRA_SIDECAR_ALERTS__PAGERDUTY_EVENTS_URL",
            events.as_str(),
        ),
    ];
    let (code, output) = failing_check(&env, &[]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("alert sent to the webhook"), "{output}");
    assert!(
        output.contains("PagerDuty event sent (HTTP 202)"),
        "{output}"
    );
    for secret in ["SECRETHOOKTOKEN", PD_KEY] {
        assert!(!output.contains(secret), "{secret} printed: {output}");
    }

    let [msg] = received(slack).try_into().expect("one Slack message");
    assert_eq!(msg["path"], SLACK_PATH);
    assert_eq!(msg["content_type"], "application/json");
    let body = &msg["body"];
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("unhealthy") && text.contains("ws://127.0.0.1:"),
        "{body}"
    );
    assert_eq!(body["blocks"][0]["type"], "header");
    assert!(body["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("NETWORK_ERROR"));

    let [ev] = received(pd).try_into().expect("one PagerDuty event");
    assert_eq!(ev["path"], "/v2/enqueue");
    let e = &ev["body"];
    assert_eq!(e["routing_key"], PD_KEY);
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["payload"]["severity"], "critical");
    assert!(e["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("unhealthy"));
    assert!(e["dedup_key"]
        .as_str()
        .unwrap()
        .starts_with("iskra-ws-sidecar-check:"));
}

#[test]
fn an_untrusted_certificate_is_refused_and_the_flag_wins_over_the_env() {
    let dir = tempfile::tempdir().unwrap();
    test_pki(dir.path());
    let (hook, port) = standin(dir.path(), 200);
    // The test CA is not among the system's roots: the TLS handshake must fail, nothing is posted.
    let url = format!("https://127.0.0.1:{port}/flag-hook");
    let (code, output) = failing_check(&[], &["--webhook", &url]);
    assert_eq!(code, 1);
    assert!(
        output.contains("webhook alert failed: TLS with 127.0.0.1"),
        "{output}"
    );
    assert!(
        received(hook).is_empty(),
        "posted through an unverified TLS connection"
    );

    // --webhook overrides SLACK_WEBHOOK_URL.
    let (hook, port) = standin(dir.path(), 200);
    let ca = dir.path().join("ca.pem");
    let flag = format!("https://127.0.0.1:{port}/flag-hook");
    let env_hook = format!("https://127.0.0.1:{port}/env-hook");
    let env = [
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("SLACK_WEBHOOK_URL", env_hook.as_str()),
    ];
    let (code, output) = failing_check(&env, &["--webhook", &flag]);
    assert_eq!(code, 1, "{output}");
    let got = received(hook);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["path"], "/flag-hook");
}

#[test]
fn alerts_switched_off_send_nothing_and_bad_urls_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    test_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let (slack, slack_port) = standin(dir.path(), 200);
    let (pd, pd_port) = standin(dir.path(), 202);
    let hook = format!("https://127.0.0.1:{slack_port}{SLACK_PATH}");
    let events = format!("https://127.0.0.1:{pd_port}/v2/enqueue");
    let env = [
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("SLACK_WEBHOOK_URL", hook.as_str()),
        ("PAGERDUTY_API_KEY", PD_KEY),
        (
            "ISKRA_SIDECAR_ALERTS__PAGERDUTY_EVENTS_URL",
            events.as_str(),
        ),
        ("WEBSOCKET_ENABLE_ALERTS", "false"),
    ];
    let (code, output) = failing_check(&env, &[]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("alerts are off"), "{output}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(received(slack).is_empty() && received(pd).is_empty());

    let (code, output) = failing_check(&[("SLACK_WEBHOOK_URL", "smtp://x/SECRET1")], &[]);
    assert_eq!(code, 64, "{output}");
    assert!(output.contains("alerts.slack_webhook_url"), "{output}");
    assert!(!output.contains("SECRET1"), "{output}");
    let (code, output) = failing_check(&[], &["--webhook", "ftp://x/"]);
    assert_eq!(code, 64, "{output}");
}
