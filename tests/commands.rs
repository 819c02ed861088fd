//! The everyday commands driven as a user would: demo (plain and in a real terminal via tmux), check
//! against a live and a dead endpoint, monitor --json, monitor --send (a file through a dashboard that
//! comes back, stdin, and a byte budget smaller than the input).

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn the_demo_shows_traffic_for_all_three_dashboards_a_held_restart_and_a_classified_error() {
    let (code, out, err) = run(
        // 9 s: the Seams dashboard is back at 6 s, and a loaded machine needs a moment to redial.
        &["demo", "--duration", "9s", "--clients", "3"],
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
        let resumed: u64 = cols[3].parse().unwrap();
        assert!(sessions > 0 && messages > 0, "{line}");
        // The Seams restart at 4 s (2 s down, resume.hold_ms 5000) is held: its open sessions resume.
        if name == "seams" {
            assert!(resumed >= 1, "the Seams restart should be held:\n{summary}");
        }
        if cols.len() > 6 {
            errors += 1;
        }
    }
    assert!(
        errors >= 1,
        "the Seams restart at 4 s must show a classified error (the prober sees it down):\n{summary}"
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

/// Kills a child that outlives `secs` (a broken --send would wait forever); disarmed on drop.
struct Watchdog(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Watchdog {
    fn new(pid: u32, secs: u64) -> Watchdog {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            for _ in 0..secs * 10 {
                std::thread::sleep(Duration::from_millis(100));
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
            }
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn monitor_send_delivers_every_line_in_order_through_a_dashboard_that_comes_back() {
    use std::io::{BufReader, Write};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let (input, cfg) = (dir.path().join("lines.txt"), dir.path().join("fast.json"));
    let (rec1, rec2) = (dir.path().join("1.jsonl"), dir.path().join("2.jsonl"));
    let lines: Vec<String> = (0..12).map(|i| format!("line {i} ✓ \"q\"")).collect();
    std::fs::write(&input, lines.join("\n") + "\n\n").unwrap(); // the empty line is skipped
    let fast = r#"{"websocket": {"reconnection": {"initial_delay": 50, "max_delay": 300}}}"#;
    std::fs::write(&cfg, fast).unwrap();
    let port = dead_port();
    let url = format!("ws://127.0.0.1:{port}");
    let (cfg, input) = (cfg.display().to_string(), input.display().to_string());
    let args = [
        "monitor", "--json", "--count", "1", "--config", &cfg, "--send",
    ];
    let mut child = Command::new(bin())
        .args(args)
        .args([&input, &url])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _dog = Watchdog::new(child.id(), 60);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut p = Proc {
        child,
        stdout: Some(stdout),
    };
    // Round 1 finds the dashboard down: nothing can be delivered yet.
    let round = p.wait_json(|v| v["event"] == "checkComplete");
    assert_eq!(round["send"]["delivered"], 0, "{round}");
    let rec = rec1.display().to_string();
    let _up = node_ws_on(port, &[("RECORD", rec.as_str()), ("PLAIN_ECHO", "1")]);
    let done = p.wait_json(|v| v["event"] == "sendComplete");
    let counts = ["queued", "delivered", "dropped", "pending"].map(|k| done[k].as_u64());
    assert_eq!(counts, [Some(12), Some(12), Some(0), Some(0)], "{done}");
    assert_eq!(recorded(&rec1), lines, "every line, in order, once");
    // 1: round 1's check failed (the dashboard was down then); the lines themselves all arrived.
    assert_eq!(p.child.wait().unwrap().code(), Some(1));

    // From stdin, to a live dashboard: a line that is not UTF-8 is reported and counted, not sent.
    let rec = rec2.display().to_string();
    let up = node_ws(&[("RECORD", rec.as_str()), ("PLAIN_ECHO", "1")]);
    let url = format!("ws://127.0.0.1:{}", up.port);
    let mut child = Command::new(bin())
        .args(args)
        .args(["-", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _dog = Watchdog::new(child.id(), 60);
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"first\n\xff\xfe bad\n\nsecond\r\n")
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a dropped line fails the run\n{stdout}{stderr}"
    );
    assert!(stderr.contains("line 2 not sent: not UTF-8"), "{stderr}");
    let done: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "sendComplete")
        .unwrap_or_else(|| panic!("no sendComplete:\n{stdout}"));
    let counts = ["queued", "delivered", "dropped", "pending"].map(|k| done[k].as_u64());
    assert_eq!(counts, [Some(2), Some(2), Some(1), Some(0)], "{done}");
    let sent: Vec<String> = recorded(&rec2)
        .into_iter()
        .filter(|m| !m.contains(r#""type":"ping""#)) // the check's own app-level ping
        .collect();
    assert_eq!(sent, ["first", "second"]);
}

#[test]
fn monitor_send_waits_for_room_under_the_byte_budget_and_drops_only_what_can_never_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cfg, rec) = (
        dir.path().join("lines.txt"),
        dir.path().join("small.json"),
        dir.path().join("received.jsonl"),
    );
    // 12 lines of 300 bytes: 3600 bytes through a 1024-byte outbox (3 lines at a time), and one line
    // longer than the whole budget, which can never be queued.
    let mut lines: Vec<String> = (0..12)
        .map(|i| format!("{i:02}{}", "é".repeat(149)))
        .collect();
    let huge = "h".repeat(2000);
    let mut input_lines = lines.clone();
    input_lines.insert(5, huge);
    std::fs::write(&input, input_lines.join("\n") + "\n").unwrap();
    let small = r#"{"websocket": {"fallback": {"buffer_max_bytes": 1024, "flush_interval": 100},
                   "reconnection": {"initial_delay": 50, "max_delay": 300}}}"#;
    std::fs::write(&cfg, small).unwrap();
    let rec_s = rec.display().to_string();
    let up = node_ws(&[("RECORD", rec_s.as_str()), ("PLAIN_ECHO", "1")]);
    let url = format!("ws://127.0.0.1:{}", up.port);
    let (cfg, input) = (cfg.display().to_string(), input.display().to_string());
    let child = Command::new(bin())
        .args(["monitor", "--json", "--count", "1", "--config", &cfg])
        .args(["--send", &input, &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _dog = Watchdog::new(child.id(), 60);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains(
            "line 6 not sent: 2000 bytes, over websocket.fallback.buffer_max_bytes (1024)"
        ),
        "{stderr}"
    );
    let done: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "sendComplete")
        .unwrap_or_else(|| panic!("no sendComplete:\n{stdout}{stderr}"));
    let counts = ["queued", "delivered", "dropped", "pending"].map(|k| done[k].as_u64());
    assert_eq!(counts, [Some(12), Some(12), Some(1), Some(0)], "{done}");
    assert_eq!(out.status.code(), Some(1), "a dropped line fails the run");
    let got: Vec<String> = recorded(&rec)
        .into_iter()
        .filter(|m| !m.contains(r#""type":"ping""#)) // the check's own app-level ping
        .collect();
    lines.retain(|l| l.len() == 300);
    assert_eq!(got, lines, "every line that fits, in order, once");
}
