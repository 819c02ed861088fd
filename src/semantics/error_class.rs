//! Error classes: the seed's six classes and their table (name, severity, action, delta). A leaf of
//! `semantics`: [`super::codes`] and [`super::classify`] decide which class an event reports.

/// An Iskra error class (`error.type`, `iskra.error.class`, `websocket_errors_total{error_type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Something did not answer in time.
    ConnectionTimeout,
    /// The peer refused our credentials or policy.
    AuthenticationFailed,
    /// The server asked us to come back later.
    ServerOverload,
    /// The network path failed (refused, reset, unreachable, bad gateway, abnormal closure).
    NetworkError,
    /// A peer broke the WebSocket or HTTP upgrade protocol.
    ProtocolError,
    /// An error whose cause says nothing more specific.
    Unknown,
}

/// How bad an error class is (`iskra.error.severity`). The seed uses MEDIUM, HIGH and CRITICAL; LOW
/// exists for completeness and no class has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// `LOW`.
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`.
    High,
    /// `CRITICAL`.
    Critical,
}

impl Severity {
    /// `"LOW"`, `"MEDIUM"`, `"HIGH"` or `"CRITICAL"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One row of the seed's error class table.
#[derive(Debug, Clone, Copy)]
pub struct ErrorClassRow {
    /// The class.
    pub class: ErrorClass,
    /// Its SCREAMING_SNAKE name.
    pub name: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What to do about it.
    pub action: &'static str,
    /// The ∆ of an error entry of this class.
    pub delta: &'static str,
}

/// The seed's error class table, in its order; row `i` describes the class whose discriminant is `i`.
#[rustfmt::skip]
pub const ERROR_CLASS_TABLE: &[ErrorClassRow] = &[
    row(ErrorClass::ConnectionTimeout,    "CONNECTION_TIMEOUT",    Severity::High,     "reconnect",        "connection_timeout"),
    row(ErrorClass::AuthenticationFailed, "AUTHENTICATION_FAILED", Severity::Critical, "reauthenticate",   "auth_failed"),
    row(ErrorClass::ServerOverload,       "SERVER_OVERLOAD",       Severity::Medium,   "backoff",          "server_overload"),
    row(ErrorClass::NetworkError,         "NETWORK_ERROR",         Severity::High,     "reconnect",        "network_error"),
    row(ErrorClass::ProtocolError,        "PROTOCOL_ERROR",        Severity::Medium,   "retry",            "protocol_error"),
    row(ErrorClass::Unknown,              "UNKNOWN",               Severity::Medium,   "log_and_continue", "unknown_error"),
];

const fn row(
    class: ErrorClass,
    name: &'static str,
    severity: Severity,
    action: &'static str,
    delta: &'static str,
) -> ErrorClassRow {
    ErrorClassRow {
        class,
        name,
        severity,
        action,
        delta,
    }
}

impl ErrorClass {
    /// Its row in [`ERROR_CLASS_TABLE`].
    pub fn row(self) -> &'static ErrorClassRow {
        &ERROR_CLASS_TABLE[self as usize]
    }

    /// The class name, e.g. `"NETWORK_ERROR"`.
    pub fn as_str(&self) -> &'static str {
        self.row().name
    }

    /// The seed's severity.
    pub fn severity(&self) -> Severity {
        self.row().severity
    }

    /// The seed's action, e.g. `"reconnect"`.
    pub fn action(&self) -> &'static str {
        self.row().action
    }

    /// The seed's delta, e.g. `"network_error"`.
    pub fn delta(&self) -> &'static str {
        self.row().delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    #[rustfmt::skip]
    fn error_class_table_rows_are_the_seeds() {
        let expected = [
            (ConnectionTimeout,    "CONNECTION_TIMEOUT",    "HIGH",     "reconnect",        "connection_timeout"),
            (AuthenticationFailed, "AUTHENTICATION_FAILED", "CRITICAL", "reauthenticate",   "auth_failed"),
            (ServerOverload,       "SERVER_OVERLOAD",       "MEDIUM",   "backoff",          "server_overload"),
            (NetworkError,         "NETWORK_ERROR",         "HIGH",     "reconnect",        "network_error"),
            (ProtocolError,        "PROTOCOL_ERROR",        "MEDIUM",   "retry",            "protocol_error"),
            (Unknown,              "UNKNOWN",               "MEDIUM",   "log_and_continue", "unknown_error"),
        ];
        assert_eq!(ERROR_CLASS_TABLE.len(), expected.len());
        for (class, name, severity, action, delta) in expected {
            assert_eq!(class.row().class, class);
            assert_eq!(class.as_str(), name);
            assert_eq!(class.severity().as_str(), severity, "{name}");
            assert_eq!(class.action(), action, "{name}");
            assert_eq!(class.delta(), delta, "{name}");
        }
    }

    #[test]
    fn severities_order_and_names() {
        assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
        assert_eq!(Severity::Low.as_str(), "LOW");
    }
}
