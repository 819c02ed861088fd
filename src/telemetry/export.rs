//! Sending OTLP: encodes batches into export requests (resource + scope), queues spans and logs in the
//! [`Spool`] and sends them in order over gRPC (tonic) or HTTP (protobuf or JSON bodies), retrying with
//! backoff while the collector is away. Its own trouble is said under this module's target
//! ([`crate::diag::EXPORTER`]): on stderr, never exported, so it cannot feed back. Metrics are cumulative and sent each interval without spooling:
//! a gap loses no counts. Self-telemetry (exported, failed, dropped, export duration) goes to the registry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::mpsc;

use super::env::{OtelEnv, Protocol, Signal, SignalTarget};
use super::names as n;
use super::pb;
use super::registry::Registry;
use super::spool::Spool;

/// The instrumentation scope of everything the sidecar emits.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "iskra-ws-sidecar".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// The resource as OTLP.
pub fn resource(env: &OtelEnv) -> Resource {
    Resource {
        attributes: env
            .resource
            .iter()
            .map(|(k, v)| super::attrs::s(k, v.clone()))
            .collect(),
        ..Default::default()
    }
}

/// One trace export request around spans already encoded as `ScopeSpans.spans` fields
/// ([`super::spans::Encoded`]); `resource` and `scope` are encoded messages.
/// ExportTraceServiceRequest { resource_spans 1: { resource 1, scope_spans 2: { scope 1, spans 2… } } }
pub fn trace_request(resource: &[u8], scope: &[u8], spans: &[u8]) -> Vec<u8> {
    let field_len = |n: usize| 1 + pb::varint_len(n) + n;
    let scope_spans = field_len(scope.len()) + spans.len();
    let resource_spans = field_len(resource.len()) + field_len(scope_spans);
    let mut out = Vec::with_capacity(field_len(resource_spans));
    out.push(0x0a); // field 1, length-delimited
    pb::varint(&mut out, resource_spans as u64);
    pb::bytes(&mut out, 1, resource);
    out.push(0x12); // field 2, length-delimited
    pb::varint(&mut out, scope_spans as u64);
    pb::bytes(&mut out, 1, scope);
    out.extend_from_slice(spans);
    out
}

/// Encodes log records as one request.
pub fn logs_request(res: &Resource, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(res.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The collector could not be reached or answered an error.
    #[error("{0}")]
    Failed(String),
}

/// One signal's connection to the collector.
pub struct Client {
    target: SignalTarget,
    signal: Signal,
    grpc: Option<tonic::transport::Channel>,
    file: Option<std::path::PathBuf>,
}

impl Client {
    /// Prepares a client (lazily connecting; nothing fails until the first send).
    pub fn new(signal: Signal, target: SignalTarget) -> Result<Client, String> {
        if let Some(path) = target.endpoint.strip_prefix("file://") {
            return Ok(Client {
                signal,
                grpc: None,
                file: Some(path.into()),
                target,
            });
        }
        let grpc = match target.protocol {
            Protocol::Grpc => {
                let mut ep = tonic::transport::Endpoint::from_shared(target.endpoint.clone())
                    .map_err(|e| format!("{}: {e}", target.endpoint))?;
                ep = ep.timeout(target.timeout).connect_timeout(target.timeout);
                if target.endpoint.starts_with("https://") || target.certificate.is_some() {
                    let mut tls = tonic::transport::ClientTlsConfig::new().with_enabled_roots();
                    if let Some(ca) = &target.certificate {
                        let pem = std::fs::read(ca)
                            .map_err(|e| format!("OTEL_EXPORTER_OTLP_CERTIFICATE {ca}: {e}"))?;
                        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                    }
                    if let Some((cert, key)) = &target.client_cert {
                        let c = std::fs::read(cert)
                            .map_err(|e| format!("client certificate {cert}: {e}"))?;
                        let k = std::fs::read(key).map_err(|e| format!("client key {key}: {e}"))?;
                        tls = tls.identity(tonic::transport::Identity::from_pem(c, k));
                    }
                    ep = ep.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
                }
                Some(ep.connect_lazy())
            }
            _ => {
                if target.endpoint.starts_with("https://") {
                    return Err(format!("{}: OTLP/HTTP over TLS is not supported yet; use OTEL_EXPORTER_OTLP_PROTOCOL=grpc for TLS", target.endpoint));
                }
                None
            }
        };
        Ok(Client {
            target,
            signal,
            grpc,
            file: None,
        })
    }

    fn grpc_request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        for (k, v) in &self.target.headers {
            if let (Ok(k), Ok(v)) = (
                k.to_ascii_lowercase()
                    .parse::<tonic::metadata::MetadataKey<_>>(),
                v.parse(),
            ) {
                req.metadata_mut().insert(k, v);
            }
        }
        req
    }

    /// Sends one encoded request.
    pub async fn send(&self, data: Bytes) -> Result<(), ExportError> {
        let fail = |e: &dyn std::fmt::Display| {
            ExportError::Failed(format!(
                "{} export to {}: {e}",
                self.signal.as_str(),
                self.target.endpoint
            ))
        };
        if let Some(path) = &self.file {
            // OTLP JSON lines, the shape of the Collector's file exporter.
            let mut line = self.to_json(&data).map_err(|e| fail(&e))?;
            line.push(b'\n');
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| fail(&e))?;
            return f.write_all(&line).map_err(|e| fail(&e));
        }
        if let Some(ch) = &self.grpc {
            let req = self.grpc_request(data);
            let r = super::raw_grpc::export(ch.clone(), self.signal, req).await;
            return r.map_err(|s| fail(&format!("{:?} {}", s.code(), s.message())));
        }
        let (body, ctype) = match self.target.protocol {
            Protocol::HttpJson => (
                Bytes::from(self.to_json(&data).map_err(|e| fail(&e))?),
                "application/json",
            ),
            _ => (data, "application/x-protobuf"),
        };
        let r = tokio::time::timeout(self.target.timeout, self.post(body, ctype)).await;
        match r {
            Err(_) => Err(fail(&"timed out")),
            Ok(Err(e)) => Err(fail(&e)),
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
            Ok(Ok(status)) => Err(fail(&format!("HTTP {status}"))),
        }
    }

    fn to_json(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        match self.signal {
            Signal::Traces => {
                serde_json::to_vec(&ExportTraceServiceRequest::decode(data).map_err(|x| e(&x))?)
            }
            Signal::Logs => {
                serde_json::to_vec(&ExportLogsServiceRequest::decode(data).map_err(|x| e(&x))?)
            }
            Signal::Metrics => {
                serde_json::to_vec(&ExportMetricsServiceRequest::decode(data).map_err(|x| e(&x))?)
            }
        }
        .map_err(|x| e(&x))
    }

    async fn post(&self, body: Bytes, ctype: &str) -> Result<u16, String> {
        let uri: hyper::Uri = self.target.endpoint.parse().map_err(|e| format!("{e}"))?;
        let host = uri.host().ok_or("endpoint without host")?.to_string();
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = hyper::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header("host", format!("{host}:{port}"))
            .header("content-type", ctype);
        for (k, v) in &self.target.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        Ok(status)
    }
}

/// A batch handed from the telemetry task to the sender.
pub struct Batch {
    /// Which signal.
    pub signal: Signal,
    /// Items inside.
    pub items: u64,
    /// Encoded request (shared, not copied, by the spool and each send attempt).
    pub data: Bytes,
}

/// The most bytes of spooled requests merged into one export (well under the 4 MiB a gRPC server
/// accepts by default).
const MAX_RUN: u64 = 1 << 20;

/// A backlog this large, once sent, is followed by [`crate::heap::give_back_free_memory`]: after a
/// collector outage or a burst the spool held megabytes that are free again.
const TRIM_AFTER: u64 = 4 << 20;

/// Sends spooled spans and logs in order, and the latest metrics snapshot, retrying with backoff (1 s
/// doubling to 30 s) while the collector is away.
pub async fn sender(
    mut spool: Spool,
    clients: Vec<Client>,
    registry: Arc<Registry>,
    mut rx: mpsc::UnboundedReceiver<Batch>,
    drained: Arc<tokio::sync::Notify>,
) {
    let mut backoff = Duration::from_secs(1);
    let mut warned = false;
    let mut metrics: Option<Batch> = None;
    let mut backlog_peak = 0;
    loop {
        while let Ok(b) = rx.try_recv() {
            accept(&mut spool, &mut metrics, &registry, b);
        }
        registry.set(&n::SPOOL_USAGE, &[], spool.bytes() as f64);
        backlog_peak = backlog_peak.max(spool.bytes());
        if spool.is_empty() && backlog_peak >= TRIM_AFTER {
            backlog_peak = 0;
            crate::heap::give_back_free_memory();
        }
        // Metrics first (the latest snapshot), else the spool's oldest requests, merged up to MAX_RUN.
        let run = if metrics.is_some() {
            None
        } else {
            spool.front_run(MAX_RUN)
        };
        let (signal, items, data) = match (&metrics, &run) {
            (Some(m), _) => (m.signal, m.items, m.data.clone()),
            (None, Some(r)) => (r.signal, r.items, r.data.clone()),
            (None, None) => {
                drained.notify_waiters();
                match rx.recv().await {
                    Some(b) => accept(&mut spool, &mut metrics, &registry, b),
                    None => return,
                }
                continue;
            }
        };
        let done = |spool: &mut Spool, metrics: &mut Option<Batch>| match &run {
            Some(r) => (0..r.count).for_each(|_| drop(spool.pop_front())),
            None => *metrics = None,
        };
        let Some(client) = clients.iter().find(|c| c.signal == signal) else {
            done(&mut spool, &mut metrics);
            continue;
        };
        let sig = [(n::attr::SIGNAL, signal.as_str())];
        let t0 = Instant::now();
        let result = client.send(data).await;
        registry.observe(&n::EXPORT_DURATION, &sig, t0.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                done(&mut spool, &mut metrics);
                registry.add(&n::TELEMETRY_EXPORTED, &sig, items as f64);
                backoff = Duration::from_secs(1);
                warned = false;
            }
            Err(e) => {
                registry.add(&n::TELEMETRY_FAILED, &sig, items as f64);
                if !warned {
                    tracing::warn!(
                        event_type = "export_failed",
                        message = %e,
                        spooled_requests = spool.len()
                    );
                    warned = true;
                }
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        b = rx.recv() => match b { Some(b) => accept(&mut spool, &mut metrics, &registry, b), None => return },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Spans and logs go to the spool; metrics are cumulative, so only the newest snapshot is kept.
fn accept(spool: &mut Spool, metrics: &mut Option<Batch>, registry: &Registry, b: Batch) {
    if b.signal == Signal::Metrics {
        *metrics = Some(b);
        return;
    }
    for (signal, items) in spool.push(b.signal, b.items, b.data) {
        registry.add(
            &n::TELEMETRY_DROPPED,
            &[(n::attr::SIGNAL, signal.as_str())],
            items as f64,
        );
        tracing::error!(
            event_type = "telemetry_dropped",
            signal = signal.as_str(),
            items,
            reason = "spool budget exceeded"
        );
    }
}
