//! OTLP attribute building: where attributes are written ([`Attrs`]: a log record's `Vec<KeyValue>`, or
//! encoded span attributes, `pb::PbAttrs`), key-value constructors, and the ∆DΩΛ / voice / seam
//! attribute set of an event's semantics, shared by spans and logs; [`Scope`] says for which dashboard,
//! and which of those vocabularies the seed's `iskra.*` switches leave on.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use super::names::attr;
use crate::semantics::{ErrorClass, Semantics};

/// Somewhere attributes can be written.
pub trait Attrs {
    /// A string attribute.
    fn str(&mut self, key: &str, v: &str);
    /// An integer attribute.
    fn int(&mut self, key: &str, v: i64);
    /// A floating-point attribute.
    fn float(&mut self, key: &str, v: f64);
}

impl Attrs for Vec<KeyValue> {
    fn str(&mut self, key: &str, v: &str) {
        self.push(s(key, v));
    }
    fn int(&mut self, key: &str, v: i64) {
        self.push(i(key, v));
    }
    fn float(&mut self, key: &str, v: f64) {
        self.push(f(key, v));
    }
}

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
    out.str(attr::DASHBOARD, &scope.dashboard);
    if scope.ddol {
        out.str(attr::DELTA, sem.delta);
        out.int(attr::DIMENSION, sem.dimension as i64);
        out.float(attr::OMEGA, sem.omega);
        out.str(attr::LAMBDA, &sem.lambda);
        out.str(attr::SEAM_ID, sem.seam);
    }
    if scope.voices {
        out.float(attr::VOICE_PAIN, sem.impact.pain);
        out.float(attr::VOICE_TRUST, sem.impact.trust);
        out.float(attr::VOICE_CHAOS, sem.impact.chaos);
        out.str(attr::VOICE_ACTIVE, sem.voice.map_or("none", |v| v.as_str()));
        if let (Some(voice), Some(l)) = (sem.voice, sem.voice_lambda()) {
            out.str(attr::VOICE_ACTION, voice.action());
            out.str(attr::VOICE_LAMBDA, &l);
        }
    }
    if let Some(e) = sem.error {
        error_class(e, out);
    }
}

/// The error attributes of an error class: `error.type`, `iskra.error.class`, `iskra.error.severity`.
pub fn error_class(e: ErrorClass, out: &mut impl Attrs) {
    out.str(attr::ERROR_TYPE, e.as_str());
    out.str(attr::ERROR_CLASS, e.as_str());
    out.str(attr::ERROR_SEVERITY, e.severity().as_str());
}
