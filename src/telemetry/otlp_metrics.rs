//! The metric registry as an OTLP metrics request: cumulative sums, gauges and explicit-bucket
//! histograms, with the same names, label keys and units `/metrics` shows after translation. Histogram
//! points carry their buckets' exemplars (trace and span id of the session behind a value).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, AggregationTemporality, Exemplar, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attrs::s;
use super::registry::{Kind, Registry, Sample};

/// Builds one request from a snapshot; `start` is the process start (cumulative temporality).
pub fn request(
    registry: &Registry,
    res: &Resource,
    start: u64,
    now: u64,
) -> (ExportMetricsServiceRequest, u64) {
    let mut metrics: Vec<Metric> = Vec::new();
    let mut points = 0;
    for (def, labels, sample) in registry.snapshot() {
        let attributes: Vec<_> = labels.iter().map(|(k, v)| s(k, v.clone())).collect();
        let number = |v: f64| NumberDataPoint {
            attributes: attributes.clone(),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        let data = match (def.kind, sample) {
            (Kind::Counter | Kind::UpDown, Sample::Value(v)) => metric::Data::Sum(Sum {
                data_points: vec![number(v)],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: def.kind == Kind::Counter,
            }),
            (Kind::Gauge, Sample::Value(v)) => metric::Data::Gauge(Gauge {
                data_points: vec![number(v)],
            }),
            (
                Kind::Histogram(bounds),
                Sample::Histogram {
                    counts,
                    sum,
                    count,
                    exemplars,
                },
            ) => {
                let exemplars = exemplars
                    .into_iter()
                    .flatten()
                    .map(|e| Exemplar {
                        time_unix_nano: e.time_unix_nano,
                        value: Some(exemplar::Value::AsDouble(e.value)),
                        span_id: e.span_id.to_vec(),
                        trace_id: e.trace_id.to_vec(),
                        ..Default::default()
                    })
                    .collect();
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: attributes.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        count,
                        sum: Some(sum),
                        bucket_counts: counts,
                        explicit_bounds: bounds.to_vec(),
                        exemplars,
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })
            }
            _ => continue,
        };
        points += 1;
        match metrics.last_mut() {
            Some(m) if m.name == def.name => merge(m, data),
            _ => metrics.push(Metric {
                name: def.name.into(),
                description: def.help.into(),
                unit: def.unit.into(),
                data: Some(data),
                ..Default::default()
            }),
        }
    }
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(res.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(super::export::scope()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req, points)
}

fn merge(m: &mut Metric, data: metric::Data) {
    match (m.data.as_mut(), data) {
        (Some(metric::Data::Sum(a)), metric::Data::Sum(b)) => a.data_points.extend(b.data_points),
        (Some(metric::Data::Gauge(a)), metric::Data::Gauge(b)) => {
            a.data_points.extend(b.data_points)
        }
        (Some(metric::Data::Histogram(a)), metric::Data::Histogram(b)) => {
            a.data_points.extend(b.data_points)
        }
        _ => {}
    }
}
