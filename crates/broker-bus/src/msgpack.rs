//! Broker's values as MessagePack and back, losslessly, for the bridge between a bus and a
//! Broker endpoint (`docs/bus.md`, "The bridge").
//!
//! | Broker | MessagePack |
//! |---|---|
//! | none, boolean, real | nil, bool, float 64 |
//! | count | uint (most compact); any uint or positive fixint reads as a count |
//! | integer | int 64 (`d3`), always; any signed int family or negative fixint reads as an integer |
//! | string | str if UTF-8, bin otherwise (both read as strings) |
//! | vector, table | array, map |
//! | address | ext 1: 16 bytes (IPv4 mapped into IPv6) |
//! | subnet | ext 2: 16 bytes of network, 1 byte of prefix length in IPv6 terms |
//! | port | ext 3: number (u16, big-endian), protocol (0 unknown, 1 tcp, 2 udp, 3 icmp) |
//! | timestamp | ext −1, MessagePack's own timestamp (96-bit form written; all three read) |
//! | timespan | ext 5: nanoseconds, i64 big-endian |
//! | enum value | ext 6: the name's bytes |
//! | set | ext 7: a MessagePack array of the elements |

use broker_data::{Address, Data, EnumValue, Port, Protocol, Subnet, Timespan, Timestamp};

/// Nesting deeper than this is refused.
pub const MAX_DEPTH: usize = 256;

/// Why bytes are not a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a Broker value in MessagePack: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

fn err<T>(m: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(m.into()))
}

/// Encodes a value.
pub fn encode(d: &Data, out: &mut Vec<u8>) {
    match d {
        Data::None => out.push(0xc0),
        Data::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Data::Count(n) => uint(*n, out),
        Data::Integer(i) => {
            out.push(0xd3);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Data::Real(r) => {
            out.push(0xcb);
            out.extend_from_slice(&r.to_bits().to_be_bytes());
        }
        Data::String(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(t) => str_(t.as_bytes(), out),
            Err(_) => bin(s.as_bytes(), out),
        },
        Data::Address(a) => ext(1, a.as_bytes(), out),
        Data::Subnet(s) => {
            let mut p = s.network().as_bytes().to_vec();
            p.push(s.raw_length());
            ext(2, &p, out);
        }
        Data::Port(p) => {
            let mut b = p.number().to_be_bytes().to_vec();
            b.push(p.protocol() as u8);
            ext(3, &b, out);
        }
        Data::Timestamp(t) => {
            let ns = t.as_nanos();
            let mut b = (ns.rem_euclid(1_000_000_000) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(&ns.div_euclid(1_000_000_000).to_be_bytes());
            ext(-1, &b, out);
        }
        Data::Timespan(t) => ext(5, &t.as_nanos().to_be_bytes(), out),
        Data::EnumValue(e) => ext(6, e.as_bytes(), out),
        Data::Set(s) => {
            let mut inner = Vec::new();
            array_header(s.len(), &mut inner);
            for x in s {
                encode(x, &mut inner);
            }
            ext(7, &inner, out);
        }
        Data::Table(t) => {
            let n = t.len();
            if n < 16 {
                out.push(0x80 | n as u8);
            } else if n <= u16::MAX as usize {
                out.push(0xde);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdf);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            for (k, v) in t {
                encode(k, out);
                encode(v, out);
            }
        }
        Data::Vector(v) => {
            array_header(v.len(), out);
            for x in v {
                encode(x, out);
            }
        }
    }
}

/// A value's MessagePack bytes.
pub fn to_vec(d: &Data) -> Vec<u8> {
    let mut out = Vec::new();
    encode(d, &mut out);
    out
}

fn uint(n: u64, out: &mut Vec<u8>) {
    if n < 128 {
        out.push(n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[0xcc, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(0xcd);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(0xce);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn str_(b: &[u8], out: &mut Vec<u8>) {
    let n = b.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= u8::MAX as usize {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= u16::MAX as usize {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

fn bin(b: &[u8], out: &mut Vec<u8>) {
    let n = b.len();
    if n <= u8::MAX as usize {
        out.extend_from_slice(&[0xc4, n as u8]);
    } else if n <= u16::MAX as usize {
        out.push(0xc5);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

fn array_header(n: usize, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn ext(kind: i8, payload: &[u8], out: &mut Vec<u8>) {
    match payload.len() {
        1 => out.push(0xd4),
        2 => out.push(0xd5),
        4 => out.push(0xd6),
        8 => out.push(0xd7),
        16 => out.push(0xd8),
        n if n <= u8::MAX as usize => out.extend_from_slice(&[0xc7, n as u8]),
        n if n <= u16::MAX as usize => {
            out.push(0xc8);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0xc9);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() - self.at < n {
            return err(format!(
                "{n} bytes promised, {} left",
                self.b.len() - self.at
            ));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| acc << 8 | *b as u64))
    }

    /// A count of elements, each at least `min` bytes: never more than the input can hold.
    fn count(&mut self, n: u64, min: usize) -> Result<usize, DecodeError> {
        let left = (self.b.len() - self.at) as u64;
        if n.saturating_mul(min as u64) > left {
            return err(format!("{n} elements declared, {left} bytes left"));
        }
        Ok(n as usize)
    }
}

/// Decodes exactly one value from `bytes` (trailing bytes are an error).
pub fn decode(bytes: &[u8]) -> Result<Data, DecodeError> {
    let mut r = Reader { b: bytes, at: 0 };
    let d = value(&mut r, 0)?;
    if r.at != bytes.len() {
        return err(format!("{} bytes after the value", bytes.len() - r.at));
    }
    Ok(d)
}

fn value(r: &mut Reader<'_>, depth: usize) -> Result<Data, DecodeError> {
    if depth > MAX_DEPTH {
        return err("nested too deeply");
    }
    let m = r.u8()?;
    Ok(match m {
        0x00..=0x7f => Data::Count(m as u64),
        0xe0..=0xff => Data::Integer(m as i8 as i64),
        0xc0 => Data::None,
        0xc2 => Data::Boolean(false),
        0xc3 => Data::Boolean(true),
        0xcc => Data::Count(r.be(1)?),
        0xcd => Data::Count(r.be(2)?),
        0xce => Data::Count(r.be(4)?),
        0xcf => Data::Count(r.be(8)?),
        0xd0 => Data::Integer(r.be(1)? as u8 as i8 as i64),
        0xd1 => Data::Integer(r.be(2)? as u16 as i16 as i64),
        0xd2 => Data::Integer(r.be(4)? as u32 as i32 as i64),
        0xd3 => Data::Integer(r.be(8)? as i64),
        0xca => Data::Real(f32::from_bits(r.be(4)? as u32) as f64),
        0xcb => Data::Real(f64::from_bits(r.be(8)?)),
        0xa0..=0xbf => string(r, (m & 0x1f) as usize)?,
        0xd9 | 0xc4 => {
            let n = r.be(1)? as usize;
            string(r, n)?
        }
        0xda | 0xc5 => {
            let n = r.be(2)? as usize;
            string(r, n)?
        }
        0xdb | 0xc6 => {
            let n = r.be(4)? as usize;
            string(r, n)?
        }
        0x90..=0x9f => array(r, (m & 0x0f) as u64, depth)?,
        0xdc => {
            let n = r.be(2)?;
            array(r, n, depth)?
        }
        0xdd => {
            let n = r.be(4)?;
            array(r, n, depth)?
        }
        0x80..=0x8f => map(r, (m & 0x0f) as u64, depth)?,
        0xde => {
            let n = r.be(2)?;
            map(r, n, depth)?
        }
        0xdf => {
            let n = r.be(4)?;
            map(r, n, depth)?
        }
        0xd4 => extension(r, 1, depth)?,
        0xd5 => extension(r, 2, depth)?,
        0xd6 => extension(r, 4, depth)?,
        0xd7 => extension(r, 8, depth)?,
        0xd8 => extension(r, 16, depth)?,
        0xc7 => {
            let n = r.be(1)? as usize;
            extension(r, n, depth)?
        }
        0xc8 => {
            let n = r.be(2)? as usize;
            extension(r, n, depth)?
        }
        0xc9 => {
            let n = r.be(4)? as usize;
            extension(r, n, depth)?
        }
        other => return err(format!("marker 0x{other:02x} is not used")),
    })
}

fn string(r: &mut Reader<'_>, n: usize) -> Result<Data, DecodeError> {
    Ok(Data::String(r.take(n)?.to_vec().into()))
}

fn array(r: &mut Reader<'_>, n: u64, depth: usize) -> Result<Data, DecodeError> {
    let n = r.count(n, 1)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(value(r, depth + 1)?);
    }
    Ok(Data::Vector(v))
}

fn map(r: &mut Reader<'_>, n: u64, depth: usize) -> Result<Data, DecodeError> {
    let n = r.count(n, 2)?;
    let mut t = std::collections::BTreeMap::new();
    for _ in 0..n {
        let k = value(r, depth + 1)?;
        let v = value(r, depth + 1)?;
        if t.insert(k, v).is_some() {
            return err("a map with a key twice");
        }
    }
    Ok(Data::Table(t))
}

fn extension(r: &mut Reader<'_>, n: usize, depth: usize) -> Result<Data, DecodeError> {
    let kind = r.u8()? as i8;
    let p = r.take(n)?;
    Ok(match (kind, n) {
        (1, 16) => Data::Address(Address::from_octets(p.try_into().expect("16 bytes"))),
        (2, 17) => {
            let network = Address::from_octets(p[..16].try_into().expect("16 bytes"));
            Data::Subnet(
                Subnet::from_raw(network, p[16])
                    .map_err(|_| DecodeError(format!("prefix length {} is too long", p[16])))?,
            )
        }
        (3, 3) => {
            let proto = Protocol::from_u8(p[2])
                .ok_or_else(|| DecodeError(format!("port protocol {} is unknown", p[2])))?;
            Data::Port(Port::new(u16::from_be_bytes([p[0], p[1]]), proto))
        }
        (-1, 4) => Data::Timestamp(Timestamp::from_nanos(
            u32::from_be_bytes(p.try_into().expect("4 bytes")) as i64 * 1_000_000_000,
        )),
        (-1, 8) => {
            let v = u64::from_be_bytes(p.try_into().expect("8 bytes"));
            let (nsec, sec) = ((v >> 34) as i64, (v & 0x3_ffff_ffff) as i64);
            Data::Timestamp(Timestamp::from_nanos(sec * 1_000_000_000 + nsec))
        }
        (-1, 12) => {
            let nsec = u32::from_be_bytes(p[..4].try_into().expect("4 bytes")) as i64;
            let sec = i64::from_be_bytes(p[4..].try_into().expect("8 bytes"));
            let ns = sec
                .checked_mul(1_000_000_000)
                .and_then(|s| s.checked_add(nsec))
                .ok_or_else(|| DecodeError("a timestamp beyond 64-bit nanoseconds".into()))?;
            Data::Timestamp(Timestamp::from_nanos(ns))
        }
        (5, 8) => Data::Timespan(Timespan::from_nanos(i64::from_be_bytes(
            p.try_into().expect("8 bytes"),
        ))),
        (6, _) => Data::EnumValue(EnumValue(p.to_vec().into())),
        (7, _) => {
            let Data::Vector(items) = decode_nested(p, depth)? else {
                return err("a set's payload is not an array");
            };
            Data::Set(items.into_iter().collect())
        }
        (k, n) => {
            return err(format!(
                "extension type {k} with {n} bytes is not a Broker value"
            ))
        }
    })
}

fn decode_nested(p: &[u8], depth: usize) -> Result<Data, DecodeError> {
    let mut r = Reader { b: p, at: 0 };
    let d = value(&mut r, depth + 1)?;
    if r.at != p.len() {
        return err("bytes after a set's elements");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_data::{set, table, vector};

    fn every_type() -> Vec<Data> {
        vec![
            Data::None,
            Data::Boolean(true),
            Data::Count(0),
            Data::Count(127),
            Data::Count(128),
            Data::Count(u64::MAX),
            Data::Integer(0),
            Data::Integer(5),
            Data::Integer(-1),
            Data::Integer(i64::MIN),
            Data::Real(1.5),
            Data::Real(f64::NEG_INFINITY),
            Data::String("héllo".into()),
            Data::String(b"\xff\xfe".to_vec().into()),
            Data::String("x".repeat(300).into()),
            "10.1.2.3".parse::<Data>().unwrap(),
            "2001:db8::1".parse::<Data>().unwrap(),
            "10.0.0.0/8".parse::<Data>().unwrap(),
            "80/tcp".parse::<Data>().unwrap(),
            "53/udp".parse::<Data>().unwrap(),
            Data::Timestamp(Timestamp::from_nanos(1_700_000_000_123_456_789)),
            Data::Timestamp(Timestamp::from_nanos(-1)),
            Data::Timespan(Timespan::from_nanos(-42)),
            Data::EnumValue(EnumValue::new("Conn::LOG")),
            set![1u64, 2u64, "three"],
            table! {"a" => 1u64, 2u64 => vector![Data::None]},
            vector![vector![set![]], table! {}],
            Data::Vector((0..20u64).map(Data::Count).collect()),
        ]
    }

    #[test]
    fn every_type_round_trips() {
        for d in every_type() {
            let b = to_vec(&d);
            assert_eq!(decode(&b).unwrap(), d, "{d:?} as {b:02x?}");
        }
    }

    #[test]
    fn the_documented_bytes() {
        assert_eq!(to_vec(&Data::Count(5)), [0x05]);
        assert_eq!(to_vec(&Data::Integer(5)), [0xd3, 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(
            to_vec(&"80/tcp".parse::<Data>().unwrap()),
            [0xc7, 3, 3, 0, 80, 1]
        );
        assert_eq!(
            to_vec(&Data::EnumValue(EnumValue::new("A"))),
            [0xd4, 6, b'A']
        );
        // What other MessagePack writers send: a positive int is a count, a negative one an
        // integer, float 32 a real, timestamp 32 and 64 timestamps.
        assert_eq!(decode(&[0xd0, 0xff]).unwrap(), Data::Integer(-1));
        assert_eq!(decode(&[0xca, 0x3f, 0xc0, 0, 0]).unwrap(), Data::Real(1.5));
        assert_eq!(
            decode(&[0xd6, 0xff, 0, 0, 0, 1]).unwrap(),
            Data::Timestamp(Timestamp::from_nanos(1_000_000_000))
        );
        let v: u64 = (7u64 << 34) | 2;
        let mut b = vec![0xd7, 0xff];
        b.extend_from_slice(&v.to_be_bytes());
        assert_eq!(
            decode(&b).unwrap(),
            Data::Timestamp(Timestamp::from_nanos(2_000_000_007))
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[0xc1],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
            &[0xdb, 0xff, 0xff, 0xff, 0xff],
            &[0xd4, 9, 0],
            &[0xc7, 2, 2, 0, 0],
            &[0x82, 1, 1, 1, 2],
            &[0x01, 0x02],
            &[
                0xc7, 17, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200,
            ],
        ] {
            assert!(decode(bad).is_err(), "{bad:02x?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n(0x91, 10_000).chain([0xc0]).collect();
        assert!(decode(&deep).is_err());
        // Every prefix and every byte flip of every value: no panic.
        for d in every_type() {
            let b = to_vec(&d);
            for i in 0..b.len() {
                let _ = decode(&b[..i]);
                let mut f = b.clone();
                f[i] ^= 0xff;
                let _ = decode(&f);
            }
        }
    }
}
