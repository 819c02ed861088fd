//! Semantics: pure, table-driven mapping from each lifecycle or probe event to the seed's vocabulary —
//! ∆DΩΛ, voice, seam, error class and log level. No I/O, no clock, no allocation (except the Λ of a
//! voice activation, built on request by [`Semantics::voice_lambda`]).
//!
//! # Layout
//! - [`event_type`]: the seed's event table (Ω, Λ, seam, voice impact per event type) and the other
//!   events the seed gives an Ω.
//! - [`mapping`]: which event type and Δ each [`EventKind`] is.
//! - [`ddol`]: the D complexity rule and the Ω / Λ defaults.
//! - [`voices`]: voice impact, the first-match voice rules, the voice table.
//! - [`seams`]: seam ids and the `fractal_metadata` of log entries (error / performance entries).
//! - [`error_class`]: the seed's error class table (a leaf of this module).
//! - [`mod@classify`]: the class each event reports, from typed causes.
//! - [`codes`]: the error class of an HTTP status and of a close code.
//! - [`level`]: the seed's Ω → log level mapping, and the level the sidecar actually uses.
//!
//! [`describe`] puts them together for one event; `telemetry-schema.yaml` (`semantics:`) lists every
//! table as implemented and every choice made where the seed is ambiguous.

use std::borrow::Cow;
use std::time::Duration;

use crate::events::EventKind;

pub mod classify;
pub mod codes;
pub mod ddol;
pub mod error_class;
pub mod event_type;
pub mod level;
pub mod mapping;
pub mod seams;
pub mod voices;

pub use classify::{classify, classify_connect, classify_probe, classify_reject};
pub use codes::{classify_close_code, classify_status};
pub use ddol::dimension;
pub use error_class::{ErrorClass, ErrorClassRow, Severity, ERROR_CLASS_TABLE};
pub use event_type::EventType;
pub use level::{log_level, log_level_for_omega, LogLevel};
pub use seams::{EntryKind, FractalMetadata};
pub use voices::{voice_for, Voice, VoiceImpact};

/// What the caller knows beyond the event itself (the D rule's inputs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Context {
    /// Reconnections so far on this endpoint (D += N).
    pub reconnections: u32,
    /// Whether the prober is in fallback (degraded) mode (D += 3).
    pub fallback_active: bool,
    /// The latest latency known to the caller, used when the event measured none itself
    /// (D += 1 above 1000 ms).
    pub latency: Option<Duration>,
}

/// An event in the seed's vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Semantics {
    /// Δ: the event's snake_case name (`iskra.delta`).
    pub delta: &'static str,
    /// The seed event type (table row) the event falls into.
    pub event_type: EventType,
    /// D: complexity 1..=10 (`iskra.dimension`).
    pub dimension: u8,
    /// Ω: confidence 0..1 (`iskra.omega`).
    pub omega: f64,
    /// Λ: the next action from the seed's action map (`iskra.lambda`). Always borrowed today; the
    /// voice activation's own Λ is [`Semantics::voice_lambda`].
    pub lambda: Cow<'static, str>,
    /// The seam the event type touches (`iskra.seam.id`).
    pub seam: &'static str,
    /// The event type's voice impact (`iskra.voice.pain` / `.trust` / `.chaos`).
    pub impact: VoiceImpact,
    /// The voice that answers it (`iskra.voice.active`; `none` when `None`).
    pub voice: Option<Voice>,
    /// The error class it reports (`error.type`, `iskra.error.class`).
    pub error: Option<ErrorClass>,
    /// The level to log it at.
    pub level: LogLevel,
    /// The log entry's `fractal_metadata`: the seed's error entry when `error` is set, its performance
    /// entry for a ping RTT, else `impact` and `seam`.
    pub fractal: FractalMetadata,
}

impl Semantics {
    /// The Λ of the voice activation, `respond_to_<event type>_with_<voice>`, if a voice answers.
    pub fn voice_lambda(&self) -> Option<String> {
        self.voice
            .map(|v| voices::voice_lambda(self.event_type.as_str(), v))
    }
}

/// Describes a lifecycle or probe event.
///
/// The latency for D is the one the event measured itself (ping RTT, connect or handshake time), else
/// `ctx.latency`. `FallbackActivated` counts as fallback active even if `ctx` says not yet.
pub fn describe(kind: &EventKind, ctx: &Context) -> Semantics {
    let error = classify(kind);
    let entry = if error.is_some() {
        EntryKind::Error
    } else if mapping::is_performance(kind) {
        EntryKind::Performance
    } else {
        EntryKind::Event
    };
    let latency = mapping::measured_latency(kind).or(ctx.latency);
    let fallback = ctx.fallback_active || mapping::announces_fallback(kind);
    build(
        mapping::map_kind(kind),
        error,
        latency,
        fallback,
        entry,
        ctx.reconnections,
    )
}

fn build(
    mapped: mapping::Mapped,
    error: Option<ErrorClass>,
    latency: Option<Duration>,
    fallback: bool,
    entry: EntryKind,
    reconnections: u32,
) -> Semantics {
    let row = mapped.event_type.row();
    let voice = voice_for(row.impact);
    Semantics {
        delta: mapped.delta,
        event_type: mapped.event_type,
        dimension: dimension(error.is_some(), latency, reconnections, fallback),
        omega: row.omega,
        lambda: Cow::Borrowed(row.lambda),
        seam: row.seam,
        impact: row.impact,
        voice,
        error,
        level: log_level(row.omega, error.is_some(), voice, mapped.routine),
        fractal: FractalMetadata::for_entry(entry, row.impact, row.seam),
    }
}

#[cfg(test)]
mod tests;
