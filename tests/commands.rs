//! The everyday commands driven as a user would: demo (plain and in a real terminal via tmux), check
//! against a live and a dead endpoint, monitor --json.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn the_demo_shows_traffic_for_all_three_dashboards_and_a_classified_error() {
    let (code, out, err) = run(
        &["demo", "--duration", "7s", "--clients", "3"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")],
    );
    assert_eq!(code, 0, "{err}");
    let summary = out
        .split("SUMMARY")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    let mut errors = 0;
    for name in ["pulse", "seams", "voices"] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{summary}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        let sessions: u64 = cols[1].parse().unwrap();
        let messages: u64 = cols[2].parse().unwrap();
        assert!(sessions > 0 && messages > 0, "{line}");
        if cols.len() > 5 {
            errors += 1;
        }
    }
    assert!(
        errors >= 1,
        "the Seams restart at 4 s must show a classified error:\n{summary}"
    );
    assert!(summary.contains("NET"), "{summary}");
    // Telemetry went to a file whose path was printed, as OTLP JSON lines.
    let path = out
        .lines()
        .find_map(|l| l.split("OTLP JSON lines → ").nth(1))
        .expect("telemetry path printed")
        .trim()
        .to_string();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("\"resourceSpans\"") && l.contains("ws.session")),
        "spans in {path}"
    );
    assert!(text
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
}

#[test]
fn the_demo_fits_an_80_column_terminal() {
    let name = format!("iskra-demo-{}", std::process::id());
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "80",
            "-y",
            "24",
            &format!("{} demo --duration 6s --clients 2; sleep 5", bin()),
        ])
        .status()
        .expect("tmux is missing: run scripts/install-test-deps.sh");
    assert!(ok.success());
    std::thread::sleep(Duration::from_secs(4));
    let screen = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", &name])
        .output()
        .unwrap();
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &name])
        .status();
    let screen = String::from_utf8_lossy(&screen.stdout).to_string();
    println!("{screen}");
    assert!(
        screen.contains("DASH") && screen.contains("HEALTH"),
        "{screen}"
    );
    for name in ["pulse", "seams", "voices"] {
        assert!(
            screen.lines().any(|l| l.starts_with(name)),
            "{name} row on screen:\n{screen}"
        );
    }
    // The pane is 100 wide so that nothing wraps: every line the demo draws must fit in 80.
    for l in screen.lines() {
        assert!(
            l.trim_end().chars().count() <= 80,
            "wider than 80 columns: {l:?}"
        );
    }
}

#[test]
fn check_reports_real_statuses_and_exit_codes() {
    let up = node_ws(&[]);
    let live = format!("ws://127.0.0.1:{}", up.port);
    let dead = format!("ws://127.0.0.1:{}", dead_port());
    let (code, out, err) = run(&["check", "--json", &live], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let e = &v["endpoints"][0];
    assert_eq!(
        (
            e["healthy"].as_bool(),
            e["websocket"]["ok"].as_bool(),
            e["ping"]["ok"].as_bool(),
            e["http"]["ok"].as_bool()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    assert!(e["ping"]["ms"].as_f64().unwrap() >= 0.0);
    let (code, out, _) = run(&["check", "--json", &live, &dead], &[]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["endpoints"][1]["healthy"], false);
    assert_eq!(v["endpoints"][1]["websocket"]["error"], "NETWORK_ERROR");
    let (code, _, _) = run(
        &["check", &format!("http://127.0.0.1:{}/health", up.port)],
        &[],
    );
    assert_eq!(code, 0);
    let (code, out, _) = run(&["check", &dead], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("FAILED"), "{out}");
    let (code, _, err) = run(&["check", "--config", "/nope.yaml"], &[]);
    assert_eq!(code, 64, "{err}");
}

#[test]
fn monitor_json_lines_parse() {
    let up = node_ws(&[]);
    let (code, out, err) = run(
        &[
            "monitor",
            "--json",
            "--count",
            "2",
            "--interval",
            "200ms",
            &format!("ws://127.0.0.1:{}", up.port),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let complete: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "checkComplete")
        .collect();
    assert_eq!(complete.len(), 2);
    assert_eq!(complete[1]["endpoints"][0]["success_rate"], 1.0);
    assert_eq!(complete[1]["endpoints"][0]["checks"], 2);
}
