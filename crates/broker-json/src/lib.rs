//! Broker's JSON API v1: the encoding of data values and messages that Zeek's WebSocket API
//! speaks (`../shared/reference/zeek-websocket-api.md` in the project's material, §4–§6).
//!
//! Every value is a typed object, `{"@data-type":"count","data":1}`; a message adds its
//! `type` and `topic`. The encoder writes Broker's bytes (compact, Broker's key order) except
//! where Broker's output is not valid JSON or loses information:
//!
//! - control characters in strings are `\u00XX` escapes (Broker writes `\v` and raw bytes);
//! - reals are the shortest text that reads back as the same double, always with a fraction or
//!   exponent (Broker's `%f` keeps six decimals); NaN and ±infinity are the strings `"NaN"`,
//!   `"Infinity"`, `"-Infinity"` (Broker's `nan`/`inf` are invalid JSON; the spec's other
//!   choices, dropping the message or `null`, lose the value);
//! - timestamps carry 6 or 9 decimals when they are not whole milliseconds (Broker truncates);
//! - a string that is not UTF-8 cannot be a JSON string: its invalid bytes become U+FFFD (the
//!   one value this encoding cannot carry; Broker sends invalid UTF-8, which clients refuse).
//!
//! The decoder takes everything Broker's takes, plus: integral reals, fractional timespans in
//! every unit (including `d`), timestamps with zones. It refuses what Broker would mangle: a
//! subnet length beyond the family's, a port number beyond 65535.
//!
//! ```
//! use broker_data::{vector, Data};
//! let value = vector![42i64, "test"];
//! let text = broker_json::data_message("/foo/bar", &value);
//! let (topic, back) = broker_json::parse_message(text.as_bytes()).unwrap();
//! assert_eq!((topic.as_str(), back), ("/foo/bar", value));
//! ```

mod decode;
mod encode;
mod stream;
mod text;

pub use decode::{
    decode, parse_message, parse_message_str, parse_subscriptions, MessageError, SubscriptionError,
};
pub use encode::{ack, data_message, error, type_name, write_data, write_data_message};

/// Parses JSON text holding one typed object.
///
/// ```
/// use broker_data::Data;
/// assert_eq!(broker_json::from_str(r#"{"@data-type":"timespan","data":"1.5s"}"#).unwrap(),
///            Data::Timespan(broker_data::Timespan::from_nanos(1_500_000_000)));
/// ```
pub fn from_str(text: &str) -> Result<broker_data::Data, MessageError> {
    decode::read(text.as_bytes(), stream::TypedSeed)
}

/// A value as JSON text (a typed object).
pub fn to_string(value: &broker_data::Data) -> String {
    let mut out = String::new();
    write_data(&mut out, value);
    out
}

#[cfg(test)]
mod tests;
