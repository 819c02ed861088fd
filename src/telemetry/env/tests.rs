//! The `OTEL_*` variables read as the specification says: service name, protocols and endpoints,
//! batch sizes, bad values reported and replaced by defaults.

use super::*;

fn env(pairs: &[(&str, &str)]) -> OtelEnv {
    let m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    OtelEnv::from_lookup(&move |k| m.get(k).cloned(), "iskra-ws-sidecar-pulse", &[])
}

#[test]
fn service_name_wins_over_resource_attributes_as_the_spec_says() {
    let e = env(&[
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attrs,team=iskra%20core",
        ),
        ("OTEL_SERVICE_NAME", "from-var"),
    ]);
    assert_eq!(e.resource_value("service.name"), Some("from-var"));
    assert_eq!(e.resource_value("team"), Some("iskra core"));
    let e = env(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]);
    assert_eq!(e.resource_value("service.name"), Some("from-attrs"));
    assert_eq!(
        env(&[]).resource_value("service.name"),
        Some("iskra-ws-sidecar-pulse")
    );
}

#[test]
fn batch_sizes_follow_the_spec_and_refuse_zero() {
    let e = env(&[]);
    assert_eq!((e.span_batch, e.log_batch), (512, 512));
    let e = env(&[
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "0"),
    ]);
    assert_eq!((e.span_batch, e.log_batch), (64, 512));
    assert!(
        e.warnings
            .iter()
            .any(|w| w.contains("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=\"0\"")),
        "{:?}",
        e.warnings
    );
}

#[test]
fn protocol_and_endpoints_follow_the_spec() {
    let e = env(&[]);
    assert_eq!(e.targets[&Signal::Traces].endpoint, "http://localhost:4317");
    assert_eq!(e.targets[&Signal::Traces].protocol, Protocol::Grpc);
    let e = env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
    ]);
    assert_eq!(e.targets[&Signal::Logs].endpoint, "http://c:4318/v1/logs");
    let e = env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/custom"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ("OTEL_LOGS_EXPORTER", "none"),
    ]);
    assert_eq!(e.targets[&Signal::Traces].endpoint, "http://t:1/custom");
    assert_eq!(e.targets[&Signal::Metrics].protocol, Protocol::Grpc);
    assert!(!e.targets.contains_key(&Signal::Logs));
}

#[test]
fn headers_intervals_disable_and_downward_api() {
    let e = env(&[
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%3Db,x=1"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
        ("OTEL_SDK_DISABLED", "true"),
        ("POD_NAME", "pulse-7"),
        ("POD_NAMESPACE", "iskra-ecosystem"),
        ("NODE_NAME", "n1"),
    ]);
    assert_eq!(
        e.targets[&Signal::Traces].headers,
        vec![("api-key".into(), "a=b".into()), ("x".into(), "1".into())]
    );
    assert_eq!(e.metric_interval, Duration::from_millis(1500));
    assert!(e.disabled);
    assert_eq!(e.resource_value("k8s.pod.name"), Some("pulse-7"));
    assert_eq!(
        e.resource_value("k8s.namespace.name"),
        Some("iskra-ecosystem")
    );
    assert_eq!(e.resource_value("service.instance.id"), Some("pulse-7"));
    let e = env(&[("OTEL_METRIC_EXPORT_INTERVAL", "soon")]);
    assert_eq!(e.metric_interval, Duration::from_secs(60));
    assert_eq!(e.warnings.len(), 1);
}

#[test]
fn a_bad_value_is_reported_once_under_the_name_that_was_read() {
    let e = env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc-ish")]);
    assert_eq!(
        e.warnings,
        ["OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc-ish\": expected grpc, http/protobuf or http/json; using grpc"]
    );
    let e = env(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc-ish")]);
    assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
    assert!(
        e.warnings[0].starts_with("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=\"grpc-ish\""),
        "{:?}",
        e.warnings
    );
    let e = env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]);
    assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
}
