//! The standard `OTEL_*` environment variables, read as the OpenTelemetry specification says, and the
//! resource they describe.
//!
//! Deliberate points where the Rust SDK differs from the spec and we follow the spec:
//! - `OTEL_SERVICE_NAME` wins over a `service.name` inside `OTEL_RESOURCE_ATTRIBUTES`;
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` (and the per-signal variables) always choose the transport;
//! - with HTTP, `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/<signal>` appended, a per-signal endpoint is used
//!   as is.

use std::collections::BTreeMap;
use std::time::Duration;

use super::names::resource;

/// One of the three signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// `traces`, `metrics` or `logs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }
}

/// OTLP transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (tonic).
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
}

/// Where and how one signal is exported.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalTarget {
    /// Full URL (for HTTP, including `/v1/<signal>`).
    pub endpoint: String,
    /// Transport.
    pub protocol: Protocol,
    /// Extra headers (values are secrets: never logged).
    pub headers: Vec<(String, String)>,
    /// Per-export timeout.
    pub timeout: Duration,
    /// PEM CA file for TLS.
    pub certificate: Option<String>,
    /// PEM client certificate and key for mTLS.
    pub client_cert: Option<(String, String)>,
}

/// Everything the exporter needs from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelEnv {
    /// `OTEL_SDK_DISABLED=true`: nothing is exported (stdout logs and /metrics stay).
    pub disabled: bool,
    /// Per-signal targets; a signal whose `OTEL_<SIGNAL>_EXPORTER` is `none` is absent.
    pub targets: BTreeMap<Signal, SignalTarget>,
    /// Resource attributes, in order, with `service.name` decided.
    pub resource: Vec<(String, String)>,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub metric_interval: Duration,
    /// `OTEL_BSP_SCHEDULE_DELAY`.
    pub span_delay: Duration,
    /// `OTEL_BLRP_SCHEDULE_DELAY`.
    pub log_delay: Duration,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans per export request (default 512).
    pub span_batch: usize,
    /// `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`: log records per export request (default 512).
    pub log_batch: usize,
    /// Problems found (bad values), reported at start-up; the default is used instead.
    pub warnings: Vec<String>,
}

/// Percent-decodes `%XX` sequences (W3C baggage-style values used by the OTel variables).
fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `k=v,k2=v2` lists (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`).
pub fn parse_kv_list(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = pct_decode(k.trim());
            (!k.is_empty()).then(|| (k, pct_decode(v.trim())))
        })
        .collect()
}

impl OtelEnv {
    /// Reads the variables through `get` (the process environment in production, a map in tests).
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
        default_service: &str,
        extra_resource: &[(String, String)],
    ) -> OtelEnv {
        let mut warnings = Vec::new();
        let disabled =
            get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        // A whole number of at least `min`; anything else is said and `default` used.
        let number =
            |name: &str, (default, min, what): (u64, u64, &str), warnings: &mut Vec<String>| {
                match get(name).map(|v| (v.trim().parse::<u64>(), v)) {
                    None => default,
                    Some((Ok(n), _)) if n >= min => n,
                    Some((_, v)) => {
                        warnings.push(format!("{name}={v:?}: expected {what}; using {default}"));
                        default
                    }
                }
            };
        let millis = |name: &str, default: u64, warnings: &mut Vec<String>| {
            Duration::from_millis(number(name, (default, 0, "milliseconds"), warnings))
        };
        let count = |name: &str, default: u64, warnings: &mut Vec<String>| {
            number(name, (default, 1, "a positive integer"), warnings) as usize
        };
        let mut targets = BTreeMap::new();
        for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
            let exporter =
                get(&format!("OTEL_{}_EXPORTER", signal.upper())).unwrap_or_else(|| "otlp".into());
            if exporter.trim() == "none" {
                continue;
            }
            // The signal's own variable, else the general one: (the name that was read, its value).
            let per_named = |suffix: &str| {
                let own = format!("OTEL_EXPORTER_OTLP_{}_{suffix}", signal.upper());
                let general = format!("OTEL_EXPORTER_OTLP_{suffix}");
                (get(&own).map(|v| (own, v))).or_else(|| get(&general).map(|v| (general, v)))
            };
            let per = |suffix: &str| per_named(suffix).map(|(_, v)| v);
            let protocol = match per_named("PROTOCOL") {
                None => Protocol::Grpc,
                Some((name, v)) => match v.trim() {
                    "grpc" => Protocol::Grpc,
                    "http/protobuf" => Protocol::HttpProtobuf,
                    "http/json" => Protocol::HttpJson,
                    other => {
                        warnings.push(format!("{name}={other:?}: expected grpc, http/protobuf or http/json; using grpc"));
                        Protocol::Grpc
                    }
                },
            };
            let endpoint = match get(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.upper())) {
                Some(e) => e.trim().to_string(),
                None => {
                    let base = get("OTEL_EXPORTER_OTLP_ENDPOINT").map(|s| s.trim().to_string());
                    match protocol {
                        Protocol::Grpc => base.unwrap_or_else(|| "http://localhost:4317".into()),
                        _ => {
                            let base = base.unwrap_or_else(|| "http://localhost:4318".into());
                            format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str())
                        }
                    }
                }
            };
            let timeout_name = format!("OTEL_EXPORTER_OTLP_{}_TIMEOUT", signal.upper());
            let timeout = if get(&timeout_name).is_some() {
                millis(&timeout_name, 10_000, &mut warnings)
            } else {
                millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, &mut warnings)
            };
            let headers = per("HEADERS")
                .map(|h| parse_kv_list(&h))
                .unwrap_or_default();
            let client_cert = match (per("CLIENT_CERTIFICATE"), per("CLIENT_KEY")) {
                (Some(c), Some(k)) => Some((c, k)),
                _ => None,
            };
            targets.insert(
                signal,
                SignalTarget {
                    endpoint,
                    protocol,
                    headers,
                    timeout,
                    certificate: per("CERTIFICATE"),
                    client_cert,
                },
            );
        }
        let mut resource: Vec<(String, String)> = Vec::new();
        fn set(resource: &mut Vec<(String, String)>, k: &str, v: String) {
            resource.retain(|(rk, _)| rk != k);
            resource.push((k.to_string(), v));
        }
        set(
            &mut resource,
            resource::SERVICE_NAME,
            default_service.to_string(),
        );
        set(
            &mut resource,
            resource::SERVICE_VERSION,
            env!("CARGO_PKG_VERSION").to_string(),
        );
        for (k, v) in extra_resource {
            set(&mut resource, k, v.clone());
        }
        for (var, key) in [
            ("POD_NAME", resource::K8S_POD_NAME),
            ("K8S_POD_NAME", resource::K8S_POD_NAME),
            ("POD_NAMESPACE", resource::K8S_NAMESPACE_NAME),
            ("K8S_NAMESPACE_NAME", resource::K8S_NAMESPACE_NAME),
            ("NODE_NAME", resource::K8S_NODE_NAME),
            ("K8S_NODE_NAME", resource::K8S_NODE_NAME),
        ] {
            if let Some(v) = get(var).filter(|v| !v.is_empty()) {
                set(&mut resource, key, v);
            }
        }
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in parse_kv_list(&attrs) {
                set(&mut resource, &k, v);
            }
        }
        // The spec: OTEL_SERVICE_NAME takes precedence over service.name in OTEL_RESOURCE_ATTRIBUTES.
        if let Some(name) = get("OTEL_SERVICE_NAME").filter(|v| !v.trim().is_empty()) {
            set(
                &mut resource,
                resource::SERVICE_NAME,
                name.trim().to_string(),
            );
        }
        if !resource
            .iter()
            .any(|(k, _)| k == resource::SERVICE_INSTANCE_ID)
        {
            let pod = resource
                .iter()
                .find(|(k, _)| k == resource::K8S_POD_NAME)
                .map(|(_, v)| v.clone());
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            set(
                &mut resource,
                resource::SERVICE_INSTANCE_ID,
                pod.unwrap_or_else(|| format!("{host}-{}", std::process::id())),
            );
        }
        // A general variable read for each signal is reported once.
        let mut seen = std::collections::HashSet::new();
        warnings.retain(|w| seen.insert(w.clone()));
        OtelEnv {
            disabled,
            targets,
            resource,
            metric_interval: millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000, &mut warnings),
            span_delay: millis("OTEL_BSP_SCHEDULE_DELAY", 5_000, &mut warnings),
            log_delay: millis("OTEL_BLRP_SCHEDULE_DELAY", 1_000, &mut warnings),
            span_batch: count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, &mut warnings),
            log_batch: count("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512, &mut warnings),
            warnings,
        }
    }

    /// Reads the process environment.
    pub fn from_process(default_service: &str, extra_resource: &[(String, String)]) -> OtelEnv {
        OtelEnv::from_lookup(&|k| std::env::var(k).ok(), default_service, extra_resource)
    }

    /// The resource value of `key`.
    pub fn resource_value(&self, key: &str) -> Option<&str> {
        self.resource
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests;
