//! Seams: the seed's seam ids (which "seam" between Iskra's components an event touches) and the
//! `fractal_metadata` {voice_pain, voice_chaos, voice_trust, seam_id} that log entries carry.
//!
//! Which seam an event type touches is a column of the event table (`event_type::EVENT_TABLE`); this
//! module owns the ids and the log-entry rule:
//! - an entry for an event that carries an error class is an *error entry*: the seed's fixed pain 0.8,
//!   chaos 0.6, trust 0.2 and seam `error_handling`, whatever the event type;
//! - an entry for a latency measurement (a ping RTT) is a *performance entry*: trust 0.8, seam
//!   `performance_monitoring`, pain and chaos 0.0 (the seed's `metric.pain || 0.0`);
//! - any other entry carries its event type's voice impact and seam.

use super::voices::VoiceImpact;

/// Default seam: nothing in particular.
pub const GENERAL_OPERATION: &str = "general_operation";
/// `connection_failed`.
pub const NETWORK_INFRASTRUCTURE: &str = "network_infrastructure";
/// `heartbeat_timeout` (and `missing_heartbeat`, a decision of this crate).
pub const COMMUNICATION_PROTOCOL: &str = "communication_protocol";
/// `protocol_violation`.
pub const DATA_CONTRACT: &str = "data_contract";
/// `server_overload`.
pub const LOAD_BALANCING: &str = "load_balancing";
/// `fallback_activated` (and `degraded_service_activated`, a decision of this crate).
pub const RESILIENCE_MECHANISMS: &str = "resilience_mechanisms";
/// Seam of every error log entry.
pub const ERROR_HANDLING: &str = "error_handling";
/// Seam of every performance log entry.
pub const PERFORMANCE_MONITORING: &str = "performance_monitoring";

/// Every seam id this crate emits as `iskra.seam.id`.
pub const ALL_SEAMS: &[&str] = &[
    GENERAL_OPERATION,
    NETWORK_INFRASTRUCTURE,
    COMMUNICATION_PROTOCOL,
    DATA_CONTRACT,
    LOAD_BALANCING,
    RESILIENCE_MECHANISMS,
    ERROR_HANDLING,
    PERFORMANCE_MONITORING,
];

/// What kind of log entry the metadata is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// An ordinary lifecycle entry: the event type's impact and seam.
    Event,
    /// An entry for an event that carries an error class.
    Error,
    /// A latency measurement.
    Performance,
}

/// The seed's `fractal_metadata` of a log entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FractalMetadata {
    /// `voice_pain`.
    pub voice_pain: f64,
    /// `voice_chaos`.
    pub voice_chaos: f64,
    /// `voice_trust`.
    pub voice_trust: f64,
    /// `seam_id`.
    pub seam_id: &'static str,
}

/// The seed's error entry: pain 0.8, chaos 0.6, trust 0.2, seam `error_handling`.
pub const ERROR_ENTRY: FractalMetadata = FractalMetadata {
    voice_pain: 0.8,
    voice_chaos: 0.6,
    voice_trust: 0.2,
    seam_id: ERROR_HANDLING,
};

/// The seed's performance entry: trust 0.8, seam `performance_monitoring`, pain and chaos 0.0.
pub const PERFORMANCE_ENTRY: FractalMetadata = FractalMetadata {
    voice_pain: 0.0,
    voice_chaos: 0.0,
    voice_trust: 0.8,
    seam_id: PERFORMANCE_MONITORING,
};

impl FractalMetadata {
    /// The metadata of an entry of `kind` for an event with this impact and seam.
    pub fn for_entry(kind: EntryKind, impact: VoiceImpact, seam: &'static str) -> Self {
        match kind {
            EntryKind::Error => ERROR_ENTRY,
            EntryKind::Performance => PERFORMANCE_ENTRY,
            EntryKind::Event => FractalMetadata {
                voice_pain: impact.pain,
                voice_chaos: impact.chaos,
                voice_trust: impact.trust,
                seam_id: seam,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seam_ids_are_the_seeds_strings() {
        assert_eq!(
            ALL_SEAMS,
            [
                "general_operation",
                "network_infrastructure",
                "communication_protocol",
                "data_contract",
                "load_balancing",
                "resilience_mechanisms",
                "error_handling",
                "performance_monitoring",
            ]
        );
    }

    #[test]
    fn error_entry_is_fixed_whatever_the_event() {
        let m = FractalMetadata::for_entry(
            EntryKind::Error,
            VoiceImpact::new(0.1, 0.9, 0.1),
            LOAD_BALANCING,
        );
        assert_eq!(
            (m.voice_pain, m.voice_chaos, m.voice_trust, m.seam_id),
            (0.8, 0.6, 0.2, "error_handling")
        );
    }

    #[test]
    fn performance_entry_is_trust_point_eight() {
        let m = FractalMetadata::for_entry(
            EntryKind::Performance,
            VoiceImpact::DEFAULT,
            GENERAL_OPERATION,
        );
        assert_eq!(
            (m.voice_pain, m.voice_chaos, m.voice_trust, m.seam_id),
            (0.0, 0.0, 0.8, "performance_monitoring")
        );
    }

    #[test]
    fn event_entry_carries_impact_and_seam() {
        let m = FractalMetadata::for_entry(
            EntryKind::Event,
            VoiceImpact::new(0.6, 0.4, 0.8),
            RESILIENCE_MECHANISMS,
        );
        assert_eq!(
            (m.voice_pain, m.voice_chaos, m.voice_trust, m.seam_id),
            (0.6, 0.8, 0.4, "resilience_mechanisms")
        );
    }
}
