//! One span written straight as protobuf (a `spans` field of `ScopeSpans`): a session's `ws.session`
//! span with its steps as events, a step's child span, a prober attempt's span.

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};

use super::session::{Open, Step};
use super::{span_id, Encoded};
use crate::events::SessionInfo;
use crate::telemetry::attrs::{self, Attrs};
use crate::telemetry::names::{attr, span};
use crate::telemetry::pb::{self, PbAttrs};

pub(super) fn base_attrs(info: &SessionInfo, a: &mut impl Attrs) {
    a.str(attr::URL_PATH, &info.path);
    a.str(attr::URL_SCHEME, "ws");
    a.str(attr::SERVER_ADDRESS, &info.upstream_host);
    a.int(attr::SERVER_PORT, info.upstream_port as i64);
    a.str(attr::CLIENT_ADDRESS, &info.client.ip().to_string());
    a.str(attr::NETWORK_PROTOCOL_NAME, "websocket");
    a.str(attr::HTTP_REQUEST_METHOD, "GET");
    a.str(attr::UPSTREAM_NAME, &info.upstream_name);
    if let Some(ua) = &info.user_agent {
        a.str(attr::USER_AGENT_ORIGINAL, ua);
    }
}

/// Where a span sits: its trace, its own id and its parent.
pub(super) struct Place {
    pub(super) trace: [u8; 16],
    pub(super) id: [u8; 8],
    pub(super) parent: Option<[u8; 8]>,
}

/// Writes one span: Span { trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8,
/// attributes 9, status 15 { message 2, code 3 } }.
pub(super) fn span(
    out: &mut Encoded,
    (name, kind): (&str, SpanKind),
    at: Place,
    (start, end): (u64, u64),
    attributes: impl FnOnce(&mut PbAttrs),
    events: impl FnOnce(&mut Vec<u8>),
    error: Option<&str>,
) {
    if out.off {
        return;
    }
    pb::message(&mut out.buf, 2, |b| {
        pb::bytes(b, 1, &at.trace);
        pb::bytes(b, 2, &at.id);
        if let Some(p) = at.parent {
            pb::bytes(b, 4, &p);
        }
        pb::bytes(b, 5, name.as_bytes());
        pb::uint(b, 6, kind as u64);
        pb::fixed64(b, 7, start);
        pb::fixed64(b, 8, end.max(start));
        attributes(&mut PbAttrs::new(b, 9));
        events(b);
        pb::message(b, 15, |b| {
            if let Some(msg) = error {
                pb::bytes(b, 2, msg.as_bytes());
                pb::uint(b, 3, StatusCode::Error as u64);
            }
        });
    });
    out.count += 1;
}

/// A step span (`ws.upstream.connect`, `ws.handshake`, `ws.close`) under its session's span.
pub(super) fn child_span(
    out: &mut Encoded,
    o: &Open,
    (name, kind): (&str, SpanKind),
    times: (u64, u64),
    attributes: impl FnOnce(&mut PbAttrs),
    error: Option<&str>,
) {
    let at = Place {
        trace: o.trace,
        id: span_id(),
        parent: Some(o.span),
    };
    span(out, (name, kind), at, times, attributes, |_| {}, error)
}

/// The `ws.session` span of a finished session, with its steps' events (`close`: the close step's
/// event, when steps are events and the session closed).
pub(super) fn session_span(
    out: &mut Encoded,
    (o, scope): (&Open, &attrs::Scope),
    attributes: impl FnOnce(&mut PbAttrs),
    (end, close): (u64, Option<Step>),
    error: Option<&str>,
) {
    let at = Place {
        trace: o.trace,
        id: o.span,
        parent: None,
    };
    let (name, kind) = (span::SESSION, SpanKind::Server);
    let events = |b: &mut Vec<u8>| {
        for step in o.steps.iter().flatten() {
            step.write(b, scope, |_| {});
        }
        if let (Some(step), Some(c)) = (close, &o.close) {
            step.write(b, scope, |a| c.write(a));
        }
    };
    span(
        out,
        (name, kind),
        at,
        (o.start, end),
        attributes,
        events,
        error,
    )
}
