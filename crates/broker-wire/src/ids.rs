//! Identifiers and topics as they appear on the wire.

use std::fmt;

use broker_data::ByteString;
use bytes::Bytes;

use crate::WireError;

/// A 16-byte endpoint identifier (a UUID); all zeros is the nil id, which as a receiver means
/// "broadcast".
///
/// ```
/// use broker_wire::EndpointId;
/// let id = EndpointId::from_bytes([0x12; 16]);
/// assert_eq!(id.to_string(), "12121212-1212-1212-1212-121212121212");
/// assert!(EndpointId::NIL.is_nil());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EndpointId([u8; 16]);

impl EndpointId {
    /// The nil id (all zeros).
    pub const NIL: EndpointId = EndpointId([0; 16]);

    /// The id with these bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        EndpointId(bytes)
    }

    /// The bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Whether this is the nil id.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }

    /// A broker-rs endpoint's id made from 16 random bytes: a version-4 UUID whose last six
    /// bytes check the first ten. Broker's ids are version-5 UUIDs (CAF's `uuid::random`), so
    /// none is ever taken for ours; a random version-4 id from some other tool passes the
    /// 48-bit check once in 2^48. The id is how a broker-rs endpoint proves in Broker's own
    /// handshake, whose messages stay byte for byte Broker's, that it speaks the routing
    /// extension (see `docs/protocol.md`, "Version 2"). It stays a UUID that Broker's parser
    /// accepts (versions 1 to 5), since C++ Broker prints ids into statuses and reads them
    /// back.
    ///
    /// ```
    /// use broker_wire::EndpointId;
    /// let id = EndpointId::broker_rs([0x5a; 16]);
    /// assert!(id.is_broker_rs());
    /// assert_eq!(id.as_bytes()[6] >> 4, 4, "a version-4 UUID");
    /// // Other bytes, or the same id with one bit changed, are not one.
    /// assert!(!EndpointId::from_bytes([0x5a; 16]).is_broker_rs());
    /// let mut bytes = *id.as_bytes();
    /// bytes[0] ^= 1;
    /// assert!(!EndpointId::from_bytes(bytes).is_broker_rs());
    /// ```
    pub fn broker_rs(random: [u8; 16]) -> Self {
        let mut b = random;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let check = broker_rs_check(&b);
        b[10..].copy_from_slice(&check);
        EndpointId(b)
    }

    /// Whether this id was made by [`broker_rs`](Self::broker_rs): the mark of an endpoint
    /// that speaks the routing extension.
    pub fn is_broker_rs(&self) -> bool {
        let b = &self.0;
        b[6] >> 4 == 4 && b[8] >> 6 == 0b10 && b[10..] == broker_rs_check(b)
    }
}

/// The check of a broker-rs id: 48 bits of FNV-1a (64-bit) over its first ten bytes, keyed
/// with "broker-rs".
fn broker_rs_check(b: &[u8; 16]) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b[..10].iter().chain(b"broker-rs") {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let bytes = h.to_be_bytes();
    [bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]]
}

/// The UUID text form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as Broker prints ids.
impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for EndpointId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        let bad = || WireError::InvalidId(s.chars().take(40).collect());
        if hex.len() != 32 || s.len() != 36 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(EndpointId(out))
    }
}

/// An object at an endpoint (a store frontend, a publisher); object 0 is the endpoint itself.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct EntityId {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The object's number at that endpoint.
    pub object: u64,
}

impl EntityId {
    /// The nil entity (nil endpoint, object 0).
    pub const NIL: EntityId = EntityId {
        endpoint: EndpointId::NIL,
        object: 0,
    };
}

/// A topic: UTF-8 text of at most 65,535 bytes, cheap to clone (inline up to 23 bytes, else
/// shared).
///
/// ```
/// use broker_wire::Topic;
/// let t = Topic::new("zeek/events").unwrap();
/// assert_eq!(t.as_str(), "zeek/events");
/// assert!(Topic::new("x".repeat(70_000)).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Topic(ByteString);

impl Topic {
    /// The longest topic the wire format can carry.
    pub const MAX_LEN: usize = u16::MAX as usize;

    /// Broker's reserved topic component, which user topics must not contain.
    pub const RESERVED: &'static str = "<$>";

    /// A topic from text; fails when longer than [`Topic::MAX_LEN`].
    pub fn new(s: impl Into<String>) -> Result<Self, WireError> {
        let s: String = s.into();
        if s.len() > Self::MAX_LEN {
            return Err(WireError::TopicTooLong(s.len()));
        }
        Ok(Topic(ByteString::from(s)))
    }

    /// A topic from static text, without allocation; fails when too long.
    pub fn from_static(s: &'static str) -> Result<Self, WireError> {
        if s.len() > Self::MAX_LEN {
            return Err(WireError::TopicTooLong(s.len()));
        }
        Ok(Topic(ByteString::from_static(s)))
    }

    /// A topic from raw bytes, which must be UTF-8.
    pub fn from_bytes(b: Bytes) -> Result<Self, WireError> {
        if b.len() > Self::MAX_LEN {
            return Err(WireError::TopicTooLong(b.len()));
        }
        Self::from_byte_string(ByteString::from_bytes(b))
    }

    /// A topic from a byte string, which must be UTF-8 and at most 65,535 bytes.
    pub fn from_byte_string(b: ByteString) -> Result<Self, WireError> {
        if b.len() > Self::MAX_LEN {
            return Err(WireError::TopicTooLong(b.len()));
        }
        std::str::from_utf8(b.as_bytes()).map_err(|_| WireError::TopicNotUtf8)?;
        Ok(Topic(b))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Every constructor checks UTF-8.
        std::str::from_utf8(self.0.as_bytes()).unwrap_or_default()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether `prefix` is a prefix of this topic (Broker's subscription match).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix.as_bytes())
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl TryFrom<&str> for Topic {
    type Error = WireError;
    /// Copies the text (inline, without allocating, up to 23 bytes).
    fn try_from(s: &str) -> Result<Self, WireError> {
        if s.len() > Self::MAX_LEN {
            return Err(WireError::TopicTooLong(s.len()));
        }
        Ok(Topic(ByteString::from(s)))
    }
}
