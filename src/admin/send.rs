//! `POST /probe/send`: queue one text message (the request body, UTF-8) in the prober's outbox, for
//! delivery to the dashboard over the prober's WebSocket ([`crate::probe::outbox`]).
//!
//! | answer | when |
//! |---|---|
//! | 202 `{"queued": N, "capacity": C}` | accepted (and, with a spool dir, written to disk); N = messages held now |
//! | 507 `{"error", "reason": "full", "capacity", "queued"}` + `Retry-After` | the outbox holds its capacity: the message was refused (counted in `websocket.buffer.dropped`) |
//! | 507 `{"error", "reason": "spool_error"}` | the spool file could not be written |
//! | 400 | the body is not UTF-8 |
//! | 413 | the body is larger than `limits.max_message_size` |
//! | 405 | not a POST |
//! | 404 | no outbox: `websocket.fallback.buffer_messages` or `probe.enabled` is false |

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::{reply, Admin};
use crate::probe::outbox::Rejected;

fn json_reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", format!("{body}\n"))
}

fn error(status: StatusCode, msg: String) -> Response<Full<Bytes>> {
    json_reply(status, json!({"error": msg}))
}

impl Admin {
    fn outbox_off(&self) -> Option<&'static str> {
        let c = &self.proxy.config;
        if !c.probe_enabled {
            Some("the prober is disabled (probe.enabled = false), so it has no outbox")
        } else if !c.outbox.enabled {
            Some("the prober's outbox is disabled (websocket.fallback.buffer_messages = false)")
        } else if self.outbox.is_none() {
            Some("the prober's outbox is not running")
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
            return error(StatusCode::NOT_FOUND, "no outbox".into());
        };
        if req.method() != Method::POST {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST the message text as the body".into(),
            );
            r.headers_mut()
                .insert("allow", hyper::header::HeaderValue::from_static("POST"));
            return r;
        }
        let max = self.proxy.config.limits.max_message_size;
        let too_large = || {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a message may have at most {max} bytes (limits.max_message_size)"),
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
            Ok(Err(e @ Rejected::Full { capacity, queued })) => {
                let secs = outbox.settings().flush_interval.as_secs().max(1);
                let mut r = json_reply(
                    StatusCode::INSUFFICIENT_STORAGE,
                    json!({"error": e.to_string(), "reason": "full", "capacity": capacity, "queued": queued}),
                );
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
