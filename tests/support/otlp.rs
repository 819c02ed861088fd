//! In-process OTLP receivers built on the official `opentelemetry-proto` definitions: gRPC (tonic
//! servers generated from the protos) and HTTP/protobuf (hyper, decoding the same messages).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// Everything received.
#[derive(Default, Clone)]
pub struct Received {
    pub traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    pub metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    pub logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
}

impl Received {
    pub fn spans(&self) -> Vec<Span> {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }

    pub fn span_resources(&self) -> Vec<Vec<KeyValue>> {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .map(|rs| rs.resource.clone().unwrap_or_default().attributes)
            .collect()
    }

    pub fn log_records(&self) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_logs.iter())
            .flat_map(|rl| rl.scope_logs.iter())
            .flat_map(|sl| sl.log_records.clone())
            .collect()
    }

    /// The latest cumulative value of a sum metric, summed over series whose attributes match `filter`.
    pub fn latest_sum(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
        let reqs = self.metrics.lock().unwrap();
        let last = reqs.last()?;
        let mut total = None;
        for rm in &last.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in sm.metrics.iter().filter(|m| m.name == name) {
                    if let Some(Data::Sum(s)) = &m.data {
                        for p in &s.data_points {
                            if filter
                                .iter()
                                .all(|(k, v)| attr(&p.attributes, k).as_deref() == Some(*v))
                            {
                                let x = match p.value {
                                    Some(Value::AsDouble(d)) => d,
                                    Some(Value::AsInt(i)) => i as f64,
                                    None => 0.0,
                                };
                                total = Some(total.unwrap_or(0.0) + x);
                            }
                        }
                    }
                }
            }
        }
        total
    }

    /// Everything received, as debug text (for redaction searches).
    pub fn dump(&self) -> String {
        format!(
            "{:?}{:?}{:?}",
            self.traces.lock().unwrap(),
            self.metrics.lock().unwrap(),
            self.logs.lock().unwrap()
        )
    }
}

/// An attribute as a string (ints and doubles rendered).
pub fn attr(kvs: &[KeyValue], key: &str) -> Option<String> {
    let v = kvs
        .iter()
        .find(|k| k.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        _ => return None,
    })
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        r: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        r: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Received {
    async fn export(
        &self,
        r: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Starts an OTLP/gRPC receiver on a free port (or on `addr`).
pub async fn grpc_receiver_on(
    addr: SocketAddr,
) -> (SocketAddr, Received, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Received::default();
    let r = rec.clone();
    let h = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(r.clone()))
            .add_service(MetricsServiceServer::new(r.clone()))
            .add_service(LogsServiceServer::new(r))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, rec, h)
}

pub async fn grpc_receiver() -> (SocketAddr, Received, tokio::task::JoinHandle<()>) {
    grpc_receiver_on("127.0.0.1:0".parse().unwrap()).await
}

/// Starts an OTLP/HTTP (protobuf) receiver on a free port.
pub async fn http_receiver() -> (SocketAddr, Received) {
    use http_body_util::{BodyExt, Full};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Received::default();
    let r = rec.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let r = r.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let r = r.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let ctype = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            assert_eq!(ctype, "application/x-protobuf");
                            match path.as_str() {
                                "/v1/traces" => r
                                    .traces
                                    .lock()
                                    .unwrap()
                                    .push(ExportTraceServiceRequest::decode(body).unwrap()),
                                "/v1/metrics" => r
                                    .metrics
                                    .lock()
                                    .unwrap()
                                    .push(ExportMetricsServiceRequest::decode(body).unwrap()),
                                "/v1/logs" => r
                                    .logs
                                    .lock()
                                    .unwrap()
                                    .push(ExportLogsServiceRequest::decode(body).unwrap()),
                                _ => {}
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                bytes::Bytes::new(),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, rec)
}
