//! Codes: the error class of an HTTP status and of a WebSocket close code, as tables.
//!
//! The seed names HTTP 401 and 429 only; the other rows are decisions of this crate, each commented.
//! A close code 1008 (policy violation) is AUTHENTICATION_FAILED because that is how servers refuse a
//! session they do not authorize; 1011 (internal error) says nothing about the cause and is UNKNOWN.

use super::error_class::ErrorClass;

/// HTTP statuses with a class of their own. Other statuses: below 400 none, any other 4xx or 5xx
/// [`ErrorClass::Unknown`].
#[rustfmt::skip]
pub const STATUS_TABLE: &[(u16, ErrorClass)] = &[
    (400, ErrorClass::ProtocolError),        // malformed upgrade request
    (401, ErrorClass::AuthenticationFailed),
    (403, ErrorClass::AuthenticationFailed),
    (407, ErrorClass::AuthenticationFailed), // proxy authentication required
    (408, ErrorClass::ConnectionTimeout),    // request timeout
    (426, ErrorClass::ProtocolError),        // upgrade required: unsupported WebSocket version
    (429, ErrorClass::ServerOverload),
    (502, ErrorClass::NetworkError),
    (503, ErrorClass::ServerOverload),
    (504, ErrorClass::ConnectionTimeout),
];

/// The class of an HTTP status: [`STATUS_TABLE`], else `None` below 400 and `Unknown` from 400 up.
pub fn classify_status(status: u16) -> Option<ErrorClass> {
    match STATUS_TABLE.iter().find(|(s, _)| *s == status) {
        Some((_, class)) => Some(*class),
        None if status < 400 => None,
        None => Some(ErrorClass::Unknown),
    }
}

/// Close codes with a meaning of their own; `None` means a normal close (no error).
#[rustfmt::skip]
pub const CLOSE_CODE_TABLE: &[(u16, Option<ErrorClass>)] = &[
    (1000, None),                              // normal closure
    (1001, None),                              // going away
    (1002, Some(ErrorClass::ProtocolError)),
    (1003, Some(ErrorClass::ProtocolError)),   // unsupported data
    (1005, None),                              // no status code: the peer closed without one
    (1006, Some(ErrorClass::NetworkError)),    // abnormal closure: the TCP connection vanished
    (1007, Some(ErrorClass::ProtocolError)),   // invalid payload (e.g. not UTF-8)
    (1008, Some(ErrorClass::AuthenticationFailed)), // policy violation: how servers refuse a session
    (1009, Some(ErrorClass::ProtocolError)),   // message too big
    (1010, Some(ErrorClass::ProtocolError)),   // mandatory extension missing
    (1011, Some(ErrorClass::Unknown)),         // internal error: says nothing about the cause
    (1012, Some(ErrorClass::NetworkError)),    // service restart: the link is gone, reconnect
    (1013, Some(ErrorClass::ServerOverload)),  // try again later
    (1014, Some(ErrorClass::NetworkError)),    // bad gateway, as HTTP 502
    (1015, Some(ErrorClass::NetworkError)),    // TLS handshake failure
    (3000, Some(ErrorClass::AuthenticationFailed)), // IANA: Unauthorized
    (3003, Some(ErrorClass::AuthenticationFailed)), // IANA: Forbidden
    (3008, Some(ErrorClass::ConnectionTimeout)),    // IANA: Timeout
];

/// The class of a close code: [`CLOSE_CODE_TABLE`]; other codes in 3000–4999 are the application's
/// own (meaning unknown to the sidecar: `None`); any other code may not be sent at all (0–999, 1004,
/// 1016–2999, 5000+) and is a [`ErrorClass::ProtocolError`].
pub fn classify_close_code(code: u16) -> Option<ErrorClass> {
    match CLOSE_CODE_TABLE.iter().find(|(c, _)| *c == code) {
        Some((_, class)) => *class,
        None if (3000..=4999).contains(&code) => None,
        None => Some(ErrorClass::ProtocolError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    #[rustfmt::skip]
    fn http_statuses() {
        let cases = [
            (101, None), (200, None), (302, None), (399, None),
            (400, Some(ProtocolError)), (401, Some(AuthenticationFailed)),
            (403, Some(AuthenticationFailed)), (404, Some(Unknown)),
            (407, Some(AuthenticationFailed)), (408, Some(ConnectionTimeout)),
            (426, Some(ProtocolError)), (429, Some(ServerOverload)),
            (500, Some(Unknown)), (501, Some(Unknown)), (502, Some(NetworkError)),
            (503, Some(ServerOverload)), (504, Some(ConnectionTimeout)), (599, Some(Unknown)),
        ];
        for (status, class) in cases {
            assert_eq!(classify_status(status), class, "{status}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn close_codes() {
        let cases = [
            (1000, None), (1001, None), (1002, Some(ProtocolError)), (1003, Some(ProtocolError)),
            (1004, Some(ProtocolError)), (1005, None), (1006, Some(NetworkError)),
            (1007, Some(ProtocolError)), (1008, Some(AuthenticationFailed)),
            (1009, Some(ProtocolError)), (1010, Some(ProtocolError)), (1011, Some(Unknown)),
            (1012, Some(NetworkError)), (1013, Some(ServerOverload)), (1014, Some(NetworkError)),
            (1015, Some(NetworkError)), (1016, Some(ProtocolError)), (2999, Some(ProtocolError)),
            (3000, Some(AuthenticationFailed)), (3001, None), (3003, Some(AuthenticationFailed)),
            (3008, Some(ConnectionTimeout)), (4000, None), (4999, None),
            (0, Some(ProtocolError)), (999, Some(ProtocolError)), (5000, Some(ProtocolError)),
        ];
        for (code, class) in cases {
            assert_eq!(classify_close_code(code), class, "{code}");
        }
    }
}
