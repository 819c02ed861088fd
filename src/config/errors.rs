//! What a configuration that cannot be used says: each problem with its key, the value found (secrets
//! masked) and what was expected, all of them at once.

use std::fmt;
use std::path::Path;

/// One configuration problem: the key, the value found, and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Dotted key (or the file path for file-level problems).
    pub key: String,
    /// The offending value, rendered (masked for secrets).
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl ConfigError {
    pub(super) fn file(path: &Path, msg: String) -> ConfigError {
        ConfigError {
            key: "--config".into(),
            value: path.display().to_string(),
            expected: msg,
        }
    }

    /// The file (or the merged tree) could not be parsed at all: named by its path.
    pub fn parse(path: Option<&Path>, msg: String) -> ConfigError {
        ConfigError {
            key: path.map_or("(config)".into(), |p| p.display().to_string()),
            value: "(unparsable)".into(),
            expected: format!("a valid file: {msg}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config key `{}` = {}: expected {}",
            self.key, self.value, self.expected
        )
    }
}

/// Every problem found in one load.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
