//! Broker's data model: the typed values that endpoints publish and data stores hold.
//!
//! [`Data`] holds exactly Broker's types — none, boolean, count, integer, real, string,
//! address, subnet, port, timestamp, timespan, enum value, set, table and vector — with
//! Broker's total order (by type in that sequence, then by value), so that any value can be a
//! set element or a table key. The [`zeek`] module maps Zeek's messages (events, log writes, …)
//! onto `Data` in the layout Zeek uses.
//!
//! This crate knows nothing about topics, peers or wire formats; the binary encoding lives in
//! `broker-wire`. It has no I/O and no `unsafe`.
//!
//! # Two text forms
//!
//! * `Display` prints **Broker's text format** byte for byte, because logs and tools compare
//!   against it: `nil`, `T`, `42`, `4.200000`, `(1, 2)`, `{1, 2}`, `{a -> 1}`, `80/tcp`, `0/?`,
//!   `10.0.0.0/8`, `42ns`. It is ambiguous: a count and an integer both print `42`, a timespan
//!   and a timestamp both print `42ns`, and strings print without quotes.
//! * [`Data::literal`] prints the **literal syntax**, which is lossless, and `FromStr` parses it
//!   back: `x.literal().to_string().parse::<Data>() == Ok(x)` for every value.
//!
//! ```
//! use broker_data::Data;
//! let d: Data = r#"(1.2.3.4, 80/tcp, 5ns, "a b", {1, 2, 3}, {"k" -> +1})"#.parse().unwrap();
//! assert_eq!(d.to_string(), "(1.2.3.4, 80/tcp, 5ns, a b, {1, 2, 3}, {k -> 1})");
//! assert_eq!(d.literal().to_string(), r#"(1.2.3.4, 80/tcp, 5ns, "a b", {1, 2, 3}, {"k" -> +1})"#);
//! ```
//!
//! # Literal syntax
//!
//! The literal syntax is Broker's text format wherever that is unambiguous, with Zeek's
//! conventions where it is not. Whitespace between tokens is ignored.
//!
//! | type | literal | notes |
//! |---|---|---|
//! | none | `nil` | |
//! | boolean | `T`, `F` | `true` and `false` are accepted too |
//! | count | `42` | digits without a sign |
//! | integer | `+42`, `-42`, `+0` | a sign is required: that is what tells it from a count (as in Zeek) |
//! | real | `4.2`, `-0.0`, `1e300`, `inf`, `-inf`, `nan` | a `.` or an exponent is required; printed as the shortest text that reads back to the same value |
//! | string | `"a b"`, `"1.2.3.4"`, `"\xff\n"` | always double-quoted; escapes `\"` `\\` `\n` `\r` `\t` `\0` `\xHH` (any byte) `\u{HHHH}` |
//! | address | `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]` | brackets are optional |
//! | subnet | `10.0.0.0/8`, `2001:db8::/32`, `[2001:db8::]/32` | the network is masked |
//! | port | `80/tcp`, `53/udp`, `8/icmp`, `0/?` | |
//! | timespan | `5s`, `-250ms`, `42ns`, `1.5us`, `0s` | units `ns` `us` `ms` `s` `min` `h` `d`; printed in the largest unit that is exact |
//! | timestamp | `2024-01-31T12:00:00.000000001Z`, `@1700000000s` | ISO-8601 UTC (the `Z` is optional), or `@` and a timespan since the epoch |
//! | enum value | `Conn::LOG`, `enum("any bytes")` | a bare identifier (`::`-separated); the `enum(...)` form for any other name, such as a keyword or one that reads as an address |
//! | vector | `(1, 2, 3)`, `()` | |
//! | set | `{1, 2, 3}`, `{}` | duplicates collapse |
//! | table | `{"a" -> 1, "b" -> 2}`, `{->}` | `{->}` is the empty table (`{}` is the empty set); duplicate keys are an error |
//!
//! Grammar, informally:
//!
//! ```text
//! value    := vector | set | table | string | '[' address ']' ('/' digits)? | '@' timespan
//!           | 'enum(' string ')' | word
//! vector   := '(' (value (',' value)*)? ')'
//! set      := '{' (value (',' value)*)? '}'
//! table    := '{' '->' '}' | '{' value '->' value (',' value '->' value)* '}'
//! word     := [A-Za-z0-9_.:/+?-]+   (stopping before '->'), read in this order as:
//!             keyword | count | integer | real | port | subnet | address | timestamp
//!             | timespan | enum identifier
//! ```
//!
//! A parse error gives the byte position and what was expected there ([`ParseError`]).
//! Containers may nest at most [`MAX_PARSE_DEPTH`] deep in a literal.
//!
//! # Equality of reals
//!
//! `Eq`, `Ord` and `Hash` agree: `-0.0 == 0.0` (as in Broker), and all NaNs are equal and sort
//! above `+inf`. The literal syntax keeps the sign of zero; it does not keep NaN payloads.

#![forbid(unsafe_code)]

mod address;
#[cfg(feature = "proptest")]
pub mod arbitrary;
mod convert;
mod data;
mod error;
mod literal;
mod shared;
mod string;
mod text;
mod time;
pub mod zeek;

pub use address::{Address, ByteOrder, Family, Port, Protocol, Subnet};
pub use data::{Data, DataType, EnumValue, Set, Table, Vector};
pub use error::{DataError, ParseError};
pub use literal::{Literal, MAX_PARSE_DEPTH};
pub use shared::SharedData;
pub use string::ByteString;
pub use time::{Timespan, Timestamp};

/// The current wall-clock time, as Broker's `now()`.
///
/// ```
/// assert!(broker_data::now().as_nanos() > 0);
/// ```
pub fn now() -> Timestamp {
    Timestamp::now()
}
