//! The handshake messages exchanged before a peering is established.
//!
//! Each is one frame whose first byte is the message type. After `originator_ack`, frames
//! carry [`Envelope`](crate::Envelope)s instead.

use bytes::{BufMut, Bytes};

use crate::data::{put_bytes, read_string};
use crate::reader::{put_varint, Reader};
use crate::{EndpointId, Topic, WireError};

/// Broker's magic number, "ZEEK" in ASCII.
pub const MAGIC: u32 = 0x5A45_454B;

/// The protocol version that Broker 2.x (Zeek 5 and later) speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// A subscription filter: the topic prefixes an endpoint wants.
pub type Filter = Vec<Topic>;

/// The type byte of every peer message, handshake and operational.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Published data.
    Data = 1,
    /// A store command.
    Command = 2,
    /// A subscription filter update.
    RoutingUpdate = 3,
    /// A ping.
    Ping = 4,
    /// A pong.
    Pong = 5,
    /// Handshake: hello.
    Hello = 6,
    /// Handshake: probe.
    Probe = 7,
    /// Handshake: version select.
    VersionSelect = 8,
    /// Handshake: drop connection.
    DropConn = 9,
    /// Handshake: originator's filter.
    OriginatorSyn = 10,
    /// Handshake: responder's filter.
    ResponderSynAck = 11,
    /// Handshake: originator's final acknowledgement.
    OriginatorAck = 12,
    /// Version 2: data with origin and sequence number.
    RoutedData = 64,
    /// Version 2: store command with origin and sequence number.
    RoutedCommand = 65,
    /// Version 2: link-state advertisement.
    LinkState = 66,
    /// Version 3: a run of values from one origin with consecutive sequence numbers.
    RoutedBatch = 67,
}

impl MessageType {
    /// The type for a byte, if it names one.
    pub fn from_u8(b: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match b {
            1 => Data,
            2 => Command,
            3 => RoutingUpdate,
            4 => Ping,
            5 => Pong,
            6 => Hello,
            7 => Probe,
            8 => VersionSelect,
            9 => DropConn,
            10 => OriginatorSyn,
            11 => ResponderSynAck,
            12 => OriginatorAck,
            64 => RoutedData,
            65 => RoutedCommand,
            66 => LinkState,
            67 => RoutedBatch,
            _ => return None,
        })
    }
}

/// One handshake message.
///
/// Decoding checks the layout only; the magic number and versions are carried as received so
/// the caller can answer with the right error (`wrong_magic_number`, `peer_incompatible`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Announces the sender and the protocol versions it speaks.
    Hello {
        /// Should be [`MAGIC`].
        magic: u32,
        /// The sender's id.
        sender: EndpointId,
        /// Lowest version spoken.
        min_version: u8,
        /// Highest version spoken.
        max_version: u8,
    },
    /// Sent by the accepting side to start the handshake.
    Probe {
        /// Should be [`MAGIC`].
        magic: u32,
    },
    /// The originator's choice of version.
    VersionSelect {
        /// Should be [`MAGIC`].
        magic: u32,
        /// The sender's id.
        sender: EndpointId,
        /// The chosen version.
        version: u8,
    },
    /// Refuses or ends a connection, with one of Broker's error codes.
    DropConn {
        /// Should be [`MAGIC`].
        magic: u32,
        /// The sender's id.
        sender: EndpointId,
        /// Broker's error code (`ec`).
        code: u8,
        /// A human-readable reason.
        description: Bytes,
    },
    /// The originator's subscription filter.
    OriginatorSyn {
        /// The filter.
        filter: Filter,
    },
    /// The responder's subscription filter.
    ResponderSynAck {
        /// The filter.
        filter: Filter,
    },
    /// Completes the handshake.
    OriginatorAck,
}

impl Handshake {
    /// A hello for `sender` offering versions `min..=max`.
    pub fn hello(sender: EndpointId, min_version: u8, max_version: u8) -> Self {
        Handshake::Hello {
            magic: MAGIC,
            sender,
            min_version,
            max_version,
        }
    }

    /// A version_select from `sender` choosing `version`.
    pub fn version_select(sender: EndpointId, version: u8) -> Self {
        Handshake::VersionSelect {
            magic: MAGIC,
            sender,
            version,
        }
    }

    /// A probe.
    pub fn probe() -> Self {
        Handshake::Probe { magic: MAGIC }
    }

    /// The message's type byte.
    pub fn message_type(&self) -> MessageType {
        match self {
            Handshake::Hello { .. } => MessageType::Hello,
            Handshake::Probe { .. } => MessageType::Probe,
            Handshake::VersionSelect { .. } => MessageType::VersionSelect,
            Handshake::DropConn { .. } => MessageType::DropConn,
            Handshake::OriginatorSyn { .. } => MessageType::OriginatorSyn,
            Handshake::ResponderSynAck { .. } => MessageType::ResponderSynAck,
            Handshake::OriginatorAck => MessageType::OriginatorAck,
        }
    }

    /// Appends the message (type byte first) to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.message_type() as u8);
        match self {
            Handshake::Hello {
                magic,
                sender,
                min_version,
                max_version,
            } => {
                out.put_u32(*magic);
                out.put_slice(sender.as_bytes());
                out.put_u8(*min_version);
                out.put_u8(*max_version);
            }
            Handshake::Probe { magic } => out.put_u32(*magic),
            Handshake::VersionSelect {
                magic,
                sender,
                version,
            } => {
                out.put_u32(*magic);
                out.put_slice(sender.as_bytes());
                out.put_u8(*version);
            }
            Handshake::DropConn {
                magic,
                sender,
                code,
                description,
            } => {
                out.put_u32(*magic);
                out.put_slice(sender.as_bytes());
                out.put_u8(*code);
                put_bytes(out, description);
            }
            Handshake::OriginatorSyn { filter } | Handshake::ResponderSynAck { filter } => {
                put_filter(out, filter);
            }
            Handshake::OriginatorAck => {}
        }
    }

    /// Decodes one handshake frame (without its length prefix). Trailing bytes are an error.
    pub fn decode(frame: &[u8]) -> Result<Handshake, WireError> {
        let mut r = Reader::new(frame);
        let tag = r.u8("message type")?;
        let msg = match MessageType::from_u8(tag) {
            Some(MessageType::Hello) => Handshake::Hello {
                magic: r.u32("hello")?,
                sender: EndpointId::from_bytes(r.array("hello")?),
                min_version: r.u8("hello")?,
                max_version: r.u8("hello")?,
            },
            Some(MessageType::Probe) => Handshake::Probe {
                magic: r.u32("probe")?,
            },
            Some(MessageType::VersionSelect) => Handshake::VersionSelect {
                magic: r.u32("version_select")?,
                sender: EndpointId::from_bytes(r.array("version_select")?),
                version: r.u8("version_select")?,
            },
            Some(MessageType::DropConn) => {
                let magic = r.u32("drop_conn")?;
                let sender = EndpointId::from_bytes(r.array("drop_conn")?);
                let code = r.u8("drop_conn")?;
                let n = r.length("drop_conn description", 1)?;
                Handshake::DropConn {
                    magic,
                    sender,
                    code,
                    description: r.bytes(n, "drop_conn description")?,
                }
            }
            Some(MessageType::OriginatorSyn) => Handshake::OriginatorSyn {
                filter: read_filter(&mut r)?,
            },
            Some(MessageType::ResponderSynAck) => Handshake::ResponderSynAck {
                filter: read_filter(&mut r)?,
            },
            Some(MessageType::OriginatorAck) => Handshake::OriginatorAck,
            _ => return Err(WireError::UnknownMessageType(tag)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Appends a filter: a varint count, then each topic as varint length and bytes.
pub(crate) fn put_filter(out: &mut impl BufMut, filter: &[Topic]) {
    put_varint(out, filter.len() as u64);
    for t in filter {
        put_bytes(out, t.as_bytes());
    }
}

pub(crate) fn read_filter(r: &mut Reader<'_>) -> Result<Filter, WireError> {
    // Each topic takes at least its one-byte length.
    let n = r.length("filter", 1)?;
    let mut filter = Vec::with_capacity(n);
    for _ in 0..n {
        filter.push(Topic::from_byte_string(read_string(r, "topic")?)?);
    }
    Ok(filter)
}
