//! Operational frames: the messages exchanged once a peering is established.

use broker_data::{Data, SharedData};
use bytes::{BufMut, Bytes, BytesMut};

use crate::command::{read_command, InternalCommand};
use crate::data::{encode_data, read_bytes, read_data};
use crate::handshake::{put_filter, read_filter, Filter, MessageType};
use crate::reader::Reader;
use crate::{EndpointId, Limits, LinkState, Topic, WireError};

/// The size of an envelope's fixed header: sender, receiver, type, TTL and topic length.
pub const HEADER_LEN: usize = 16 + 16 + 1 + 2 + 2;

/// The payload of an operational frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A published value.
    Data(Data),
    /// A store command.
    Command(InternalCommand),
    /// The sender's new subscription filter.
    RoutingUpdate(Filter),
    /// A ping with opaque bytes (see [`bye_token`]).
    Ping(Bytes),
    /// A pong echoing a ping's bytes.
    Pong(Bytes),
    /// Version 2: a published value with its origin and sequence number.
    RoutedData {
        /// The endpoint that injected the message into the routed domain.
        origin: EndpointId,
        /// The origin's sequence number.
        seq: u64,
        /// The value.
        data: Data,
    },
    /// Version 2: a store command with its origin and sequence number.
    RoutedCommand {
        /// The endpoint that injected the message into the routed domain.
        origin: EndpointId,
        /// The origin's sequence number.
        seq: u64,
        /// The command.
        command: InternalCommand,
    },
    /// Version 2: a link-state advertisement.
    LinkState(LinkState),
    /// Version 3: values published on one topic by one origin, the `i`-th with sequence
    /// number `seq + i`.
    RoutedBatch {
        /// The endpoint that injected the values into the routed domain.
        origin: EndpointId,
        /// The origin's sequence number of the first value.
        seq: u64,
        /// The values (at least one).
        values: Vec<SharedData>,
    },
}

/// A payload borrowed from wherever its parts live, for encoding without copying them (the
/// facade keeps published values in [`SharedData`]).
#[derive(Debug, Clone, Copy)]
pub enum PayloadRef<'a> {
    /// A published value.
    Data(&'a Data),
    /// A store command.
    Command(&'a InternalCommand),
    /// A subscription filter.
    RoutingUpdate(&'a [Topic]),
    /// Ping bytes.
    Ping(&'a [u8]),
    /// Pong bytes.
    Pong(&'a [u8]),
    /// Version 2 data.
    RoutedData {
        /// The origin.
        origin: EndpointId,
        /// The origin's sequence number.
        seq: u64,
        /// The value.
        data: &'a Data,
    },
    /// Version 2 command.
    RoutedCommand {
        /// The origin.
        origin: EndpointId,
        /// The origin's sequence number.
        seq: u64,
        /// The command.
        command: &'a InternalCommand,
    },
    /// Version 2 link state.
    LinkState(&'a LinkState),
    /// Version 3 batch (at most `u16::MAX` values; see [`encode_routed_batch`] for frames of
    /// bounded size).
    RoutedBatch {
        /// The origin.
        origin: EndpointId,
        /// The origin's sequence number of the first value.
        seq: u64,
        /// The values.
        values: &'a [SharedData],
    },
}

impl PayloadRef<'_> {
    /// The type byte this payload travels under.
    pub fn message_type(&self) -> MessageType {
        match self {
            PayloadRef::Data(_) => MessageType::Data,
            PayloadRef::Command(_) => MessageType::Command,
            PayloadRef::RoutingUpdate(_) => MessageType::RoutingUpdate,
            PayloadRef::Ping(_) => MessageType::Ping,
            PayloadRef::Pong(_) => MessageType::Pong,
            PayloadRef::RoutedData { .. } => MessageType::RoutedData,
            PayloadRef::RoutedCommand { .. } => MessageType::RoutedCommand,
            PayloadRef::LinkState(_) => MessageType::LinkState,
            PayloadRef::RoutedBatch { .. } => MessageType::RoutedBatch,
        }
    }

    /// Appends the payload's encoding (without the envelope header).
    pub fn encode(&self, out: &mut impl BufMut) {
        match *self {
            PayloadRef::Data(d) => encode_data(d, out),
            PayloadRef::Command(c) => c.encode(out),
            PayloadRef::RoutingUpdate(f) => put_filter(out, f),
            PayloadRef::Ping(b) | PayloadRef::Pong(b) => out.put_slice(b),
            PayloadRef::RoutedData { origin, seq, data } => {
                out.put_slice(origin.as_bytes());
                out.put_u64(seq);
                encode_data(data, out);
            }
            PayloadRef::RoutedCommand {
                origin,
                seq,
                command,
            } => {
                out.put_slice(origin.as_bytes());
                out.put_u64(seq);
                command.encode(out);
            }
            PayloadRef::LinkState(ls) => ls.encode(out),
            PayloadRef::RoutedBatch {
                origin,
                seq,
                values,
            } => {
                let values = &values[..values.len().min(usize::from(u16::MAX))];
                out.put_slice(origin.as_bytes());
                out.put_u64(seq);
                out.put_u16(values.len() as u16);
                for v in values {
                    encode_data(v, out);
                }
            }
        }
    }
}

/// Appends one `routed_batch` frame (length prefix and envelope) to `out` with as many of
/// `values` as fit in about `max_body` bytes — at least one, at most `u16::MAX` — and returns
/// how many it took. The caller sends the rest in further frames, the next one from sequence
/// number `seq + taken`. A frame beyond 4 GiB is not written (`out` is left as it was).
///
/// ```
/// use broker_data::{Data, SharedData};
/// use broker_wire::{encode_routed_batch, EndpointId, Envelope, FrameDecoder, Limits, Payload, Topic};
/// let values: Vec<SharedData> = (0..100u64).map(|i| Data::Count(i).into()).collect();
/// let mut out = bytes::BytesMut::new();
/// let id = EndpointId::from_bytes([1; 16]);
/// let topic = Topic::new("/t").unwrap();
/// let taken =
///     encode_routed_batch(&mut out, id, EndpointId::NIL, 20, &topic, id, 7, &values, 1 << 16)
///         .unwrap();
/// assert_eq!(taken, 100);
/// // 9 bytes per count, and the header once for all of them.
/// assert!(out.len() < 100 * 9 + 80);
/// let frame = FrameDecoder::new(1 << 20).decode(&mut out).unwrap().unwrap();
/// let env = Envelope::decode(&frame, &Limits::default()).unwrap();
/// let Payload::RoutedBatch { seq, values, .. } = env.payload else { panic!() };
/// assert_eq!((seq, values.len()), (7, 100));
/// ```
#[allow(clippy::too_many_arguments)]
pub fn encode_routed_batch(
    out: &mut BytesMut,
    sender: EndpointId,
    receiver: EndpointId,
    ttl: u16,
    topic: &Topic,
    origin: EndpointId,
    seq: u64,
    values: &[SharedData],
    max_body: usize,
) -> Result<usize, WireError> {
    let start = out.len();
    out.put_u32(0);
    put_header(out, sender, receiver, MessageType::RoutedBatch, ttl, topic);
    out.put_slice(origin.as_bytes());
    out.put_u64(seq);
    let count_at = out.len();
    out.put_u16(0);
    let body = out.len();
    let mut taken = 0usize;
    for v in values.iter().take(usize::from(u16::MAX)) {
        if taken > 0 && out.len() - body >= max_body {
            break;
        }
        encode_data(v, out);
        taken += 1;
    }
    out[count_at..count_at + 2].copy_from_slice(&(taken as u16).to_be_bytes());
    let Ok(len) = u32::try_from(out.len() - start - 4) else {
        out.truncate(start);
        return Err(WireError::TooLarge("frame"));
    };
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(taken)
}

/// Appends an envelope (frame body, no length prefix) from borrowed parts.
pub fn encode_envelope(
    out: &mut impl BufMut,
    sender: EndpointId,
    receiver: EndpointId,
    ttl: u16,
    topic: &Topic,
    payload: PayloadRef<'_>,
) {
    put_header(out, sender, receiver, payload.message_type(), ttl, topic);
    payload.encode(out);
}

impl Payload {
    /// This payload, borrowed.
    pub fn as_ref(&self) -> PayloadRef<'_> {
        match self {
            Payload::Data(d) => PayloadRef::Data(d),
            Payload::Command(c) => PayloadRef::Command(c),
            Payload::RoutingUpdate(f) => PayloadRef::RoutingUpdate(f),
            Payload::Ping(b) => PayloadRef::Ping(b),
            Payload::Pong(b) => PayloadRef::Pong(b),
            Payload::RoutedData { origin, seq, data } => PayloadRef::RoutedData {
                origin: *origin,
                seq: *seq,
                data,
            },
            Payload::RoutedCommand {
                origin,
                seq,
                command,
            } => PayloadRef::RoutedCommand {
                origin: *origin,
                seq: *seq,
                command,
            },
            Payload::LinkState(ls) => PayloadRef::LinkState(ls),
            Payload::RoutedBatch {
                origin,
                seq,
                values,
            } => PayloadRef::RoutedBatch {
                origin: *origin,
                seq: *seq,
                values,
            },
        }
    }

    /// The type byte this payload travels under.
    pub fn message_type(&self) -> MessageType {
        match self {
            Payload::Data(_) => MessageType::Data,
            Payload::Command(_) => MessageType::Command,
            Payload::RoutingUpdate(_) => MessageType::RoutingUpdate,
            Payload::Ping(_) => MessageType::Ping,
            Payload::Pong(_) => MessageType::Pong,
            Payload::RoutedData { .. } => MessageType::RoutedData,
            Payload::RoutedCommand { .. } => MessageType::RoutedCommand,
            Payload::LinkState(_) => MessageType::LinkState,
            Payload::RoutedBatch { .. } => MessageType::RoutedBatch,
        }
    }

    /// Appends the payload's encoding (without the envelope header).
    pub fn encode(&self, out: &mut impl BufMut) {
        self.as_ref().encode(out)
    }
}

/// The ping payload of a graceful unpeer: `BYE` and a 64-bit id. Broker copies the id in host
/// byte order; it is only ever echoed back, so we fix it as little-endian (x86's order).
///
/// ```
/// assert_eq!(&broker_wire::bye_token(1)[..], b"BYE\x01\0\0\0\0\0\0\0");
/// ```
pub fn bye_token(id: u64) -> Bytes {
    let mut b = Vec::with_capacity(11);
    b.extend_from_slice(b"BYE");
    b.extend_from_slice(&id.to_le_bytes());
    Bytes::from(b)
}

/// A decoded operational frame.
///
/// ```
/// use broker_wire::{Envelope, EndpointId, Limits, Payload, Topic};
/// use broker_data::{Data, SharedData};
/// let env = Envelope {
///     sender: EndpointId::from_bytes([1; 16]),
///     receiver: EndpointId::NIL,
///     ttl: 20,
///     topic: Topic::new("/test").unwrap(),
///     payload: Payload::Data(Data::Count(1)),
/// };
/// let bytes = env.to_bytes();
/// assert_eq!(Envelope::decode(&bytes, &Limits::default()).unwrap(), env);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The endpoint that first published the message.
    pub sender: EndpointId,
    /// The endpoint it is for, or nil for everyone subscribed.
    pub receiver: EndpointId,
    /// Hops the message may still take.
    pub ttl: u16,
    /// The topic.
    pub topic: Topic,
    /// The content.
    pub payload: Payload,
}

impl Envelope {
    /// Appends the frame body (no length prefix) to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        put_header(
            out,
            self.sender,
            self.receiver,
            self.payload.message_type(),
            self.ttl,
            &self.topic,
        );
        self.payload.encode(out);
    }

    /// The frame body as bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(HEADER_LEN + self.topic.as_bytes().len() + 16);
        self.encode(&mut out);
        Bytes::from(out)
    }

    /// Decodes a frame body, sharing `frame`'s buffer for long strings and opaque bytes.
    pub fn decode(frame: &Bytes, limits: &Limits) -> Result<Envelope, WireError> {
        let mut r = Reader::shared(frame);
        let h = read_header(&mut r)?;
        let payload = read_payload(&mut r, h.message_type, limits)?;
        r.finish()?;
        Ok(Envelope {
            sender: h.sender,
            receiver: h.receiver,
            ttl: h.ttl,
            topic: h.topic,
            payload,
        })
    }
}

struct Header {
    sender: EndpointId,
    receiver: EndpointId,
    message_type: MessageType,
    ttl: u16,
    topic: Topic,
}

fn read_header(r: &mut Reader<'_>) -> Result<Header, WireError> {
    let sender = EndpointId::from_bytes(r.array("envelope sender")?);
    let receiver = EndpointId::from_bytes(r.array("envelope receiver")?);
    let tag = r.u8("envelope type")?;
    let message_type = match MessageType::from_u8(tag) {
        Some(
            t @ (MessageType::Data
            | MessageType::Command
            | MessageType::RoutingUpdate
            | MessageType::Ping
            | MessageType::Pong
            | MessageType::RoutedData
            | MessageType::RoutedCommand
            | MessageType::LinkState
            | MessageType::RoutedBatch),
        ) => t,
        _ => return Err(WireError::UnknownMessageType(tag)),
    };
    let ttl = r.u16("envelope ttl")?;
    let topic_len = usize::from(r.u16("envelope topic length")?);
    if topic_len > r.remaining() {
        return Err(WireError::LengthBeyondInput {
            context: "topic",
            length: topic_len as u64,
            available: r.remaining(),
        });
    }
    let topic = Topic::from_byte_string(read_bytes(r, topic_len, "topic")?)?;
    Ok(Header {
        sender,
        receiver,
        message_type,
        ttl,
        topic,
    })
}

fn read_payload(
    r: &mut Reader<'_>,
    ty: MessageType,
    limits: &Limits,
) -> Result<Payload, WireError> {
    Ok(match ty {
        MessageType::Data => Payload::Data(read_data(r, limits, 0)?),
        MessageType::Command => Payload::Command(read_command(r, limits)?),
        MessageType::RoutingUpdate => Payload::RoutingUpdate(read_filter(r)?),
        MessageType::Ping => Payload::Ping(r.rest()),
        MessageType::Pong => Payload::Pong(r.rest()),
        MessageType::RoutedData => Payload::RoutedData {
            origin: EndpointId::from_bytes(r.array("origin")?),
            seq: r.u64("sequence number")?,
            data: read_data(r, limits, 0)?,
        },
        MessageType::RoutedCommand => Payload::RoutedCommand {
            origin: EndpointId::from_bytes(r.array("origin")?),
            seq: r.u64("sequence number")?,
            command: read_command(r, limits)?,
        },
        MessageType::LinkState => Payload::LinkState(LinkState::read(r)?),
        MessageType::RoutedBatch => {
            let origin = EndpointId::from_bytes(r.array("origin")?);
            let seq = r.u64("sequence number")?;
            let count = usize::from(r.u16("batch count")?);
            if count == 0 {
                return Err(WireError::EmptyBatch);
            }
            // Every value takes at least one byte: a count beyond the input is a lie, and
            // nothing is reserved for it.
            if count > r.remaining() {
                return Err(WireError::LengthBeyondInput {
                    context: "batch",
                    length: count as u64,
                    available: r.remaining(),
                });
            }
            let mut values = Vec::with_capacity(count);
            for _ in 0..count {
                values.push(SharedData::from(read_data(r, limits, 0)?));
            }
            Payload::RoutedBatch {
                origin,
                seq,
                values,
            }
        }
        other => return Err(WireError::UnknownMessageType(other as u8)),
    })
}

fn put_header(
    out: &mut impl BufMut,
    sender: EndpointId,
    receiver: EndpointId,
    ty: MessageType,
    ttl: u16,
    topic: &Topic,
) {
    out.put_slice(sender.as_bytes());
    out.put_slice(receiver.as_bytes());
    out.put_u8(ty as u8);
    out.put_u16(ttl);
    // `Topic` guarantees at most 65,535 bytes.
    out.put_u16(topic.as_bytes().len() as u16);
    out.put_slice(topic.as_bytes());
}

/// An operational frame with its header decoded and its payload still encoded: enough to route
/// or forward a message without decoding (or re-encoding) its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEnvelope {
    /// The endpoint that first published the message.
    pub sender: EndpointId,
    /// The endpoint it is for, or nil for everyone subscribed.
    pub receiver: EndpointId,
    /// The payload's type (data, command, routing_update, ping or pong).
    pub message_type: MessageType,
    /// Hops the message may still take.
    pub ttl: u16,
    /// The topic.
    pub topic: Topic,
    /// The encoded payload, sharing the frame's buffer.
    pub payload: Bytes,
}

impl RawEnvelope {
    /// Decodes the header of a frame body; the payload stays encoded.
    pub fn decode(frame: &Bytes) -> Result<RawEnvelope, WireError> {
        let mut r = Reader::shared(frame);
        let h = read_header(&mut r)?;
        Ok(RawEnvelope {
            sender: h.sender,
            receiver: h.receiver,
            message_type: h.message_type,
            ttl: h.ttl,
            topic: h.topic,
            payload: r.rest(),
        })
    }

    /// Decodes the payload.
    pub fn decode_payload(self, limits: &Limits) -> Result<Envelope, WireError> {
        let mut r = Reader::shared(&self.payload);
        let payload = read_payload(&mut r, self.message_type, limits)?;
        r.finish()?;
        Ok(Envelope {
            sender: self.sender,
            receiver: self.receiver,
            ttl: self.ttl,
            topic: self.topic,
            payload,
        })
    }

    /// Appends the frame body to `out`, payload bytes as they are.
    pub fn encode(&self, out: &mut impl BufMut) {
        put_header(
            out,
            self.sender,
            self.receiver,
            self.message_type,
            self.ttl,
            &self.topic,
        );
        out.put_slice(&self.payload);
    }
}
