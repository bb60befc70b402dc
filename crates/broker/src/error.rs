//! Errors of the endpoint API, each with Broker's error code.

use broker_wire::ErrorCode;

/// An error from an endpoint operation, carrying Broker's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// Broker's error code.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

impl Error {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
}
