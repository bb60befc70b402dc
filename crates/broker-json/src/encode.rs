//! Data values and server messages to JSON text: compact, Broker's key order, Broker's bytes
//! wherever Broker's bytes are valid JSON.

use std::fmt::Write;

use broker_data::{Address, Data, Subnet, Timespan, Timestamp};

use crate::text::{civil_from_days, NANOS_PER_DAY};

/// Appends `value` as a typed object, `{"@data-type":"…","data":…}`.
///
/// ```
/// use broker_data::{vector, Data};
/// let mut out = String::new();
/// broker_json::write_data(&mut out, &vector![1u64, "a"]);
/// assert_eq!(out, r#"{"@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"string","data":"a"}]}"#);
/// ```
pub fn write_data(out: &mut String, value: &Data) {
    out.push_str("{\"@data-type\":\"");
    out.push_str(type_name(value));
    out.push_str("\",\"data\":");
    write_value(out, value);
    out.push('}');
}

/// The `@data-type` of a value (Broker's JSON names, e.g. `enum-value`).
pub fn type_name(value: &Data) -> &'static str {
    match value {
        Data::None => "none",
        Data::Boolean(_) => "boolean",
        Data::Count(_) => "count",
        Data::Integer(_) => "integer",
        Data::Real(_) => "real",
        Data::String(_) => "string",
        Data::Address(_) => "address",
        Data::Subnet(_) => "subnet",
        Data::Port(_) => "port",
        Data::Timestamp(_) => "timestamp",
        Data::Timespan(_) => "timespan",
        Data::EnumValue(_) => "enum-value",
        Data::Set(_) => "set",
        Data::Table(_) => "table",
        Data::Vector(_) => "vector",
    }
}

/// Appends the `data` part of a typed object.
fn write_value(out: &mut String, value: &Data) {
    match value {
        Data::None => out.push_str("{}"),
        Data::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Data::Count(n) => {
            let _ = write!(out, "{n}");
        }
        Data::Integer(n) => {
            let _ = write!(out, "{n}");
        }
        Data::Real(r) => write_real(out, *r),
        Data::String(s) => write_string(out, &s.to_string_lossy()),
        Data::EnumValue(e) => write_string(out, &e.0.to_string_lossy()),
        Data::Address(a) => {
            out.push('"');
            write_address(out, a);
            out.push('"');
        }
        Data::Subnet(s) => write_subnet(out, s),
        Data::Port(p) => {
            let _ = write!(out, "\"{}/{}\"", p.number(), p.protocol().as_str());
        }
        Data::Timestamp(t) => write_timestamp(out, *t),
        Data::Timespan(t) => write_timespan(out, *t),
        Data::Vector(v) => write_array(out, v.iter(), write_data),
        Data::Set(s) => write_array(out, s.iter(), write_data),
        Data::Table(t) => write_array(out, t.iter(), |out, (k, v)| {
            out.push_str("{\"key\":");
            write_data(out, k);
            out.push_str(",\"value\":");
            write_data(out, v);
            out.push('}');
        }),
    }
}

fn write_array<T>(out: &mut String, items: impl Iterator<Item = T>, each: impl Fn(&mut String, T)) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push(']');
}

/// A finite real in the shortest text that reads back as the same double, always with a
/// fraction or an exponent (`5.0`, `1e-7`, `1e20`), so that readers take it for a double, as
/// Broker's decoder requires. Broker prints `%f` instead (six decimals: `1e-7` becomes
/// `0.000000`), which loses precision. Non-finite reals, which Broker prints as the invalid
/// JSON `nan`/`inf`, are the strings `"NaN"`, `"Infinity"` and `"-Infinity"`: valid JSON that
/// Python's `float()` and JavaScript's `Number()` read as the same value, and that
/// [`decode`](crate::decode) reads back (it also takes `null` as NaN).
fn write_real(out: &mut String, r: f64) {
    if r.is_nan() {
        out.push_str("\"NaN\"");
    } else if r.is_infinite() {
        out.push_str(if r > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        // `{:?}` is the shortest round-trip form and keeps a `.0` on integral values.
        let _ = write!(out, "{r:?}");
    }
}

/// A JSON string with every character JSON requires escaped (`\u00XX` for control
/// characters; Broker writes `\v` and leaves other control characters raw, both invalid).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// IPv4 (also IPv4-mapped IPv6) as a dotted quad, IPv6 in its compressed lowercase form.
fn write_address(out: &mut String, a: &Address) {
    let _ = write!(out, "{}", a.to_ip());
}

fn write_subnet(out: &mut String, s: &Subnet) {
    out.push('"');
    write_address(out, &s.network());
    let _ = write!(out, "/{}\"", s.length());
}

/// Broker's timespan form: the count in the largest unit of `s`, `ms`, `us`, `ns` that holds
/// it exactly, `"0s"` for zero, sign kept.
fn write_timespan(out: &mut String, t: Timespan) {
    let ns = t.as_nanos();
    let (n, unit) = if ns == 0 {
        (0, "s")
    } else if ns % 1_000_000_000 == 0 {
        (ns / 1_000_000_000, "s")
    } else if ns % 1_000_000 == 0 {
        (ns / 1_000_000, "ms")
    } else if ns % 1_000 == 0 {
        (ns / 1_000, "us")
    } else {
        (ns, "ns")
    };
    let _ = write!(out, "\"{n}{unit}\"");
}

/// `YYYY-MM-DDTHH:MM:SS.fff` in UTC without a zone, as Broker writes it — with 3 decimals when
/// the time is a whole number of milliseconds (Broker's bytes), else 6 or 9 so that nothing is
/// lost (Broker truncates to milliseconds, and gets times before 1970 wrong).
fn write_timestamp(out: &mut String, t: Timestamp) {
    let ns = t.as_nanos();
    let days = ns.div_euclid(NANOS_PER_DAY);
    let in_day = ns.rem_euclid(NANOS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000_000;
    let frac = in_day % 1_000_000_000;
    let _ = write!(
        out,
        "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let _ = if frac % 1_000_000 == 0 {
        write!(out, "{:03}\"", frac / 1_000_000)
    } else if frac % 1_000 == 0 {
        write!(out, "{:06}\"", frac / 1_000)
    } else {
        write!(out, "{frac:09}\"")
    };
}

/// A data message as the server sends it:
/// `{"type":"data-message","topic":"…","@data-type":"…","data":…}`.
///
/// ```
/// let text = broker_json::data_message("/test", &1u64.into());
/// assert_eq!(text, r#"{"type":"data-message","topic":"/test","@data-type":"count","data":1}"#);
/// ```
pub fn data_message(topic: &str, value: &Data) -> String {
    let mut out = String::with_capacity(64);
    write_data_message(&mut out, topic, value);
    out
}

/// [`data_message`] into a buffer.
pub fn write_data_message(out: &mut String, topic: &str, value: &Data) {
    out.push_str("{\"type\":\"data-message\",\"topic\":");
    write_string(out, topic);
    out.push_str(",\"@data-type\":\"");
    out.push_str(type_name(value));
    out.push_str("\",\"data\":");
    write_value(out, value);
    out.push('}');
}

/// The handshake's acknowledgement: `{"type":"ack","endpoint":"…","version":"…"}`.
pub fn ack(endpoint: &str, version: &str) -> String {
    let mut out = String::from("{\"type\":\"ack\",\"endpoint\":");
    write_string(&mut out, endpoint);
    out.push_str(",\"version\":");
    write_string(&mut out, version);
    out.push('}');
    out
}

/// An error message: `{"type":"error","code":"…","context":"…"}`.
///
/// ```
/// assert_eq!(
///     broker_json::error("deserialization_failed", "input #1 contained invalid data"),
///     r#"{"type":"error","code":"deserialization_failed","context":"input #1 contained invalid data"}"#
/// );
/// ```
pub fn error(code: &str, context: &str) -> String {
    let mut out = String::from("{\"type\":\"error\",\"code\":");
    write_string(&mut out, code);
    out.push_str(",\"context\":");
    write_string(&mut out, context);
    out.push('}');
    out
}
