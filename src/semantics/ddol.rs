//! ∆DΩΛ: the Δ delta names, the D dimension (complexity) rule, and the Ω omega and Λ lambda defaults.
//!
//! Ω and Λ per event type are columns of the event table (`event_type::EVENT_TABLE`); Δ per lifecycle
//! event is chosen in `mapping`. This module owns the constants and the seed's complexity rule:
//!
//! D = 1, +2 if the event carries an error, +1 if latency > 1000 ms, +N reconnections so far, +3 if
//! fallback is active; capped at 10.

use std::time::Duration;

/// Ω of an event type without a row of its own.
pub const DEFAULT_OMEGA: f64 = 0.5;

/// Λ of an event type without an action of its own.
pub const DEFAULT_LAMBDA: &str = "continue_monitoring";

/// D of an event with nothing notable about it.
pub const BASE_DIMENSION: u8 = 1;

/// The cap on D.
pub const MAX_DIMENSION: u8 = 10;

/// D added when the event carries an error class.
pub const ERROR_WEIGHT: u8 = 2;

/// D added when latency is above [`SLOW_LATENCY`].
pub const LATENCY_WEIGHT: u8 = 1;

/// D added while the prober is in fallback (degraded) mode.
pub const FALLBACK_WEIGHT: u8 = 3;

/// Latency above this (strictly) adds [`LATENCY_WEIGHT`].
pub const SLOW_LATENCY: Duration = Duration::from_millis(1000);

/// The seed's complexity rule, capped at [`MAX_DIMENSION`]; never overflows.
pub fn dimension(
    has_error: bool,
    latency: Option<Duration>,
    reconnections: u32,
    fallback_active: bool,
) -> u8 {
    let mut d = u32::from(BASE_DIMENSION);
    if has_error {
        d += u32::from(ERROR_WEIGHT);
    }
    if latency.is_some_and(|l| l > SLOW_LATENCY) {
        d += u32::from(LATENCY_WEIGHT);
    }
    d = d.saturating_add(reconnections);
    if fallback_active {
        d = d.saturating_add(u32::from(FALLBACK_WEIGHT));
    }
    // d ≤ MAX_DIMENSION after min, so the cast cannot truncate.
    d.min(u32::from(MAX_DIMENSION)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn base_is_one() {
        assert_eq!(dimension(false, None, 0, false), 1);
    }

    #[test]
    fn each_term_of_the_rule() {
        assert_eq!(dimension(true, None, 0, false), 3);
        assert_eq!(dimension(false, Some(MS(1001)), 0, false), 2);
        assert_eq!(dimension(false, None, 4, false), 5);
        assert_eq!(dimension(false, None, 0, true), 4);
        assert_eq!(dimension(true, Some(MS(2000)), 2, true), 1 + 2 + 1 + 2 + 3);
    }

    #[test]
    fn latency_must_exceed_one_second() {
        assert_eq!(dimension(false, Some(MS(1000)), 0, false), 1);
        assert_eq!(
            dimension(false, Some(Duration::from_micros(1_000_001)), 0, false),
            2
        );
        assert_eq!(dimension(false, Some(MS(999)), 0, false), 1);
    }

    #[test]
    fn capped_at_ten() {
        assert_eq!(dimension(true, Some(MS(5000)), 3, true), 10); // exactly 10
        assert_eq!(dimension(true, Some(MS(5000)), 4, true), 10); // 11 → 10
        assert_eq!(dimension(false, None, 9, false), 10);
        assert_eq!(dimension(false, None, 10, false), 10);
        assert_eq!(dimension(true, Some(MS(5000)), u32::MAX, true), 10);
    }

    #[test]
    fn omega_matrix_by_name_with_its_default() {
        let cases = [
            ("connection_established", 0.9),
            ("connection_failed", 0.8),
            ("heartbeat_success", 0.95),
            ("heartbeat_timeout", 0.7),
            ("error_handled", 0.8),
            ("reconnection_success", 0.85),
            ("fallback_activated", 0.6),
            ("protocol_violation", 0.9),
            ("server_overload", 0.75),
            ("heartbeat_sent", 1.0),
            ("server_heartbeat_detected", 0.9),
            ("missing_heartbeat", 0.1),
            ("degraded_service_activated", 0.3),
            ("buffer_flushed", 0.8),
            ("anything_else", 0.5),
        ];
        for (name, omega) in cases {
            assert_eq!(
                super::super::EventType::from_name(name).omega(),
                omega,
                "{name}"
            );
        }
    }

    #[test]
    fn action_map_by_name_with_its_default() {
        let cases = [
            ("connection_failed", "attempt_reconnection_with_backoff"),
            ("heartbeat_timeout", "validate_connection_health"),
            ("protocol_violation", "escalate_to_developer"),
            ("server_overload", "activate_fallback_strategy"),
            ("reconnection_success", "monitor_stability"),
            ("fallback_activated", "investigate_primary_failure"),
            ("connection_established", "continue_monitoring"),
            ("anything_else", "continue_monitoring"),
        ];
        for (name, lambda) in cases {
            assert_eq!(
                super::super::EventType::from_name(name).lambda(),
                lambda,
                "{name}"
            );
        }
    }
}
