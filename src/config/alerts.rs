//! `alerts.*`: where `check` sends its alerts — a Slack-format webhook and PagerDuty — as values: the URLs
//! (checked here, as [`AlertUrl`]) and the secrets (held as [`Masked`]: never printed).

use serde::Serialize;

use super::secret::Masked;

/// PagerDuty's Events API v2 endpoint (the default of `alerts.pagerduty_events_url`).
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Where `check` sends its alerts (`alerts.*`).
#[derive(Debug, Clone, Serialize)]
pub struct AlertsConfig {
    /// The default webhook (`alerts.slack_webhook_url`); `--webhook` overrides it.
    pub slack_webhook_url: Option<Masked>,
    /// The PagerDuty integration's routing key (`alerts.pagerduty_api_key`).
    pub pagerduty_api_key: Option<Masked>,
    /// Where PagerDuty events go (`alerts.pagerduty_events_url`).
    pub pagerduty_events_url: String,
}

/// An http:// or https:// URL with a host and no credentials, split for dialing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertUrl {
    /// https.
    pub tls: bool,
    /// Host (without brackets).
    pub host: String,
    /// Port (the scheme's when none is given).
    pub port: u16,
    /// Path and query.
    pub path: String,
}

impl AlertUrl {
    /// Parses `url`; None when it is not an http:// or https:// URL with a host and no credentials.
    pub fn parse(url: &str) -> Option<AlertUrl> {
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
        Some(AlertUrl {
            tls,
            host: host.trim_matches(['[', ']']).to_string(),
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            path: uri.path_and_query().map_or("/".into(), |p| p.to_string()),
        })
    }

    /// `host:port`, the only part of the URL errors and messages name.
    pub fn shown(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_http_or_https_and_a_host() {
        assert!(AlertUrl::parse("https://hooks.slack.com/services/T0/B0/x").is_some());
        assert!(AlertUrl::parse("http://127.0.0.1:9000/hook").is_some());
        assert!(AlertUrl::parse("ftp://x/").is_none());
        assert!(AlertUrl::parse("https:///path").is_none());
        assert!(AlertUrl::parse("https://user:pw@host/").is_none());
        let t = AlertUrl::parse("https://[::1]:8443/a?b=c").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8443, "/a?b=c")
        );
        assert_eq!(AlertUrl::parse("https://h/").unwrap().port, 443);
    }

    #[test]
    fn secrets_are_never_shown() {
        let h = Masked::new("https://hooks.slack.com/services/T0/B0/SECRET".into());
        assert_eq!(format!("{h:?}"), "****");
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"****\"");
    }
}
