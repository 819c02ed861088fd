//! The close code in spans, logs and `websocket.closes` is the one the client got (or sent), with the
//! upstream's own code beside it: checked with a real client (Python `websockets`) and a real dashboard
//! (node `ws`), through the sidecar binary, against an OTLP receiver.

mod support;

use std::time::Duration;

use support::otlp::{attr, grpc_receiver, Received};
use support::*;

const FAST: &[(&str, &str)] = &[
    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
];

/// tests/peers/close_client.py connected to `url` in `mode`, once it printed `{"open": true}`.
fn py_client(url: &str, mode: &str) -> Proc {
    let mut p = python_peer("close_client.py", &[url.as_ref(), mode.as_ref()]);
    p.wait_json(|v| v["open"] == true);
    p
}

/// The close code the Python client reports it got.
fn client_code(p: &mut Proc) -> u64 {
    let v = p.wait_json(|v| v.get("close_code").is_some());
    v["close_code"].as_u64().unwrap()
}

async fn wait_for(rec: &Received, what: &str, f: impl Fn(&Received) -> bool) {
    let t0 = std::time::Instant::now();
    while !f(rec) {
        assert!(t0.elapsed() < Duration::from_secs(15), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (client code, upstream code) of every `ws.session` span, in arrival order.
fn span_codes(rec: &Received) -> Vec<(String, String)> {
    rec.spans()
        .iter()
        .filter(|s| s.name == "ws.session")
        .map(|s| {
            let a = |k| attr(&s.attributes, k).unwrap_or_else(|| panic!("{k} missing"));
            (
                a("websocket.close.code"),
                a("websocket.upstream.close.code"),
            )
        })
        .collect()
}

/// (client code, upstream code) of every exported `Close` log record.
fn log_codes(rec: &Received) -> Vec<(String, String)> {
    rec.log_records()
        .iter()
        .filter_map(|l| {
            let c = attr(&l.attributes, "websocket.close.code")?;
            let u = attr(&l.attributes, "websocket.upstream.close.code")?;
            (attr(&l.attributes, "websocket.close.reason").is_some()).then_some((c, u))
        })
        .collect()
}

fn closes(rec: &Received, code: &str, upstream: &str) -> f64 {
    rec.latest_sum(
        "websocket.closes",
        &[
            ("websocket.close.code", code),
            ("websocket.upstream.close.code", upstream),
        ],
    )
    .unwrap_or(0.0)
}

async fn traced_sidecar(upstream_port: u16) -> (Sidecar, Received) {
    traced_sidecar_with(upstream_port, &[]).await
}

async fn traced_sidecar_with(upstream_port: u16, extra: &[(&str, &str)]) -> (Sidecar, Received) {
    let (otlp, rec, _h) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let mut env = FAST.to_vec();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()));
    env.extend_from_slice(extra);
    let upstream = format!("ws://127.0.0.1:{upstream_port}");
    (sidecar(&upstream, &[], &env), rec)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_dashboard_is_1012_for_the_client_and_1006_upstream_in_spans_logs_and_metrics() {
    let mut up = node_ws(&[]);
    let (sc, rec) = traced_sidecar(up.port).await;
    let mut client = py_client(&format!("ws://{}/live", sc.addr), "wait");
    // The dashboard dies without a close frame.
    up.proc.child.kill().unwrap();
    let _ = up.proc.child.wait();
    assert_eq!(client_code(&mut client), 1012, "what the browser sees");
    wait_for(&rec, "the session span", |r| !span_codes(r).is_empty()).await;
    let want = ("1012".to_string(), "1006".to_string());
    assert_eq!(span_codes(&rec), std::slice::from_ref(&want));
    wait_for(&rec, "the close log", |r| !log_codes(r).is_empty()).await;
    assert_eq!(log_codes(&rec), [want]);
    wait_for(&rec, "websocket.closes{1012,1006}", |r| {
        closes(r, "1012", "1006") == 1.0
    })
    .await;
    assert_eq!(
        rec.latest_sum("websocket.closes", &[("websocket.close.code", "1006")]),
        None,
        "no series says the client got 1006"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_that_gives_up_records_the_clients_1012_and_the_upstreams_1006() {
    // With session resume on, the dashboard's death is held first; it stays dead past the window.
    let mut up = node_ws(&[]);
    let (sc, rec) = traced_sidecar_with(up.port, &[("ISKRA_SIDECAR_RESUME__HOLD_MS", "300")]).await;
    let mut client = py_client(&format!("ws://{}/live", sc.addr), "wait");
    up.proc.child.kill().unwrap();
    let _ = up.proc.child.wait();
    assert_eq!(client_code(&mut client), 1012, "what the browser sees");
    wait_for(&rec, "the session span", |r| !span_codes(r).is_empty()).await;
    assert_eq!(span_codes(&rec), [("1012".to_string(), "1006".to_string())]);
    wait_for(&rec, "websocket.closes{1012,1006}", |r| {
        closes(r, "1012", "1006") == 1.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn normal_closes_carry_the_same_code_on_both_sides() {
    let up = node_ws(&[]);
    // A clean close is logged at DEBUG by default (issue 15); this test reads the close records.
    let (sc, rec) = traced_sidecar_with(up.port, &[("WEBSOCKET_LOG_LEVEL", "debug")]).await;
    let url = format!("ws://{}/live", sc.addr);
    // The client closes with 4002; then the dashboard closes with 4003.
    let mut c = py_client(&url, "close:4002");
    assert_eq!(client_code(&mut c), 4002);
    wait_for(&rec, "the first session", |r| span_codes(r).len() == 1).await;
    let mut c = py_client(&url, "ask:4003");
    assert_eq!(client_code(&mut c), 4003);
    wait_for(&rec, "both sessions", |r| span_codes(r).len() == 2).await;
    let pair = |c: &str| (c.to_string(), c.to_string());
    assert_eq!(span_codes(&rec), [pair("4002"), pair("4003")]);
    wait_for(&rec, "both close logs", |r| log_codes(r).len() == 2).await;
    assert_eq!(log_codes(&rec), [pair("4002"), pair("4003")]);
    wait_for(&rec, "both close counts", |r| {
        closes(r, "4002", "4002") == 1.0 && closes(r, "4003", "4003") == 1.0
    })
    .await;
}
