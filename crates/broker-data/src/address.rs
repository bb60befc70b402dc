//! IP addresses, subnets and ports.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::DataError;

const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Address family, for [`Address::from_words`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: one 32-bit word.
    Ipv4,
    /// IPv6: four 32-bit words.
    Ipv6,
}

/// Byte order of the words given to [`Address::from_words`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// The words are in this machine's byte order.
    Host,
    /// The words are in network (big-endian) byte order, as read from a packet.
    Network,
}

/// An IPv4 or IPv6 address, held as 16 bytes with IPv4 stored IPv4-mapped (`::ffff:a.b.c.d`),
/// exactly as Broker holds it. Ordering compares the 16 bytes.
///
/// ```
/// use broker_data::Address;
/// let a: Address = "10.1.2.3".parse().unwrap();
/// assert!(a.is_v4());
/// assert_eq!(a.octets()[10..12], [0xff, 0xff]);
/// assert_eq!(a.masked(8).unwrap().to_string(), "10.0.0.0");
/// assert_eq!("2001:db8::1".parse::<Address>().unwrap().to_string(), "2001:db8::1");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
// 8-byte alignment keeps `Data`'s fields word-aligned, which makes moving values (as decoders
// do constantly) plain word copies instead of stalling unaligned ones; `Data` stays 40 bytes.
#[repr(align(8))]
pub struct Address([u8; 16]);

impl Address {
    /// The address from its 16 bytes in network order (IPv4 must already be IPv4-mapped).
    pub const fn from_octets(bytes: [u8; 16]) -> Self {
        Address(bytes)
    }

    /// The address from 4 (IPv4) or 16 (IPv6) bytes in network order.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DataError> {
        match bytes.len() {
            4 => Ok(Address::from(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            ))),
            16 => {
                let mut out = [0u8; 16];
                out.copy_from_slice(bytes);
                Ok(Address(out))
            }
            n => Err(DataError::InvalidAddressLength {
                expected: 16,
                found: n,
                unit: "bytes (or 4 for IPv4)",
            }),
        }
    }

    /// The address from 32-bit words as Broker's C++ constructor takes them: one word for IPv4,
    /// four for IPv6, each in the given byte order.
    ///
    /// ```
    /// use broker_data::{Address, ByteOrder, Family};
    /// let a = Address::from_words(&[0x0a000001], Family::Ipv4, ByteOrder::Host).unwrap();
    /// assert_eq!(a.to_string(), "10.0.0.1");
    /// let n = Address::from_words(&[u32::from_ne_bytes([10, 0, 0, 1])], Family::Ipv4, ByteOrder::Network).unwrap();
    /// assert_eq!(n, a);
    /// ```
    pub fn from_words(words: &[u32], family: Family, order: ByteOrder) -> Result<Self, DataError> {
        let expected = match family {
            Family::Ipv4 => 1,
            Family::Ipv6 => 4,
        };
        if words.len() != expected {
            return Err(DataError::InvalidAddressLength {
                expected,
                found: words.len(),
                unit: "32-bit words",
            });
        }
        let to_be = |w: u32| match order {
            ByteOrder::Host => w.to_be_bytes(),
            ByteOrder::Network => w.to_ne_bytes(),
        };
        let mut out = [0u8; 16];
        match family {
            Family::Ipv4 => {
                out[..12].copy_from_slice(&V4_MAPPED_PREFIX);
                out[12..].copy_from_slice(&to_be(words[0]));
            }
            Family::Ipv6 => {
                for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
                    chunk.copy_from_slice(&to_be(*w));
                }
            }
        }
        Ok(Address(out))
    }

    /// The 16 bytes in network order.
    pub const fn octets(&self) -> [u8; 16] {
        self.0
    }

    /// A reference to the 16 bytes in network order.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Whether this is an IPv4 address (held IPv4-mapped).
    pub fn is_v4(&self) -> bool {
        self.0[..12] == V4_MAPPED_PREFIX
    }

    /// Whether this is an IPv6 address.
    pub fn is_v6(&self) -> bool {
        !self.is_v4()
    }

    /// The standard library's view of this address (IPv4 for IPv4-mapped addresses).
    pub fn to_ip(&self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::new(
                self.0[12], self.0[13], self.0[14], self.0[15],
            ))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }

    /// Keeps the top `top_bits` bits of the 128-bit representation and zeroes the rest, as
    /// Broker's `address::mask` does. Fails if `top_bits > 128`.
    pub fn mask(&mut self, top_bits: u8) -> Result<(), DataError> {
        if top_bits > 128 {
            return Err(DataError::InvalidPrefixLength {
                length: top_bits,
                family: "IPv6",
                max: 128,
            });
        }
        let value = u128::from_be_bytes(self.0);
        let mask = if top_bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(top_bits))
        };
        self.0 = (value & mask).to_be_bytes();
        Ok(())
    }

    /// The address with only its network part kept, for a prefix length in the address's own
    /// family (0..=32 for IPv4, 0..=128 for IPv6).
    pub fn masked(&self, prefix_len: u8) -> Result<Self, DataError> {
        let raw = if self.is_v4() {
            if prefix_len > 32 {
                return Err(DataError::InvalidPrefixLength {
                    length: prefix_len,
                    family: "IPv4",
                    max: 32,
                });
            }
            prefix_len + 96
        } else {
            prefix_len
        };
        let mut out = *self;
        out.mask(raw)?;
        Ok(out)
    }
}

impl From<Ipv4Addr> for Address {
    fn from(a: Ipv4Addr) -> Self {
        let mut out = [0u8; 16];
        out[..12].copy_from_slice(&V4_MAPPED_PREFIX);
        out[12..].copy_from_slice(&a.octets());
        Address(out)
    }
}

impl From<Ipv6Addr> for Address {
    fn from(a: Ipv6Addr) -> Self {
        Address(a.octets())
    }
}

impl From<IpAddr> for Address {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => a.into(),
            IpAddr::V6(a) => a.into(),
        }
    }
}

impl From<Address> for IpAddr {
    fn from(a: Address) -> Self {
        a.to_ip()
    }
}

impl std::str::FromStr for Address {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        let s = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        s.parse::<IpAddr>()
            .map(Address::from)
            .map_err(|_| DataError::Parse(crate::ParseError::new(s, 0, "an IPv4 or IPv6 address")))
    }
}

/// Dotted quad for IPv4, RFC 5952 text for IPv6, as Broker prints addresses.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_ip(), f)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An IP prefix: a network address masked to its length.
///
/// The length is held in IPv6 terms as Broker holds it (an IPv4 `/8` is stored as 104), so that
/// ordering (network first, then stored length) matches Broker's. Construction masks the network
/// and rejects a length that is too long for the family.
///
/// ```
/// use broker_data::Subnet;
/// let s = Subnet::new("10.1.2.3".parse().unwrap(), 8).unwrap();
/// assert_eq!(s.to_string(), "10.0.0.0/8");
/// assert_eq!(s.length(), 8);
/// assert_eq!(s.raw_length(), 104);
/// assert!(s.contains(&"10.200.0.1".parse().unwrap()));
/// assert!(Subnet::new("10.0.0.0".parse().unwrap(), 33).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Subnet {
    network: Address,
    raw_length: u8,
}

impl Subnet {
    /// A subnet from an address and a prefix length in the address's family (at most 32 for
    /// IPv4, 128 for IPv6). The address is masked.
    pub fn new(address: Address, length: u8) -> Result<Self, DataError> {
        let network = address.masked(length)?;
        let raw_length = if address.is_v4() { length + 96 } else { length };
        Ok(Subnet {
            network,
            raw_length,
        })
    }

    /// A subnet from an address and a length in IPv6 terms (0..=128), as the wire carries it.
    /// The address is masked.
    pub fn from_raw(address: Address, raw_length: u8) -> Result<Self, DataError> {
        let mut network = address;
        network.mask(raw_length)?;
        Ok(Subnet {
            network,
            raw_length,
        })
    }

    /// The (masked) network address.
    pub const fn network(&self) -> Address {
        self.network
    }

    /// The prefix length in the network's family (e.g. 8 for `10.0.0.0/8`).
    pub fn length(&self) -> u8 {
        if self.network.is_v4() {
            self.raw_length - 96
        } else {
            self.raw_length
        }
    }

    /// The prefix length in IPv6 terms (e.g. 104 for `10.0.0.0/8`), as the wire carries it.
    pub const fn raw_length(&self) -> u8 {
        self.raw_length
    }

    /// Whether `address` lies in this subnet.
    pub fn contains(&self, address: &Address) -> bool {
        let mut a = *address;
        // `raw_length` is at most 128 by construction, so masking cannot fail.
        a.mask(self.raw_length).is_ok() && a == self.network
    }
}

impl std::str::FromStr for Subnet {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        let err = || DataError::Parse(crate::ParseError::new(s, 0, "a subnet like 10.0.0.0/8"));
        let (addr, len) = s.rsplit_once('/').ok_or_else(err)?;
        let addr: Address = addr.parse().map_err(|_| err())?;
        let len: u8 = len.parse().map_err(|_| err())?;
        Subnet::new(addr, len)
    }
}

/// `network/length`, as Broker prints subnets.
impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.length())
    }
}

impl fmt::Debug for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The transport protocol of a [`Port`], with Broker's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum Protocol {
    /// Unknown protocol, printed `?`.
    #[default]
    Unknown = 0,
    /// TCP.
    Tcp = 1,
    /// UDP.
    Udp = 2,
    /// ICMP: the "port" is a message type or code.
    Icmp = 3,
}

impl Protocol {
    /// The protocol for Broker's number; numbers beyond 3 map to `Unknown`, as Broker prints them.
    pub fn from_u8(n: u8) -> Option<Protocol> {
        match n {
            0 => Some(Protocol::Unknown),
            1 => Some(Protocol::Tcp),
            2 => Some(Protocol::Udp),
            3 => Some(Protocol::Icmp),
            _ => None,
        }
    }

    /// The suffix Broker prints: `tcp`, `udp`, `icmp` or `?`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Unknown => "?",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// A transport-level port: number and protocol. Orders by number, then protocol.
///
/// ```
/// use broker_data::{Port, Protocol};
/// let p = Port::new(80, Protocol::Tcp);
/// assert_eq!(p.to_string(), "80/tcp");
/// assert_eq!(Port::new(0, Protocol::Unknown).to_string(), "0/?");
/// assert_eq!("53/udp".parse::<Port>().unwrap(), Port::new(53, Protocol::Udp));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Port {
    number: u16,
    protocol: Protocol,
}

impl Port {
    /// A port with the given number and protocol.
    pub const fn new(number: u16, protocol: Protocol) -> Self {
        Port { number, protocol }
    }

    /// The port number.
    pub const fn number(&self) -> u16 {
        self.number
    }

    /// The protocol.
    pub const fn protocol(&self) -> Protocol {
        self.protocol
    }
}

impl std::str::FromStr for Port {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        let err = || DataError::Parse(crate::ParseError::new(s, 0, "a port like 80/tcp"));
        let (num, proto) = s.split_once('/').ok_or_else(err)?;
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let number: u16 = num.parse().map_err(|_| err())?;
        let protocol = match proto {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "?" => Protocol::Unknown,
            _ => return Err(err()),
        };
        Ok(Port { number, protocol })
    }
}

/// `number/protocol`, with `?` for an unknown protocol, as Broker prints ports.
impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.protocol.as_str())
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
