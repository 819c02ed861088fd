//! Our `tracing_subscriber` layer: each event that passes [`Filter`] is written as one JSON line by
//! [`crate::jsonlog::own`] (stdout, or stderr for the exporter) and, at WARN or ERROR from the sidecar's
//! own targets except the exporter's, handed to [`super::Export`].

use std::time::SystemTime;

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{span, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, Filtered};
use tracing_subscriber::layer::{self, Context, Layer};

use super::fields::Fields;
use super::{OwnLine, CRATE, EXPORTER, LIFECYCLE};
use crate::jsonlog::{self, Stream};

/// Which events are written: `RUST_LOG` (an [`EnvFilter`]) when set, else the sidecar's own targets at
/// `websocket.monitoring.log_level` ([`super::set_level`]); [`LIFECYCLE`] always.
pub struct Filter {
    env: Option<EnvFilter>,
}

impl Filter {
    /// From `RUST_LOG` (unset or blank: none); a value that does not parse gives no filter and the
    /// reason, to be said.
    pub fn from_env() -> (Filter, Option<String>) {
        match std::env::var("RUST_LOG") {
            Ok(s) if !s.trim().is_empty() => match EnvFilter::try_new(&s) {
                Ok(f) => (Filter { env: Some(f) }, None),
                Err(e) => {
                    let why = format!("RUST_LOG={s:?} is not a filter ({e}); websocket.monitoring.log_level applies");
                    (Filter { env: None }, Some(why))
                }
            },
            _ => (Filter { env: None }, None),
        }
    }
}

fn ours(target: &str) -> bool {
    target == CRATE || target.starts_with("iskra_ws_sidecar::")
}

impl<S: Subscriber> layer::Filter<S> for Filter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if meta.target() == LIFECYCLE {
            return true;
        }
        match &self.env {
            Some(f) => layer::Filter::enabled(f, meta, cx),
            None => ours(meta.target()) && super::level_enabled(meta.level()),
        }
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == LIFECYCLE {
            return Interest::always();
        }
        match &self.env {
            Some(f) => layer::Filter::<S>::callsite_enabled(f, meta),
            // The level can change (each embedded sidecar sets its own): asked per event.
            None if ours(meta.target()) => Interest::sometimes(),
            None => Interest::never(),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The lifecycle lines are INFO: never let the hint hide them.
        let env = self.env.as_ref()?;
        layer::Filter::<S>::max_level_hint(env).map(|h| h.max(LevelFilter::INFO))
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, cx: Context<'_, S>) {
        if let Some(f) = &self.env {
            layer::Filter::on_new_span(f, attrs, id, cx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, cx: Context<'_, S>) {
        if let Some(f) = &self.env {
            layer::Filter::on_record(f, id, values, cx);
        }
    }

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        if let Some(f) = &self.env {
            layer::Filter::on_enter(f, id, cx);
        }
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        if let Some(f) = &self.env {
            layer::Filter::on_exit(f, id, cx);
        }
    }

    fn on_close(&self, id: span::Id, cx: Context<'_, S>) {
        if let Some(f) = &self.env {
            layer::Filter::on_close(f, id, cx);
        }
    }
}

/// Writes the events it is given as JSON lines (and exports the WARN and ERROR ones of our own).
pub struct Own;

/// [`Own`] behind `filter`.
pub fn layer<S>(filter: Filter) -> Filtered<Own, Filter, S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    Own.with_filter(filter)
}

/// The component a target is logged under: the sidecar's, its exporter's, or another crate's target.
fn component(target: &str) -> &str {
    if target.starts_with(EXPORTER) {
        "iskra-ws-sidecar.exporter"
    } else if ours(target) {
        "iskra-ws-sidecar"
    } else {
        target
    }
}

impl<S: Subscriber> Layer<S> for Own {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let target = meta.target();
        let f = Fields::of(event);
        let line = OwnLine {
            at: SystemTime::now(),
            level: *meta.level(),
            component: component(target),
            event_type: f.event_type.as_deref().unwrap_or("log"),
            fields: &f.members,
        };
        let exporter = target.starts_with(EXPORTER);
        let to = if exporter {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        jsonlog::own(
            to,
            line.at,
            line.level.as_str(),
            line.component,
            line.event_type,
            line.fields,
        );
        if line.level <= tracing::Level::WARN && ours(target) && !exporter {
            super::export(&line);
        }
    }
}
