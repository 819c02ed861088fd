//! The prober's upgrade request, said out loud: the URL it probes (an upstream's host and port with
//! `probe.path`, or the upstream URL's own path), the headers it adds (`probe.headers`, values never
//! shown), the subprotocols it offers and the Origin it sends. `run`, `check` and `monitor` build their
//! upgrades here, so all three probe the same way.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};

use super::Ws;
use crate::config::probe::ProbeSettings;
use crate::config::Upstream;

/// The URL the prober upgrades at for the upstream `base`: its host and port, with `probe.path` or,
/// when that is unset, `base`'s own path and query.
pub fn url_for(base: &str, s: &ProbeSettings) -> String {
    match Upstream::parse(base) {
        Ok(u) => {
            let path = s.path.clone().unwrap_or_else(|| u.path_and_query());
            format!("ws://{}{path}", u.authority())
        }
        Err(_) => base.to_string(),
    }
}

/// The upgrade request for `url` with the configured headers, subprotocols and origin.
pub fn request(url: &str, s: &ProbeSettings) -> Result<Request, tungstenite::Error> {
    let mut req = url.into_client_request()?;
    let h = req.headers_mut();
    if !s.subprotocols.is_empty() {
        let v = HeaderValue::from_str(&s.subprotocols.join(", "))?;
        h.insert("sec-websocket-protocol", v);
    }
    if let Some(o) = &s.origin {
        h.insert("origin", HeaderValue::from_str(o)?);
    }
    for (name, value) in &s.headers {
        let mut v = HeaderValue::from_str(value.expose())?;
        v.set_sensitive(true);
        h.append(HeaderName::from_bytes(name.as_bytes())?, v);
    }
    Ok(req)
}

/// The outcome of one upgrade attempt.
pub enum Upgrade {
    /// 101: the link, and the time it took.
    Open(Box<Ws>, Duration),
    /// The server refused the upgrade: a 4xx status, or (None) it accepted the connection and closed it
    /// without any HTTP answer — what Socket.IO does to an upgrade outside its path.
    Refused(Option<u16>, Duration),
    /// The server answered with another status instead of 101 (5xx, 3xx).
    Status(u16, Duration),
    /// No HTTP answer (typed cause), after this long.
    Failed(crate::events::ConnectCause, Duration),
}

/// Upgrades at `url` within `timeout`, and sends `probe.init_messages` on the new link.
pub async fn upgrade(url: &str, s: &ProbeSettings, timeout: Duration) -> Upgrade {
    use crate::events::ConnectCause;
    use futures_util::SinkExt;
    let t0 = std::time::Instant::now();
    let req = match request(url, s) {
        Ok(r) => r,
        Err(_) => return Upgrade::Failed(ConnectCause::Other, t0.elapsed()),
    };
    let r = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(req)).await;
    let took = t0.elapsed();
    match r {
        Ok(Ok((mut ws, _))) => {
            for m in &s.init_messages {
                if ws.send(Message::text(m.clone())).await.is_err() {
                    return Upgrade::Failed(ConnectCause::Reset, t0.elapsed());
                }
            }
            Upgrade::Open(Box::new(ws), took)
        }
        Ok(Err(tungstenite::Error::Http(resp))) => match resp.status().as_u16() {
            st @ 400..=499 => Upgrade::Refused(Some(st), took),
            st => Upgrade::Status(st, took),
        },
        Ok(Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::HandshakeIncomplete,
        ))) => Upgrade::Refused(None, took),
        Ok(Err(tungstenite::Error::Io(e))) => Upgrade::Failed(ConnectCause::from_io(&e), took),
        Ok(Err(_)) => Upgrade::Failed(ConnectCause::BadResponse, took),
        Err(_) => Upgrade::Failed(ConnectCause::TimedOut, took),
    }
}

/// The reply configured for a text the dashboard sent (`probe.replies`).
pub fn reply_to<'a>(s: &'a ProbeSettings, text: &str) -> Option<&'a str> {
    s.replies
        .iter()
        .find(|(when, _)| when == text)
        .map(|(_, r)| r.as_str())
}

/// The fields of the `probe_target` line logged at start: URL (no query values, no credentials), the
/// names of its query parameters, the transport, header names (never values), subprotocols, origin.
pub fn describe(urls: &[String], s: &ProbeSettings) -> Value {
    let first = urls.first().map(|u| url_for(u, s)).unwrap_or_default();
    let query_keys: Vec<&str> = first
        .split_once('?')
        .map(|(_, q)| q.split('&').filter_map(|kv| kv.split('=').next()).collect())
        .unwrap_or_default();
    let backups: Vec<String> = urls
        .iter()
        .skip(1)
        .map(|u| super::redact(&url_for(u, s)))
        .collect();
    json!({
        "delta": "probe_target",
        "url": super::redact(&first),
        "url.query_keys": query_keys,
        "websocket.transport": "websocket",
        "backups": if s.fallback { backups } else { Vec::new() },
        "headers": s.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        "subprotocols": s.subprotocols,
        "origin": s.origin,
        "gates_readiness": s.gates_readiness,
        "fallback": s.fallback,
        "protocol_downgrade": s.fallback && s.downgrade,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Masked;

    #[test]
    fn the_probe_url_takes_probe_path_or_the_upstreams_own() {
        let mut s = ProbeSettings::default();
        assert_eq!(url_for("ws://127.0.0.1:9/", &s), "ws://127.0.0.1:9/");
        assert_eq!(url_for("ws://h:9/graphql", &s), "ws://h:9/graphql");
        s.path = Some("/socket.io/?EIO=4&transport=websocket".into());
        assert_eq!(
            url_for("http://h:9/", &s),
            "ws://h:9/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn the_request_carries_headers_subprotocols_and_origin_and_the_line_names_only() {
        let s = ProbeSettings {
            headers: vec![("Authorization".into(), Masked::new("Bearer s3cret".into()))],
            subprotocols: vec!["graphql-transport-ws".into()],
            origin: Some("https://dash.example".into()),
            path: Some("/ws?token=s3cret&v=2".into()),
            ..Default::default()
        };
        let req = request(&url_for("ws://h:9", &s), &s).unwrap();
        let h = req.headers();
        assert_eq!(h["authorization"], "Bearer s3cret");
        assert!(h["authorization"].is_sensitive());
        assert_eq!(h["sec-websocket-protocol"], "graphql-transport-ws");
        assert_eq!(h["origin"], "https://dash.example");
        let line = describe(&["ws://h:9".into()], &s).to_string();
        assert!(!line.contains("s3cret"), "{line}");
        assert!(line.contains("\"url\":\"ws://h:9/ws\"") && line.contains("[\"token\",\"v\"]"));
        assert!(line.contains("\"headers\":[\"Authorization\"]"));
    }
}
