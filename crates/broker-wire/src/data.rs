//! The binary data format "bin v1": one tag byte, then the value.

use std::collections::{BTreeMap, BTreeSet};

use broker_data::{
    Address, ByteString, Data, DataType, EnumValue, Port, Protocol, Subnet, Timespan, Timestamp,
};
use bytes::{BufMut, Bytes};

use crate::reader::{put_varint, varint_len, Reader};
use crate::{Limits, WireError};

/// Appends the bin v1 encoding of `value` to `out`.
///
/// Sets and tables are written in their (sorted) order, as Broker writes them.
///
/// ```
/// use broker_data::Data;
/// let mut buf = Vec::new();
/// broker_wire::encode_data(&Data::Count(42), &mut buf);
/// assert_eq!(buf, [0x02, 0, 0, 0, 0, 0, 0, 0, 42]);
/// ```
pub fn encode_data(value: &Data, out: &mut impl BufMut) {
    out.put_u8(value.data_type() as u8);
    match value {
        Data::None => {}
        Data::Boolean(b) => out.put_u8(u8::from(*b)),
        Data::Count(n) => out.put_u64(*n),
        Data::Integer(n) => out.put_i64(*n),
        Data::Real(x) => out.put_u64(x.to_bits()),
        Data::String(s) => put_bytes(out, s.as_bytes()),
        Data::Address(a) => out.put_slice(a.as_bytes()),
        Data::Subnet(s) => {
            out.put_slice(s.network().as_bytes());
            out.put_u8(s.raw_length());
        }
        Data::Port(p) => {
            out.put_u16(p.number());
            out.put_u8(p.protocol() as u8);
        }
        Data::Timestamp(t) => out.put_i64(t.as_nanos()),
        Data::Timespan(t) => out.put_i64(t.as_nanos()),
        Data::EnumValue(e) => put_bytes(out, e.as_bytes()),
        Data::Set(s) => {
            put_varint(out, s.len() as u64);
            s.iter().for_each(|x| encode_data(x, out));
        }
        Data::Table(t) => {
            put_varint(out, t.len() as u64);
            for (k, v) in t {
                encode_data(k, out);
                encode_data(v, out);
            }
        }
        Data::Vector(v) => {
            put_varint(out, v.len() as u64);
            v.iter().for_each(|x| encode_data(x, out));
        }
    }
}

pub(crate) fn put_bytes(out: &mut impl BufMut, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.put_slice(b);
}

/// The exact number of bytes [`encode_data`] writes for `value`.
pub fn encoded_data_len(value: &Data) -> usize {
    1 + match value {
        Data::None => 0,
        Data::Boolean(_) => 1,
        Data::Count(_) | Data::Integer(_) | Data::Real(_) => 8,
        Data::Timestamp(_) | Data::Timespan(_) => 8,
        Data::String(s) => varint_len(s.len() as u64) + s.len(),
        Data::EnumValue(e) => varint_len(e.as_bytes().len() as u64) + e.as_bytes().len(),
        Data::Address(_) => 16,
        Data::Subnet(_) => 17,
        Data::Port(_) => 3,
        Data::Set(s) => varint_len(s.len() as u64) + s.iter().map(encoded_data_len).sum::<usize>(),
        Data::Table(t) => {
            varint_len(t.len() as u64)
                + t.iter()
                    .map(|(k, v)| encoded_data_len(k) + encoded_data_len(v))
                    .sum::<usize>()
        }
        Data::Vector(v) => {
            varint_len(v.len() as u64) + v.iter().map(encoded_data_len).sum::<usize>()
        }
    }
}

/// Decodes exactly one value from `input`; trailing bytes are an error. Strings are copied.
///
/// ```
/// use broker_data::Data;
/// let d = broker_wire::decode_data(&[0x05, 0x02, b'h', b'i'], &Default::default()).unwrap();
/// assert_eq!(d, Data::from("hi"));
/// assert!(broker_wire::decode_data(&[0x05, 0x09, b'h'], &Default::default()).is_err());
/// ```
pub fn decode_data(input: &[u8], limits: &Limits) -> Result<Data, WireError> {
    let mut r = Reader::new(input);
    let d = read_data(&mut r, limits, 0)?;
    r.finish()?;
    Ok(d)
}

/// Decodes exactly one value from `input`, with strings sharing `input`'s buffer.
pub fn decode_data_shared(input: &Bytes, limits: &Limits) -> Result<Data, WireError> {
    let mut r = Reader::shared(input);
    let d = read_data(&mut r, limits, 0)?;
    r.finish()?;
    Ok(d)
}

pub(crate) fn read_data(
    r: &mut Reader<'_>,
    limits: &Limits,
    depth: usize,
) -> Result<Data, WireError> {
    let tag = r.u8("data tag")?;
    let ty = DataType::from_tag(tag).ok_or(WireError::UnknownDataTag(tag))?;
    Ok(match ty {
        DataType::None => Data::None,
        DataType::Boolean => Data::Boolean(r.u8("boolean")? != 0),
        DataType::Count => Data::Count(r.u64("count")?),
        DataType::Integer => Data::Integer(r.u64("integer")? as i64),
        DataType::Real => Data::Real(f64::from_bits(r.u64("real")?)),
        DataType::String => Data::String(read_string(r, "string")?),
        DataType::Address => Data::Address(Address::from_octets(r.array("address")?)),
        DataType::Subnet => {
            let network = Address::from_octets(r.array("subnet")?);
            let len = r.u8("subnet length")?;
            Data::Subnet(
                Subnet::from_raw(network, len).map_err(|_| WireError::InvalidPrefixLength(len))?,
            )
        }
        DataType::Port => {
            let number = r.u16("port")?;
            let proto = r.u8("port protocol")?;
            let protocol = Protocol::from_u8(proto).ok_or(WireError::UnknownProtocol(proto))?;
            Data::Port(Port::new(number, protocol))
        }
        DataType::Timestamp => Data::Timestamp(Timestamp::from_nanos(r.u64("timestamp")? as i64)),
        DataType::Timespan => Data::Timespan(Timespan::from_nanos(r.u64("timespan")? as i64)),
        DataType::EnumValue => Data::EnumValue(EnumValue(read_string(r, "enum value")?)),
        DataType::Set | DataType::Table | DataType::Vector => {
            if depth >= limits.max_depth {
                return Err(WireError::TooDeep {
                    max: limits.max_depth,
                });
            }
            read_container(r, ty, limits, depth + 1)?
        }
    })
}

pub(crate) fn read_string(
    r: &mut Reader<'_>,
    context: &'static str,
) -> Result<ByteString, WireError> {
    let n = r.length(context, 1)?;
    read_bytes(r, n, context)
}

/// `n` bytes as a string: copied inline when short, else sharing the input buffer.
pub(crate) fn read_bytes(
    r: &mut Reader<'_>,
    n: usize,
    context: &'static str,
) -> Result<ByteString, WireError> {
    if n <= ByteString::INLINE_CAPACITY {
        // Copying a short string inline is cheaper than sharing the buffer's reference count.
        r.take(n, context).map(ByteString::copy_from_slice)
    } else {
        r.bytes(n, context).map(ByteString::from_bytes)
    }
}

fn read_container(
    r: &mut Reader<'_>,
    ty: DataType,
    limits: &Limits,
    depth: usize,
) -> Result<Data, WireError> {
    match ty {
        DataType::Vector => {
            // Every element takes at least its tag byte, which bounds the allocation.
            let n = r.length("vector", 1)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_data(r, limits, depth)?);
            }
            Ok(Data::Vector(v))
        }
        DataType::Set => {
            let n = r.length("set", 1)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_data(r, limits, depth)?);
            }
            sort_unique(&mut items, |a, b| a.cmp(b), "element", "set")?;
            Ok(Data::Set(BTreeSet::from_iter(items)))
        }
        DataType::Table => {
            let n = r.length("table", 2)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let k = read_data(r, limits, depth)?;
                let v = read_data(r, limits, depth)?;
                items.push((k, v));
            }
            sort_unique(&mut items, |a, b| a.0.cmp(&b.0), "key", "table")?;
            Ok(Data::Table(BTreeMap::from_iter(items)))
        }
        _ => unreachable!("read_container is only called for containers"),
    }
}

/// Accepts elements in any order (sorting them) but rejects duplicates, as Broker does.
fn sort_unique<T>(
    items: &mut [T],
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
    what: &'static str,
    container: &'static str,
) -> Result<(), WireError> {
    let sorted = items.windows(2).all(|w| cmp(&w[0], &w[1]).is_lt());
    if !sorted {
        items.sort_by(&cmp);
        if items.windows(2).any(|w| cmp(&w[0], &w[1]).is_eq()) {
            return Err(WireError::Duplicate(what, container));
        }
    }
    Ok(())
}
