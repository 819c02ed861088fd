//! Voices: the seed's voice impact {pain, trust, chaos}, the first-match rules that pick the voice
//! answering an event, and the voice table (threshold, action).
//!
//! The seed's voice thresholds are data only: its `determineTargetVoice` never reads them, and neither
//! does [`voice_for`]. They are exposed for dashboards and tests.

/// How an event weighs on three of Iskra's voices, each in 0..1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceImpact {
    /// Pain: how much the event hurts.
    pub pain: f64,
    /// Trust: how much confidence it gives in the link.
    pub trust: f64,
    /// Chaos: how much disorder it brings.
    pub chaos: f64,
}

impl VoiceImpact {
    /// The seed's impact for an event type without a row of its own (`{0.3, 0.5, 0.3}`): the table's
    /// "default" rows and its "(anything else)" row are this same value.
    pub const DEFAULT: VoiceImpact = VoiceImpact::new(0.3, 0.5, 0.3);

    /// An impact from its three values, in the seed's order {pain, trust, chaos}.
    pub const fn new(pain: f64, trust: f64, chaos: f64) -> Self {
        VoiceImpact { pain, trust, chaos }
    }
}

impl Default for VoiceImpact {
    fn default() -> Self {
        VoiceImpact::DEFAULT
    }
}

/// A voice of Iskra that can answer an event (`iskra.voice.active`).
///
/// The first seven are the seed's voice table, in its order; `Notification` is the voice the seed's
/// alert map gives `info` alerts (and any unknown level) and has no row in that table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Voice {
    /// Pain above 0.7.
    Alarm,
    /// Trust below 0.3; also warning alerts.
    Concern,
    /// Trust above 0.7.
    Celebration,
    /// Chaos above 0.5.
    Curiosity,
    /// In the seed's table, but no rule ever picks it.
    Patience,
    /// Chaos above 0.7.
    Courage,
    /// Pain above 0.4.
    Mercy,
    /// Info alerts (not in the seed's voice table).
    Notification,
}

/// One row of the seed's voice table.
#[derive(Debug, Clone, Copy)]
pub struct VoiceRow {
    /// The voice.
    pub voice: Voice,
    /// Its snake_case name.
    pub name: &'static str,
    /// The seed's threshold (not used to pick a voice).
    pub threshold: f64,
    /// The action the voice takes.
    pub action: &'static str,
}

/// The seed's voice table, in its order; row `i` describes the voice whose discriminant is `i`.
#[rustfmt::skip]
pub const VOICE_TABLE: &[VoiceRow] = &[
    voice_row(Voice::Alarm,       "alarm",       0.8, "critical_alert"),
    voice_row(Voice::Concern,     "concern",     0.6, "warning"),
    voice_row(Voice::Celebration, "celebration", 0.9, "success_notification"),
    voice_row(Voice::Curiosity,   "curiosity",   0.3, "investigation"),
    voice_row(Voice::Patience,    "patience",    0.1, "monitoring"),
    voice_row(Voice::Courage,     "courage",     0.4, "proactive_testing"),
    voice_row(Voice::Mercy,       "mercy",       0.2, "graceful_handling"),
];

/// `notification` has no row in the seed: threshold 0.0 (it always answers an info alert), action
/// `notification` (a decision of this crate).
pub const NOTIFICATION_ROW: VoiceRow =
    voice_row(Voice::Notification, "notification", 0.0, "notification");

const fn voice_row(
    voice: Voice,
    name: &'static str,
    threshold: f64,
    action: &'static str,
) -> VoiceRow {
    VoiceRow {
        voice,
        name,
        threshold,
        action,
    }
}

impl Voice {
    /// Its row in [`VOICE_TABLE`] (or [`NOTIFICATION_ROW`]).
    pub fn row(self) -> &'static VoiceRow {
        match self {
            Voice::Notification => &NOTIFICATION_ROW,
            v => &VOICE_TABLE[v as usize],
        }
    }

    /// The `iskra.voice.active` value, e.g. `"alarm"`.
    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// The seed's threshold for this voice.
    pub fn threshold(self) -> f64 {
        self.row().threshold
    }

    /// The seed's action for this voice, e.g. `"critical_alert"`.
    pub fn action(self) -> &'static str {
        self.row().action
    }

    /// True for the voices that answer trouble (alarm, concern, courage, curiosity, mercy); false for
    /// celebration, patience and notification. The log level policy uses it.
    pub fn is_alert(self) -> bool {
        !matches!(
            self,
            Voice::Celebration | Voice::Patience | Voice::Notification
        )
    }
}

/// Which value of a [`VoiceImpact`] a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// `pain`.
    Pain,
    /// `trust`.
    Trust,
    /// `chaos`.
    Chaos,
}

/// A rule of the seed's `determineTargetVoice`: `axis > bound` (or `<` when `below`) → `voice`.
#[derive(Debug, Clone, Copy)]
pub struct VoiceRule {
    /// The value read.
    pub axis: Axis,
    /// True for `<`, false for `>`; both strict, so a value equal to the bound does not match.
    pub below: bool,
    /// The bound.
    pub bound: f64,
    /// The voice picked.
    pub voice: Voice,
}

impl VoiceRule {
    /// Whether the rule matches this impact.
    pub fn matches(&self, impact: VoiceImpact) -> bool {
        let v = match self.axis {
            Axis::Pain => impact.pain,
            Axis::Trust => impact.trust,
            Axis::Chaos => impact.chaos,
        };
        if self.below {
            v < self.bound
        } else {
            v > self.bound
        }
    }
}

const fn above(axis: Axis, bound: f64, voice: Voice) -> VoiceRule {
    VoiceRule {
        axis,
        below: false,
        bound,
        voice,
    }
}

/// The seed's voice rules, in order; the first that matches wins, none → no voice.
pub const VOICE_RULES: &[VoiceRule] = &[
    above(Axis::Pain, 0.7, Voice::Alarm),
    above(Axis::Chaos, 0.7, Voice::Courage),
    above(Axis::Trust, 0.7, Voice::Celebration),
    above(Axis::Chaos, 0.5, Voice::Curiosity),
    above(Axis::Pain, 0.4, Voice::Mercy),
    VoiceRule {
        axis: Axis::Trust,
        below: true,
        bound: 0.3,
        voice: Voice::Concern,
    },
];

/// The voice that answers an event with this impact (the first matching [`VOICE_RULES`] row).
pub fn voice_for(impact: VoiceImpact) -> Option<Voice> {
    VOICE_RULES
        .iter()
        .find(|r| r.matches(impact))
        .map(|r| r.voice)
}

/// The Λ of a voice activation: `respond_to_<event type>_with_<voice>`.
pub fn voice_lambda(event_type: &str, voice: Voice) -> String {
    format!("respond_to_{event_type}_with_{}", voice.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const ALL: [Voice; 8] = [
        Voice::Alarm, Voice::Concern, Voice::Celebration, Voice::Curiosity,
        Voice::Patience, Voice::Courage, Voice::Mercy, Voice::Notification,
    ];

    fn imp(pain: f64, trust: f64, chaos: f64) -> VoiceImpact {
        VoiceImpact { pain, trust, chaos }
    }

    #[test]
    #[rustfmt::skip]
    fn voice_table_rows_are_the_seeds() {
        let expected = [
            (Voice::Alarm,       "alarm",       0.8, "critical_alert"),
            (Voice::Concern,     "concern",     0.6, "warning"),
            (Voice::Celebration, "celebration", 0.9, "success_notification"),
            (Voice::Curiosity,   "curiosity",   0.3, "investigation"),
            (Voice::Patience,    "patience",    0.1, "monitoring"),
            (Voice::Courage,     "courage",     0.4, "proactive_testing"),
            (Voice::Mercy,       "mercy",       0.2, "graceful_handling"),
        ];
        assert_eq!(VOICE_TABLE.len(), expected.len());
        for (voice, name, threshold, action) in expected {
            assert_eq!(voice.as_str(), name);
            assert_eq!(voice.threshold(), threshold, "{name}");
            assert_eq!(voice.action(), action, "{name}");
        }
    }

    #[test]
    fn every_voice_finds_its_own_row() {
        for v in ALL {
            assert_eq!(v.row().voice, v);
        }
    }

    #[test]
    fn notification_is_this_crates_row() {
        let v = Voice::Notification;
        assert_eq!(
            (v.as_str(), v.threshold(), v.action()),
            ("notification", 0.0, "notification")
        );
    }

    #[test]
    fn default_impact_is_the_seeds_fallback_and_picks_no_voice() {
        assert_eq!(VoiceImpact::default(), VoiceImpact::new(0.3, 0.5, 0.3));
        assert_eq!(voice_for(VoiceImpact::DEFAULT), None);
    }

    #[test]
    #[rustfmt::skip]
    fn each_rule_fires_just_above_its_bound() {
        let cases = [
            (imp(0.71, 0.5, 0.0),  Some(Voice::Alarm)),
            (imp(0.0,  0.5, 0.71), Some(Voice::Courage)),
            (imp(0.0,  0.71, 0.0), Some(Voice::Celebration)),
            (imp(0.0,  0.5, 0.51), Some(Voice::Curiosity)),
            (imp(0.41, 0.5, 0.0),  Some(Voice::Mercy)),
            (imp(0.0,  0.29, 0.0), Some(Voice::Concern)),
            (imp(0.0,  0.5, 0.0),  None),
        ];
        for (impact, voice) in cases {
            assert_eq!(voice_for(impact), voice, "{impact:?}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn bounds_are_strict() {
        // pain exactly 0.7 is not alarm: it falls through to mercy (pain > 0.4)
        assert_eq!(voice_for(imp(0.7, 0.5, 0.0)), Some(Voice::Mercy));
        // chaos exactly 0.7 is not courage: it falls through to curiosity (chaos > 0.5)
        assert_eq!(voice_for(imp(0.0, 0.5, 0.7)), Some(Voice::Curiosity));
        assert_eq!(voice_for(imp(0.0, 0.7, 0.0)), None); // trust exactly 0.7: no celebration
        assert_eq!(voice_for(imp(0.0, 0.5, 0.5)), None); // chaos exactly 0.5: no curiosity
        assert_eq!(voice_for(imp(0.4, 0.5, 0.0)), None); // pain exactly 0.4: no mercy
        assert_eq!(voice_for(imp(0.0, 0.3, 0.0)), None); // trust exactly 0.3: no concern
    }

    #[test]
    #[rustfmt::skip]
    fn first_matching_rule_wins() {
        assert_eq!(voice_for(imp(0.8, 0.9, 0.9)), Some(Voice::Alarm)); // pain before chaos
        assert_eq!(voice_for(imp(0.0, 0.9, 0.9)), Some(Voice::Courage)); // chaos before trust
        assert_eq!(voice_for(imp(0.5, 0.9, 0.6)), Some(Voice::Celebration)); // trust before curiosity
        assert_eq!(voice_for(imp(0.5, 0.1, 0.6)), Some(Voice::Curiosity)); // curiosity before mercy
        assert_eq!(voice_for(imp(0.5, 0.1, 0.0)), Some(Voice::Mercy)); // mercy before concern
    }

    #[test]
    #[rustfmt::skip]
    fn the_seed_rules_in_order() {
        let got: Vec<_> = VOICE_RULES.iter().map(|r| (r.axis, r.below, r.bound, r.voice)).collect();
        let expected = [
            (Axis::Pain,  false, 0.7, Voice::Alarm),
            (Axis::Chaos, false, 0.7, Voice::Courage),
            (Axis::Trust, false, 0.7, Voice::Celebration),
            (Axis::Chaos, false, 0.5, Voice::Curiosity),
            (Axis::Pain,  false, 0.4, Voice::Mercy),
            (Axis::Trust, true,  0.3, Voice::Concern),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn patience_and_notification_are_never_picked_by_rules() {
        assert!(VOICE_RULES.iter().all(|r| r.voice != Voice::Patience));
        assert!(VOICE_RULES.iter().all(|r| r.voice != Voice::Notification));
    }

    #[test]
    fn alert_voices() {
        let got: Vec<_> = ALL.into_iter().filter(|v| v.is_alert()).collect();
        let expected = [
            Voice::Alarm,
            Voice::Concern,
            Voice::Curiosity,
            Voice::Courage,
            Voice::Mercy,
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn voice_activation_lambda() {
        let got = voice_lambda("protocol_violation", Voice::Alarm);
        assert_eq!(got, "respond_to_protocol_violation_with_alarm");
    }
}
