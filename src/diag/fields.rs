//! A `tracing` event's fields as JSON members: strings, numbers and booleans as themselves, anything
//! given with `%`/`?` as its text; a field named `json` (a `serde_json::Value` object given with `%`)
//! is spread into the line, for payloads with arrays or nested objects; a field declared but not given
//! (`tracing::field::Empty`, an `Option` that is `None`) is `null`, as a `json!` map printed it.

use std::fmt::Debug;

use serde_json::Value;
use tracing::field::{Field, Visit};

/// The name of the field whose JSON object is spread into the line.
pub const JSON: &str = "json";
/// The name of the field that says what happened (the line's `event_type`).
pub const EVENT_TYPE: &str = crate::jsonlog::key::EVENT_TYPE;

/// Collects an event's fields ([`Fields::of`]).
#[derive(Debug, Default)]
pub struct Fields {
    /// The `event_type` field, if given.
    pub event_type: Option<String>,
    /// Every other field, in the order given.
    pub members: Vec<(String, Value)>,
}

impl Fields {
    /// The fields of `event`.
    pub fn of(event: &tracing::Event<'_>) -> Fields {
        let mut f = Fields::default();
        event.record(&mut f);
        for field in event.metadata().fields() {
            let name = field.name();
            let given = f.members.iter().any(|(k, _)| k == name);
            if !given && name != JSON && name != EVENT_TYPE {
                f.members.push((name.to_string(), Value::Null));
            }
        }
        f
    }

    fn put(&mut self, field: &Field, v: Value) {
        self.members.push((field.name().to_string(), v));
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == EVENT_TYPE {
            self.event_type = Some(value.to_string());
        } else {
            self.put(field, value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let text = format!("{value:?}");
        match field.name() {
            EVENT_TYPE => self.event_type = Some(text),
            JSON => match serde_json::from_str(&text) {
                Ok(Value::Object(m)) => self.members.extend(m),
                _ => self.put(field, text.into()),
            },
            _ => self.put(field, text.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use tracing::subscriber::with_default;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    struct Keep(Arc<Mutex<Vec<Fields>>>);
    impl<S: tracing::Subscriber> Layer<S> for Keep {
        fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
            self.0.lock().unwrap().push(Fields::of(e));
        }
    }

    #[test]
    fn fields_become_json_members_with_json_spread_and_absent_ones_null() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sub = tracing_subscriber::registry().with(Keep(kept.clone()));
        let payload = json!({"backups": ["ws://b/"], "origin": null});
        with_default(sub, || {
            let none: Option<&str> = None;
            tracing::warn!(
                event_type = "outbox_spool_error",
                message = %"disk full",
                path = none,
                n = 3u64,
                neg = -1i64,
                ratio = 0.5,
                ok = true,
                json = %payload,
            );
        });
        let f = &kept.lock().unwrap()[0];
        assert_eq!(f.event_type.as_deref(), Some("outbox_spool_error"));
        let got: serde_json::Map<String, Value> = f.members.iter().cloned().collect();
        let want = json!({"message": "disk full", "path": null, "n": 3, "neg": -1, "ratio": 0.5,
                          "ok": true, "backups": ["ws://b/"], "origin": null});
        assert_eq!(Value::Object(got), want);
    }
}
