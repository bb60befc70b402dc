//! Zeek's messages on top of Broker data: events, log creation and writes, identifier updates
//! and batches, in the exact layout Zeek puts on the wire.
//!
//! Every message is a vector `(1, type, content)`: protocol version 1, then the type
//! (Event 1, LogCreate 2, LogWrite 3, IdentifierUpdate 4, Batch 5), then the content vector.
//! Like Broker, decoding ignores content fields beyond the ones the layout defines.
//!
//! ```
//! use broker_data::zeek::{Event, Message};
//! use broker_data::{vector, Data, Timestamp};
//! let ev = Event::new("ping", vec![Data::from("hello"), Data::from(1u64)])
//!     .with_timestamp(Timestamp::from_nanos(42));
//! let d = Data::from(ev.clone());
//! assert_eq!(d.to_string(), "(1, 1, (ping, (hello, 1), ((1, 42ns))))");
//! assert_eq!(Message::try_from(&d).unwrap(), Message::Event(ev));
//! assert!(Message::try_from(&vector![1u64, 1u64, vector![5u64]]).is_err());
//! ```

use crate::{ByteString, Data, DataError, EnumValue, Timestamp};

/// The version Zeek puts first in every message.
pub const PROTOCOL_VERSION: u64 = 1;

/// The metadata key of an event's network timestamp.
pub const METADATA_NETWORK_TIMESTAMP: u64 = 1;

/// The first metadata key available to users.
pub const METADATA_USER_START: u64 = 200;

/// The type tag of a Zeek message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// A remote event.
    Event = 1,
    /// Creation of a remote log writer.
    LogCreate = 2,
    /// A log write.
    LogWrite = 3,
    /// An update of a global identifier.
    IdentifierUpdate = 4,
    /// A batch of messages.
    Batch = 5,
}

/// A Zeek event: name, arguments and optional metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// The event's name, e.g. `Broker::ping`.
    pub name: ByteString,
    /// The arguments.
    pub args: Vec<Data>,
    /// Metadata `(key, value)` pairs, or `None` when the message carried no metadata field.
    pub metadata: Option<Vec<(u64, Data)>>,
}

impl Event {
    /// An event without metadata.
    pub fn new(name: impl Into<ByteString>, args: Vec<Data>) -> Self {
        Event {
            name: name.into(),
            args,
            metadata: None,
        }
    }

    /// The event with its network timestamp set (replacing an earlier one).
    pub fn with_timestamp(mut self, ts: Timestamp) -> Self {
        let meta = self.metadata.get_or_insert_with(Vec::new);
        meta.retain(|(k, _)| *k != METADATA_NETWORK_TIMESTAMP);
        meta.insert(0, (METADATA_NETWORK_TIMESTAMP, Data::Timestamp(ts)));
        self
    }

    /// The event with a metadata entry added.
    pub fn with_metadata(mut self, key: u64, value: impl Into<Data>) -> Self {
        self.metadata
            .get_or_insert_with(Vec::new)
            .push((key, value.into()));
        self
    }

    /// The network timestamp, if the metadata has one.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.metadata_value(METADATA_NETWORK_TIMESTAMP)
            .and_then(Data::as_timestamp)
    }

    /// The first metadata value under `key`.
    pub fn metadata_value(&self, key: u64) -> Option<&Data> {
        self.metadata
            .as_ref()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// Creation of a log writer at a remote logger.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogCreate {
    /// The log stream, e.g. `Conn::LOG`.
    pub stream_id: EnumValue,
    /// The writer, e.g. `Log::WRITER_ASCII`.
    pub writer_id: EnumValue,
    /// The writer's configuration.
    pub writer_info: Data,
    /// The field descriptions.
    pub fields: Data,
}

/// One log record for a remote writer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogWrite {
    /// The log stream.
    pub stream_id: EnumValue,
    /// The writer.
    pub writer_id: EnumValue,
    /// The log's path.
    pub path: ByteString,
    /// The record in Zeek's own serialization.
    pub serial_data: ByteString,
}

/// A new value of a global identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentifierUpdate {
    /// The identifier's name.
    pub name: ByteString,
    /// Its new value.
    pub value: Data,
}

/// Any Zeek message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// An event.
    Event(Event),
    /// A log writer creation.
    LogCreate(LogCreate),
    /// A log write.
    LogWrite(LogWrite),
    /// An identifier update.
    IdentifierUpdate(IdentifierUpdate),
    /// A batch of messages.
    Batch(Vec<Message>),
}

impl Message {
    /// The message's type tag.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Event(_) => MessageType::Event,
            Message::LogCreate(_) => MessageType::LogCreate,
            Message::LogWrite(_) => MessageType::LogWrite,
            Message::IdentifierUpdate(_) => MessageType::IdentifierUpdate,
            Message::Batch(_) => MessageType::Batch,
        }
    }

    fn content(self) -> Vec<Data> {
        match self {
            Message::Event(e) => {
                let mut v = vec![Data::String(e.name), Data::Vector(e.args)];
                if let Some(meta) = e.metadata {
                    v.push(Data::Vector(
                        meta.into_iter()
                            .map(|(k, v)| Data::Vector(vec![Data::Count(k), v]))
                            .collect(),
                    ));
                }
                v
            }
            Message::LogCreate(l) => vec![
                Data::EnumValue(l.stream_id),
                Data::EnumValue(l.writer_id),
                l.writer_info,
                l.fields,
            ],
            Message::LogWrite(l) => vec![
                Data::EnumValue(l.stream_id),
                Data::EnumValue(l.writer_id),
                Data::String(l.path),
                Data::String(l.serial_data),
            ],
            Message::IdentifierUpdate(u) => vec![Data::String(u.name), u.value],
            Message::Batch(items) => items.into_iter().map(Data::from).collect(),
        }
    }
}

impl From<Message> for Data {
    fn from(m: Message) -> Data {
        let tag = m.message_type() as u64;
        Data::Vector(vec![
            Data::Count(PROTOCOL_VERSION),
            Data::Count(tag),
            Data::Vector(m.content()),
        ])
    }
}

macro_rules! into_data {
    ($($t:ident),*) => {$(
        impl From<$t> for Data {
            fn from(x: $t) -> Data {
                Data::from(Message::$t(x))
            }
        }
        impl From<$t> for Message {
            fn from(x: $t) -> Message {
                Message::$t(x)
            }
        }
    )*};
}

into_data!(Event, LogCreate, LogWrite, IdentifierUpdate);

fn invalid(what: impl Into<String>) -> DataError {
    DataError::InvalidZeekMessage(what.into())
}

fn field<'a>(fields: &'a [Data], i: usize, name: &str) -> Result<&'a Data, DataError> {
    fields
        .get(i)
        .ok_or_else(|| invalid(format!("missing field {i} ({name})")))
}

fn string_field(fields: &[Data], i: usize, name: &str) -> Result<ByteString, DataError> {
    match field(fields, i, name)? {
        Data::String(s) => Ok(s.clone()),
        other => Err(invalid(format!(
            "field {i} ({name}) must be a string, found {}",
            other.data_type()
        ))),
    }
}

fn enum_field(fields: &[Data], i: usize, name: &str) -> Result<EnumValue, DataError> {
    match field(fields, i, name)? {
        Data::EnumValue(e) => Ok(e.clone()),
        other => Err(invalid(format!(
            "field {i} ({name}) must be an enum_value, found {}",
            other.data_type()
        ))),
    }
}

fn parse_event(fields: &[Data]) -> Result<Event, DataError> {
    let name = string_field(fields, 0, "event name")?;
    let args = match field(fields, 1, "event arguments")? {
        Data::Vector(v) => v.clone(),
        other => {
            return Err(invalid(format!(
                "event arguments must be a vector, found {}",
                other.data_type()
            )))
        }
    };
    let metadata = match fields.get(2) {
        None => None,
        Some(Data::Vector(entries)) => {
            let mut meta = Vec::with_capacity(entries.len());
            for entry in entries {
                match entry.as_vector().map(Vec::as_slice) {
                    Some([Data::Count(k), v]) => {
                        if *k == METADATA_NETWORK_TIMESTAMP && v.as_timestamp().is_none() {
                            return Err(invalid(format!(
                                "network timestamp metadata must be a timestamp, found {}",
                                v.data_type()
                            )));
                        }
                        meta.push((*k, v.clone()));
                    }
                    _ => {
                        return Err(invalid(
                            "event metadata entries must be (count, value) pairs",
                        ))
                    }
                }
            }
            Some(meta)
        }
        Some(other) => {
            return Err(invalid(format!(
                "event metadata must be a vector, found {}",
                other.data_type()
            )))
        }
    };
    Ok(Event {
        name,
        args,
        metadata,
    })
}

impl TryFrom<&Data> for Message {
    type Error = DataError;
    fn try_from(d: &Data) -> Result<Message, DataError> {
        let outer = d
            .as_vector()
            .ok_or_else(|| invalid(format!("a message is a vector, found {}", d.data_type())))?;
        let [version, tag, content, ..] = outer.as_slice() else {
            return Err(invalid(format!(
                "a message has 3 fields, found {}",
                outer.len()
            )));
        };
        if version.as_count() != Some(PROTOCOL_VERSION) {
            return Err(invalid(format!("unsupported protocol version {version}")));
        }
        let fields = content.as_vector().ok_or_else(|| {
            invalid(format!(
                "message content must be a vector, found {}",
                content.data_type()
            ))
        })?;
        match tag.as_count() {
            Some(1) => parse_event(fields).map(Message::Event),
            Some(2) => Ok(Message::LogCreate(LogCreate {
                stream_id: enum_field(fields, 0, "stream id")?,
                writer_id: enum_field(fields, 1, "writer id")?,
                writer_info: field(fields, 2, "writer info")?.clone(),
                fields: field(fields, 3, "fields")?.clone(),
            })),
            Some(3) => Ok(Message::LogWrite(LogWrite {
                stream_id: enum_field(fields, 0, "stream id")?,
                writer_id: enum_field(fields, 1, "writer id")?,
                path: string_field(fields, 2, "path")?,
                serial_data: string_field(fields, 3, "serialized record")?,
            })),
            Some(4) => Ok(Message::IdentifierUpdate(IdentifierUpdate {
                name: string_field(fields, 0, "identifier name")?,
                value: field(fields, 1, "identifier value")?.clone(),
            })),
            Some(5) => fields
                .iter()
                .map(Message::try_from)
                .collect::<Result<_, _>>()
                .map(Message::Batch),
            _ => Err(invalid(format!("unknown message type {tag}"))),
        }
    }
}

impl TryFrom<Data> for Message {
    type Error = DataError;
    fn try_from(d: Data) -> Result<Message, DataError> {
        Message::try_from(&d)
    }
}
