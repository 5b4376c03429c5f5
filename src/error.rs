//! Library errors, one enum per concern.

use std::path::PathBuf;

/// A configuration value (from a flag or a config file) that is not allowed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ConfigError {
    /// A named choice that does not exist.
    #[error("{field}: unknown value '{value}' (allowed: {allowed})")]
    UnknownValue {
        field: &'static str,
        value: String,
        allowed: String,
    },
    /// A value outside its allowed range, or inconsistent with another field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A config file that cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl ConfigError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Writing results to disk failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialize results: {0}")]
    Serialize(#[from] serde_json::Error),
}
