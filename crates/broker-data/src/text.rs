//! Broker's text format (`Display`), byte for byte as `broker::to_string` prints it.

use std::fmt::{self, Write};

use crate::Data;

/// Writes a real as C's `printf("%f")` does (glibc): six decimals, `inf`, `-inf`, `nan`, `-nan`.
pub(crate) fn write_real_printf(f: &mut impl Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str(if x.is_sign_negative() { "-nan" } else { "nan" })
    } else if x.is_infinite() {
        f.write_str(if x < 0.0 { "-inf" } else { "inf" })
    } else {
        write!(f, "{x:.6}")
    }
}

fn write_seq<'a, I>(f: &mut fmt::Formatter<'_>, open: char, close: char, items: I) -> fmt::Result
where
    I: Iterator<Item = &'a Data>,
{
    f.write_char(open)?;
    for (i, x) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        fmt::Display::fmt(x, f)?;
    }
    f.write_char(close)
}

/// Broker's text format: `nil`, `T`/`F`, `42`, `4.200000`, strings and enum names raw,
/// `(1, 2)`, `{1, 2}`, `{a -> 1}`, `80/tcp`, `10.0.0.0/8`, `42ns`.
impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::None => f.write_str("nil"),
            Data::Boolean(b) => f.write_str(if *b { "T" } else { "F" }),
            Data::Count(n) => write!(f, "{n}"),
            Data::Integer(n) => write!(f, "{n}"),
            Data::Real(x) => write_real_printf(f, *x),
            Data::String(s) => fmt::Display::fmt(s, f),
            Data::Address(a) => fmt::Display::fmt(a, f),
            Data::Subnet(s) => fmt::Display::fmt(s, f),
            Data::Port(p) => fmt::Display::fmt(p, f),
            Data::Timestamp(t) => fmt::Display::fmt(t, f),
            Data::Timespan(t) => fmt::Display::fmt(t, f),
            Data::EnumValue(e) => fmt::Display::fmt(e, f),
            Data::Set(s) => write_seq(f, '{', '}', s.iter()),
            Data::Vector(v) => write_seq(f, '(', ')', v.iter()),
            Data::Table(t) => {
                f.write_char('{')?;
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} -> {v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

impl Data {
    /// Broker's text format as bytes, exactly as C++ Broker prints a value: like `Display`,
    /// but strings and enum names are written as their raw bytes, whatever they hold
    /// (`Display`, which must produce text, replaces bytes that are not UTF-8 with U+FFFD).
    ///
    /// ```
    /// use broker_data::{ByteString, Data};
    /// let v = Data::from(vec![Data::String(ByteString::from(&b"a\xffb"[..])), Data::Count(1)]);
    /// assert_eq!(v.to_broker_text(), b"(a\xffb, 1)");
    /// assert_eq!(v.to_string(), "(a\u{fffd}b, 1)");
    /// ```
    pub fn to_broker_text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_broker_text(&mut out);
        out
    }

    fn write_broker_text(&self, out: &mut Vec<u8>) {
        fn seq<'a>(out: &mut Vec<u8>, open: u8, close: u8, items: impl Iterator<Item = &'a Data>) {
            out.push(open);
            for (i, x) in items.enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                x.write_broker_text(out);
            }
            out.push(close);
        }
        match self {
            Data::String(s) => out.extend_from_slice(s.as_bytes()),
            Data::EnumValue(e) => out.extend_from_slice(e.as_bytes()),
            Data::Set(s) => seq(out, b'{', b'}', s.iter()),
            Data::Vector(v) => seq(out, b'(', b')', v.iter()),
            Data::Table(t) => {
                out.push(b'{');
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    k.write_broker_text(out);
                    out.extend_from_slice(b" -> ");
                    v.write_broker_text(out);
                }
                out.push(b'}');
            }
            scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
        }
    }
}
