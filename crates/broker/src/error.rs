//! Errors of the endpoint API, each with Broker's error code.

use broker_wire::ErrorCode;

/// An error from an endpoint operation, carrying Broker's code, a message, and the
/// underlying error when there is one.
///
/// ```
/// use broker::{Error, ErrorCode};
/// let e = Error::new(ErrorCode::PeerUnavailable, "cannot connect");
/// assert_eq!(e.to_string(), "peer_unavailable: cannot connect");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Error {
    /// Broker's error code.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
    /// What caused it, when that is another error (an I/O error, say).
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error with Broker's `code` and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Errors are equal when their codes and messages are (the source is context).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.message == other.message
    }
}

impl Eq for Error {}

/// Why a connection ended or was dropped, inside the facade: one enum, mapped to Broker's
/// error codes in one place ([`ConnError::code`]).
#[derive(Debug)]
pub(crate) enum ConnError {
    /// The socket failed (including TLS, which reports through I/O errors).
    Io(std::io::Error),
    /// A frame or envelope that does not decode.
    Decode(broker_wire::WireError),
    /// A message that is valid but not allowed here (e.g. a link state on a plain Broker
    /// connection).
    Misbehaved(String),
}

impl ConnError {
    /// Broker's code for it.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ConnError::Io(_) => ErrorCode::PeerDisconnectDuringHandshake,
            ConnError::Decode(_) | ConnError::Misbehaved(_) => ErrorCode::InvalidMessage,
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::Decode(e) => write!(f, "{e}"),
            ConnError::Misbehaved(what) => f.write_str(what),
        }
    }
}
