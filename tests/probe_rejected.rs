//! The prober refused by a dashboard that wants a token (tests/peers/third-party.js `token`): one WARN
//! line per change of state with the status and a hint, never one per attempt; `/health` a WARNING with
//! the reason (rates still 0–100 %), not an error of the dashboard's clients; `/ready` 200 — unless
//! `probe.gates_readiness`, when it follows the prober.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::third_party::{config, rates_add_up, ready_within, server, TOKEN};
use support::*;

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
    assert_eq!(
        (&p["state"], &p["status"]),
        (&"probe_rejected".into(), &401.into()),
        "{h}"
    );
    assert!(p["hint"].as_str().unwrap().contains("probe.headers"), "{h}");
    assert_eq!(p["failure_rate_percent"], 0.0);
    assert!(h["issues"][0]["issue"]
        .as_str()
        .unwrap()
        .contains("HTTP 401"));
    // Not a connection error of the dashboard's clients.
    assert_eq!(
        metric(
            sc.admin,
            "websocket_errors_total",
            &[("error_type", "AUTHENTICATION_FAILED")]
        )
        .await,
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
    // The line is written by the telemetry task and read from the pipe by another thread: on a busy
    // machine it can trail the metric, so wait for it (it must then be the only one).
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines.lock().unwrap().iter().filter(|v| rejected(v)).count() == 0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        lines.lock().unwrap().iter().filter(|v| rejected(v)).count(),
        1
    );
    let line = lines
        .lock()
        .unwrap()
        .iter()
        .find(|v| rejected(v))
        .cloned()
        .unwrap();
    assert_eq!(
        (&line["level"], &line["http.response.status_code"]),
        (&"WARN".into(), &401.into())
    );
    assert!(line["hint"].as_str().unwrap().contains("probe.path"));
    assert_eq!(count(&lines, "connection_failed"), 0);
    assert_eq!(count(&lines, "reconnection_attempt"), 0);

    // The dashboard goes away (a change: the prober logs its failures), then comes back refusing
    // again on the same port: one more refusal line, not one per attempt.
    drop(peer);
    let t0 = Instant::now();
    while count(&lines, "connection_failed") == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no connection_failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_peer, _) = server("token", port);
    health_until(sc.admin, "refused again", |h| {
        h["inputs"]["prober"]["state"] == "probe_rejected"
    })
    .await;
    let before = metric(
        sc.admin,
        "websocket_reconnects_total",
        &[("error_type", "probe_rejected")],
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    while metric(
        sc.admin,
        "websocket_reconnects_total",
        &[("error_type", "probe_rejected")],
    )
    .await
    .unwrap()
        < before + 3.0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "more refused attempts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        lines.lock().unwrap().iter().filter(|v| rejected(v)).count(),
        2
    );
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
