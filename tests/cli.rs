//! The binary as a user meets it: bad configuration of every kind exits 64 naming key, value and what was
//! expected; environment layering (ISKRA_SIDECAR_… and the seed's WEBSOCKET_… names); help and version.

mod support;

use std::io::Write;

use support::*;

fn file(ext: &str, body: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(body.as_bytes()).unwrap();
    f
}

#[test]
fn a_missing_config_file_is_named_and_exits_64() {
    let (code, _, err) = run(&["run", "--config", "/nope/sidecar.toml"], &[]);
    assert_eq!(code, 64);
    assert!(
        err.contains("/nope/sidecar.toml") && err.contains("file not found"),
        "{err}"
    );
}

#[test]
fn every_kind_of_mistake_is_reported_at_once_with_key_value_and_expectation() {
    let f = file(".yaml", "dashboard: pulso\nlisten: 'localhost'\nupstream: 'wss://x:1'\n\
        limits: {max_connections: 0, handshake_timeout_ms: 'soon'}\nwebsocket: {heartbeat: {enabled: 'sometimes'},\n\
        reconnection: {backoff_multiplier: 0.5}}\ntypo_key: 1\n");
    let (code, _, err) = run(&["run", "--config", f.path().to_str().unwrap()], &[]);
    assert_eq!(code, 64, "{err}");
    for needle in [
        "`dashboard` = \"pulso\": expected one of pulse, seams, voices",
        "`listen` = \"localhost\": expected an address",
        "`upstream` = \"wss://x:1\": expected a ws:// or http:// URL",
        "`limits.max_connections` = 0: expected a whole number from 1",
        "`limits.handshake_timeout_ms` = \"soon\"",
        "`websocket.heartbeat.enabled` = \"sometimes\": expected true or false",
        "`websocket.reconnection.backoff_multiplier` = 0.5: expected a number from 1",
        "`typo_key` = 1: expected no such key",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn a_file_that_does_not_parse_and_an_unknown_extension_exit_64() {
    let f = file(".json", "{\"websocket\": ");
    let (code, _, err) = run(&["config", "--check", f.path().to_str().unwrap()], &[]);
    assert_eq!(code, 64);
    assert!(err.contains(f.path().to_str().unwrap()), "{err}");
    let f = file(".ini", "a=1");
    let (code, _, err) = run(&["config", "--check", f.path().to_str().unwrap()], &[]);
    assert_eq!(code, 64);
    assert!(
        err.contains("expected .toml, .yaml, .yml or .json"),
        "{err}"
    );
}

#[test]
fn bad_environment_values_are_reported_too_and_secrets_stay_masked() {
    let (code, _, err) = run(
        &["config"],
        &[
            ("ISKRA_SIDECAR_LIMITS__MAX_FRAME_SIZE", "big"),
            ("WEBSOCKET_MAX_RECONNECT", "-1"),
            ("PAGERDUTY_API_KEY", "pd-secret-123"),
        ],
    );
    assert_eq!(code, 64);
    assert!(err.contains("`limits.max_frame_size` = \"big\""), "{err}");
    assert!(
        err.contains("`websocket.reconnection.max_attempts` = -1"),
        "{err}"
    );
    let (code, out, _) = run(&["config"], &[("PAGERDUTY_API_KEY", "pd-secret-123")]);
    assert_eq!(code, 0);
    assert!(!out.contains("pd-secret-123"), "secret printed:\n{out}");
    assert!(out.contains("alerts.pagerduty_api_key = ****"), "{out}");
}

#[test]
fn config_shows_where_each_value_came_from() {
    let f = file(".toml", "dashboard = \"seams\"\n");
    let (code, out, err) = run(
        &["config", "--json", "--config", f.path().to_str().unwrap()],
        &[
            ("ISKRA_SIDECAR_LIMITS__MAX_CONNECTIONS", "77"),
            ("WEBSOCKET_PULSE_URL", "ws://10.0.0.1:3001"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dashboard"]["value"], "seams");
    assert_eq!(v["dashboard"]["source"], "file");
    assert_eq!(v["limits.max_connections"]["value"], 77);
    assert_eq!(
        v["limits.max_connections"]["source"],
        "env ISKRA_SIDECAR_LIMITS__MAX_CONNECTIONS"
    );
    assert_eq!(
        v["websocket.connections.pulse.url"]["value"],
        "ws://10.0.0.1:3001"
    );
    assert_eq!(
        v["websocket.connections.pulse.url"]["source"],
        "env WEBSOCKET_PULSE_URL"
    );
    assert_eq!(v["listen"]["source"], "default");
    let (code, out, _) = run(&["config", "--check", f.path().to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("valid"));
}

#[test]
fn help_has_examples_and_version_prints() {
    let (code, out, _) = run(&["run", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Examples:") && out.contains("--upstream"),
        "{out}"
    );
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("iskra-ws-sidecar "), "{out}");
    let (code, _, err) = run(&["run", "--bogus"], &[]);
    assert_eq!(code, 64, "{err}");
}

#[test]
fn an_address_in_use_exits_69_with_the_key_named() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, _, err) = run(&["run", "--listen", &addr, "--admin", "127.0.0.1:0"], &[]);
    assert_eq!(code, 69);
    assert!(err.contains(&addr) && err.contains("(listen)"), "{err}");
}

#[test]
fn the_probe_send_token_is_masked_in_config_output_and_never_printed() {
    let token = "cli-visible-secret-0d9c8b7a6f5e";
    let env = [("ISKRA_SIDECAR_PROBE__SEND_TOKEN", token)];
    let (code, out, err) = run(&["config", "--json"], &env);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["probe.send_token"]["value"], "****");
    assert_eq!(
        v["probe.send_token"]["source"],
        "env ISKRA_SIDECAR_PROBE__SEND_TOKEN"
    );
    let (code, text, _) = run(&["config"], &env);
    assert_eq!(code, 0);
    assert!(text.contains("probe.send_token = ****"), "{text}");
    // From a file (a mounted Secret): the path shows, the content never does.
    let f = file("", &format!("{token}\n"));
    let path = f.path().to_str().unwrap();
    let (code, json, err) = run(
        &["config", "--json"],
        &[("ISKRA_SIDECAR_PROBE__SEND_TOKEN_FILE", path)],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["probe.send_token_file"]["value"], path);
    assert_eq!(v["probe.send_token"]["value"], "", "unset: nothing to hide");
    for shown in [&out, &text, &json, &err] {
        assert!(!shown.contains(token), "token printed:\n{shown}");
    }
}

#[test]
fn a_bad_probe_send_token_or_outbox_byte_budget_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let missing = missing.to_str().unwrap();
    let (code, _, err) = run(
        &["run", "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"],
        &[("ISKRA_SIDECAR_PROBE__SEND_TOKEN_FILE", missing)],
    );
    assert_eq!(code, 64, "{err}");
    let want = format!("`probe.send_token_file` = \"{missing}\": expected a readable file");
    assert!(err.contains(&want), "{err}");
    let short = "short-secret";
    let f = file(".yaml", "websocket: {fallback: {buffer_max_bytes: 0}}\n");
    let (code, _, err) = run(
        &["config", "--check", f.path().to_str().unwrap()],
        &[("ISKRA_SIDECAR_PROBE__SEND_TOKEN", short)],
    );
    assert_eq!(code, 64, "{err}");
    for needle in [
        "`websocket.fallback.buffer_max_bytes` = 0: expected a whole number from 1024",
        "`probe.send_token` = \"****\": expected a token of 16 to 4096 visible ASCII characters",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains(short), "the token was printed:\n{err}");
    let token = "both-ways-secret-3e4f5a6b7c8d";
    let (code, _, err) = run(
        &["config"],
        &[
            ("ISKRA_SIDECAR_PROBE__SEND_TOKEN", token),
            ("ISKRA_SIDECAR_PROBE__SEND_TOKEN_FILE", missing),
        ],
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("`probe.send_token_file`") && err.contains("one way only"),
        "{err}"
    );
    assert!(!err.contains(token), "{err}");
}
