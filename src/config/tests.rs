//! Config layering and validation tests.

use super::*;
use std::io::Write;

fn write(ext: &str, body: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(body.as_bytes()).unwrap();
    f
}

const SEED_JSON: &str = r#"{"websocket": {
  "connections": {"pulse": {"url": "ws://localhost:3001", "name": "Pulse Dashboard", "priority": 1,
                             "backup_urls": ["ws://backup-pulse.iskra.local:3001"]}},
  "reconnection": {"max_attempts": 10, "initial_delay": 1000, "backoff_multiplier": 1.5,
                   "max_delay": 30000, "jitter": true},
  "heartbeat": {"enabled": true, "interval": 30000, "timeout": 10000, "failure_threshold": 3},
  "monitoring": {"metrics_enabled": true, "alerting_enabled": true, "log_level": "info",
                 "performance_tracking": true},
  "fallback": {"enabled": true, "protocol_downgrade": true, "buffer_messages": true,
               "buffer_max_size": 1000, "degraded_service": true},
  "slo_thresholds": {"connection_latency_ms": {"target": 185, "warning": 500, "critical": 1000},
                     "availability_percent": {"target": 99.9, "warning": 99.0, "critical": 95.0},
                     "error_rate_percent": {"target": 0.1, "warning": 1.0, "critical": 5.0}}}}"#;

#[test]
fn defaults_are_valid_and_suit_a_pod() {
    let c = from_tree(&defaults()).unwrap();
    assert_eq!(c.upstream.authority(), "127.0.0.1:3001");
    assert_eq!(c.admin.port(), 8080);
    assert_eq!(c.limits.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.heartbeat.failure_threshold, 3);
    assert_eq!(c.connections.len(), 3);
}

#[test]
fn the_seed_json_loads_as_written() {
    let f = write(".json", SEED_JSON);
    let c = load(&Sources {
        file: Some(f.path().into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.reconnection.backoff_multiplier, 1.5);
    assert_eq!(c.slo_latency_ms.target, 185.0);
    assert_eq!(
        c.connections["pulse"].backup_urls,
        vec!["ws://backup-pulse.iskra.local:3001"]
    );
}

#[test]
fn toml_and_yaml_load_by_extension() {
    let t = write(
        ".toml",
        "dashboard = \"seams\"\n[limits]\nmax_connections = 7\n",
    );
    let c = load(&Sources {
        file: Some(t.path().into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (c.dashboard.as_str(), c.limits.max_connections),
        ("seams", 7)
    );
    let y = write(
        ".yaml",
        "dashboard: voices\nupstream: ws://127.0.0.1:3003\n",
    );
    let c = load(&Sources {
        file: Some(y.path().into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((c.dashboard.as_str(), c.upstream.port), ("voices", 3003));
}

#[test]
fn every_bad_key_is_reported_at_once() {
    let f = write(
        ".yaml",
        "dashboard: nope\nlisten: 'not-an-addr'\nlimits: {max_connections: -3, bogus: 1}\n\
         websocket: {heartbeat: {enabled: maybe}}\nupstream: wss://x\n",
    );
    let errs = load(&Sources {
        file: Some(f.path().into()),
        ..Default::default()
    })
    .unwrap_err();
    let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
    for k in [
        "dashboard",
        "listen",
        "limits.max_connections",
        "limits.bogus",
        "websocket.heartbeat.enabled",
        "upstream",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let text = errs.to_string();
    assert!(
        text.contains("`dashboard` = \"nope\": expected one of pulse, seams, voices"),
        "{text}"
    );
}

#[test]
fn a_named_file_that_does_not_exist_is_an_error() {
    let errs = load(&Sources {
        file: Some("/nonexistent/x.toml".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(errs.to_string().contains("/nonexistent/x.toml"));
    assert!(errs.to_string().contains("file not found"));
}

#[test]
fn flags_win_over_file() {
    let f = write(".toml", "upstream = \"ws://127.0.0.1:4000\"\n");
    let s = Sources {
        file: Some(f.path().into()),
        flags: vec![("upstream", Value::String("ws://127.0.0.1:5000".into()))],
    };
    assert_eq!(load(&s).unwrap().upstream.port, 5000);
}

#[test]
fn secrets_are_masked_in_errors() {
    let tree = serde_json::json!({"alerts": {"pagerduty_api_key": {"x": 1}}});
    let mut r = Reader::new(&tree);
    r.uint("alerts.pagerduty_api_key", 0, 1);
    let e = r.finish().unwrap_err();
    assert!(!e.to_string().contains("\"x\""), "{e}");
    assert!(e.to_string().contains("****"));
}

#[test]
fn upstream_urls_parse() {
    assert_eq!(
        Upstream::parse("ws://localhost:3001/x")
            .unwrap()
            .authority(),
        "localhost:3001"
    );
    assert_eq!(
        Upstream::parse("http://[::1]:9").unwrap().authority(),
        "[::1]:9"
    );
    assert_eq!(Upstream::parse("ws://h").unwrap().port, 80);
    assert!(Upstream::parse("wss://h:1").is_err());
    assert!(Upstream::parse("ws://u:p@h:1").is_err());
    assert!(Upstream::parse("ws://h:99999").is_err());
}

#[test]
fn resume_is_off_by_default_and_its_keys_are_checked() {
    let c = from_tree(&defaults()).unwrap();
    assert!(!c.resume.enabled(), "a bare binary stays transparent");
    assert_eq!(
        (c.resume.buffer_bytes, c.resume.replay_messages),
        (1 << 20, 0)
    );
    let bad = "resume: {hold_ms: -5, buffer_bytes: lots, replay_messages: 5000}\n";
    let errs = load_file(".yaml", bad).unwrap_err();
    let text = errs.to_string();
    for k in [
        "resume.hold_ms",
        "resume.buffer_bytes",
        "resume.replay_messages",
    ] {
        assert!(text.contains(&format!("`{k}`")), "{k}: {text}");
    }
    assert!(
        text.contains("`resume.replay_messages` = 5000: expected a whole number from 0 to 1000"),
        "{text}"
    );
    let c = load_file(".toml", "[resume]\nhold_ms = 5000\n").unwrap();
    assert_eq!(c.resume.hold, std::time::Duration::from_secs(5));
}

/// Loads a config file with extension `ext` holding `text`.
fn load_file(ext: &str, text: &str) -> Result<Config, ConfigErrors> {
    let f = write(ext, text);
    load(&Sources {
        file: Some(f.path().into()),
        ..Default::default()
    })
}

#[test]
fn the_probe_path_defaults_to_the_upstream_urls_path_and_query() {
    let u = |s: &str| Upstream::parse(s).unwrap().path_and_query();
    assert_eq!(u("ws://127.0.0.1:3001"), "/");
    assert_eq!(u("ws://127.0.0.1:3001/"), "/");
    assert_eq!(
        u("ws://h:1/socket.io/?EIO=4&transport=websocket"),
        "/socket.io/?EIO=4&transport=websocket"
    );
    assert_eq!(u("ws://h:1?x=1"), "/?x=1");
}

#[test]
fn probe_headers_are_masked_wherever_a_value_is_shown() {
    assert!(is_secret("probe.headers.Authorization"));
    assert!(!is_secret("probe.header_files.Authorization"));
    let mut tree = defaults();
    tree["probe"]["headers"] = serde_json::json!({"Host": "secret-host-value"});
    let e = from_tree(&tree).unwrap_err().to_string();
    assert!(
        e.contains("probe.headers.Host") && !e.contains("secret-host-value"),
        "{e}"
    );
}
