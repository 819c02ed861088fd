//! OTLP attribute building: key-value constructors and the ∆DΩΛ / voice / seam attribute set of an
//! event's semantics, shared by spans and logs; [`Scope`] says for which dashboard, and which of those
//! vocabularies the seed's `iskra.*` switches leave on.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use super::pb::Attrs;
use crate::semantics::{ErrorClass, Semantics};

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

/// The dashboard spans and logs are written for, and which of the seed's vocabularies they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// pulse, seams or voices (`iskra.dashboard`).
    pub dashboard: String,
    /// ∆DΩΛ and the seam (`iskra.fractal_logging`).
    pub ddol: bool,
    /// The voice fields (`iskra.voice_system`).
    pub voices: bool,
}

impl Scope {
    /// Every vocabulary on.
    pub fn new(dashboard: &str) -> Scope {
        Scope {
            dashboard: dashboard.to_string(),
            ddol: true,
            voices: true,
        }
    }
}

/// The Iskra attributes of an event's meaning: `iskra.dashboard`; `iskra.delta`, `.dimension`,
/// `.omega`, `.lambda`, `.seam.id` (∆DΩΛ on); the voice impact, the active voice and its action (voices
/// on); and the error class when there is one.
pub fn iskra(sem: &Semantics, scope: &Scope, out: &mut impl Attrs) {
    out.str("iskra.dashboard", &scope.dashboard);
    if scope.ddol {
        out.str("iskra.delta", sem.delta);
        out.int("iskra.dimension", sem.dimension as i64);
        out.float("iskra.omega", sem.omega);
        out.str("iskra.lambda", &sem.lambda);
        out.str("iskra.seam.id", sem.seam);
    }
    if scope.voices {
        out.float("iskra.voice.pain", sem.impact.pain);
        out.float("iskra.voice.trust", sem.impact.trust);
        out.float("iskra.voice.chaos", sem.impact.chaos);
        out.str(
            "iskra.voice.active",
            sem.voice.map_or("none", |v| v.as_str()),
        );
        if let (Some(voice), Some(l)) = (sem.voice, sem.voice_lambda()) {
            out.str("iskra.voice.action", voice.action());
            out.str("iskra.voice.lambda", &l);
        }
    }
    if let Some(e) = sem.error {
        error_class(e, out);
    }
}

/// The error attributes of an error class: `error.type`, `iskra.error.class`, `iskra.error.severity`.
pub fn error_class(e: ErrorClass, out: &mut impl Attrs) {
    out.str("error.type", e.as_str());
    out.str("iskra.error.class", e.as_str());
    out.str("iskra.error.severity", e.severity().as_str());
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
