//! Library errors, one enum per concern, each a one-line message that names what is wrong.

use std::path::PathBuf;

/// The most characters of a user's value that an error message repeats.
pub const MAX_ECHO: usize = 60;

/// `s` as it may appear in a message: at most [`MAX_ECHO`] characters, then `…` and the
/// length, so a huge value (a 10 MB string in a config file) does not become a huge error.
pub fn cut(s: &str) -> String {
    cut_to(s, MAX_ECHO)
}

/// The most characters of a message from another library (which may quote the user's
/// value) that an error repeats.
pub const MAX_MESSAGE: usize = 400;

/// `s` cut to at most `max` characters, then `…` and the length.
pub fn cut_to(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head}… ({n} characters)")
    }
}

/// The most characters of one error line.
pub const MAX_LINE: usize = 1000;

/// `s` as one line of at most [`MAX_LINE`] characters: line breaks become `; `, and a longer
/// message is cut with `…`.
pub fn cut_line(s: &str) -> String {
    let one: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let one = one.join("; ");
    if one.chars().count() <= MAX_LINE {
        one
    } else {
        one.chars().take(MAX_LINE).collect::<String>() + "…"
    }
}

/// A configuration value (from a flag or a config file) that is not allowed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ConfigError {
    /// A named choice that does not exist.
    #[error("{field}: unknown value '{value}' (allowed: {allowed})")]
    UnknownValue {
        /// The config field.
        field: &'static str,
        /// The value given (cut to [`MAX_ECHO`] characters).
        value: String,
        /// The allowed values.
        allowed: String,
    },
    /// A value outside its allowed range, or inconsistent with another field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The config field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A formula of the block language (`--block`, `--final`) that does not check: the
    /// message starts with the formula's name, line and column (`block:1:16: …`).
    #[error("{message}")]
    Formula {
        /// The config field holding the formula.
        field: &'static str,
        /// `what:LINE:COL: what was expected`.
        message: String,
    },
    /// A config file that cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file (`<json>` for text given directly).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The message without the field name in front (for contexts that name the field
    /// themselves, such as a JSON path).
    pub fn reason(&self) -> String {
        match self {
            ConfigError::UnknownValue { value, allowed, .. } => {
                format!("unknown value '{value}' (allowed: {allowed})")
            }
            ConfigError::Invalid { reason, .. } => reason.clone(),
            ConfigError::File { reason, .. } => reason.clone(),
            ConfigError::Formula { message, .. } => message.clone(),
        }
    }
}

/// Writing results to disk failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or directory that cannot be written.
    #[error("cannot write {path}: {reason}")]
    Io {
        /// The file the user asked for (never an internal temporary name).
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// Results that cannot be serialized.
    #[error("cannot serialize results: {0}")]
    Serialize(String),
}

impl OutputError {
    /// An I/O failure on `path`.
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> Self {
        OutputError::Io {
            path: path.to_path_buf(),
            reason: io_reason(e),
        }
    }
}

impl From<serde_json::Error> for OutputError {
    fn from(e: serde_json::Error) -> Self {
        OutputError::Serialize(e.to_string())
    }
}

/// An I/O error's message without the `(os error N)` suffix, lower case.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut() {
        assert_eq!(cut("abc"), "abc");
        let s = "x".repeat(1000);
        let c = cut(&s);
        assert!(c.starts_with(&"x".repeat(MAX_ECHO)));
        assert!(c.ends_with("(1000 characters)"), "{c}");
        assert_eq!(cut(&"y".repeat(MAX_ECHO)), "y".repeat(MAX_ECHO));
    }

    #[test]
    fn messages_become_one_bounded_line() {
        assert_eq!(cut_line("a\n\n  b  \nc"), "a; b; c");
        let long = "z".repeat(5000);
        let c = cut_line(&long);
        assert_eq!(c.chars().count(), MAX_LINE + 1);
        assert!(c.ends_with('…'));
    }

    #[test]
    fn io_reasons_drop_the_os_error_number() {
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(io_reason(&e), "permission denied");
    }
}
