//! The registry as scrape text: the Prometheus text format 0.0.4 for every scraper, and OpenMetrics 1.0
//! (with exemplars on histogram buckets and `# EOF`) for a scraper that asks for it with
//! `Accept: application/openmetrics-text`.
//!
//! Both are written by one renderer; they differ only where OpenMetrics says so: a counter family is
//! named without its `_total` suffix (its samples keep it), bucket bounds are canonical floats, a
//! bucket may carry `# {trace_id="…",span_id="…"} value timestamp`, and the text ends with `# EOF`.

use std::fmt::Write;

use super::registry::{Def, Exemplar, Kind, Registry, Sample};

/// The content type of the 0.0.4 text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4 (no exemplars).
    Text,
    /// OpenMetrics 1.0 (exemplars, `# EOF`).
    OpenMetrics,
}

impl Format {
    /// The format a scraper's `Accept` header asks for: OpenMetrics when it lists it, else 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_om = accept.is_some_and(|a| {
            a.split(',').any(|part| {
                let mut it = part.split(';').map(str::trim);
                let media = it.next().unwrap_or("");
                let refused = it.any(|p| p.replace(' ', "") == "q=0");
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_om {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

impl Registry {
    /// Renders the Prometheus text exposition format (0.0.4).
    pub fn render_prometheus(&self, extra_labels: &[(&'static str, &str)]) -> String {
        self.render(Format::Text, extra_labels)
    }

    /// Renders every series in `format`.
    pub fn render(&self, format: Format, extra_labels: &[(&'static str, &str)]) -> String {
        let om = format == Format::OpenMetrics;
        let mut out = String::new();
        let snap = self.snapshot();
        let mut last = "";
        for (def, labels, sample) in &snap {
            let name = prom_name(def);
            if def.name != last {
                let ty = match def.kind {
                    Kind::Counter => "counter",
                    Kind::Histogram(_) => "histogram",
                    _ => "gauge",
                };
                let family = match def.kind {
                    Kind::Counter if om => name.strip_suffix("_total").unwrap_or(&name),
                    _ => &name,
                };
                let _ = writeln!(out, "# HELP {family} {}", def.help);
                let _ = writeln!(out, "# TYPE {family} {ty}");
                last = def.name;
            }
            let mut all: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (prom_label(k), v.clone()))
                .collect();
            all.extend(
                extra_labels
                    .iter()
                    .map(|(k, v)| (prom_label(k), v.to_string())),
            );
            match (sample, def.kind) {
                (Sample::Value(v), _) => {
                    let _ = writeln!(out, "{name}{} {}", fmt_labels(&all, None), fmt_f(*v));
                }
                (
                    Sample::Histogram {
                        counts,
                        sum,
                        count,
                        exemplars,
                    },
                    Kind::Histogram(bounds),
                ) => {
                    let mut cum = 0;
                    for (i, c) in counts.iter().enumerate() {
                        cum += c;
                        let le = match bounds.get(i) {
                            None => "+Inf".to_string(),
                            Some(b) if om => format!("{b:?}"),
                            Some(b) => fmt_f(*b),
                        };
                        let _ = write!(out, "{name}_bucket{} {cum}", fmt_labels(&all, Some(&le)));
                        if let (true, Some(Some(e))) = (om, exemplars.get(i)) {
                            write_exemplar(&mut out, e);
                        }
                        out.push('\n');
                    }
                    let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(&all, None), fmt_f(*sum));
                    let _ = writeln!(out, "{name}_count{} {count}", fmt_labels(&all, None));
                }
                _ => {}
            }
        }
        if om {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// The answer to a scrape while metrics are switched off (`websocket.monitoring.metrics_enabled`):
/// valid text without a series (OpenMetrics allows no free comment: only `# EOF`).
pub fn switched_off(format: Format) -> String {
    match format {
        Format::Text => "# metrics are off: websocket.monitoring.metrics_enabled = false (WEBSOCKET_ENABLE_METRICS)\n".into(),
        Format::OpenMetrics => "# EOF\n".into(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// ` # {trace_id="…",span_id="…"} value timestamp` (OpenMetrics exemplar; timestamp in seconds).
fn write_exemplar(out: &mut String, e: &Exemplar) {
    let secs = e.time_unix_nano as f64 / 1e9;
    let _ = write!(
        out,
        " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {secs:.3}",
        hex(&e.trace_id),
        hex(&e.span_id),
        fmt_f(e.value)
    );
}

fn fmt_f(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn fmt_labels(all: &[(String, String)], le: Option<&str>) -> String {
    if all.is_empty() && le.is_none() {
        return String::new();
    }
    let mut s = String::from("{");
    let mut first = true;
    for (k, v) in all
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(le.map(|l| ("le", l)))
    {
        if !first {
            s.push(',');
        }
        first = false;
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s.push('}');
    s
}

/// OTel attribute key → Prometheus label name.
pub fn prom_label(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// OTel metric name + unit + kind → Prometheus name (the collector's translation rules).
pub fn prom_name(def: &Def) -> String {
    let mut n = prom_label(def.name);
    let suffix = match def.unit {
        "s" => "_seconds",
        "ms" => "_milliseconds",
        "By" => "_bytes",
        "1" if def.kind == Kind::Gauge && !def.name.contains("ratio") => "",
        "1" => "_ratio",
        _ => "",
    };
    if !suffix.is_empty() && !n.ends_with(suffix) {
        n.push_str(suffix);
    }
    if def.kind == Kind::Counter && !n.ends_with("_total") {
        n.push_str("_total");
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Def = Def {
        name: "websocket.messages",
        kind: Kind::Counter,
        unit: "{message}",
        help: "m",
    };
    const H: Def = Def {
        name: "websocket.ping.rtt",
        kind: Kind::Histogram(&[0.1, 1.0]),
        unit: "s",
        help: "r",
    };
    const B: Def = Def {
        name: "websocket.payload",
        kind: Kind::Counter,
        unit: "By",
        help: "b",
    };

    #[test]
    fn translation_follows_the_otel_prometheus_rules() {
        assert_eq!(prom_name(&C), "websocket_messages_total");
        assert_eq!(prom_name(&H), "websocket_ping_rtt_seconds");
        assert_eq!(prom_name(&B), "websocket_payload_bytes_total");
        assert_eq!(prom_label("iskra.dashboard"), "iskra_dashboard");
    }

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let r = Registry::default();
        r.add(&C, &[("iskra.dashboard", "pulse")], 2.0);
        r.observe(&H, &[], 0.05);
        r.observe(&H, &[], 5.0);
        let text = r.render_prometheus(&[]);
        for line in [
            "websocket_messages_total{iskra_dashboard=\"pulse\"} 2\n",
            "websocket_ping_rtt_seconds_bucket{le=\"0.1\"} 1\n",
            "websocket_ping_rtt_seconds_bucket{le=\"+Inf\"} 2\n",
            "websocket_ping_rtt_seconds_count 2\n",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn openmetrics_is_asked_for_by_accept_and_0_0_4_is_the_default() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        let refused = "application/openmetrics-text; q=0, text/plain";
        assert_eq!(Format::negotiate(Some(refused)), Format::Text);
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_carries_exemplars() {
        let r = Registry::default();
        r.add(&C, &[("iskra.dashboard", "pulse")], 2.0);
        let trace = Some(([0xab; 16], [0xcd; 8]));
        r.observe_traced(&H, &[], 0.05, trace, 1_700_000_000_500_000_000);
        r.observe(&H, &[], 5.0);
        let om = r.render(Format::OpenMetrics, &[]);
        assert!(om.contains("# TYPE websocket_messages counter\n"), "{om}");
        assert!(
            om.contains("websocket_messages_total{iskra_dashboard=\"pulse\"} 2\n"),
            "{om}"
        );
        let ex = format!(
            "websocket_ping_rtt_seconds_bucket{{le=\"0.1\"}} 1 # {{trace_id=\"{}\",span_id=\"{}\"}} 0.05 1700000000.500\n",
            "ab".repeat(16),
            "cd".repeat(8)
        );
        assert!(om.contains(&ex), "{om}");
        assert!(
            om.contains("websocket_ping_rtt_seconds_bucket{le=\"1.0\"} 1\n"),
            "{om}"
        );
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = r.render_prometheus(&[]);
        assert!(text.contains("# TYPE websocket_messages_total counter\n"));
        assert!(
            !text.contains("trace_id") && !text.contains("# EOF"),
            "{text}"
        );
        assert!(text.contains("websocket_ping_rtt_seconds_bucket{le=\"1\"} 1\n"));
    }
}
