//! busrt 0.5's wire protocol: the handshake, client → server frames (read incrementally, with
//! a size limit), and server → client frames (written once, shared by every receiver).
//! See `../shared/reference/busrt-protocol.md` §1 and `docs/bus.md`.

use bytes::{BufMut, Bytes, BytesMut};

/// The greeting's first byte.
pub const GREETING: u8 = 0xEB;
/// The protocol version the greeting carries (u16, little-endian).
pub const PROTOCOL_VERSION: u16 = 1;
/// The server's greeting: `EB 01 00`.
pub const HELLO: [u8; 3] = [GREETING, 1, 0];
/// A client's ping: a 9-byte header with flags 0.
pub const PING: [u8; 9] = [0; 9];
/// The server's keepalive: a NOP frame, always six zero bytes.
pub const NOP: [u8; 6] = [0; 6];

/// busrt's result codes (ACK byte, handshake byte).
pub mod code {
    /// Success.
    pub const OK: u8 = 0x01;
    /// The target (or a secondary's primary) is not registered.
    pub const NOT_REGISTERED: u8 = 0x71;
    /// Malformed data (an empty name, a name starting with `.`).
    pub const DATA: u8 = 0x72;
    /// An I/O error.
    pub const IO: u8 = 0x73;
    /// Some other error.
    pub const OTHER: u8 = 0x74;
    /// The protocol version is not supported.
    pub const NOT_SUPPORTED: u8 = 0x75;
    /// The name is taken.
    pub const BUSY: u8 = 0x76;
    /// The target's queue was full: not delivered.
    pub const NOT_DELIVERED: u8 = 0x77;
    /// A timeout (never sent in an ACK: clients map it to `Other`).
    pub const TIMEOUT: u8 = 0x78;
    /// Denied by the access rules.
    pub const ACCESS: u8 = 0x79;
}

/// Operations of client → server frames (the low six bits of the flags byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Only as a ping (flags 0).
    Nop = 0x00,
    /// `TOPIC \0 PAYLOAD` to the topic's subscribers.
    Publish = 0x01,
    /// `T1 \0 T2 \0 …`.
    Subscribe = 0x02,
    /// Same layout.
    Unsubscribe = 0x03,
    /// Same layout: topics whose publications this client does not want.
    Exclude = 0x04,
    /// Same layout.
    Unexclude = 0x05,
    /// `TOPIC \0 RECEIVER \0 PAYLOAD`: to the receiver's instances subscribed to the topic.
    PublishFor = 0x06,
    /// `TARGET \0 PAYLOAD`, one client by its exact name (RPC travels in these).
    Message = 0x12,
    /// `MASK \0 PAYLOAD`, every client whose name the mask matches.
    Broadcast = 0x13,
}

impl Op {
    /// The operation of a flags byte's low six bits.
    pub fn from_bits(b: u8) -> Option<Op> {
        Some(match b & 0x3F {
            0x00 => Op::Nop,
            0x01 => Op::Publish,
            0x02 => Op::Subscribe,
            0x03 => Op::Unsubscribe,
            0x04 => Op::Exclude,
            0x05 => Op::Unexclude,
            0x06 => Op::PublishFor,
            0x12 => Op::Message,
            0x13 => Op::Broadcast,
            _ => return None,
        })
    }
}

/// Quality of service: whether the sender wants an ACK, and whether deliveries are flushed at
/// once (realtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Qos {
    /// No ACK, buffered.
    #[default]
    No = 0,
    /// ACK once routed.
    Processed = 1,
    /// No ACK, flushed at once.
    Realtime = 2,
    /// ACK, flushed at once.
    RealtimeProcessed = 3,
}

impl Qos {
    /// The QoS of a flags byte's two high bits.
    pub fn from_flags(flags: u8) -> Qos {
        match flags >> 6 {
            0 => Qos::No,
            1 => Qos::Processed,
            2 => Qos::Realtime,
            _ => Qos::RealtimeProcessed,
        }
    }

    /// Whether the sender waits for an ACK.
    pub fn needs_ack(self) -> bool {
        self as u8 & 1 != 0
    }

    /// Whether deliveries are flushed at once (and say so in their byte 5).
    pub fn is_realtime(self) -> bool {
        self as u8 & 2 != 0
    }
}

/// A frame from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    /// The client's counter, copied into the ACK.
    pub op_id: u32,
    /// What to do.
    pub op: Op,
    /// Its quality of service.
    pub qos: Qos,
    /// The body.
    pub body: Bytes,
}

impl ClientFrame {
    /// Encodes the frame as a client sends it (for tests, benchmarks and our own clients).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.op_id);
        out.put_u8(self.op as u8 | ((self.qos as u8) << 6));
        out.put_u32_le(self.body.len() as u32);
        out.put_slice(&self.body);
    }
}

/// Why a client's bytes were refused (the connection is closed, as busrt does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The low six bits of the flags name no operation.
    UnknownOp(u8),
    /// The declared body is larger than the limit.
    TooLarge {
        /// What the header declared.
        declared: u32,
        /// The limit.
        limit: u32,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::UnknownOp(b) => write!(f, "unknown operation 0x{b:02x}"),
            FrameError::TooLarge { declared, limit } => {
                write!(
                    f,
                    "a frame of {declared} bytes is over the limit of {limit}"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads client frames out of a byte stream. Memory is never reserved for a declared length:
/// a body grows as its bytes arrive, and a header beyond the limit is refused at once.
#[derive(Debug)]
pub struct FrameReader {
    limit: u32,
}

/// What [`FrameReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A frame.
    Frame(ClientFrame),
    /// A ping (any header with flags 0; it has no body whatever its length says).
    Ping,
    /// More bytes are needed.
    NeedMore,
}

impl FrameReader {
    /// A reader that refuses bodies over `limit` bytes.
    pub fn new(limit: u32) -> FrameReader {
        FrameReader { limit }
    }

    /// Takes the next frame out of `buf` (which keeps what is left).
    pub fn next(&self, buf: &mut BytesMut) -> Result<Read, FrameError> {
        if buf.len() < 9 {
            return Ok(Read::NeedMore);
        }
        let flags = buf[4];
        if flags == 0 {
            let _ = buf.split_to(9);
            return Ok(Read::Ping);
        }
        let op = Op::from_bits(flags).ok_or(FrameError::UnknownOp(flags & 0x3F))?;
        let len = u32::from_le_bytes([buf[5], buf[6], buf[7], buf[8]]);
        if len > self.limit {
            return Err(FrameError::TooLarge {
                declared: len,
                limit: self.limit,
            });
        }
        if buf.len() < 9 + len as usize {
            return Ok(Read::NeedMore);
        }
        let op_id = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let mut frame = buf.split_to(9 + len as usize);
        let body = frame.split_off(9).freeze();
        Ok(Read::Frame(ClientFrame {
            op_id,
            op,
            qos: Qos::from_flags(flags),
            body,
        }))
    }
}

/// Kinds of server → client frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A keepalive.
    Nop = 0x00,
    /// A publication (also `publish_for`): `SENDER \0 TOPIC \0 PAYLOAD`.
    Publish = 0x01,
    /// A direct message: `SENDER \0 PAYLOAD`.
    Message = 0x12,
    /// A broadcast: `SENDER \0 PAYLOAD`.
    Broadcast = 0x13,
    /// An acknowledgement: `FE op_id:u32 code`.
    Ack = 0xFE,
}

/// Encodes a delivery once (every receiver shares the bytes): the 6-byte header, then
/// `SENDER \0 [TOPIC \0] PAYLOAD`.
pub fn delivery(
    kind: Kind,
    realtime: bool,
    sender: &str,
    topic: Option<&str>,
    payload: &[u8],
) -> Bytes {
    let len = sender.len() + 1 + topic.map_or(0, |t| t.len() + 1) + payload.len();
    let mut out = BytesMut::with_capacity(6 + len);
    delivery_into(&mut out, kind, realtime, sender, topic, payload);
    out.freeze()
}

/// [`delivery`], appended to `out` (how a run of frames is laid back to back).
pub fn delivery_into(
    out: &mut BytesMut,
    kind: Kind,
    realtime: bool,
    sender: &str,
    topic: Option<&str>,
    payload: &[u8],
) {
    let len = sender.len() + 1 + topic.map_or(0, |t| t.len() + 1) + payload.len();
    out.reserve(6 + len);
    out.put_u8(kind as u8);
    out.put_u32_le(len as u32);
    out.put_u8(realtime as u8);
    out.put_slice(sender.as_bytes());
    out.put_u8(0);
    if let Some(t) = topic {
        out.put_slice(t.as_bytes());
        out.put_u8(0);
    }
    out.put_slice(payload);
}

/// The length of the delivery frame that `bytes` starts with (header included), if all of
/// it is there.
pub fn first_frame_len(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?) as usize;
    let total = 6usize.checked_add(len)?;
    (bytes.len() >= total).then_some(total)
}

/// An ACK frame.
pub fn ack(op_id: u32, code: u8) -> [u8; 6] {
    let id = op_id.to_le_bytes();
    [Kind::Ack as u8, id[0], id[1], id[2], id[3], code]
}

/// A delivered frame, as a receiver reads it: the shared frame itself, with the places of its
/// parts (nothing is copied; in-process clients read the bytes every receiver shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    frame: Bytes,
    kind: Kind,
    sender_end: usize,
    topic: Option<(usize, usize)>,
    payload_start: usize,
}

impl Delivery {
    /// Parses a frame made by [`delivery`] (none for malformed bytes).
    pub fn parse(frame: Bytes) -> Option<Delivery> {
        let d = Delivery::locate(frame)?;
        std::str::from_utf8(&d.frame[6..d.sender_end]).ok()?;
        if let Some((a, b)) = d.topic {
            std::str::from_utf8(&d.frame[a..b]).ok()?;
        }
        Some(d)
    }

    /// [`parse`](Self::parse) for a frame the bus made itself from strings (an in-process
    /// client's delivery): the names are not checked again for UTF-8 (the accessors still
    /// would not return a malformed string).
    pub(crate) fn parse_own(frame: Bytes) -> Option<Delivery> {
        Delivery::locate(frame)
    }

    fn locate(frame: Bytes) -> Option<Delivery> {
        if frame.len() < 6 {
            return None;
        }
        let kind = match frame[0] {
            0x01 => Kind::Publish,
            0x12 => Kind::Message,
            0x13 => Kind::Broadcast,
            _ => return None,
        };
        let nul = |from: usize| frame[from..].iter().position(|&b| b == 0).map(|i| from + i);
        let sender_end = nul(6)?;
        let (topic, payload_start) = if kind == Kind::Publish {
            let end = nul(sender_end + 1)?;
            (Some((sender_end + 1, end)), end + 1)
        } else {
            (None, sender_end + 1)
        };
        Some(Delivery {
            frame,
            kind,
            sender_end,
            topic,
            payload_start,
        })
    }

    /// Its kind (publish, message or broadcast).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether its sender asked for realtime delivery.
    pub fn realtime(&self) -> bool {
        self.frame[5] != 0
    }

    /// The sender's full name.
    pub fn sender(&self) -> &str {
        std::str::from_utf8(&self.frame[6..self.sender_end]).unwrap_or_default()
    }

    /// The sender's primary name (without `%%N`).
    pub fn primary_sender(&self) -> &str {
        let s = self.sender();
        s.split_once("%%").map_or(s, |(p, _)| p)
    }

    /// The topic of a publication.
    pub fn topic(&self) -> Option<&str> {
        self.topic
            .map(|(a, b)| std::str::from_utf8(&self.frame[a..b]).unwrap_or_default())
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.frame[self.payload_start..]
    }

    /// The payload as shared bytes (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        self.frame.slice(self.payload_start..)
    }
}

/// Splits `body` at its first NUL: the string before it (UTF-8) and the rest.
pub fn split_name(body: &Bytes) -> Option<(&str, Bytes)> {
    let at = body.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&body[..at]).ok()?;
    Some((name, body.slice(at + 1..)))
}

/// A client frame's body: `parts` joined by NULs (`TARGET \0 PAYLOAD`, `T1 \0 T2`, ...).
pub fn body(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&0u8)
}

/// The topics of a SUBSCRIBE-like body: split on NUL; an empty body is one topic `""`.
pub fn topics(body: &[u8]) -> Option<Vec<&str>> {
    body.split(|&b| b == 0)
        .map(|t| std::str::from_utf8(t).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn read_one(bytes: &[u8]) -> Read {
        let mut buf = BytesMut::from(bytes);
        FrameReader::new(1 << 20).next(&mut buf).unwrap()
    }

    /// The spec's vectors (busrt-protocol.md §1.4).
    #[test]
    fn the_specs_vectors() {
        let Read::Frame(f) = read_one(&hex("01 00 00 00 52 04 00 00 00 62 00 68 69")) else {
            panic!()
        };
        assert_eq!((f.op_id, f.op, f.qos), (1, Op::Message, Qos::Processed));
        assert_eq!(&f.body[..], b"b\0hi");
        let d = delivery(Kind::Message, false, "a", None, b"hi");
        assert_eq!(&d[..], &hex("12 04 00 00 00 00 61 00 68 69")[..]);
        assert_eq!(ack(1, code::OK), [0xFE, 1, 0, 0, 0, 1]);
        let Read::Frame(f) = read_one(&hex("02 00 00 00 01 06 00 00 00 74 2F 78 00 68 69")) else {
            panic!()
        };
        assert_eq!((f.op_id, f.op, f.qos), (2, Op::Publish, Qos::No));
        let d = delivery(Kind::Publish, false, "a", Some("t/x"), b"hi");
        assert_eq!(
            &d[..],
            &hex("01 08 00 00 00 00 61 00 74 2F 78 00 68 69")[..]
        );
        let Read::Frame(f) = read_one(&hex("03 00 00 00 42 05 00 00 00 74 2F 23 00 75")) else {
            panic!()
        };
        assert_eq!((f.op, f.qos), (Op::Subscribe, Qos::Processed));
        assert_eq!(topics(&f.body).unwrap(), ["t/#", "u"]);
        let Read::Frame(f) = read_one(&hex("01 00 00 00 D2 04 00 00 00 62 00 68 69")) else {
            panic!()
        };
        assert_eq!(f.qos, Qos::RealtimeProcessed);
        assert!(f.qos.is_realtime() && f.qos.needs_ack());
        assert_eq!(read_one(&PING), Read::Ping);
        assert_eq!(NOP, [0u8; 6]);
    }

    #[test]
    fn any_header_with_flags_zero_is_a_ping_without_a_body() {
        let mut buf =
            BytesMut::from(&hex("07 00 00 00 00 ff ff ff ff 01 00 00 00 01 00 00 00 00")[..]);
        let r = FrameReader::new(16);
        assert_eq!(r.next(&mut buf).unwrap(), Read::Ping);
        let Read::Frame(f) = r.next(&mut buf).unwrap() else {
            panic!()
        };
        assert_eq!((f.op_id, f.op, f.body.len()), (1, Op::Publish, 0));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_any_body() {
        let mut buf = BytesMut::from(&hex("01 00 00 00 01 00 00 00 10")[..]);
        assert_eq!(
            FrameReader::new(1024).next(&mut buf),
            Err(FrameError::TooLarge {
                declared: 0x1000_0000,
                limit: 1024
            })
        );
        let mut buf = BytesMut::from(&hex("01 00 00 00 3f 00 00 00 00")[..]);
        assert_eq!(
            FrameReader::new(1024).next(&mut buf),
            Err(FrameError::UnknownOp(0x3f))
        );
    }

    #[test]
    fn frames_arrive_in_pieces() {
        let whole = hex("02 00 00 00 01 06 00 00 00 74 2F 78 00 68 69");
        let r = FrameReader::new(64);
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            buf.put_u8(*b);
            let got = r.next(&mut buf).unwrap();
            if i + 1 < whole.len() {
                assert_eq!(got, Read::NeedMore);
            } else {
                assert!(matches!(got, Read::Frame(_)));
            }
        }
    }

    #[test]
    fn deliveries_parse_back() {
        let d = delivery(Kind::Publish, true, "a%%1", Some("x/y"), b"\0data");
        let p = Delivery::parse(d.clone()).unwrap();
        assert_eq!((p.sender(), p.primary_sender()), ("a%%1", "a"));
        assert_eq!(p.topic(), Some("x/y"));
        assert_eq!(p.payload(), b"\0data");
        assert!(p.realtime());
        assert_eq!(p.kind(), Kind::Publish);
        assert!(Delivery::parse(Bytes::from_static(b"\x12\x01\0\0\0\0x")).is_none());
        assert_eq!(topics(b"").unwrap(), [""]);
    }
}
