//! The `Data` variant, its type tags, total order, equality and hashing.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::{Address, ByteString, Port, Subnet, Timespan, Timestamp};

/// A Broker vector: a sequence of values.
pub type Vector = Vec<Data>;
/// A Broker set: an ordered set of values, each at most once.
pub type Set = BTreeSet<Data>;
/// A Broker table: an ordered map from values to values.
pub type Table = BTreeMap<Data, Data>;

/// The value of a Zeek enum, identified by its name (such as `Conn::LOG`).
///
/// ```
/// use broker_data::EnumValue;
/// let e = EnumValue::new("Conn::LOG");
/// assert_eq!(e.name(), Some("Conn::LOG"));
/// assert_eq!(e.to_string(), "Conn::LOG");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EnumValue(pub ByteString);

impl EnumValue {
    /// An enum value with the given name.
    pub fn new(name: impl Into<ByteString>) -> Self {
        EnumValue(name.into())
    }

    /// The name, if it is valid UTF-8 (Zeek's always are).
    pub fn name(&self) -> Option<&str> {
        self.0.as_str()
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for EnumValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for EnumValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::literal::write_enum(f, self)
    }
}

/// The type of a [`Data`] value. The declaration order is Broker's ordering of types, which
/// the derived `Ord` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum DataType {
    /// `nil`.
    None = 0,
    /// `T` or `F`.
    Boolean = 1,
    /// Unsigned 64-bit integer.
    Count = 2,
    /// Signed 64-bit integer.
    Integer = 3,
    /// IEEE-754 double.
    Real = 4,
    /// Byte string.
    String = 5,
    /// IPv4 or IPv6 address.
    Address = 6,
    /// IP prefix.
    Subnet = 7,
    /// Transport port.
    Port = 8,
    /// Absolute time.
    Timestamp = 9,
    /// Relative time.
    Timespan = 10,
    /// Zeek enum value.
    EnumValue = 11,
    /// Set of values.
    Set = 12,
    /// Map of values to values.
    Table = 13,
    /// Sequence of values.
    Vector = 14,
}

impl DataType {
    /// Broker's name for the type (`count`, `enum_value`, …).
    pub const fn name(self) -> &'static str {
        match self {
            DataType::None => "none",
            DataType::Boolean => "boolean",
            DataType::Count => "count",
            DataType::Integer => "integer",
            DataType::Real => "real",
            DataType::String => "string",
            DataType::Address => "address",
            DataType::Subnet => "subnet",
            DataType::Port => "port",
            DataType::Timestamp => "timestamp",
            DataType::Timespan => "timespan",
            DataType::EnumValue => "enum_value",
            DataType::Set => "set",
            DataType::Table => "table",
            DataType::Vector => "vector",
        }
    }

    /// The type for Broker's numeric tag (the declaration order), if any.
    pub const fn from_tag(tag: u8) -> Option<DataType> {
        Some(match tag {
            0 => DataType::None,
            1 => DataType::Boolean,
            2 => DataType::Count,
            3 => DataType::Integer,
            4 => DataType::Real,
            5 => DataType::String,
            6 => DataType::Address,
            7 => DataType::Subnet,
            8 => DataType::Port,
            9 => DataType::Timestamp,
            10 => DataType::Timespan,
            11 => DataType::EnumValue,
            12 => DataType::Set,
            13 => DataType::Table,
            14 => DataType::Vector,
            _ => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One Broker value of any type.
///
/// Values are totally ordered: first by [`DataType`] in Broker's sequence, then by value, so any
/// value can be a set element or a table key. `Eq`, `Ord` and `Hash` agree with each other. For
/// reals that needs two decisions that IEEE-754 leaves open: `-0.0 == 0.0` (as in Broker's C++,
/// so they are one set element), and every NaN equals every other NaN and sorts above `+inf`.
///
/// `Display` prints Broker's text format; [`Data::literal`] prints the lossless literal syntax
/// that `FromStr` parses (see the [crate documentation](crate#literal-syntax)).
///
/// ```
/// use broker_data::{Data, set, vector};
/// let v = vector![1u64, -2i64, 4.2, "a b", Data::None];
/// assert_eq!(v.to_string(), "(1, -2, 4.200000, a b, nil)");
/// assert_eq!(v.literal().to_string(), r#"(1, -2, 4.2, "a b", nil)"#);
/// assert_eq!(v.literal().to_string().parse::<Data>().unwrap(), v);
/// assert!(Data::from(true) < Data::from(0u64)); // boolean sorts before count
/// assert_eq!(set![3u64, 1u64, 2u64].to_string(), "{1, 2, 3}");
/// ```
#[derive(Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Data {
    /// The empty value, `nil`.
    #[default]
    None,
    /// A boolean.
    Boolean(bool),
    /// An unsigned 64-bit integer.
    Count(u64),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A double-precision float.
    Real(f64),
    /// A byte string (not necessarily UTF-8).
    String(ByteString),
    /// An IP address.
    Address(Address),
    /// An IP prefix.
    Subnet(Subnet),
    /// A transport port.
    Port(Port),
    /// A point in time.
    Timestamp(Timestamp),
    /// A duration.
    Timespan(Timespan),
    /// A Zeek enum value.
    EnumValue(EnumValue),
    /// An ordered set.
    Set(Set),
    /// An ordered map.
    Table(Table),
    /// A sequence.
    Vector(Vector),
}

impl Data {
    /// The value's type.
    pub const fn data_type(&self) -> DataType {
        match self {
            Data::None => DataType::None,
            Data::Boolean(_) => DataType::Boolean,
            Data::Count(_) => DataType::Count,
            Data::Integer(_) => DataType::Integer,
            Data::Real(_) => DataType::Real,
            Data::String(_) => DataType::String,
            Data::Address(_) => DataType::Address,
            Data::Subnet(_) => DataType::Subnet,
            Data::Port(_) => DataType::Port,
            Data::Timestamp(_) => DataType::Timestamp,
            Data::Timespan(_) => DataType::Timespan,
            Data::EnumValue(_) => DataType::EnumValue,
            Data::Set(_) => DataType::Set,
            Data::Table(_) => DataType::Table,
            Data::Vector(_) => DataType::Vector,
        }
    }

    /// The nesting depth: 0 for a scalar, 1 + the deepest element for a container.
    pub fn depth(&self) -> usize {
        match self {
            Data::Set(s) => 1 + s.iter().map(Data::depth).max().unwrap_or(0),
            Data::Table(t) => {
                1 + t
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            Data::Vector(v) => 1 + v.iter().map(Data::depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Compares reals in the order documented on [`Data`]: IEEE order, `-0.0 == 0.0`, NaN above all.
pub(crate) fn cmp_real(a: f64, b: f64) -> Ordering {
    match a.partial_cmp(&b) {
        Some(o) => o,
        None => a.is_nan().cmp(&b.is_nan()),
    }
}

// `Data` is passed around by value everywhere; keep it small.
const _: () = assert!(std::mem::size_of::<Data>() == 40);

/// The bits hashed for a real, agreeing with [`cmp_real`]'s equality.
fn real_hash_bits(x: f64) -> u64 {
    if x.is_nan() {
        f64::NAN.to_bits()
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Data::None, Data::None) => true,
            (Data::Boolean(a), Data::Boolean(b)) => a == b,
            (Data::Count(a), Data::Count(b)) => a == b,
            (Data::Integer(a), Data::Integer(b)) => a == b,
            (Data::Real(a), Data::Real(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Data::String(a), Data::String(b)) => a == b,
            (Data::Address(a), Data::Address(b)) => a == b,
            (Data::Subnet(a), Data::Subnet(b)) => a == b,
            (Data::Port(a), Data::Port(b)) => a == b,
            (Data::Timestamp(a), Data::Timestamp(b)) => a == b,
            (Data::Timespan(a), Data::Timespan(b)) => a == b,
            (Data::EnumValue(a), Data::EnumValue(b)) => a == b,
            (Data::Set(a), Data::Set(b)) => a == b,
            (Data::Table(a), Data::Table(b)) => a == b,
            (Data::Vector(a), Data::Vector(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Data {}

impl PartialOrd for Data {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Data {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Data::None, Data::None) => Ordering::Equal,
            (Data::Boolean(a), Data::Boolean(b)) => a.cmp(b),
            (Data::Count(a), Data::Count(b)) => a.cmp(b),
            (Data::Integer(a), Data::Integer(b)) => a.cmp(b),
            (Data::Real(a), Data::Real(b)) => cmp_real(*a, *b),
            (Data::String(a), Data::String(b)) => a.cmp(b),
            (Data::Address(a), Data::Address(b)) => a.cmp(b),
            (Data::Subnet(a), Data::Subnet(b)) => a.cmp(b),
            (Data::Port(a), Data::Port(b)) => a.cmp(b),
            (Data::Timestamp(a), Data::Timestamp(b)) => a.cmp(b),
            (Data::Timespan(a), Data::Timespan(b)) => a.cmp(b),
            (Data::EnumValue(a), Data::EnumValue(b)) => a.cmp(b),
            (Data::Set(a), Data::Set(b)) => a.iter().cmp(b.iter()),
            (Data::Table(a), Data::Table(b)) => a.iter().cmp(b.iter()),
            (Data::Vector(a), Data::Vector(b)) => a.iter().cmp(b.iter()),
            (a, b) => a.data_type().cmp(&b.data_type()),
        }
    }
}

impl Hash for Data {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.data_type() as u8);
        match self {
            Data::None => {}
            Data::Boolean(x) => x.hash(state),
            Data::Count(x) => x.hash(state),
            Data::Integer(x) => x.hash(state),
            Data::Real(x) => real_hash_bits(*x).hash(state),
            Data::String(x) => x.hash(state),
            Data::Address(x) => x.hash(state),
            Data::Subnet(x) => x.hash(state),
            Data::Port(x) => x.hash(state),
            Data::Timestamp(x) => x.hash(state),
            Data::Timespan(x) => x.hash(state),
            Data::EnumValue(x) => x.hash(state),
            Data::Set(x) => {
                state.write_usize(x.len());
                x.iter().for_each(|e| e.hash(state));
            }
            Data::Table(x) => {
                state.write_usize(x.len());
                x.iter().for_each(|(k, v)| {
                    k.hash(state);
                    v.hash(state);
                });
            }
            Data::Vector(x) => {
                state.write_usize(x.len());
                x.iter().for_each(|e| e.hash(state));
            }
        }
    }
}

impl fmt::Debug for Data {
    /// The literal syntax, which shows every type unambiguously.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.literal(), f)
    }
}
