//! Byte strings: Broker strings hold arbitrary bytes, not only UTF-8.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// A Broker string: an immutable sequence of arbitrary bytes.
///
/// Zeek strings are not always UTF-8 (think of payload snippets in logs), so the bytes are kept
/// as they are. [`as_str`](Self::as_str) gives `&str` access when they happen to be valid UTF-8.
/// Cloning is cheap: the bytes are reference-counted ([`bytes::Bytes`]), so a decoder can also
/// share its input buffer instead of copying.
///
/// ```
/// use broker_data::ByteString;
/// let s = ByteString::from("zeek");
/// assert_eq!(s.as_str(), Some("zeek"));
/// let raw = ByteString::from_bytes(vec![0xff, 0x00]);
/// assert_eq!(raw.as_str(), None);
/// assert_eq!(raw.as_bytes(), &[0xff, 0x00]);
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ByteString(Bytes);

impl ByteString {
    /// An empty string.
    pub const fn new() -> Self {
        ByteString(Bytes::new())
    }

    /// A string of static text, without allocation.
    pub const fn from_static(s: &'static str) -> Self {
        ByteString(Bytes::from_static(s.as_bytes()))
    }

    /// A string holding the given bytes, which need not be UTF-8.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        ByteString(bytes.into())
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, if the bytes are valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The text with invalid UTF-8 sequences replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// The underlying shared buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for ByteString {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ByteString {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for ByteString {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for ByteString {
    fn from(s: &str) -> Self {
        ByteString(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ByteString {
    fn from(s: String) -> Self {
        ByteString(Bytes::from(s.into_bytes()))
    }
}

impl From<&[u8]> for ByteString {
    fn from(s: &[u8]) -> Self {
        ByteString(Bytes::copy_from_slice(s))
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(s: Vec<u8>) -> Self {
        ByteString(Bytes::from(s))
    }
}

impl From<Bytes> for ByteString {
    fn from(s: Bytes) -> Self {
        ByteString(s)
    }
}

impl PartialEq<str> for ByteString {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for ByteString {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// Prints the bytes raw, as Broker does; invalid UTF-8 is shown with U+FFFD.
impl fmt::Display for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.to_string_lossy()),
        }
    }
}

impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::literal::write_quoted(f, self.as_bytes())
    }
}
