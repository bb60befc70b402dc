//! The error type of this crate.

use crate::DataType;

/// Everything that can go wrong when building, converting or parsing [`Data`](crate::Data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A value had another type than the one asked for.
    #[error("type clash: expected {expected}, found {found}")]
    TypeClash {
        /// The type that was asked for.
        expected: DataType,
        /// The type the value actually has.
        found: DataType,
    },
    /// A subnet or mask length beyond what the address family allows.
    #[error("invalid prefix length {length} for an {family} network (at most {max})")]
    InvalidPrefixLength {
        /// The length that was given.
        length: u8,
        /// `"IPv4"` or `"IPv6"`.
        family: &'static str,
        /// The largest allowed length.
        max: u8,
    },
    /// An address was built from a byte or word slice of the wrong size.
    #[error("an address needs {expected} {unit}, got {found}")]
    InvalidAddressLength {
        /// How many bytes or words were needed.
        expected: usize,
        /// How many were given.
        found: usize,
        /// `"bytes"` or `"words"`.
        unit: &'static str,
    },
    /// A conversion would overflow the target's range (e.g. a `Duration` beyond 292 years).
    #[error("value out of range: {0}")]
    OutOfRange(&'static str),
    /// A string was not valid UTF-8 where UTF-8 was required.
    #[error("string is not valid UTF-8")]
    NotUtf8,
    /// A literal could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A value did not have the layout of a Zeek message.
    #[error("invalid Zeek message: {0}")]
    InvalidZeekMessage(String),
}

/// A literal that could not be parsed, with the byte position where parsing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {position}: expected {expected}, found {found}")]
pub struct ParseError {
    /// Byte offset into the input where the problem was found.
    pub position: usize,
    /// What the parser expected at that position.
    pub expected: String,
    /// What it found instead (a short excerpt, or `end of input`).
    pub found: String,
}

impl ParseError {
    pub(crate) fn new(input: &str, position: usize, expected: impl Into<String>) -> Self {
        let rest = input.get(position..).unwrap_or("");
        let found = if rest.is_empty() {
            "end of input".to_owned()
        } else {
            let excerpt: String = rest.chars().take(16).collect();
            format!("{excerpt:?}")
        };
        ParseError {
            position,
            expected: expected.into(),
            found,
        }
    }
}
