//! Conversions between Rust values and [`Data`], and typed accessors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use crate::{
    Address, ByteString, Data, DataError, DataType, EnumValue, Port, Set, Subnet, Table, Timespan,
    Timestamp, Vector,
};

macro_rules! from_via {
    ($($t:ty => $variant:ident as $conv:ty),* $(,)?) => {$(
        impl From<$t> for Data {
            fn from(x: $t) -> Data {
                Data::$variant(<$conv>::from(x))
            }
        }
    )*};
}

from_via! {
    bool => Boolean as bool,
    u8 => Count as u64, u16 => Count as u64, u32 => Count as u64, u64 => Count as u64,
    i8 => Integer as i64, i16 => Integer as i64, i32 => Integer as i64, i64 => Integer as i64,
    f32 => Real as f64, f64 => Real as f64,
    &str => String as ByteString, String => String as ByteString, ByteString => String as ByteString,
    Bytes => String as ByteString,
    Address => Address as Address, Ipv4Addr => Address as Address, Ipv6Addr => Address as Address,
    IpAddr => Address as Address,
    Subnet => Subnet as Subnet, Port => Port as Port,
    Timestamp => Timestamp as Timestamp, Timespan => Timespan as Timespan,
    EnumValue => EnumValue as EnumValue,
    Set => Set as Set, Table => Table as Table,
}

impl From<usize> for Data {
    fn from(x: usize) -> Data {
        Data::Count(x as u64)
    }
}

impl From<()> for Data {
    fn from(_: ()) -> Data {
        Data::None
    }
}

impl From<&String> for Data {
    fn from(x: &String) -> Data {
        Data::String(ByteString::from(x.as_str()))
    }
}

impl<T: Into<Data>> From<Vec<T>> for Data {
    fn from(v: Vec<T>) -> Data {
        Data::Vector(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Data>> From<Option<T>> for Data {
    /// `None` becomes `nil`.
    fn from(v: Option<T>) -> Data {
        v.map_or(Data::None, Into::into)
    }
}

impl<T: Into<Data>> FromIterator<T> for Data {
    /// Collects into a vector.
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Data {
        Data::Vector(iter.into_iter().map(Into::into).collect())
    }
}

fn clash(expected: DataType, found: &Data) -> DataError {
    DataError::TypeClash {
        expected,
        found: found.data_type(),
    }
}

macro_rules! accessors {
    ($($variant:ident: $as_ref:ident, $as_mut:ident -> $t:ty;)*) => {
        impl Data {
            $(
                #[doc = concat!("The ", stringify!($variant), " value, if this is one.")]
                pub fn $as_ref(&self) -> Option<&$t> {
                    match self {
                        Data::$variant(x) => Some(x),
                        _ => None,
                    }
                }

                #[doc = concat!("The ", stringify!($variant), " value, mutably, if this is one.")]
                pub fn $as_mut(&mut self) -> Option<&mut $t> {
                    match self {
                        Data::$variant(x) => Some(x),
                        _ => None,
                    }
                }
            )*
        }
    };
}

accessors! {
    String: as_string, as_string_mut -> ByteString;
    EnumValue: as_enum_value, as_enum_value_mut -> EnumValue;
    Set: as_set, as_set_mut -> Set;
    Table: as_table, as_table_mut -> Table;
    Vector: as_vector, as_vector_mut -> Vector;
}

macro_rules! copy_accessors {
    ($($variant:ident: $name:ident -> $t:ty;)*) => {
        impl Data {
            $(
                #[doc = concat!("The ", stringify!($variant), " value, if this is one.")]
                pub fn $name(&self) -> Option<$t> {
                    match self {
                        Data::$variant(x) => Some(*x),
                        _ => None,
                    }
                }
            )*
        }
    };
}

copy_accessors! {
    Boolean: as_bool -> bool;
    Count: as_count -> u64;
    Integer: as_integer -> i64;
    Real: as_real -> f64;
    Address: as_address -> Address;
    Subnet: as_subnet -> Subnet;
    Port: as_port -> Port;
    Timestamp: as_timestamp -> Timestamp;
    Timespan: as_timespan -> Timespan;
}

impl Data {
    /// Whether this is `nil`.
    pub fn is_none(&self) -> bool {
        matches!(self, Data::None)
    }

    /// The string as text, if this is a string of valid UTF-8.
    ///
    /// ```
    /// use broker_data::Data;
    /// assert_eq!(Data::from("x").as_str(), Some("x"));
    /// assert_eq!(Data::from(1u64).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        self.as_string().and_then(ByteString::as_str)
    }

    /// The string's bytes, if this is a string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        self.as_string().map(ByteString::as_bytes)
    }
}

macro_rules! try_from_owned {
    ($($t:ty: $variant:ident;)*) => {$(
        impl TryFrom<Data> for $t {
            type Error = DataError;
            fn try_from(d: Data) -> Result<$t, DataError> {
                match d {
                    Data::$variant(x) => Ok(x),
                    other => Err(clash(DataType::$variant, &other)),
                }
            }
        }
    )*};
}

try_from_owned! {
    bool: Boolean; u64: Count; i64: Integer; f64: Real; ByteString: String; Address: Address;
    Subnet: Subnet; Port: Port; Timestamp: Timestamp; Timespan: Timespan; EnumValue: EnumValue;
    Set: Set; Table: Table; Vector: Vector;
}

macro_rules! try_from_ref {
    ($($t:ty: $variant:ident;)*) => {$(
        impl TryFrom<&Data> for $t {
            type Error = DataError;
            fn try_from(d: &Data) -> Result<$t, DataError> {
                match d {
                    Data::$variant(x) => Ok(*x),
                    other => Err(clash(DataType::$variant, other)),
                }
            }
        }
    )*};
}

try_from_ref! {
    bool: Boolean; u64: Count; i64: Integer; f64: Real; Address: Address; Subnet: Subnet;
    Port: Port; Timestamp: Timestamp; Timespan: Timespan;
}

impl TryFrom<Data> for String {
    type Error = DataError;
    /// Fails with a type clash for a non-string, and with [`DataError::NotUtf8`] for bytes that
    /// are not UTF-8.
    fn try_from(d: Data) -> Result<String, DataError> {
        match d {
            Data::String(s) => {
                String::from_utf8(s.as_bytes().to_vec()).map_err(|_| DataError::NotUtf8)
            }
            other => Err(clash(DataType::String, &other)),
        }
    }
}

impl<'a> TryFrom<&'a Data> for &'a str {
    type Error = DataError;
    fn try_from(d: &'a Data) -> Result<&'a str, DataError> {
        match d {
            Data::String(s) => s.as_str().ok_or(DataError::NotUtf8),
            other => Err(clash(DataType::String, other)),
        }
    }
}

impl TryFrom<Data> for IpAddr {
    type Error = DataError;
    fn try_from(d: Data) -> Result<IpAddr, DataError> {
        Address::try_from(d).map(|a| a.to_ip())
    }
}

/// Builds a [`Data::Vector`] from values convertible into [`Data`]; nests freely.
///
/// ```
/// use broker_data::{vector, set, table, Data};
/// let v = vector![1u64, "two", vector![3.0, Data::None], set!["x"], table!{"k" => 1u64}];
/// assert_eq!(v.to_string(), "(1, two, (3.000000, nil), {x}, {k -> 1})");
/// ```
#[macro_export]
macro_rules! vector {
    ($($x:expr),* $(,)?) => {
        $crate::Data::Vector(::std::vec![$($crate::Data::from($x)),*])
    };
}

/// Builds a [`Data::Set`] from values convertible into [`Data`].
///
/// ```
/// use broker_data::set;
/// assert_eq!(set![2u64, 1u64, 2u64].to_string(), "{1, 2}");
/// ```
#[macro_export]
macro_rules! set {
    ($($x:expr),* $(,)?) => {
        $crate::Data::Set(::std::collections::BTreeSet::from_iter([$($crate::Data::from($x)),*]))
    };
}

/// Builds a [`Data::Table`] from `key => value` pairs convertible into [`Data`].
///
/// ```
/// use broker_data::table;
/// assert_eq!(table!{"b" => 2u64, "a" => 1u64}.to_string(), "{a -> 1, b -> 2}");
/// ```
#[macro_export]
macro_rules! table {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::Data::Table(::std::collections::BTreeMap::from_iter([$(($crate::Data::from($k), $crate::Data::from($v))),*]))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_clash_names_both_types() {
        let err = u64::try_from(Data::from("x")).unwrap_err();
        assert_eq!(
            err,
            DataError::TypeClash {
                expected: DataType::Count,
                found: DataType::String
            }
        );
        assert_eq!(err.to_string(), "type clash: expected count, found string");
        assert_eq!(
            Vector::try_from(Data::from(1i64)).unwrap_err().to_string(),
            "type clash: expected vector, found integer"
        );
    }

    #[test]
    fn conversions_pick_brokers_types() {
        let cases: Vec<(Data, DataType)> = vec![
            (7u8.into(), DataType::Count),
            (7usize.into(), DataType::Count),
            ((-7i16).into(), DataType::Integer),
            (1.5f32.into(), DataType::Real),
            (String::from("s").into(), DataType::String),
            (Ipv4Addr::LOCALHOST.into(), DataType::Address),
            (IpAddr::V6(Ipv6Addr::LOCALHOST).into(), DataType::Address),
            (Some(3u64).into(), DataType::Count),
            (None::<u64>.into(), DataType::None),
            (().into(), DataType::None),
            (vec![1u64, 2].into(), DataType::Vector),
            ([1u64, 2].into_iter().collect::<Data>(), DataType::Vector),
        ];
        for (d, t) in cases {
            assert_eq!(d.data_type(), t, "{d:?}");
        }
    }

    #[test]
    fn accessors_and_try_from() {
        let mut d = Data::from(vec![Data::from(1u64)]);
        d.as_vector_mut().unwrap().push(2u64.into());
        assert_eq!(d.as_vector().unwrap().len(), 2);
        assert_eq!(d.as_count(), None);
        assert_eq!(Data::from(5i64).as_integer(), Some(5));
        assert_eq!(i64::try_from(&Data::from(5i64)), Ok(5));
        assert_eq!(<&str>::try_from(&Data::from("a")), Ok("a"));
        assert_eq!(
            String::try_from(Data::String(ByteString::from_bytes(vec![0xff]))),
            Err(DataError::NotUtf8)
        );
        assert_eq!(
            IpAddr::try_from(Data::from(Ipv4Addr::LOCALHOST)),
            Ok(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert!(Data::None.is_none());
        assert_eq!(Data::from("é").as_bytes(), Some("é".as_bytes()));
    }
}
