//! Scripted sessions through the sidecar binary, and exactly what arrives at OTLP receivers built on the
//! official `opentelemetry-proto` definitions (gRPC and HTTP): spans, attributes from the seed's
//! tables, metric sums equal to the messages relayed, the resource, and no secrets anywhere.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use support::otlp::{attr, grpc_receiver, http_receiver, Received};
use support::*;

const FAST: &[(&str, &str)] = &[
    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
];

/// [`FAST`], exporting over OTLP to `endpoint`, and `extra`.
fn exporting<'a>(endpoint: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = FAST.to_vec();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint));
    env.extend_from_slice(extra);
    env
}

/// Opens a session through `addr` and sends an unmasked client frame (a protocol violation); returns
/// the raw connection, to keep it open.
async fn unmasked_frame(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    let mut raw = match ws.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s,
        _ => unreachable!(),
    };
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    raw
}

/// N sessions of M messages each, closed with the given codes, with secrets in headers and query.
async fn scripted_sessions(addr: std::net::SocketAddr, codes: &[u16], m: usize) {
    for (n, code) in codes.iter().enumerate() {
        let mut req = format!("ws://{addr}/stream/{n}?token=SECRET-TOKEN-{n}&room=1")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Authorization", "Bearer SECRET-BEARER".parse().unwrap());
        req.headers_mut()
            .insert("Cookie", "sid=SECRET-COOKIE".parse().unwrap());
        req.headers_mut()
            .insert("User-Agent", "iskra-test/1.0".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        for i in 0..m {
            ws.send(Message::text(format!("message {i}")))
                .await
                .unwrap();
            ws.next().await.unwrap().unwrap();
        }
        ws.close(Some(CloseFrame {
            code: (*code).into(),
            reason: format!("bye {code}").into(),
        }))
        .await
        .unwrap();
        while ws.next().await.is_some() {}
    }
}

async fn wait_for(rec: &Received, what: &str, f: impl Fn(&Received) -> bool) {
    let t0 = std::time::Instant::now();
    while !f(rec) {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}; got spans {:?}",
            rec.spans()
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The spans of proxied sessions (not the prober's `ws.reconnect.attempt`).
fn proxied(rec: &Received) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    rec.spans()
        .into_iter()
        .filter(|s| s.name != "ws.reconnect.attempt")
        .collect()
}

fn sessions(rec: &Received) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    rec.spans()
        .into_iter()
        .filter(|s| s.name == "ws.session")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_arrive_over_grpc_as_spans_metrics_and_logs_with_the_seed_values() {
    let up = node_ws(&[]);
    let (otlp, rec, _h) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let env = exporting(
        &endpoint,
        &[
            ("OTEL_SERVICE_NAME", "pulse-sidecar"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored,deployment.environment=test",
            ),
            ("POD_NAME", "pulse-abc"),
            ("POD_NAMESPACE", "iskra-ecosystem"),
            ("NODE_NAME", "node-1"),
            // A session's clean open and close log at DEBUG by default (issue 15); the correlation check
            // below reads the connection_established record.
            ("WEBSOCKET_LOG_LEVEL", "debug"),
        ],
    );
    let sc = sidecar(
        &format!("ws://127.0.0.1:{}", up.port),
        &["--dashboard", "pulse"],
        &env,
    );
    let codes = [1000u16, 1001, 4000];
    scripted_sessions(sc.addr, &codes, 5).await;
    wait_for(&rec, "3 ws.session spans", |r| sessions(r).len() >= 3).await;
    let spans = sessions(&rec);
    assert_eq!(spans.len(), 3, "exactly one ws.session per connection");
    let mut seen_codes: Vec<String> = spans
        .iter()
        .map(|s| attr(&s.attributes, "websocket.close.code").unwrap())
        .collect();
    seen_codes.sort();
    assert_eq!(seen_codes, ["1000", "1001", "4000"]);
    for s in &spans {
        let a = |k| attr(&s.attributes, k).unwrap_or_else(|| panic!("missing {k}"));
        assert!(a("url.path").starts_with("/stream/"));
        assert_eq!(a("server.address"), "127.0.0.1");
        assert_eq!(a("server.port"), up.port.to_string());
        assert_eq!(a("client.address"), "127.0.0.1");
        assert_eq!(a("network.protocol.name"), "websocket");
        assert_eq!(a("user_agent.original"), "iskra-test/1.0");
        assert_eq!(a("websocket.close.initiator"), "client");
        assert_eq!(
            (
                a("websocket.messages.received"),
                a("websocket.messages.sent")
            ),
            ("5".into(), "5".into())
        );
        assert_eq!(a("iskra.dashboard"), "pulse");
        // A normal close is the seed's "(anything else)" row: Ω 0.5, Λ continue_monitoring, seam general_operation.
        assert_eq!(
            (a("iskra.omega"), a("iskra.lambda"), a("iskra.seam.id")),
            (
                "0.5".into(),
                "continue_monitoring".into(),
                "general_operation".into()
            )
        );
        assert_eq!(
            s.status.as_ref().unwrap().code,
            0,
            "a clean close is not an error"
        );
        assert!(attr(&s.attributes, "error.type").is_none());
    }
    // Steps: by default events of the session's span (no child spans), each at its start within the
    // session, with its duration; the handshake's carries its Δ and Ω.
    assert_eq!(proxied(&rec).len(), 3, "one span per session, no children");
    for s in &spans {
        let names: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ws.upstream.connect", "ws.handshake", "ws.close"]);
        for e in &s.events {
            assert!(
                (s.start_time_unix_nano..=s.end_time_unix_nano).contains(&e.time_unix_nano),
                "{} within its session",
                e.name
            );
            let ms: f64 = attr(&e.attributes, "websocket.step.duration_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} has its duration", e.name));
            let span_ms = (s.end_time_unix_nano - s.start_time_unix_nano) as f64 / 1e6;
            assert!((0.0..=span_ms).contains(&ms), "{}: {ms} ms", e.name);
        }
        let hs = &s.events[1];
        assert_eq!(
            (
                attr(&hs.attributes, "iskra.delta").unwrap(),
                attr(&hs.attributes, "iskra.omega").unwrap(),
                attr(&hs.attributes, "http.response.status_code").unwrap()
            ),
            ("connection_established".into(), "0.9".into(), "101".into())
        );
    }
    // Resource: OTEL_SERVICE_NAME wins; the downward API fills k8s.*.
    let res = &rec.span_resources()[0];
    assert_eq!(attr(res, "service.name").as_deref(), Some("pulse-sidecar"));
    assert_eq!(attr(res, "deployment.environment").as_deref(), Some("test"));
    assert_eq!(attr(res, "k8s.pod.name").as_deref(), Some("pulse-abc"));
    assert_eq!(
        attr(res, "k8s.namespace.name").as_deref(),
        Some("iskra-ecosystem")
    );
    assert_eq!(attr(res, "k8s.node.name").as_deref(), Some("node-1"));
    assert_eq!(
        attr(res, "service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    // Metrics: sums equal the messages relayed.
    wait_for(&rec, "message counts", |r| {
        r.latest_sum("websocket.messages", &[("network.io.direction", "receive")]) == Some(15.0)
    })
    .await;
    assert_eq!(
        rec.latest_sum(
            "websocket.messages",
            &[("network.io.direction", "transmit")]
        ),
        Some(15.0)
    );
    assert_eq!(
        rec.latest_sum("websocket_connections_total", &[("state", "connected")]),
        Some(3.0)
    );
    // Logs: correlated with the session spans.
    wait_for(&rec, "logs", |r| {
        r.log_records()
            .iter()
            .any(|l| l.event_name == "connection_established")
    })
    .await;
    let correlated = rec
        .log_records()
        .iter()
        .filter(|l| l.event_name == "connection_established")
        .any(|l| {
            spans
                .iter()
                .any(|s| s.trace_id == l.trace_id && s.span_id == l.span_id)
        });
    assert!(
        correlated,
        "the handshake log carries its session's trace and span ids"
    );
    // Every attribute key that arrived is listed in telemetry-schema.yaml.
    use figment::providers::Format;
    let schema: serde_json::Value = figment::Figment::new()
        .merge(figment::providers::Yaml::file_exact(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/telemetry-schema.yaml"
        )))
        .extract()
        .unwrap();
    let listed = |k: &str| {
        ["attributes", "log_attributes", "resource", "metric_labels"]
            .iter()
            .any(|sec| schema[sec].get(k).is_some())
    };
    let mut keys: Vec<String> = rec
        .spans()
        .iter()
        .flat_map(|s| s.attributes.iter().map(|a| a.key.clone()))
        .collect();
    keys.extend(
        rec.log_records()
            .iter()
            .flat_map(|l| l.attributes.iter().map(|a| a.key.clone())),
    );
    let unlisted: std::collections::BTreeSet<_> = keys.into_iter().filter(|k| !listed(k)).collect();
    assert!(
        unlisted.is_empty(),
        "exported but not in the schema: {unlisted:?}"
    );
    // Redaction: no secret anywhere in what was exported.
    let dump = rec.dump();
    for secret in ["SECRET-TOKEN", "SECRET-BEARER", "SECRET-COOKIE", "token="] {
        assert!(
            !dump.contains(secret),
            "{secret} leaked into exported telemetry"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_errors_with_their_seed_class_over_http() {
    let (otlp, rec) = http_receiver().await;
    let mut env = FAST.to_vec();
    let endpoint = format!("http://{otlp}");
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    // A refused upstream.
    let sc = sidecar(
        &format!("ws://127.0.0.1:{}", dead_port()),
        &["--dashboard", "seams"],
        &env,
    );
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{}/", sc.addr))
            .await
            .is_err()
    );
    wait_for(&rec, "rejected session", |r| !sessions(r).is_empty()).await;
    let s = &sessions(&rec)[0];
    assert_eq!(
        s.status.as_ref().unwrap().code,
        2,
        "refused upstream is an error"
    );
    assert_eq!(
        attr(&s.attributes, "error.type").as_deref(),
        Some("NETWORK_ERROR")
    );
    assert_eq!(
        attr(&s.attributes, "http.response.status_code").as_deref(),
        Some("502")
    );
    assert_eq!(
        attr(&s.attributes, "iskra.dashboard").as_deref(),
        Some("seams")
    );
    wait_for(&rec, "error counter", |r| {
        r.latest_sum("websocket_errors_total", &[("error_type", "NETWORK_ERROR")])
            .unwrap_or(0.0)
            >= 1.0
    })
    .await;

    // A protocol violation: an unmasked client frame.
    let up = node_ws(&[]);
    let (otlp2, rec2) = http_receiver().await;
    let endpoint2 = format!("http://{otlp2}");
    let mut env2 = FAST.to_vec();
    env2.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint2.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    let sc2 = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &env2);
    let _raw = unmasked_frame(sc2.addr).await;
    wait_for(&rec2, "protocol error session", |r| !sessions(r).is_empty()).await;
    let s = &sessions(&rec2)[0];
    assert_eq!(s.status.as_ref().unwrap().code, 2);
    assert_eq!(
        attr(&s.attributes, "error.type").as_deref(),
        Some("PROTOCOL_ERROR")
    );
    assert_eq!(
        attr(&s.attributes, "websocket.close.code").as_deref(),
        Some("1002")
    );
    assert_eq!(
        attr(&s.attributes, "websocket.close.initiator").as_deref(),
        Some("sidecar")
    );
    assert_eq!(
        attr(&s.attributes, "websocket.protocol_error.rule").as_deref(),
        Some("unmasked_client_frame")
    );
}

/// `telemetry.step_spans: true`: the steps are child spans of the session's span again (the layout
/// before issue 15), with the same Δ and Ω.
#[tokio::test(flavor = "multi_thread")]
async fn the_step_spans_switch_exports_the_steps_as_child_spans() {
    let up = node_ws(&[]);
    let (otlp, rec, _h) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let env = exporting(
        &endpoint,
        &[("ISKRA_SIDECAR_TELEMETRY__STEP_SPANS", "true")],
    );
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &env);
    scripted_sessions(sc.addr, &[1000, 1001], 1).await;
    wait_for(&rec, "2 sessions and their 6 steps", |r| {
        proxied(r).len() >= 8
    })
    .await;
    let all = proxied(&rec);
    let spans = sessions(&rec);
    assert_eq!((spans.len(), all.len()), (2, 8));
    for s in &spans {
        assert!(s.events.is_empty(), "the steps are spans, not events");
        for child in ["ws.handshake", "ws.upstream.connect", "ws.close"] {
            assert!(
                all.iter().any(|c| c.name == child
                    && c.trace_id == s.trace_id
                    && c.parent_span_id == s.span_id),
                "{child} under its session"
            );
        }
    }
    let hs = all.iter().find(|c| c.name == "ws.handshake").unwrap();
    assert_eq!(
        (
            attr(&hs.attributes, "iskra.delta").unwrap(),
            attr(&hs.attributes, "iskra.omega").unwrap()
        ),
        ("connection_established".into(), "0.9".into())
    );
}

/// The default level (`info`): a session's clean open and close write no line — its span carries the
/// same ∆DΩΛ — while trouble still does; at `debug` they are there. Every line, the sidecar's own
/// included, has the one writer's shape.
#[tokio::test(flavor = "multi_thread")]
async fn a_clean_session_logs_no_line_at_the_default_level_and_trouble_still_does() {
    let up = node_ws(&[]);
    let upstream = format!("ws://127.0.0.1:{}", up.port);
    let off = [("OTEL_SDK_DISABLED", "true")];
    let (sc, lines) = sidecar_logged(&upstream, &[], &off);
    scripted_sessions(sc.addr, &[1000, 1001], 1).await;
    // Then a protocol violation (an unmasked client frame). One consumer takes the events in order, so
    // once its line is out, the clean sessions' events have been through the level check.
    let _raw = unmasked_frame(sc.addr).await;
    let has = |l: &Lines, delta: &str| l.lock().unwrap().iter().any(|v| v["delta"] == delta);
    eventually(
        Duration::from_secs(10),
        "the protocol violation's line",
        || has(&lines, "error_handled"),
    )
    .await;
    let routine = [
        "connection_established",
        "connection_closed",
        "session_ended",
    ];
    let got = lines.lock().unwrap().clone();
    for delta in routine {
        // (The prober's own connection_established has no session and stays INFO.)
        let session_line =
            |v: &&serde_json::Value| v["delta"] == delta && !v["session_id"].is_null();
        let found: Vec<_> = got.iter().filter(session_line).collect();
        assert!(found.is_empty(), "{delta} is DEBUG by default: {found:?}");
    }
    let pv = got.iter().find(|v| v["delta"] == "protocol_violation");
    assert_eq!(pv.map(|v| &v["level"]), Some(&"ERROR".into()), "{got:?}");

    // At debug, the same clean session's open, close and end are logged, with its ids.
    let debug = [
        ("OTEL_SDK_DISABLED", "true"),
        ("WEBSOCKET_LOG_LEVEL", "debug"),
    ];
    let (sc2, lines2) = sidecar_logged(&upstream, &[], &debug);
    scripted_sessions(sc2.addr, &[1000], 1).await;
    eventually(Duration::from_secs(10), "session_ended at debug", || {
        has(&lines2, "session_ended")
    })
    .await;
    let got2 = lines2.lock().unwrap().clone();
    let mut ids = Vec::new();
    for delta in routine {
        let v = got2
            .iter()
            .find(|v| v["delta"] == delta && !v["session_id"].is_null());
        let v = v.unwrap_or_else(|| panic!("{delta} at debug: {got2:?}"));
        assert_eq!(v["level"], "DEBUG");
        assert!(v["trace_id"].as_str().is_some_and(|t| t.len() == 32), "{v}");
        ids.push((v["session_id"].clone(), v["trace_id"].clone()));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one session's lines: {ids:?}");
    // One shape for every line, the sidecar's own (probe_target, …) and the sessions'.
    for v in got.iter().chain(&got2) {
        for k in ["timestamp", "level", "component", "event_type"] {
            assert!(v[k].is_string(), "{k} missing in {v}");
        }
        let ts = v["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
    }
    // Every key of a session's or the prober's line is in telemetry-schema.yaml (log_line, attributes,
    // log_attributes): the lines are held against the schema like the exported data.
    let schema: serde_json::Value = {
        use figment::providers::{Format, Yaml};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/telemetry-schema.yaml");
        let f = figment::Figment::new().merge(Yaml::file_exact(path));
        f.extract().expect("telemetry-schema.yaml parses")
    };
    let listed = |k: &str| {
        ["log_line", "attributes", "log_attributes"]
            .iter()
            .any(|section| schema[section].get(k).is_some())
    };
    let events = got.iter().chain(&got2);
    for v in events.filter(|v| v["component"] != "iskra-ws-sidecar") {
        for k in v.as_object().unwrap().keys() {
            assert!(listed(k), "{k} (in {v}) is not in telemetry-schema.yaml");
        }
        for k in v["fractal_metadata"].as_object().into_iter().flatten() {
            assert!(listed(k.0), "fractal_metadata.{} is not listed", k.0);
        }
    }
}

/// Telemetry runs on a thread of its own (`iskra-telemetry`, beside the relay's workers), and
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` bounds the spans per export request: with the schedule delay at ten
/// minutes, only a full batch can have sent the spans that arrive.
#[tokio::test(flavor = "multi_thread")]
async fn telemetry_has_its_own_thread_and_exports_full_batches_of_the_configured_size() {
    let up = node_ws(&[]);
    let (otlp, rec, _h) = grpc_receiver().await;
    let endpoint = format!("http://{otlp}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
        ("ISKRA_SIDECAR_PROBE__ENABLED", "false"),
    ];
    let sc = sidecar(&format!("ws://127.0.0.1:{}", up.port), &[], &env);
    let pid = sc.proc.child.id();
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(
        threads.iter().any(|t| t == "iskra-telemetry"),
        "{threads:?}"
    );
    scripted_sessions(sc.addr, &[1000, 1000, 1001, 1001], 1).await;
    wait_for(&rec, "4 sessions in full batches", |r| {
        sessions(r).len() >= 4
    })
    .await;
    let per_request: Vec<usize> = rec
        .traces
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.resource_spans
                .iter()
                .flat_map(|rs| rs.scope_spans.iter())
                .map(|ss| ss.spans.len())
                .sum()
        })
        .collect();
    assert_eq!(per_request, [2, 2], "spans per trace request");
}
