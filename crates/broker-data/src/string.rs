//! Byte strings: Broker strings hold arbitrary bytes, not only UTF-8.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// A Broker string: an immutable sequence of arbitrary bytes.
///
/// Zeek strings are not always UTF-8 (think of payload snippets in logs), so the bytes are kept
/// as they are. [`as_str`](Self::as_str) gives `&str` access when they happen to be valid UTF-8.
///
/// Strings of up to [`ByteString::INLINE_CAPACITY`] bytes — most of what Zeek sends: uids,
/// states, service names, topics — are stored inline, so making, cloning and dropping them
/// touches no allocator and no reference count. Longer strings are reference-counted
/// ([`bytes::Bytes`]), so cloning stays cheap and a decoder can share its input buffer.
///
/// ```
/// use broker_data::ByteString;
/// let s = ByteString::from("zeek");
/// assert_eq!(s.as_str(), Some("zeek"));
/// let raw = ByteString::from_bytes(vec![0xff, 0x00]);
/// assert_eq!(raw.as_str(), None);
/// assert_eq!(raw.as_bytes(), &[0xff, 0x00]);
/// ```
#[derive(Clone)]
pub struct ByteString(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        buf: [u8; ByteString::INLINE_CAPACITY],
    },
    Shared(Bytes),
}

impl ByteString {
    /// The longest string stored inline, without allocation.
    pub const INLINE_CAPACITY: usize = 23;

    /// An empty string.
    pub const fn new() -> Self {
        ByteString(Repr::Inline {
            len: 0,
            buf: [0; Self::INLINE_CAPACITY],
        })
    }

    /// A string of static text, without allocation.
    pub const fn from_static(s: &'static str) -> Self {
        ByteString(Repr::Shared(Bytes::from_static(s.as_bytes())))
    }

    /// A string holding the given bytes, which need not be UTF-8. Short strings are copied
    /// inline; longer ones keep the buffer.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let b: Bytes = bytes.into();
        if b.len() <= Self::INLINE_CAPACITY {
            Self::inline(&b)
        } else {
            ByteString(Repr::Shared(b))
        }
    }

    /// A copy of `bytes`: inline when short, else in a new shared buffer.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        if bytes.len() <= Self::INLINE_CAPACITY {
            Self::inline(bytes)
        } else {
            ByteString(Repr::Shared(Bytes::copy_from_slice(bytes)))
        }
    }

    fn inline(bytes: &[u8]) -> Self {
        let mut buf = [0u8; Self::INLINE_CAPACITY];
        buf[..bytes.len()].copy_from_slice(bytes);
        ByteString(Repr::Inline {
            len: bytes.len() as u8,
            buf,
        })
    }

    /// The bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Shared(b) => b,
        }
    }

    /// The text, if the bytes are valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// The text with invalid UTF-8 sequences replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }

    /// The bytes as a shared buffer (copied when the string is stored inline).
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Inline { len, buf } => Bytes::copy_from_slice(&buf[..usize::from(len)]),
            Repr::Shared(b) => b,
        }
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the string has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for ByteString {
    fn default() -> Self {
        ByteString::new()
    }
}

impl PartialEq for ByteString {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ByteString {}

impl PartialOrd for ByteString {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByteString {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for ByteString {
    /// Hashes like `[u8]`, as `Borrow<[u8]>` requires.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for ByteString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ByteString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(ByteString::from)
    }
}

impl Deref for ByteString {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for ByteString {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for ByteString {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&str> for ByteString {
    fn from(s: &str) -> Self {
        ByteString::copy_from_slice(s.as_bytes())
    }
}

impl From<String> for ByteString {
    fn from(s: String) -> Self {
        ByteString::from_bytes(s.into_bytes())
    }
}

impl From<&[u8]> for ByteString {
    fn from(s: &[u8]) -> Self {
        ByteString::copy_from_slice(s)
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(s: Vec<u8>) -> Self {
        ByteString::from_bytes(s)
    }
}

impl From<Bytes> for ByteString {
    fn from(s: Bytes) -> Self {
        ByteString::from_bytes(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_shared_behave_alike() {
        let short = ByteString::from("x".repeat(ByteString::INLINE_CAPACITY));
        let long = ByteString::from("x".repeat(ByteString::INLINE_CAPACITY + 1));
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert!(matches!(long.0, Repr::Shared(_)));
        assert!(short < long);
        assert_eq!(ByteString::from_static("abc"), ByteString::from("abc"));
        assert_eq!(
            ByteString::from_bytes(Bytes::from_static(b"abc")),
            ByteString::from("abc")
        );
        assert_eq!(long.clone().into_bytes().len(), 24);
        assert_eq!(short.clone().into_bytes(), short.as_bytes());
        assert!(ByteString::new().is_empty());
        assert_eq!(std::mem::size_of::<ByteString>(), 32);
    }
}
