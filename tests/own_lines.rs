//! The sidecar's own diagnostic lines, seen from outside the process: `RUST_LOG` filters them
//! (EnvFilter syntax) over `websocket.monitoring.log_level`, the lifecycle lines are written whatever
//! the filter, and the own WARN lines arrive at an OTLP receiver as log records, while the exporter's
//! own trouble stays on stderr and never becomes a record.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use support::otlp::{attr, grpc_receiver_on};
use support::*;

/// The sidecar's lines on stdout up to and including `sidecar_started`, with `RUST_LOG` set to
/// `rust_log` (or unset).
fn lines_until_started(rust_log: Option<&str>) -> Vec<Value> {
    lines_until_started_with(rust_log, &[])
}

/// [`lines_until_started`] with `env` added.
fn lines_until_started_with(rust_log: Option<&str>, env: &[(&str, &str)]) -> Vec<Value> {
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--upstream", &format!("ws://127.0.0.1:{}", dead_port())])
        .env("OTEL_SDK_DISABLED", "true")
        .env_remove("RUST_LOG")
        .env_remove("WEBSOCKET_LOG_LEVEL");
    if let Some(f) = rust_log {
        cmd.env("RUST_LOG", f);
    }
    let mut proc = spawn_piped(cmd, env);
    let mut seen = Vec::new();
    proc.wait_json(|v| {
        seen.push(v.clone());
        v["event_type"] == "sidecar_started"
    });
    seen
}

fn has(lines: &[Value], event_type: &str) -> Option<Value> {
    lines
        .iter()
        .find(|v| v["event_type"] == event_type)
        .cloned()
}

#[test]
fn rust_log_shows_and_hides_own_lines_and_the_start_is_always_said() {
    // The default (log_level info): the INFO nofile_limit line, not the DEBUG config_loaded one.
    let default = lines_until_started(None);
    assert!(has(&default, "nofile_limit").is_some(), "{default:?}");
    assert!(has(&default, "config_loaded").is_none(), "{default:?}");

    // RUST_LOG=debug: the DEBUG line is there, in the one writer's shape.
    let debug = lines_until_started(Some("debug"));
    let loaded = has(&debug, "config_loaded").unwrap_or_else(|| panic!("{debug:?}"));
    assert_eq!(loaded["level"], "DEBUG");
    assert_eq!(loaded["component"], "iskra-ws-sidecar");
    assert_eq!(loaded["log_level"], "info");
    assert!(loaded["file"].is_null(), "{loaded}");
    assert!(humantime::parse_rfc3339(loaded["timestamp"].as_str().unwrap()).is_ok());

    // RUST_LOG=warn: the INFO line is hidden, the start is still said.
    let warn = lines_until_started(Some("warn"));
    assert!(has(&warn, "nofile_limit").is_none(), "{warn:?}");
    assert!(has(&warn, "config_loaded").is_none(), "{warn:?}");
    let started = has(&warn, "sidecar_started").unwrap();
    assert_eq!(started["level"], "INFO");

    // Without RUST_LOG, websocket.monitoring.log_level decides: debug shows the DEBUG line.
    let level = lines_until_started_with(None, &[("WEBSOCKET_LOG_LEVEL", "debug")]);
    assert!(has(&level, "config_loaded").is_some(), "{level:?}");
    // And RUST_LOG wins over it for the sidecar's own lines.
    let both = lines_until_started_with(Some("warn"), &[("WEBSOCKET_LOG_LEVEL", "debug")]);
    assert!(has(&both, "config_loaded").is_none(), "{both:?}");
    assert!(has(&both, "nofile_limit").is_none(), "{both:?}");

    // A target directive: only the sidecar's own at debug.
    let scoped = lines_until_started(Some("iskra_ws_sidecar=debug"));
    assert!(has(&scoped, "config_loaded").is_some(), "{scoped:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn own_warn_lines_arrive_as_otlp_records_and_the_exporters_trouble_does_not() {
    // The collector is away at first: the exporter says so on stderr, and its line must not be
    // exported once the collector is back.
    let port = dead_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--upstream", &format!("ws://127.0.0.1:{}", dead_port())])
        .env_remove("RUST_LOG")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc-ish") // a bad OTEL_* variable: an otel_env WARN
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = Arc::new(Mutex::new(Vec::<Value>::new()));
    let err = BufReader::new(child.stderr.take().unwrap());
    let keep = stderr.clone();
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                keep.lock().unwrap().push(v);
            }
        }
    });
    let _child = Proc {
        child,
        stdout: None,
    };
    let failed = |s: &Mutex<Vec<Value>>| {
        let s = s.lock().unwrap();
        s.iter()
            .find(|v| v["event_type"] == "export_failed")
            .cloned()
    };
    eventually(Duration::from_secs(10), "export_failed on stderr", || {
        failed(&stderr).is_some()
    })
    .await;
    let line = failed(&stderr).unwrap();
    assert_eq!(
        (&line["level"], &line["component"]),
        (&"WARN".into(), &"iskra-ws-sidecar.exporter".into())
    );

    // The collector comes back on the endpoint's port: the spool drains, in order.
    let (_, rec, _h) = grpc_receiver_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let event_types = || {
        rec.log_records()
            .iter()
            .map(|r| r.event_name.clone())
            .collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(20), "the otel_env record", || {
        event_types().iter().any(|e| e == "otel_env")
    })
    .await;
    let records = rec.log_records();
    let r = records.iter().find(|r| r.event_name == "otel_env").unwrap();
    assert_eq!((r.severity_text.as_str(), r.severity_number), ("WARN", 13));
    assert_eq!(
        attr(&r.attributes, "event_type").as_deref(),
        Some("otel_env")
    );
    let message = attr(&r.attributes, "message").unwrap_or_default();
    assert!(message.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{message}");
    // Whatever was spooled while the collector was away (an exported export_failed would be right
    // behind otel_env) is sent at once, without backoff, now that it is back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let types = event_types();
    assert!(
        !types.iter().any(|e| e == "export_failed"),
        "the exporter's own trouble was exported: {types:?}"
    );
    // Nothing from the exporter's target at all.
    for r in rec.log_records() {
        let component = attr(&r.attributes, "component");
        assert_ne!(
            component.as_deref(),
            Some("iskra-ws-sidecar.exporter"),
            "{r:?}"
        );
    }
}
