//! Alerts: the seed's alert levels (info / warning / critical), the voice that announces each
//! (critical → alarm, warning → concern, info → notification) and the ∆, Ω, Λ of its alert event.
//!
//! The seed's `voiceMap[level] || 'notification'` also sends an unknown level to `notification`; with a
//! typed [`AlertLevel`] there is no unknown level.

use super::voices::Voice;

/// The seed's alert levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertLevel {
    /// Informational.
    Info,
    /// Overall health WARNING.
    Warning,
    /// Overall health CRITICAL.
    Critical,
}

/// One row of the alert table: the seed's alert → voice map and its alert events' ∆, Ω, Λ.
#[derive(Debug, Clone, Copy)]
pub struct AlertRow {
    /// The level.
    pub level: AlertLevel,
    /// Its name (`info`, `warning`, `critical`).
    pub name: &'static str,
    /// The voice that announces it.
    pub voice: Voice,
    /// ∆ of the alert event.
    pub delta: &'static str,
    /// Ω of the alert event.
    pub omega: f64,
    /// Λ of the alert event.
    pub lambda: &'static str,
}

/// Alert levels, in [`AlertLevel`] order. The seed raises only warning and critical alerts; the info
/// row's ∆ and Λ follow the same pattern and its Ω is the default 0.5 (decisions of this crate).
#[rustfmt::skip]
pub const ALERT_TABLE: &[AlertRow] = &[
    alert_row(AlertLevel::Info,     "info",     Voice::Notification, "info_alert_triggered",     0.5, "websocket_info_alert"),
    alert_row(AlertLevel::Warning,  "warning",  Voice::Concern,      "warning_alert_triggered",  0.6, "websocket_warning_alert"),
    alert_row(AlertLevel::Critical, "critical", Voice::Alarm,        "critical_alert_triggered", 0.9, "websocket_critical_alert"),
];

const fn alert_row(
    level: AlertLevel,
    name: &'static str,
    voice: Voice,
    delta: &'static str,
    omega: f64,
    lambda: &'static str,
) -> AlertRow {
    AlertRow {
        level,
        name,
        voice,
        delta,
        omega,
        lambda,
    }
}

impl AlertLevel {
    /// Its row in [`ALERT_TABLE`].
    pub fn row(self) -> &'static AlertRow {
        &ALERT_TABLE[self as usize]
    }

    /// The level's name.
    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// The voice that announces it (critical → alarm, warning → concern, info → notification).
    pub fn voice(self) -> Voice {
        self.row().voice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    fn alert_levels_map_to_voices_and_seed_values() {
        let expected = [
            (AlertLevel::Critical, "critical", Voice::Alarm,        "critical_alert_triggered", 0.9, "websocket_critical_alert"),
            (AlertLevel::Warning,  "warning",  Voice::Concern,      "warning_alert_triggered",  0.6, "websocket_warning_alert"),
            (AlertLevel::Info,     "info",     Voice::Notification, "info_alert_triggered",     0.5, "websocket_info_alert"),
        ];
        for (level, name, voice, delta, omega, lambda) in expected {
            let row = level.row();
            assert_eq!(row.level, level);
            assert_eq!((level.as_str(), level.voice()), (name, voice));
            assert_eq!((row.delta, row.omega, row.lambda), (delta, omega, lambda));
        }
    }
}
