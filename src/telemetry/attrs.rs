//! OTLP attribute building: key-value constructors and the ∆DΩΛ / voice / seam attribute set of an
//! event's semantics, shared by spans and logs.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use crate::semantics::Semantics;

/// A string attribute.
pub fn s(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    }
}

/// An integer attribute.
pub fn i(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
    }
}

/// A floating-point attribute.
pub fn f(key: &str, v: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(v)),
        }),
    }
}

/// The Iskra attributes of an event's meaning: `iskra.delta`, `.dimension`, `.omega`, `.lambda`,
/// `.seam.id`, the voice impact, the active voice, and the error class when there is one.
pub fn iskra(sem: &Semantics, dashboard: &str) -> Vec<KeyValue> {
    let mut v = vec![
        s("iskra.dashboard", dashboard),
        s("iskra.delta", sem.delta),
        i("iskra.dimension", sem.dimension as i64),
        f("iskra.omega", sem.omega),
        s("iskra.lambda", sem.lambda.to_string()),
        s("iskra.seam.id", sem.seam),
        f("iskra.voice.pain", sem.impact.pain),
        f("iskra.voice.trust", sem.impact.trust),
        f("iskra.voice.chaos", sem.impact.chaos),
        s(
            "iskra.voice.active",
            sem.voice.map_or("none", |v| v.as_str()),
        ),
    ];
    if let (Some(voice), Some(l)) = (sem.voice, sem.voice_lambda()) {
        v.push(s("iskra.voice.action", voice.action()));
        v.push(s("iskra.voice.lambda", l));
    }
    if let Some(e) = sem.error {
        v.push(s("error.type", e.as_str()));
        v.push(s("iskra.error.class", e.as_str()));
        v.push(s("iskra.error.severity", e.severity().as_str()));
    }
    v
}

/// Reads an attribute back as a JSON value (logs, tests).
pub fn to_json(kv: &KeyValue) -> serde_json::Value {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone().into(),
        Some(any_value::Value::IntValue(i)) => (*i).into(),
        Some(any_value::Value::DoubleValue(d)) => (*d).into(),
        Some(any_value::Value::BoolValue(b)) => (*b).into(),
        _ => serde_json::Value::Null,
    }
}
