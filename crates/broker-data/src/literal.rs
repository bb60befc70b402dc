//! The lossless literal syntax: a printer ([`Literal`]) and a parser (`Data: FromStr`).
//!
//! The grammar is documented in the crate root. The printer always emits the canonical form;
//! the parser also accepts a few conveniences (`true`/`false`, timespans in any unit, `@`
//! timestamps, bracketed IPv6 addresses).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::{
    Address, ByteString, Data, DataError, EnumValue, ParseError, Port, Subnet, Timespan, Timestamp,
};

/// Deepest container nesting the parser accepts, so hostile input cannot exhaust the stack.
pub const MAX_PARSE_DEPTH: usize = 256;

/// Displays a [`Data`] in the lossless literal syntax. Made by [`Data::literal`].
#[derive(Clone, Copy)]
pub struct Literal<'a>(&'a Data);

impl Data {
    /// A view that displays this value in the lossless literal syntax, which `FromStr` reads
    /// back: `parse(literal(x)) == x` for every value.
    ///
    /// ```
    /// use broker_data::{Data, Timespan, Timestamp};
    /// assert_eq!(Data::from(42u64).literal().to_string(), "42");
    /// assert_eq!(Data::from(42i64).literal().to_string(), "+42");
    /// assert_eq!(Data::from(Timespan::from_nanos(5_000_000_000)).literal().to_string(), "5s");
    /// assert_eq!(Data::from(Timestamp::from_nanos(0)).literal().to_string(), "1970-01-01T00:00:00Z");
    /// assert_eq!(Data::from("1.2.3.4").literal().to_string(), r#""1.2.3.4""#);
    /// ```
    pub fn literal(&self) -> Literal<'_> {
        Literal(self)
    }

    /// Parses the literal syntax; the same as `s.parse::<Data>()`.
    pub fn parse_literal(s: &str) -> Result<Data, ParseError> {
        Parser::new(s).parse_all()
    }
}

impl fmt::Display for Literal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_literal(f, self.0)
    }
}

fn write_literal(f: &mut fmt::Formatter<'_>, d: &Data) -> fmt::Result {
    match d {
        Data::None => f.write_str("nil"),
        Data::Boolean(b) => f.write_str(if *b { "T" } else { "F" }),
        Data::Count(n) => write!(f, "{n}"),
        Data::Integer(n) => write!(f, "{n:+}"),
        Data::Real(x) => write_real(f, *x),
        Data::String(s) => write_quoted(f, s.as_bytes()),
        Data::Address(a) => write!(f, "{a}"),
        Data::Subnet(s) => write!(f, "{s}"),
        Data::Port(p) => write!(f, "{p}"),
        Data::Timestamp(t) => write_timestamp(f, *t),
        Data::Timespan(t) => write_timespan(f, *t),
        Data::EnumValue(e) => write_enum(f, e),
        Data::Vector(v) => {
            f.write_char('(')?;
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_literal(f, x)?;
            }
            f.write_char(')')
        }
        Data::Set(s) => {
            f.write_char('{')?;
            for (i, x) in s.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_literal(f, x)?;
            }
            f.write_char('}')
        }
        Data::Table(t) if t.is_empty() => f.write_str("{->}"),
        Data::Table(t) => {
            f.write_char('{')?;
            for (i, (k, v)) in t.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_literal(f, k)?;
                f.write_str(" -> ")?;
                write_literal(f, v)?;
            }
            f.write_char('}')
        }
    }
}

fn write_real(f: &mut impl Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x < 0.0 { "-inf" } else { "inf" })
    } else {
        // Rust's `Debug` for floats is the shortest text that reads back to the same bits, and
        // always has a `.` or an exponent, which tells a real from a count.
        write!(f, "{x:?}")
    }
}

/// Writes `bytes` as a double-quoted string with escapes, losslessly.
pub(crate) fn write_quoted(f: &mut impl Write, bytes: &[u8]) -> fmt::Result {
    f.write_char('"')?;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        write!(f, "\\x{b:02x}")?;
                    }
                }
                c => f.write_char(c)?,
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    f.write_char('"')
}

const KEYWORDS: &[&str] = &["nil", "T", "F", "true", "false", "inf", "nan", "enum"];

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split("::").all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

pub(crate) fn write_enum(f: &mut impl Write, e: &EnumValue) -> fmt::Result {
    match e.name() {
        Some(name)
            if is_identifier(name)
                && !KEYWORDS.contains(&name)
                && name.parse::<Ipv6Addr>().is_err() =>
        {
            f.write_str(name)
        }
        _ => {
            f.write_str("enum(")?;
            write_quoted(f, e.as_bytes())?;
            f.write_char(')')
        }
    }
}

const UNITS: &[(&str, i64)] = &[
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("min", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Writes a timespan in the largest unit that divides it exactly (`0s` for zero).
pub(crate) fn write_timespan(f: &mut impl Write, t: Timespan) -> fmt::Result {
    let ns = t.as_nanos();
    if ns == 0 {
        return f.write_str("0s");
    }
    for (unit, scale) in UNITS {
        if ns % scale == 0 {
            return write!(f, "{}{unit}", ns / scale);
        }
    }
    unreachable!("every timespan is a whole number of nanoseconds")
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Writes a timestamp as an ISO-8601 UTC date and time with up to nine fractional digits.
pub(crate) fn write_timestamp(f: &mut impl Write, t: Timestamp) -> fmt::Result {
    let ns = t.as_nanos();
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    write!(
        f,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )?;
    if frac != 0 {
        let digits = format!("{frac:09}");
        write!(f, ".{}", digits.trim_end_matches('0'))?;
    }
    f.write_char('Z')
}

impl std::str::FromStr for Data {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Data, DataError> {
        Ok(Data::parse_literal(s)?)
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'+' | b'-' | b'?')
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]? digits ('.' digits*)? ([eE] [+-]? digits)?` with a `.` or an exponent.
fn is_real_word(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => all_digits(int) && (frac.is_empty() || all_digits(frac)),
        None => all_digits(mantissa),
    };
    let exp_ok = match exp {
        Some(e) => all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)),
        None => mantissa.contains('.'),
    };
    mantissa_ok && exp_ok
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s,
            pos: 0,
            depth: 0,
        }
    }

    fn err(&self, at: usize, expected: impl Into<String>) -> ParseError {
        ParseError::new(self.s, at, expected)
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b) if b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.s[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseError> {
        self.skip_ws();
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.err(self.pos, format!("`{token}`")))
        }
    }

    fn parse_all(mut self) -> Result<Data, ParseError> {
        let v = self.value()?;
        self.skip_ws();
        if self.pos != self.s.len() {
            return Err(self.err(self.pos, "end of input"));
        }
        Ok(v)
    }

    fn value(&mut self) -> Result<Data, ParseError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err(self.err(start, "a value")),
            Some(b'(') => self.nested(|p| p.vector()),
            Some(b'{') => self.nested(|p| p.set_or_table()),
            Some(b'"') => Ok(Data::String(self.string()?)),
            Some(b'[') => self.bracketed_address(),
            Some(b'@') => {
                self.pos += 1;
                let word = self.word();
                let span = parse_timespan(word)
                    .ok_or_else(|| self.err(start + 1, "a timespan after `@`, like @5s"))?;
                Ok(Data::Timestamp(Timestamp::from_nanos(span.as_nanos())))
            }
            Some(b) if is_word_byte(b) => {
                let word = self.word();
                if word == "enum" && self.peek() == Some(b'(') {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err(self.pos, "a quoted enum name"));
                    }
                    let name = self.string()?;
                    self.expect(")")?;
                    return Ok(Data::EnumValue(EnumValue(name)));
                }
                self.classify(word, start)
            }
            Some(_) => Err(self.err(start, "a value")),
        }
    }

    fn nested(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<Data, ParseError>,
    ) -> Result<Data, ParseError> {
        if self.depth >= MAX_PARSE_DEPTH {
            return Err(self.err(self.pos, format!("nesting at most {MAX_PARSE_DEPTH} deep")));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// A maximal run of word bytes, stopping before an arrow `->`.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        let bytes = self.s.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if !is_word_byte(b) || (b == b'-' && bytes.get(self.pos + 1) == Some(&b'>')) {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn classify(&self, w: &str, at: usize) -> Result<Data, ParseError> {
        let d = match w {
            "nil" => Data::None,
            "T" | "true" => Data::Boolean(true),
            "F" | "false" => Data::Boolean(false),
            "inf" | "+inf" => Data::Real(f64::INFINITY),
            "-inf" => Data::Real(f64::NEG_INFINITY),
            "nan" => Data::Real(f64::NAN),
            _ => return self.classify_other(w, at),
        };
        Ok(d)
    }

    fn classify_other(&self, w: &str, at: usize) -> Result<Data, ParseError> {
        // An empty word: the value starts with something that ends a word at once (`->`).
        let Some(&first) = w.as_bytes().first() else {
            return Err(self.err(at, "a value"));
        };
        if all_digits(w) {
            return w
                .parse::<u64>()
                .map(Data::Count)
                .map_err(|_| self.err(at, "a count of at most 18446744073709551615"));
        }
        if (first == b'+' || first == b'-') && all_digits(&w[1..]) {
            return w
                .parse::<i64>()
                .map(Data::Integer)
                .map_err(|_| self.err(at, "an integer within the 64-bit range"));
        }
        if is_real_word(w) {
            return w
                .parse::<f64>()
                .map(Data::Real)
                .map_err(|_| self.err(at, "a real"));
        }
        if let Some((num, proto)) = w.split_once('/') {
            if all_digits(num) && !proto.is_empty() && !proto.bytes().all(|b| b.is_ascii_digit()) {
                return w.parse::<Port>().map(Data::Port).map_err(|_| {
                    self.err(
                        at,
                        "a port like 80/tcp (number at most 65535, protocol tcp, udp, icmp or ?)",
                    )
                });
            }
            if let Ok(addr) = parse_address(num) {
                return self.subnet(addr, proto, at);
            }
        }
        if let Ok(addr) = parse_address(w) {
            return Ok(Data::Address(addr));
        }
        if w.len() >= 10 && w.as_bytes()[4] == b'-' && first.is_ascii_digit() {
            return parse_datetime(w)
                .map(Data::Timestamp)
                .ok_or_else(|| self.err(at, "a date and time like 2024-01-31T12:00:00.5Z"));
        }
        if first.is_ascii_digit() || first == b'+' || first == b'-' {
            return parse_timespan(w).map(Data::Timespan).ok_or_else(|| {
                self.err(
                    at,
                    "a number, timespan (like 5s), port, address, subnet or date",
                )
            });
        }
        if is_identifier(w) {
            return Ok(Data::EnumValue(EnumValue::new(w)));
        }
        Err(self.err(at, "a value"))
    }

    fn subnet(&self, addr: Address, len: &str, at: usize) -> Result<Data, ParseError> {
        let len: u8 = len
            .parse()
            .ok()
            .filter(|_| all_digits(len))
            .ok_or_else(|| self.err(at, "a subnet prefix length"))?;
        Subnet::new(addr, len)
            .map(Data::Subnet)
            .map_err(|e| self.err(at, format!("a valid subnet ({e})")))
    }

    fn bracketed_address(&mut self) -> Result<Data, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let inner = self.word();
        if !self.eat("]") {
            return Err(self.err(self.pos, "`]` after an address"));
        }
        let addr = parse_address(inner).map_err(|_| self.err(start + 1, "an IP address"))?;
        if self.eat("/") {
            let len = self.word();
            return self.subnet(addr, len, start);
        }
        Ok(Data::Address(addr))
    }

    fn string(&mut self) -> Result<ByteString, ParseError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let rest = &self.s[self.pos..];
            let Some(i) = rest.find(['"', '\\']) else {
                return Err(self.err(start, "a closing `\"` for this string"));
            };
            out.extend_from_slice(&rest.as_bytes()[..i]);
            self.pos += i;
            if self.eat("\"") {
                return Ok(ByteString::from(out));
            }
            let esc = self.pos;
            self.pos += 1; // backslash
            match self.peek() {
                Some(b'"') => out.push(b'"'),
                Some(b'\\') => out.push(b'\\'),
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(b't') => out.push(b'\t'),
                Some(b'0') => out.push(0),
                Some(b'x') => {
                    let hex = self.s.get(self.pos + 1..self.pos + 3);
                    let b = hex
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| self.err(esc, "two hex digits after `\\x`"))?;
                    out.push(b);
                    self.pos += 2;
                }
                Some(b'u') => {
                    let rest = &self.s[self.pos + 1..];
                    let c = rest
                        .strip_prefix('{')
                        .and_then(|r| r.split_once('}'))
                        .and_then(|(hex, _)| u32::from_str_radix(hex, 16).ok())
                        .and_then(char::from_u32)
                        .ok_or_else(|| self.err(esc, "a code point like \\u{20ac}"))?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    self.pos += rest.find('}').unwrap_or(0) + 1;
                }
                _ => {
                    return Err(self.err(esc, "an escape: \\\" \\\\ \\n \\r \\t \\0 \\xHH \\u{H..}"))
                }
            }
            self.pos += 1;
        }
    }

    fn vector(&mut self) -> Result<Data, ParseError> {
        self.pos += 1; // (
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat(")") {
            return Ok(Data::Vector(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            if self.eat(")") {
                return Ok(Data::Vector(items));
            }
            if !self.eat(",") {
                return Err(self.err(self.pos, "`,` or `)`"));
            }
        }
    }

    fn set_or_table(&mut self) -> Result<Data, ParseError> {
        self.pos += 1; // {
        self.skip_ws();
        if self.eat("}") {
            return Ok(Data::Set(BTreeSet::new()));
        }
        if self.eat("->") {
            self.expect("}")?;
            return Ok(Data::Table(BTreeMap::new()));
        }
        let mut key_pos = self.pos;
        let first = self.value()?;
        self.skip_ws();
        if self.eat("->") {
            let mut table = BTreeMap::new();
            let mut key = first;
            loop {
                let value = self.value()?;
                if table.insert(key, value).is_some() {
                    return Err(self.err(key_pos, "a table without duplicate keys"));
                }
                self.skip_ws();
                if self.eat("}") {
                    return Ok(Data::Table(table));
                }
                if !self.eat(",") {
                    return Err(self.err(self.pos, "`,` or `}`"));
                }
                self.skip_ws();
                key_pos = self.pos;
                key = self.value()?;
                self.expect("->")?;
            }
        }
        let mut set = BTreeSet::new();
        set.insert(first);
        loop {
            if self.eat("}") {
                return Ok(Data::Set(set));
            }
            if !self.eat(",") {
                return Err(self.err(self.pos, "`,` or `}`"));
            }
            set.insert(self.value()?);
            self.skip_ws();
        }
    }
}

fn parse_address(s: &str) -> Result<Address, ()> {
    if s.contains(':') {
        s.parse::<Ipv6Addr>().map(Address::from).map_err(|_| ())
    } else if s.bytes().filter(|&b| b == b'.').count() == 3 {
        s.parse::<Ipv4Addr>().map(Address::from).map_err(|_| ())
    } else {
        Err(())
    }
}

/// `[+-]? digits ('.' digits)? unit`, exact to the nanosecond.
fn parse_timespan(w: &str) -> Option<Timespan> {
    let (negative, body) = match w.as_bytes().first()? {
        b'-' => (true, &w[1..]),
        b'+' => (false, &w[1..]),
        _ => (false, w),
    };
    let split = body.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = body.split_at(split);
    let scale = i128::from(UNITS.iter().find(|(u, _)| *u == unit)?.1);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if !all_digits(int)
        || (number.contains('.') && !all_digits(frac))
        || int.len() > 20
        || frac.len() > 20
    {
        return None;
    }
    let int: i128 = int.parse().ok()?;
    let mut ns = int.checked_mul(scale)?;
    if !frac.is_empty() {
        let denom = 10i128.checked_pow(frac.len() as u32)?;
        let num = frac.parse::<i128>().ok()?.checked_mul(scale)?;
        if num % denom != 0 {
            return None; // finer than a nanosecond
        }
        ns = ns.checked_add(num / denom)?;
    }
    let ns = if negative { -ns } else { ns };
    i64::try_from(ns).ok().map(Timespan::from_nanos)
}

/// `YYYY-MM-DDThh:mm:ss(.fraction)?Z?`, UTC.
fn parse_datetime(w: &str) -> Option<Timestamp> {
    let w = w.strip_suffix('Z').unwrap_or(w);
    let (date, time) = w.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let (y, m, d) = (date_parts.next()?, date_parts.next()?, date_parts.next()?);
    if y.len() != 4
        || m.len() != 2
        || d.len() != 2
        || !all_digits(y)
        || !all_digits(m)
        || !all_digits(d)
    {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':');
    let (hh, mm, ss) = (t.next()?, t.next()?, t.next()?);
    if [hh, mm, ss].iter().any(|p| p.len() != 2 || !all_digits(p)) {
        return None;
    }
    let (hh, mm, ss): (i64, i64, i64) = (hh.parse().ok()?, mm.parse().ok()?, ss.parse().ok()?);
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    if time.contains('.') && (frac.is_empty() || frac.len() > 9 || !all_digits(frac)) {
        return None;
    }
    let frac_ns: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
    let ns = i128::from(secs) * 1_000_000_000 + i128::from(frac_ns);
    i64::try_from(ns).ok().map(Timestamp::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [
            -106_751, -719_468, -1, 0, 1, 59, 365, 10_957, 19_000, 106_750,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn real_words() {
        for ok in ["1.0", "-1.5", "+2.", "1e5", "1E-5", "3.5e+10"] {
            assert!(is_real_word(ok), "{ok}");
        }
        for bad in ["1", "-1", "e5", "1.2.3", "1e", ".5", "1.0x"] {
            assert!(!is_real_word(bad), "{bad}");
        }
    }
}
