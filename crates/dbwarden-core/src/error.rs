//! The engine's error type.

use thiserror::Error;

/// A configuration or threshold value was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value lies outside what the field accepts.
    #[error("{field} = {value} is out of range: expected {expected}")]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The refused value, as written.
        value: String,
        /// What the field accepts.
        expected: &'static str,
    },
    /// Two values contradict each other.
    #[error("{0}")]
    Inconsistent(String),
    /// An alert rule is invalid.
    #[error("alert rules: {0}")]
    Rules(String),
}
