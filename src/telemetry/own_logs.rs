//! The bridge from the sidecar's own diagnostics ([`crate::diag`]) to OTLP logs: each own line at WARN
//! or ERROR (the exporter's own trouble excepted, by `diag`) becomes one log record, sent in its own
//! request through the sender's spool, in order with the sessions' logs. Own lines are rare (a bad
//! `OTEL_*` variable, a spool that cannot be written), so one request each costs nothing that matters,
//! and the consumer task, the sessions' path, is not touched.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;
use tokio::sync::mpsc;

use super::env::Signal;
use super::export::{self, Batch};
use super::logs::{severity, Fields};
use super::names::log;
use super::spans::nanos;
use super::Telemetry;
use crate::diag::OwnLine;
use crate::semantics::LogLevel;

/// Sends the sidecar's own lines as OTLP log records with one sidecar's resource.
pub struct Bridge {
    tx: mpsc::UnboundedSender<Batch>,
    resource: Resource,
}

impl Telemetry {
    /// The bridge for the sidecar's own lines, when logs are exported.
    pub fn own_logs(&self) -> Option<Arc<dyn crate::diag::Export>> {
        if !self.exports(Signal::Logs) {
            return None;
        }
        let tx = self.export_tx.clone()?;
        let resource = self.resource.clone();
        Some(Arc::new(Bridge { tx, resource }))
    }
}

/// The record of one own line: its event_type as the event name and an attribute, the component, its
/// fields as attributes (arrays and objects as their JSON text), its `message` (else its event_type)
/// as the body.
pub fn record(line: &OwnLine<'_>) -> LogRecord {
    let level = match line.level {
        tracing::Level::ERROR => LogLevel::Error,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::INFO => LogLevel::Info,
        _ => LogLevel::Debug,
    };
    let mut attributes: Vec<KeyValue> = Vec::new();
    attributes.str(log::EVENT_TYPE, line.event_type);
    attributes.str(log::COMPONENT, line.component);
    let mut body = line.event_type;
    for (k, v) in line.fields {
        match v {
            Value::String(s) if k == "message" => {
                body = s;
                attributes.str(k, s);
            }
            Value::String(s) => attributes.str(k, s),
            Value::Bool(b) => attributes.bool(k, *b),
            Value::Null => attributes.null(k),
            Value::Number(n) => match n.as_i64() {
                Some(i) => attributes.int(k, i),
                None => attributes.float(k, n.as_f64().unwrap_or(f64::NAN)),
            },
            other => attributes.str(k, &other.to_string()),
        }
    }
    LogRecord {
        time_unix_nano: nanos(line.at),
        observed_time_unix_nano: nanos(std::time::SystemTime::now()),
        severity_number: severity(level),
        severity_text: line.level.as_str().into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        attributes,
        event_name: line.event_type.into(),
        ..Default::default()
    }
}

impl crate::diag::Export for Bridge {
    fn export(&self, line: &OwnLine<'_>) {
        let req = export::logs_request(&self.resource, vec![record(line)]);
        let _ = self.tx.send(Batch {
            signal: Signal::Logs,
            items: 1,
            data: req.encode_to_vec().into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;

    #[test]
    fn an_own_line_becomes_a_record_with_its_event_type_and_fields() {
        let fields = vec![
            ("message".to_string(), Value::from("bad OTEL_X")),
            ("n".to_string(), Value::from(3)),
            ("r".to_string(), Value::from(0.5)),
            ("list".to_string(), serde_json::json!(["a"])),
            ("none".to_string(), Value::Null),
        ];
        let line = OwnLine {
            at: std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2),
            level: tracing::Level::WARN,
            component: "iskra-ws-sidecar",
            event_type: "otel_env",
            fields: &fields,
        };
        let r = record(&line);
        let get = |k: &str| {
            let kv = r.attributes.iter().find(|kv| kv.key == k)?;
            kv.value.clone()?.value
        };
        assert_eq!(get("event_type"), Some(V::StringValue("otel_env".into())));
        assert_eq!(
            get("component"),
            Some(V::StringValue("iskra-ws-sidecar".into()))
        );
        assert_eq!(get("n"), Some(V::IntValue(3)));
        assert_eq!(get("r"), Some(V::DoubleValue(0.5)));
        assert_eq!(get("list"), Some(V::StringValue("[\"a\"]".into())));
        assert_eq!(get("none"), None);
        assert_eq!(
            (
                r.event_name.as_str(),
                r.severity_text.as_str(),
                r.severity_number
            ),
            ("otel_env", "WARN", 13)
        );
        assert_eq!(
            r.body.and_then(|b| b.value),
            Some(V::StringValue("bad OTEL_X".into()))
        );
        assert_eq!(r.time_unix_nano, 2_000_000_000);
    }
}
