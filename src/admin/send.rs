//! `POST /probe/send`: queue one text message (the request body, UTF-8) in the prober's outbox, for
//! delivery to the dashboard over the prober's WebSocket ([`crate::probe::outbox`]).
//!
//! | answer | when |
//! |---|---|
//! | 202 `{"queued": N, "capacity": C}` | accepted (and, with a spool dir, written to disk); N = messages held now |
//! | 507 `{"error", "reason": "full", "capacity", "queued", "max_bytes", "bytes"}` + `Retry-After` | the outbox holds its capacity (`buffer_max_size` messages): the message was refused (counted in `websocket.buffer.dropped`) |
//! | 507 the same with `"reason": "full_bytes"` | the message would pass the byte budget (`buffer_max_bytes`): refused and counted the same way |
//! | 507 `{"error", "reason": "spool_error"}` | the spool file could not be written |
//! | 400 | the body is not UTF-8 |
//! | 413 | the body is larger than `limits.max_message_size` or than the whole byte budget `websocket.fallback.buffer_max_bytes` (it could never fit) |
//! | 405 | not a POST |
//! | 401 + `WWW-Authenticate: Bearer` | no `Authorization: Bearer <token>`, or not the configured token |
//! | 404 | no outbox (`websocket.fallback.buffer_messages` or `probe.enabled` is false), or no token configured |
//!
//! **Secure by default.** The endpoint puts messages in front of the dashboard, so it answers only to a
//! bearer token: `probe.send_token` (env `ISKRA_SIDECAR_PROBE__SEND_TOKEN`) or `probe.send_token_file`
//! (a mounted Secret). Without one it is off (404, saying how to turn it on). The token is checked
//! before the body is read, compared in constant time ([`crate::config::Secret::matches`]), and never
//! logged, echoed or counted: neither the configured one nor a wrong one a caller sent.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::{reply, Admin};
use crate::config::Secret;
use crate::probe::outbox::Rejected;

fn json_reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", format!("{body}\n"))
}

fn error(status: StatusCode, msg: String) -> Response<Full<Bytes>> {
    json_reply(status, json!({"error": msg}))
}

/// The 404 when no token is configured: how to turn the endpoint on.
const NO_TOKEN: &str =
    "POST /probe/send is off: it needs a bearer token. Set probe.send_token (env \
    ISKRA_SIDECAR_PROBE__SEND_TOKEN) or probe.send_token_file (a file holding it, e.g. a mounted \
    Kubernetes Secret; Helm: sidecar.probeSend.existingSecret), restart, and send \
    `Authorization: Bearer <token>`";

/// Why a request was not authorized (RFC 6750: no credentials → no error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A bearer token that is not the configured one.
    Invalid,
}

/// Checks `Authorization: Bearer <token>` (the scheme in any case) against the configured token.
fn authorize(headers: &hyper::HeaderMap, token: &Secret) -> Result<(), Denied> {
    let Some(value) = headers.get(hyper::header::AUTHORIZATION) else {
        return Err(Denied::Missing);
    };
    let value = value.as_bytes();
    let scheme = b"bearer ";
    if value.len() < scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return Err(Denied::Missing);
    }
    let presented = value[scheme.len()..].trim_ascii();
    if token.matches(presented) {
        Ok(())
    } else {
        Err(Denied::Invalid)
    }
}

fn unauthorized(why: Denied) -> Response<Full<Bytes>> {
    let (challenge, msg) = match why {
        Denied::Missing => (
            r#"Bearer realm="iskra-ws-sidecar""#,
            "POST /probe/send needs `Authorization: Bearer <token>` (probe.send_token)",
        ),
        Denied::Invalid => (
            r#"Bearer realm="iskra-ws-sidecar", error="invalid_token""#,
            "the bearer token is not the one configured (probe.send_token)",
        ),
    };
    let mut r = error(StatusCode::UNAUTHORIZED, msg.into());
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static(challenge),
    );
    r
}

impl Admin {
    fn outbox_off(&self) -> Option<&'static str> {
        let c = &self.proxy.config;
        if !c.probe.enabled {
            Some("the prober is disabled (probe.enabled = false), so it has no outbox")
        } else if !c.outbox.enabled {
            Some("the prober's outbox is disabled (websocket.fallback.buffer_messages = false)")
        } else {
            None
        }
    }

    /// Answers `POST /probe/send` (see the module doc).
    pub(super) async fn probe_send(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Response<Full<Bytes>> {
        if let Some(why) = self.outbox_off() {
            return error(StatusCode::NOT_FOUND, why.into());
        }
        let Some(outbox) = self.outbox.clone() else {
            let why = "the prober's outbox is not running";
            return error(StatusCode::NOT_FOUND, why.into());
        };
        let Some(token) = self.proxy.config.probe.send_token.as_ref() else {
            return error(StatusCode::NOT_FOUND, NO_TOKEN.into());
        };
        if let Err(why) = authorize(req.headers(), token) {
            return unauthorized(why);
        }
        if req.method() != Method::POST {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST the message text as the body".into(),
            );
            r.headers_mut()
                .insert("allow", hyper::header::HeaderValue::from_static("POST"));
            return r;
        }
        // A message longer than the whole byte budget could never be taken: too large, not "full".
        let c = &self.proxy.config;
        let (max, key) = if c.outbox.max_bytes < c.limits.max_message_size {
            (c.outbox.max_bytes, "websocket.fallback.buffer_max_bytes")
        } else {
            (c.limits.max_message_size, "limits.max_message_size")
        };
        let too_large = || {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a message may have at most {max} bytes ({key})"),
            )
        };
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return too_large();
        }
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        };
        let text = match String::from_utf8(body.to_vec()) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not UTF-8 (invalid byte at offset {at}): WebSocket text messages must be"),
                );
            }
        };
        let o = Arc::clone(&outbox);
        let offered = tokio::task::spawn_blocking(move || o.offer(text)).await;
        match offered {
            Ok(Ok(queued)) => json_reply(
                StatusCode::ACCEPTED,
                json!({"queued": queued, "capacity": outbox.settings().capacity}),
            ),
            Ok(Err(e @ (Rejected::Full { .. } | Rejected::FullBytes { .. }))) => {
                let secs = outbox.settings().flush_interval.as_secs().max(1);
                let s = outbox.settings();
                let body = json!({"error": e.to_string(), "reason": e.reason().as_str(),
                                  "capacity": s.capacity, "queued": outbox.len(),
                                  "max_bytes": s.max_bytes, "bytes": outbox.bytes()});
                let mut r = json_reply(StatusCode::INSUFFICIENT_STORAGE, body);
                r.headers_mut().insert("retry-after", secs.into());
                r
            }
            Ok(Err(e @ Rejected::Spool { .. })) => json_reply(
                StatusCode::INSUFFICIENT_STORAGE,
                json!({"error": e.to_string(), "reason": "spool_error"}),
            ),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "the-probe-send-token-0123";

    fn check(auth: Option<&str>) -> Result<(), Denied> {
        let mut h = hyper::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(hyper::header::AUTHORIZATION, a.parse().unwrap());
        }
        authorize(&h, &Secret::new(TOKEN).unwrap())
    }

    #[test]
    fn only_a_bearer_header_with_the_token_passes() {
        assert_eq!(check(Some(&format!("Bearer {TOKEN}"))), Ok(()));
        assert_eq!(
            check(Some(&format!("bearer  {TOKEN} "))),
            Ok(()),
            "scheme in any case"
        );
        assert_eq!(check(None), Err(Denied::Missing));
        assert_eq!(check(Some(TOKEN)), Err(Denied::Missing), "no scheme");
        assert_eq!(check(Some(&format!("Basic {TOKEN}"))), Err(Denied::Missing));
        assert_eq!(check(Some("Bearer")), Err(Denied::Missing));
        assert_eq!(check(Some("Bearer ")), Err(Denied::Invalid));
        assert_eq!(
            check(Some(&format!("Bearer {TOKEN}x"))),
            Err(Denied::Invalid)
        );
        assert_eq!(
            check(Some(&format!("Bearer {}", &TOKEN[1..]))),
            Err(Denied::Invalid)
        );
    }

    #[test]
    fn a_refusal_challenges_for_a_bearer_token_and_echoes_nothing() {
        for why in [Denied::Missing, Denied::Invalid] {
            let r = unauthorized(why);
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            let challenge = r.headers()[hyper::header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap();
            assert!(challenge.starts_with("Bearer "), "{challenge}");
            assert_eq!(
                challenge.contains("invalid_token"),
                why == Denied::Invalid,
                "{challenge}"
            );
        }
    }
}
