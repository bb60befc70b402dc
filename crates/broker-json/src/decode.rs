//! JSON text to data values and client messages. Every input gives a value or an error, never a
//! panic: the JSON parser bounds nesting (128 levels) and this module allocates only for what
//! the text holds.

use broker_data::{Data, EnumValue, Set, Table};
use serde::de::{DeserializeSeed, IgnoredAny};
use serde_json::error::Category;
use serde_json::{Map, Value};

use crate::stream::MessageSeed;

use crate::text::{parse_address, parse_port, parse_subnet, parse_timespan, parse_timestamp};

/// Why a client's message was refused. [`context`](Self::context) gives the text the server
/// sends: Broker's (`input #N …`) where Broker covered the case, Zeek's otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The text is not JSON.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON, but not an object.
    #[error("expected a JSON object")]
    NotObject,
    /// The value is missing, of an unknown type, or not what its type requires.
    #[error("invalid data")]
    InvalidData,
    /// The object has no string `topic`.
    #[error("no topic in top-level JSON object")]
    NoTopic,
}

impl MessageError {
    /// The `context` of the error message for the `n`th message since the handshake (from 1),
    /// e.g. `input #1 contained invalid data`.
    pub fn context(&self, n: u64) -> String {
        match self {
            MessageError::Malformed(e) => format!("input #{n} contained malformed JSON -> {e}"),
            MessageError::NotObject => format!("input #{n} expected a JSON object"),
            MessageError::InvalidData => format!("input #{n} contained invalid data"),
            MessageError::NoTopic => "no topic in top-level JSON object".to_owned(),
        }
    }
}

/// Why a handshake's subscription list was refused (Zeek's texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// Not a JSON array (or not JSON at all).
    #[error("subscriptions not an array")]
    NotAnArray,
    /// An element is not a string.
    #[error("individual subscription not a string")]
    NotAString,
}

/// Reads a typed object, `{"@data-type":"…","data":…}`, in any key order.
///
/// ```
/// use broker_data::Data;
/// let v: serde_json::Value = serde_json::from_str(r#"{"data": 5.0, "@data-type": "real"}"#).unwrap();
/// assert_eq!(broker_json::decode(&v).unwrap(), Data::Real(5.0));
/// let bad: serde_json::Value = serde_json::from_str(r#"{"@data-type":"count","data":1.5}"#).unwrap();
/// assert!(broker_json::decode(&bad).is_err());
/// ```
pub fn decode(value: &Value) -> Result<Data, MessageError> {
    match value {
        Value::Object(obj) => typed(obj),
        _ => Err(MessageError::InvalidData),
    }
}

fn typed(obj: &Map<String, Value>) -> Result<Data, MessageError> {
    let Some(Value::String(ty)) = obj.get("@data-type") else {
        return Err(MessageError::InvalidData);
    };
    if ty == "none" {
        // Broker does not look at `data` for none.
        return Ok(Data::None);
    }
    let data = obj.get("data").ok_or(MessageError::InvalidData)?;
    value_of(ty, data).ok_or(MessageError::InvalidData)
}

pub(crate) fn value_of(ty: &str, data: &Value) -> Option<Data> {
    let text = || data.as_str();
    Some(match ty {
        "boolean" => Data::Boolean(data.as_bool()?),
        "count" => Data::Count(data.as_u64()?),
        "integer" => Data::Integer(data.as_i64()?),
        "real" => Data::Real(real(data)?),
        "string" => Data::String(text()?.into()),
        "enum-value" => Data::EnumValue(EnumValue::new(text()?)),
        "address" => Data::Address(parse_address(text()?)?),
        "subnet" => Data::Subnet(parse_subnet(text()?)?),
        "port" => Data::Port(parse_port(text()?)?),
        "timestamp" => Data::Timestamp(parse_timestamp(text()?)?),
        "timespan" => Data::Timespan(parse_timespan(text()?)?),
        "vector" => Data::Vector(
            elements(data)?
                .map(|e| decode(e).ok())
                .collect::<Option<_>>()?,
        ),
        "set" => Data::Set(
            elements(data)?
                .map(|e| decode(e).ok())
                .collect::<Option<Set>>()?,
        ),
        "table" => Data::Table(
            elements(data)?
                .map(|e| {
                    let entry = e.as_object()?;
                    Some((
                        decode(entry.get("key")?).ok()?,
                        decode(entry.get("value")?).ok()?,
                    ))
                })
                .collect::<Option<Table>>()?,
        ),
        _ => return None,
    })
}

fn elements(data: &Value) -> Option<std::slice::Iter<'_, Value>> {
    data.as_array().map(|a| a.iter())
}

/// A real: any JSON number (Broker takes only numbers with a fraction or exponent; integers
/// are a harmless widening), the strings the encoder writes for non-finite values (and their
/// lowercase forms), or `null` for NaN.
fn real(data: &Value) -> Option<f64> {
    match data {
        Value::Number(n) => n.as_f64(),
        Value::Null => Some(f64::NAN),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Reads a client's data message: an object with a string `topic` and a typed value at the
/// top level (`type` is not checked and other keys are ignored, as in Broker). Returns the
/// topic and the value.
///
/// ```
/// use broker_data::Data;
/// let (topic, value) = broker_json::parse_message(
///     br#"{"type":"data-message","topic":"/foo/bar","@data-type":"count","data":1}"#,
/// ).unwrap();
/// assert_eq!((topic.as_str(), value), ("/foo/bar", Data::Count(1)));
/// let err = broker_json::parse_message(br#"{"@data-type":"count","data":1}"#).unwrap_err();
/// assert_eq!(err.context(1), "no topic in top-level JSON object");
/// ```
pub fn parse_message(text: &[u8]) -> Result<(String, Data), MessageError> {
    check_object(text)?;
    topic_and_value(read(text, MessageSeed)?)
}

/// [`parse_message`] for text known to be UTF-8 (a WebSocket text frame, which the WebSocket
/// layer has validated already): the strings in it are not validated again.
///
/// ```
/// let (topic, _) = broker_json::parse_message_str(r#"{"topic":"/t","@data-type":"none"}"#).unwrap();
/// assert_eq!(topic, "/t");
/// ```
pub fn parse_message_str(text: &str) -> Result<(String, Data), MessageError> {
    check_object(text.as_bytes())?;
    topic_and_value(finish(
        serde_json::Deserializer::from_str(text),
        MessageSeed,
    )?)
}

/// Refuses anything but an object up front, telling malformed text from other JSON.
fn check_object(text: &[u8]) -> Result<(), MessageError> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Ok(());
    }
    Err(match serde_json::from_slice::<IgnoredAny>(text) {
        Ok(_) => MessageError::NotObject,
        Err(e) => MessageError::Malformed(e.to_string()),
    })
}

fn topic_and_value(msg: crate::stream::Message) -> Result<(String, Data), MessageError> {
    match msg.topic {
        Some(topic) => Ok((topic, msg.data)),
        None => Err(MessageError::NoTopic),
    }
}

/// Runs a seed over the whole text: a JSON error is malformed input, a value the seed refuses
/// is invalid data.
pub(crate) fn read<T>(
    text: &[u8],
    seed: impl for<'de> DeserializeSeed<'de, Value = T>,
) -> Result<T, MessageError> {
    finish(serde_json::Deserializer::from_slice(text), seed)
}

fn finish<'de, R: serde_json::de::Read<'de>, T>(
    mut de: serde_json::Deserializer<R>,
    seed: impl DeserializeSeed<'de, Value = T>,
) -> Result<T, MessageError> {
    let out = seed.deserialize(&mut de).map_err(classify)?;
    de.end().map_err(classify)?;
    Ok(out)
}

fn classify(e: serde_json::Error) -> MessageError {
    match e.classify() {
        Category::Data => MessageError::InvalidData,
        _ => MessageError::Malformed(e.to_string()),
    }
}

/// Reads the handshake's first message: a JSON array of topic prefixes (`""` subscribes to
/// everything; duplicates are allowed).
///
/// ```
/// assert_eq!(broker_json::parse_subscriptions(br#"["/a", "/b"]"#).unwrap(), ["/a", "/b"]);
/// assert!(broker_json::parse_subscriptions(br#"[1, "/x"]"#).is_err());
/// ```
pub fn parse_subscriptions(text: &[u8]) -> Result<Vec<String>, SubscriptionError> {
    let value: Value = serde_json::from_slice(text).map_err(|_| SubscriptionError::NotAnArray)?;
    let Value::Array(items) = value else {
        return Err(SubscriptionError::NotAnArray);
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            _ => Err(SubscriptionError::NotAString),
        })
        .collect()
}
