//! The sidecar's metric registry: one store that both `/metrics` (Prometheus text) and the OTLP exporter
//! read, so scrape-only users see exactly what the collector's Prometheus exporter would produce.
//!
//! Names and label keys are OTel's; [`prom_name`] applies the OTel → Prometheus translation (dots to
//! underscores, a unit suffix, `_total` on monotonic counters). Histogram buckets keep the latest
//! [`Exemplar`] observed into them (trace and span id of the session behind the value); the text
//! formats are written by [`super::exposition`].

use std::collections::BTreeMap;
use std::sync::Mutex;

pub use super::exposition::{prom_label, prom_name};

/// Instrument kinds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Monotonic sum.
    Counter,
    /// Non-monotonic sum (up/down counter).
    UpDown,
    /// Last value.
    Gauge,
    /// Explicit-bucket histogram with these upper bounds.
    Histogram(&'static [f64]),
}

/// A metric's definition.
#[derive(Debug, Clone, Copy)]
pub struct Def {
    /// OTel name (or the seed's Prometheus name where the seed fixed one).
    pub name: &'static str,
    /// Instrument.
    pub kind: Kind,
    /// UCUM unit ("s", "By", "1", "{message}", or "" for the seed's names).
    pub unit: &'static str,
    /// Description.
    pub help: &'static str,
}

/// Sorted label pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A measurement kept beside a histogram bucket, pointing at the trace it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The value observed.
    pub value: f64,
    /// When (nanoseconds since the epoch).
    pub time_unix_nano: u64,
    /// The trace of the session it belongs to.
    pub trace_id: [u8; 16],
    /// The session's span.
    pub span_id: [u8; 8],
}

/// Trace and span ids of the session behind a measurement.
pub type TraceRef = Option<([u8; 16], [u8; 8])>;

#[derive(Debug, Clone)]
enum Point {
    Value(f64),
    Hist {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
        /// The latest exemplar per bucket (empty until the first traced observation).
        exemplars: Vec<Option<Exemplar>>,
    },
}

/// One metric family: its definition and every series, keyed by its sorted label set written as one
/// string (see [`write_key`]), so that recording into an existing series allocates nothing.
type Family = (Def, BTreeMap<String, (Labels, Point)>);

#[derive(Debug, Default)]
struct Inner {
    families: BTreeMap<&'static str, Family>,
    /// Reused for building lookup keys.
    scratch: String,
}

/// Thread-safe store of every series.
#[derive(Debug, Default)]
pub struct Registry {
    series: Mutex<Inner>,
}

/// A snapshot of one series, for exporters.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// Counter, up/down counter or gauge value.
    Value(f64),
    /// Histogram: non-cumulative bucket counts (bounds + overflow), sum, count.
    Histogram {
        /// Counts per bucket.
        counts: Vec<u64>,
        /// Sum.
        sum: f64,
        /// Count.
        count: u64,
        /// The latest exemplar of each bucket, if any (empty: none at all).
        exemplars: Vec<Option<Exemplar>>,
    },
}

fn sorted(labels: &[(&'static str, &str)]) -> Labels {
    let mut l: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
    l.sort();
    l
}

/// Writes a label set, sorted, as one string: `key \x1f value \x1e` per label.
fn write_key(out: &mut String, labels: &[(&str, &str)]) {
    const MAX: usize = 16;
    assert!(labels.len() <= MAX, "more than {MAX} labels");
    let mut order = [0usize; MAX];
    let order = &mut order[..labels.len()];
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    order.sort_unstable_by(|a, b| labels[*a].cmp(&labels[*b]));
    out.clear();
    for &i in order.iter() {
        let (k, v) = labels[i];
        out.push_str(k);
        out.push('\x1f');
        out.push_str(v);
        out.push('\x1e');
    }
}

impl Registry {
    fn with(&self, def: &Def, labels: &[(&'static str, &str)], f: impl FnOnce(&mut Point)) {
        let mut g = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { families, scratch } = &mut *g;
        write_key(scratch, labels);
        let family = families
            .entry(def.name)
            .or_insert_with(|| (*def, BTreeMap::new()));
        if let Some((_, p)) = family.1.get_mut(scratch.as_str()) {
            return f(p);
        }
        let p = match def.kind {
            Kind::Histogram(b) => Point::Hist {
                counts: vec![0; b.len() + 1],
                sum: 0.0,
                count: 0,
                exemplars: Vec::new(),
            },
            _ => Point::Value(0.0),
        };
        let (_, p) = family
            .1
            .entry(scratch.clone())
            .or_insert((sorted(labels), p));
        f(p);
    }

    /// Adds to a counter or up/down counter.
    pub fn add(&self, def: &Def, labels: &[(&'static str, &str)], v: f64) {
        self.with(def, labels, |p| {
            if let Point::Value(x) = p {
                *x += v;
            }
        });
    }

    /// Sets a gauge, or a counter mirrored from an external cumulative source.
    pub fn set(&self, def: &Def, labels: &[(&'static str, &str)], v: f64) {
        self.with(def, labels, |p| {
            if let Point::Value(x) = p {
                *x = v;
            }
        });
    }

    /// Records one histogram value.
    pub fn observe(&self, def: &Def, labels: &[(&'static str, &str)], v: f64) {
        self.observe_traced(def, labels, v, None, 0);
    }

    /// Records one histogram value; with `trace`, it becomes its bucket's exemplar (observed at
    /// `at_nanos`).
    pub fn observe_traced(
        &self,
        def: &Def,
        labels: &[(&'static str, &str)],
        v: f64,
        trace: TraceRef,
        at_nanos: u64,
    ) {
        let Kind::Histogram(bounds) = def.kind else {
            return;
        };
        self.with(def, labels, |p| {
            if let Point::Hist {
                counts,
                sum,
                count,
                exemplars,
            } = p
            {
                let i = bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len());
                counts[i] += 1;
                *sum += v;
                *count += 1;
                if let Some((trace_id, span_id)) = trace {
                    exemplars.resize(counts.len(), None);
                    exemplars[i] = Some(Exemplar {
                        value: v,
                        time_unix_nano: at_nanos,
                        trace_id,
                        span_id,
                    });
                }
            }
        });
    }

    /// Replaces a histogram's state with externally accumulated buckets (cumulative source).
    pub fn set_histogram(
        &self,
        def: &Def,
        labels: &[(&'static str, &str)],
        counts: &[u64],
        sum: f64,
    ) {
        self.with(def, labels, |p| {
            if let Point::Hist {
                counts: c,
                sum: s,
                count,
                ..
            } = p
            {
                c.clear();
                c.extend_from_slice(counts);
                *s = sum;
                *count = counts.iter().sum();
            }
        });
    }

    /// Every series: definition, labels, sample.
    pub fn snapshot(&self) -> Vec<(Def, Labels, Sample)> {
        let g = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (def, series) in g.families.values() {
            for (labels, p) in series.values() {
                let s = match p {
                    Point::Value(v) => Sample::Value(*v),
                    Point::Hist {
                        counts,
                        sum,
                        count,
                        exemplars,
                    } => Sample::Histogram {
                        counts: counts.clone(),
                        sum: *sum,
                        count: *count,
                        exemplars: exemplars.clone(),
                    },
                };
                out.push((*def, labels.clone(), s));
            }
        }
        out
    }

    /// The current value of one series (tests, health score).
    pub fn value(&self, name: &str, labels: &[(&'static str, &str)]) -> Option<f64> {
        let mut key = String::new();
        write_key(&mut key, labels);
        let g = self.series.lock().unwrap_or_else(|e| e.into_inner());
        match &g.families.get(name)?.1.get(&key)?.1 {
            Point::Value(v) => Some(*v),
            Point::Hist { count, .. } => Some(*count as f64),
        }
    }

    /// Sum of a family's values over series whose labels include all of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.matching(name, filter).iter().sum()
    }

    /// Number of series in a family.
    pub fn count(&self, name: &str) -> usize {
        self.matching(name, &[]).len()
    }

    fn matching(&self, name: &str, filter: &[(&str, &str)]) -> Vec<f64> {
        let g = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, series)) = g.families.get(name) else {
            return Vec::new();
        };
        series
            .values()
            .filter(|(l, _)| {
                filter
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, p)| match p {
                Point::Value(v) => *v,
                Point::Hist { count, .. } => *count as f64,
            })
            .collect()
    }
}
