//! `check`'s alerts, where people are: a webhook in Slack's message format (`--webhook URL`, else
//! `alerts.slack_webhook_url` / `SLACK_WEBHOOK_URL`), and a PagerDuty Events v2 `trigger` when
//! `alerts.pagerduty_api_key` (`PAGERDUTY_API_KEY`) is set, sent to `alerts.pagerduty_events_url`.
//!
//! Both go over http:// or https://; https uses rustls with the system's root certificates
//! (`rustls-native-certs`: the OS store, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), never without
//! verification. Nothing is sent while `websocket.monitoring.alerting_enabled` is false. The webhook URL
//! and the routing key are secrets: [`Hidden`] never prints them, and errors name the host only.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::check::CheckResult;

/// PagerDuty's Events API v2 endpoint (the default of `alerts.pagerduty_events_url`).
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A secret string (a webhook URL holds its token in the path; a routing key): usable, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(String);

impl Hidden {
    /// Wraps a secret.
    pub fn new(s: String) -> Hidden {
        Hidden(s)
    }

    /// The secret itself, for sending.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Serialize for Hidden {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("****")
    }
}

/// Where `check` sends its alerts (`alerts.*`).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The default webhook (`alerts.slack_webhook_url`); `--webhook` overrides it.
    pub slack_webhook_url: Option<Hidden>,
    /// The PagerDuty integration's routing key (`alerts.pagerduty_api_key`).
    pub pagerduty_api_key: Option<Hidden>,
    /// Where PagerDuty events go (`alerts.pagerduty_events_url`).
    pub pagerduty_events_url: String,
}

/// Why an alert was not delivered (the host is named, never the path or a key).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Not an http:// or https:// URL with a host.
    #[error("not an http:// or https:// URL with a host")]
    BadUrl,
    /// TCP connect failed.
    #[error("cannot connect to {host}: {source}")]
    Connect {
        /// Host and port.
        host: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TLS failed (an untrusted certificate included).
    #[error("TLS with {host} failed: {source}")]
    Tls {
        /// Host and port.
        host: String,
        /// Cause.
        source: std::io::Error,
    },
    /// No root certificate could be loaded.
    #[error("no root certificates found (install ca-certificates, or set SSL_CERT_FILE)")]
    NoRoots,
    /// The HTTP exchange failed.
    #[error("HTTP to {host} failed: {source}")]
    Http {
        /// Host and port.
        host: String,
        /// Cause.
        source: hyper::Error,
    },
    /// The receiver answered something other than 2xx.
    #[error("{host} answered HTTP {status}")]
    Status {
        /// Host and port.
        host: String,
        /// Status.
        status: u16,
    },
    /// No answer in time.
    #[error("{host} did not answer within {0:?}", .timeout)]
    Timeout {
        /// Host and port.
        host: String,
        /// The limit.
        timeout: Duration,
    },
}

/// Whether `url` is a URL an alert can be posted to.
pub fn valid_url(url: &str) -> bool {
    Target::parse(url).is_some()
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Option<Target> {
        let uri: http::Uri = url.parse().ok()?;
        let tls = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host().filter(|h| !h.is_empty())?;
        if uri.authority()?.as_str().contains('@') {
            return None;
        }
        Some(Target {
            tls,
            host: host.trim_matches(['[', ']']).to_string(),
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            path: uri.path_and_query().map_or("/".into(), |p| p.to_string()),
        })
    }

    fn shown(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The failed endpoints of a check, one line each.
fn lines(failed: &[&CheckResult]) -> Vec<String> {
    failed
        .iter()
        .map(|r| {
            let step = [Some(&r.http), r.websocket.as_ref(), r.ping.as_ref()]
                .into_iter()
                .flatten()
                .find(|s| !s.ok);
            let why = step.and_then(|s| s.error).unwrap_or("latency SLO critical");
            format!("{} — {} (latency SLO: {})", r.url, why, r.latency_slo)
        })
        .collect()
}

/// Slack's incoming-webhook message: `text` (notifications, fallback) and Block Kit blocks.
pub fn slack_message(failed: &[&CheckResult]) -> Value {
    let items = lines(failed);
    let text = format!(
        ":rotating_light: [concern] iskra-ws-sidecar check: {} endpoint(s) unhealthy: {}",
        items.len(),
        failed
            .iter()
            .map(|r| r.url.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bullets: Vec<String> = items.iter().map(|l| format!("• `{l}`")).collect();
    json!({
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "iskra-ws-sidecar check: unhealthy"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": bullets.join("\n")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "voice: concern · runbook: docs/runbook.md"}]}
        ]
    })
}

/// A PagerDuty Events v2 `trigger` (deduplicated per set of failed endpoints).
pub fn pagerduty_event(routing_key: &str, failed: &[&CheckResult]) -> Value {
    let urls: Vec<&str> = failed.iter().map(|r| r.url.as_str()).collect();
    let source = std::env::var("HOSTNAME").unwrap_or_else(|_| "iskra-ws-sidecar".into());
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": format!("iskra-ws-sidecar-check:{}", urls.join(",")),
        "payload": {
            "summary": format!("iskra-ws-sidecar check: unhealthy: {}", urls.join(", ")),
            "source": source,
            "severity": "critical",
            "component": "iskra-ws-sidecar",
            "group": "iskra-ecosystem",
            "class": "websocket_check",
            "custom_details": {"endpoints": lines(failed)}
        }
    })
}

/// POSTs `body` as JSON to `url`; Ok(status) on 2xx.
pub async fn post_json(url: &str, body: &Value, timeout: Duration) -> Result<u16, AlertError> {
    let t = Target::parse(url).ok_or(AlertError::BadUrl)?;
    let host = t.shown();
    let exchange = async {
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|source| AlertError::Connect {
                host: host.clone(),
                source,
            })?;
        if t.tls {
            let name = rustls::pki_types::ServerName::try_from(t.host.clone())
                .map_err(|_| AlertError::BadUrl)?;
            let tls = tokio_rustls::TlsConnector::from(client_config()?)
                .connect(name, tcp)
                .await
                .map_err(|source| AlertError::Tls {
                    host: host.clone(),
                    source,
                })?;
            send(tls, &t, body).await
        } else {
            send(tcp, &t, body).await
        }
    };
    let status = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| AlertError::Timeout {
            host: host.clone(),
            timeout,
        })??;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(AlertError::Status { host, status })
    }
}

/// rustls on ring with the system's roots (re-read for each alert: `check` sends at most two).
fn client_config() -> Result<Arc<rustls::ClientConfig>, AlertError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(AlertError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| AlertError::NoRoots)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

async fn send<S>(io: S, t: &Target, body: &Value) -> Result<u16, AlertError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = t.shown();
    let http_err = |source| AlertError::Http {
        host: host.clone(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http_err)?;
    tokio::spawn(conn);
    let req = hyper::Request::post(t.path.as_str())
        .header(hyper::header::HOST, host.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("iskra-ws-sidecar/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request");
    let resp = sender.send_request(req).await.map_err(http_err)?;
    Ok(resp.status().as_u16())
}

/// Sends the alerts of a failed check: the webhook (`webhook`, else the configured Slack URL) and
/// PagerDuty when a key is set. Returns one line per destination for stderr (no secret in it).
pub async fn send_alerts(
    settings: &Settings,
    webhook: Option<&str>,
    failed: &[&CheckResult],
    timeout: Duration,
) -> Vec<Result<String, String>> {
    let mut out = Vec::new();
    let hook = webhook.or(settings.slack_webhook_url.as_ref().map(Hidden::expose));
    if let Some(url) = hook {
        let host = Target::parse(url).map_or("?".into(), |t| t.shown());
        out.push(
            match post_json(url, &slack_message(failed), timeout).await {
                Ok(st) => Ok(format!("alert sent to the webhook at {host} (HTTP {st})")),
                Err(e) => Err(format!("webhook alert failed: {e}")),
            },
        );
    }
    if let Some(key) = &settings.pagerduty_api_key {
        let url = &settings.pagerduty_events_url;
        let event = pagerduty_event(key.expose(), failed);
        out.push(match post_json(url, &event, timeout).await {
            Ok(st) => Ok(format!("PagerDuty event sent (HTTP {st})")),
            Err(e) => Err(format!("PagerDuty alert failed: {e}")),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_http_or_https_and_a_host() {
        assert!(valid_url("https://hooks.slack.com/services/T0/B0/x"));
        assert!(valid_url("http://127.0.0.1:9000/hook"));
        assert!(!valid_url("ftp://x/"));
        assert!(!valid_url("https:///path"));
        assert!(!valid_url("https://user:pw@host/"));
        let t = Target::parse("https://[::1]:8443/a?b=c").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8443, "/a?b=c")
        );
        assert_eq!(Target::parse("https://h/").unwrap().port, 443);
    }

    #[test]
    fn secrets_are_never_shown() {
        let h = Hidden::new("https://hooks.slack.com/services/T0/B0/SECRET".into());
        assert_eq!(format!("{h:?}"), "****");
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"****\"");
    }
}
