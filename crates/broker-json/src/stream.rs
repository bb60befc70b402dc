//! The fast path of the decoder: typed objects read straight from the text with serde, without
//! building a `serde_json::Value` tree first (one allocation per string and container of the
//! value, none per key). When `data` comes before `@data-type` (clients may order keys as they
//! like) the value is read as a tree and converted once its type is known.

use std::fmt;

use broker_data::{ByteString, Data, EnumValue, Set, Table, Vector};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::decode::value_of;
use crate::text::{parse_address, parse_port, parse_subnet, parse_timespan, parse_timestamp};

/// What the top level of a client's message holds.
pub(crate) struct Message {
    pub(crate) topic: Option<String>,
    pub(crate) data: Data,
}

fn invalid<E: de::Error>() -> E {
    E::custom("invalid data")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    None,
    Boolean,
    Count,
    Integer,
    Real,
    String,
    EnumValue,
    Address,
    Subnet,
    Port,
    Timestamp,
    Timespan,
    Vector,
    Set,
    Table,
}

impl Ty {
    fn from_name(name: &str) -> Option<Ty> {
        Some(match name {
            "none" => Ty::None,
            "boolean" => Ty::Boolean,
            "count" => Ty::Count,
            "integer" => Ty::Integer,
            "real" => Ty::Real,
            "string" => Ty::String,
            "enum-value" => Ty::EnumValue,
            "address" => Ty::Address,
            "subnet" => Ty::Subnet,
            "port" => Ty::Port,
            "timestamp" => Ty::Timestamp,
            "timespan" => Ty::Timespan,
            "vector" => Ty::Vector,
            "set" => Ty::Set,
            "table" => Ty::Table,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Ty::None => "none",
            Ty::Boolean => "boolean",
            Ty::Count => "count",
            Ty::Integer => "integer",
            Ty::Real => "real",
            Ty::String => "string",
            Ty::EnumValue => "enum-value",
            Ty::Address => "address",
            Ty::Subnet => "subnet",
            Ty::Port => "port",
            Ty::Timestamp => "timestamp",
            Ty::Timespan => "timespan",
            Ty::Vector => "vector",
            Ty::Set => "set",
            Ty::Table => "table",
        }
    }
}

/// The keys this decoder looks at; any other is skipped.
enum Key {
    Type,
    Data,
    Topic,
    K,
    V,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "@data-type" => Key::Type,
                    "data" => Key::Data,
                    "topic" => Key::Topic,
                    "key" => Key::K,
                    "value" => Key::V,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

struct TyName(Ty);

impl<'de> de::Deserialize<'de> for TyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TyName, D::Error> {
        struct TyVisitor;
        impl Visitor<'_> for TyVisitor {
            type Value = TyName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a type name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TyName, E> {
                Ty::from_name(s).map(TyName).ok_or_else(invalid)
            }
        }
        d.deserialize_str(TyVisitor)
    }
}

/// The parts of a typed object (and of a message's top level) as they come.
#[derive(Default)]
struct Parts {
    ty: Option<Ty>,
    data: Option<Data>,
    /// `data` that came before `@data-type`.
    raw: Option<serde_json::Value>,
    topic: Option<String>,
}

impl Parts {
    fn read<'de, A: MapAccess<'de>>(map: &mut A, top: bool) -> Result<Parts, A::Error> {
        let mut p = Parts::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => p.ty = Some(map.next_value::<TyName>()?.0),
                Key::Data => match p.ty {
                    Some(Ty::None) => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    Some(ty) => p.data = Some(map.next_value_seed(ValueSeed(ty))?),
                    None => p.raw = Some(map.next_value()?),
                },
                Key::Topic if top => {
                    // A topic that is not a string counts as no topic.
                    p.topic = map
                        .next_value::<serde_json::Value>()?
                        .as_str()
                        .map(str::to_owned)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }

    fn value<E: de::Error>(self) -> Result<Data, E> {
        match (self.ty, self.data, self.raw) {
            (Some(Ty::None), _, _) => Ok(Data::None),
            (Some(_), Some(d), _) => Ok(d),
            (Some(ty), None, Some(raw)) => value_of(ty.name(), &raw).ok_or_else(invalid),
            _ => Err(invalid()),
        }
    }
}

/// A typed object.
pub(crate) struct TypedSeed;

impl<'de> DeserializeSeed<'de> for TypedSeed {
    type Value = Data;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        d.deserialize_map(TypedVisitor)
    }
}

struct TypedVisitor;

impl<'de> Visitor<'de> for TypedVisitor {
    type Value = Data;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a typed object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        Parts::read(&mut map, false)?.value()
    }
}

/// A message's top level: a typed object with a topic.
pub(crate) struct MessageSeed;

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = Message;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Message, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
                let mut parts = Parts::read(&mut map, true)?;
                let topic = parts.topic.take();
                Ok(Message {
                    topic,
                    data: parts.value()?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// The `data` of a typed object whose type is known.
struct ValueSeed(Ty);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Data;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        d.deserialize_any(ValueVisitor(self.0))
    }
}

struct ValueVisitor(Ty);

impl ValueVisitor {
    fn text<E: de::Error>(self, s: &str) -> Result<Data, E> {
        Ok(match self.0 {
            Ty::String => Data::String(ByteString::from(s)),
            Ty::EnumValue => Data::EnumValue(EnumValue::new(s)),
            Ty::Address => Data::Address(parse_address(s).ok_or_else(invalid)?),
            Ty::Subnet => Data::Subnet(parse_subnet(s).ok_or_else(invalid)?),
            Ty::Port => Data::Port(parse_port(s).ok_or_else(invalid)?),
            Ty::Timestamp => Data::Timestamp(parse_timestamp(s).ok_or_else(invalid)?),
            Ty::Timespan => Data::Timespan(parse_timespan(s).ok_or_else(invalid)?),
            Ty::Real => Data::Real(match s {
                "NaN" | "nan" => f64::NAN,
                "Infinity" | "inf" => f64::INFINITY,
                "-Infinity" | "-inf" => f64::NEG_INFINITY,
                _ => return Err(invalid()),
            }),
            _ => return Err(invalid()),
        })
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Data;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the data of a {}", self.0.name())
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Data, E> {
        match self.0 {
            Ty::Boolean => Ok(Data::Boolean(b)),
            _ => Err(invalid()),
        }
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Data, E> {
        match self.0 {
            Ty::Count => Ok(Data::Count(n)),
            Ty::Integer => i64::try_from(n).map(Data::Integer).map_err(|_| invalid()),
            Ty::Real => Ok(Data::Real(n as f64)),
            _ => Err(invalid()),
        }
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Data, E> {
        match self.0 {
            Ty::Count => u64::try_from(n).map(Data::Count).map_err(|_| invalid()),
            Ty::Integer => Ok(Data::Integer(n)),
            Ty::Real => Ok(Data::Real(n as f64)),
            _ => Err(invalid()),
        }
    }
    fn visit_f64<E: de::Error>(self, r: f64) -> Result<Data, E> {
        match self.0 {
            Ty::Real => Ok(Data::Real(r)),
            _ => Err(invalid()),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Data, E> {
        match self.0 {
            Ty::Real => Ok(Data::Real(f64::NAN)),
            _ => Err(invalid()),
        }
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Data, E> {
        self.text(s)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
        match self.0 {
            Ty::Vector => {
                let mut v = Vector::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(e) = seq.next_element_seed(TypedSeed)? {
                    v.push(e);
                }
                Ok(Data::Vector(v))
            }
            Ty::Set => {
                let mut s = Set::new();
                while let Some(e) = seq.next_element_seed(TypedSeed)? {
                    s.insert(e);
                }
                Ok(Data::Set(s))
            }
            Ty::Table => {
                let mut t = Table::new();
                while let Some((k, v)) = seq.next_element_seed(EntrySeed)? {
                    t.insert(k, v);
                }
                Ok(Data::Table(t))
            }
            _ => Err(invalid()),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        // Only none's data may be an object, and none's data is never read.
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Err(invalid())
    }
}

/// A table entry: `{"key":…,"value":…}`.
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = (Data, Data);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(Data, Data), D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = (Data, Data);
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(Data, Data), A::Error> {
                let (mut k, mut v) = (None, None);
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::K => k = Some(map.next_value_seed(TypedSeed)?),
                        Key::V => v = Some(map.next_value_seed(TypedSeed)?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                k.zip(v).ok_or_else(invalid)
            }
        }
        d.deserialize_map(V)
    }
}
