//! Proptest strategies for [`Data`] (feature `proptest`), for property tests here and in the
//! crates above, covering the edge values: `i64::MIN`, `u64::MAX`, `-0.0`, NaN, IPv4 and IPv6
//! addresses, `/0` and `/128`, empty containers, non-UTF-8 strings, enum names that need the
//! `enum("…")` literal form.

use proptest::prelude::*;

use crate::{Address, ByteString, Data, EnumValue, Port, Protocol, Subnet, Timespan, Timestamp};

/// Reals, with every special value.
pub fn real() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(5e-324),
    ]
}

/// IPv4 and IPv6 addresses.
pub fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| Address::from_slice(&b).unwrap()),
        any::<[u8; 16]>().prop_map(Address::from_octets),
        Just(Address::from_octets([0; 16])),
    ]
}

/// IPv4 and IPv6 subnets of every length.
pub fn subnet() -> impl Strategy<Value = Subnet> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(b, l)| Subnet::new(
            Address::from_slice(&b).unwrap(),
            l
        )
        .unwrap()),
        (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(b, l)| Subnet::new(Address::from_octets(b), l).unwrap()),
    ]
}

/// Byte strings, UTF-8 or not.
pub fn bytes() -> impl Strategy<Value = ByteString> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12).prop_map(ByteString::from),
        "\\PC{0,12}".prop_map(ByteString::from),
        Just(ByteString::from("1.2.3.4")),
        Just(ByteString::from("nil")),
    ]
}

/// Enum values, plain identifiers or not.
pub fn enum_value() -> impl Strategy<Value = EnumValue> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_]{0,6}(::[A-Za-z_][A-Za-z0-9_]{0,6})?".prop_map(EnumValue::new),
        "[a-f0-9]{1,4}::[a-f0-9]{1,4}".prop_map(EnumValue::new),
        bytes().prop_map(EnumValue),
    ]
}

/// Values of every non-container type.
pub fn scalar() -> impl Strategy<Value = Data> {
    prop_oneof![
        Just(Data::None),
        any::<bool>().prop_map(Data::from),
        prop_oneof![any::<u64>(), Just(0), Just(u64::MAX)].prop_map(Data::Count),
        prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(0)].prop_map(Data::Integer),
        real().prop_map(Data::Real),
        bytes().prop_map(Data::String),
        address().prop_map(Data::Address),
        subnet().prop_map(Data::Subnet),
        (any::<u16>(), 0u8..4)
            .prop_map(|(n, p)| Data::Port(Port::new(n, Protocol::from_u8(p).unwrap()))),
        prop_oneof![
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            (-10_000i64..10_000).prop_map(|s| s * 1_000_000_000)
        ]
        .prop_map(|n| Data::Timestamp(Timestamp::from_nanos(n))),
        prop_oneof![
            any::<i64>(),
            Just(i64::MIN),
            Just(0),
            (-1000i64..1000).prop_map(|s| s * 60_000_000_000)
        ]
        .prop_map(|n| Data::Timespan(Timespan::from_nanos(n))),
        enum_value().prop_map(Data::EnumValue),
    ]
}

/// Values of every type, nested up to 4 deep.
pub fn data() -> impl Strategy<Value = Data> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Data::Vector),
            prop::collection::btree_set(inner.clone(), 0..6).prop_map(Data::Set),
            prop::collection::btree_map(inner.clone(), inner, 0..6).prop_map(Data::Table),
        ]
    })
}
