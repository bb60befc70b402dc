//! Store commands, as carried in `command` frames, in Broker's encoding.
//!
//! A command frame's payload is an [`InternalCommand`]: a sequence number, the sending and
//! receiving entities, then the command itself as a one-byte variant index and its fields.
//! Data fields use the bin v1 data format; optional fields are a `0`/`1` flag byte followed by
//! the value when present; entity ids are 16 bytes of endpoint id plus a `u64` object id.

use std::collections::BTreeMap;

use broker_data::{Data, DataType, Timespan};
use bytes::BufMut;

use crate::data::{encode_data, read_data};
use crate::reader::{put_varint, Reader};
use crate::{EndpointId, EntityId, Limits, WireError};

/// Sequence numbers of the replication channel.
pub type SequenceNumber = u64;

/// A store command with its channel header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalCommand {
    /// Sequence number in the replication channel (0 outside it).
    pub seq: SequenceNumber,
    /// The entity that sent the command.
    pub sender: EntityId,
    /// The entity it is for.
    pub receiver: EntityId,
    /// The command.
    pub content: Command,
}

/// The commands of Broker's store protocol, in Broker's variant order.
///
/// The first eight are mutations ("actions", the channel's events); `AttachWriter` is the
/// channel handshake, `AckClone` the handshake carrying the snapshot, `Keepalive` the heartbeat,
/// `RetransmitFailed` the producer's notice that a lost event cannot be resent, and
/// `CumulativeAck`/`Nack` the consumer's acknowledgements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Sets a value, with an optional expiry.
    Put {
        /// The key.
        key: Data,
        /// The value.
        value: Data,
        /// Time until the entry expires.
        expiry: Option<Timespan>,
        /// Who published the change.
        publisher: EntityId,
    },
    /// Sets a value only when the key is absent; answered by `PutUniqueResult`.
    PutUnique {
        /// The key.
        key: Data,
        /// The value.
        value: Data,
        /// Time until the entry expires.
        expiry: Option<Timespan>,
        /// Who asked (gets the result).
        who: EntityId,
        /// The request id of the asker.
        req_id: u64,
        /// Who published the change.
        publisher: EntityId,
    },
    /// The answer to `PutUnique`.
    PutUniqueResult {
        /// Whether the value was inserted.
        inserted: bool,
        /// Who asked.
        who: EntityId,
        /// The request id of the asker.
        req_id: u64,
        /// Who published the change.
        publisher: EntityId,
    },
    /// Removes a key.
    Erase {
        /// The key.
        key: Data,
        /// Who published the change.
        publisher: EntityId,
    },
    /// Removes a key because it expired.
    Expire {
        /// The key.
        key: Data,
        /// Who published the change.
        publisher: EntityId,
    },
    /// Adds to a value (increment, append, insert, push), creating it with `init_type` if absent.
    Add {
        /// The key.
        key: Data,
        /// The operand.
        value: Data,
        /// The type of the value to create when the key is absent.
        init_type: DataType,
        /// Time until the entry expires.
        expiry: Option<Timespan>,
        /// Who published the change.
        publisher: EntityId,
    },
    /// Subtracts from a value (decrement, remove, pop).
    Subtract {
        /// The key.
        key: Data,
        /// The operand.
        value: Data,
        /// Time until the entry expires.
        expiry: Option<Timespan>,
        /// Who published the change.
        publisher: EntityId,
    },
    /// Removes every key.
    Clear {
        /// Who published the change.
        publisher: EntityId,
    },
    /// Channel handshake from the producer: the first sequence number and the heartbeat interval.
    AttachWriter {
        /// The sequence number the channel starts after.
        offset: SequenceNumber,
        /// Heartbeat interval in ticks.
        heartbeat_interval: u16,
    },
    /// Channel heartbeat from the producer, with its latest sequence number.
    Keepalive {
        /// The latest sequence number.
        seq: SequenceNumber,
    },
    /// Consumer acknowledges everything up to `seq`.
    CumulativeAck {
        /// The acknowledged sequence number.
        seq: SequenceNumber,
    },
    /// Consumer asks for these sequence numbers again.
    Nack {
        /// The missing sequence numbers.
        seqs: Vec<SequenceNumber>,
    },
    /// Channel handshake answering a clone: offset, heartbeat interval and a full snapshot.
    AckClone {
        /// The sequence number the snapshot reflects.
        offset: SequenceNumber,
        /// Heartbeat interval in ticks.
        heartbeat_interval: u16,
        /// The store's content.
        state: BTreeMap<Data, Data>,
    },
    /// The producer cannot retransmit `seq` any more.
    RetransmitFailed {
        /// The lost sequence number.
        seq: SequenceNumber,
    },
}

impl Command {
    /// Broker's variant index of the command.
    pub fn index(&self) -> u8 {
        match self {
            Command::Put { .. } => 0,
            Command::PutUnique { .. } => 1,
            Command::PutUniqueResult { .. } => 2,
            Command::Erase { .. } => 3,
            Command::Expire { .. } => 4,
            Command::Add { .. } => 5,
            Command::Subtract { .. } => 6,
            Command::Clear { .. } => 7,
            Command::AttachWriter { .. } => 8,
            Command::Keepalive { .. } => 9,
            Command::CumulativeAck { .. } => 10,
            Command::Nack { .. } => 11,
            Command::AckClone { .. } => 12,
            Command::RetransmitFailed { .. } => 13,
        }
    }

    /// Broker's name of the command (`put`, `ack_clone`, …).
    pub fn name(&self) -> &'static str {
        [
            "put",
            "put_unique",
            "put_unique_result",
            "erase",
            "expire",
            "add",
            "subtract",
            "clear",
            "attach_writer",
            "keepalive",
            "cumulative_ack",
            "nack",
            "ack_clone",
            "retransmit_failed",
        ][usize::from(self.index())]
    }

    /// Whether this is a store mutation (an event of the replication channel).
    pub fn is_action(&self) -> bool {
        self.index() <= 7
    }
}

fn put_entity(out: &mut impl BufMut, e: &EntityId) {
    out.put_slice(e.endpoint.as_bytes());
    out.put_u64(e.object);
}

fn put_expiry(out: &mut impl BufMut, e: &Option<Timespan>) {
    match e {
        None => out.put_u8(0),
        Some(t) => {
            out.put_u8(1);
            out.put_i64(t.as_nanos());
        }
    }
}

impl InternalCommand {
    /// Appends the command's encoding to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u64(self.seq);
        put_entity(out, &self.sender);
        put_entity(out, &self.receiver);
        out.put_u8(self.content.index());
        match &self.content {
            Command::Put {
                key,
                value,
                expiry,
                publisher,
            }
            | Command::Subtract {
                key,
                value,
                expiry,
                publisher,
            } => {
                encode_data(key, out);
                encode_data(value, out);
                put_expiry(out, expiry);
                put_entity(out, publisher);
            }
            Command::PutUnique {
                key,
                value,
                expiry,
                who,
                req_id,
                publisher,
            } => {
                encode_data(key, out);
                encode_data(value, out);
                put_expiry(out, expiry);
                put_entity(out, who);
                out.put_u64(*req_id);
                put_entity(out, publisher);
            }
            Command::PutUniqueResult {
                inserted,
                who,
                req_id,
                publisher,
            } => {
                out.put_u8(u8::from(*inserted));
                put_entity(out, who);
                out.put_u64(*req_id);
                put_entity(out, publisher);
            }
            Command::Erase { key, publisher } | Command::Expire { key, publisher } => {
                encode_data(key, out);
                put_entity(out, publisher);
            }
            Command::Add {
                key,
                value,
                init_type,
                expiry,
                publisher,
            } => {
                encode_data(key, out);
                encode_data(value, out);
                out.put_u8(*init_type as u8);
                put_expiry(out, expiry);
                put_entity(out, publisher);
            }
            Command::Clear { publisher } => put_entity(out, publisher),
            Command::AttachWriter {
                offset,
                heartbeat_interval,
            } => {
                out.put_u64(*offset);
                out.put_u16(*heartbeat_interval);
            }
            Command::Keepalive { seq }
            | Command::CumulativeAck { seq }
            | Command::RetransmitFailed { seq } => out.put_u64(*seq),
            Command::Nack { seqs } => {
                put_varint(out, seqs.len() as u64);
                seqs.iter().for_each(|s| out.put_u64(*s));
            }
            Command::AckClone {
                offset,
                heartbeat_interval,
                state,
            } => {
                out.put_u64(*offset);
                out.put_u16(*heartbeat_interval);
                put_varint(out, state.len() as u64);
                for (k, v) in state {
                    encode_data(k, out);
                    encode_data(v, out);
                }
            }
        }
    }

    /// Decodes a command payload; trailing bytes are an error.
    pub fn decode(payload: &[u8], limits: &Limits) -> Result<InternalCommand, WireError> {
        let mut r = Reader::new(payload);
        let cmd = read_command(&mut r, limits)?;
        r.finish()?;
        Ok(cmd)
    }
}

fn entity(r: &mut Reader<'_>) -> Result<EntityId, WireError> {
    Ok(EntityId {
        endpoint: EndpointId::from_bytes(r.array("entity id")?),
        object: r.u64("entity id")?,
    })
}

fn expiry(r: &mut Reader<'_>) -> Result<Option<Timespan>, WireError> {
    match r.u8("expiry flag")? {
        0 => Ok(None),
        1 => Ok(Some(Timespan::from_nanos(r.u64("expiry")? as i64))),
        f => Err(WireError::InvalidFlag(f)),
    }
}

pub(crate) fn read_command(
    r: &mut Reader<'_>,
    limits: &Limits,
) -> Result<InternalCommand, WireError> {
    let seq = r.u64("command sequence number")?;
    let sender = entity(r)?;
    let receiver = entity(r)?;
    let index = r.u8("command type")?;
    let data = |r: &mut Reader<'_>| read_data(r, limits, 0);
    let content = match index {
        0 | 6 => {
            let (key, value, expiry, publisher) = (data(r)?, data(r)?, expiry(r)?, entity(r)?);
            if index == 0 {
                Command::Put {
                    key,
                    value,
                    expiry,
                    publisher,
                }
            } else {
                Command::Subtract {
                    key,
                    value,
                    expiry,
                    publisher,
                }
            }
        }
        1 => Command::PutUnique {
            key: data(r)?,
            value: data(r)?,
            expiry: expiry(r)?,
            who: entity(r)?,
            req_id: r.u64("request id")?,
            publisher: entity(r)?,
        },
        2 => Command::PutUniqueResult {
            inserted: r.u8("inserted")? != 0,
            who: entity(r)?,
            req_id: r.u64("request id")?,
            publisher: entity(r)?,
        },
        3 => Command::Erase {
            key: data(r)?,
            publisher: entity(r)?,
        },
        4 => Command::Expire {
            key: data(r)?,
            publisher: entity(r)?,
        },
        5 => {
            let key = data(r)?;
            let value = data(r)?;
            let tag = r.u8("init type")?;
            Command::Add {
                key,
                value,
                init_type: DataType::from_tag(tag).ok_or(WireError::UnknownDataTag(tag))?,
                expiry: expiry(r)?,
                publisher: entity(r)?,
            }
        }
        7 => Command::Clear {
            publisher: entity(r)?,
        },
        8 => Command::AttachWriter {
            offset: r.u64("offset")?,
            heartbeat_interval: r.u16("heartbeat interval")?,
        },
        9 => Command::Keepalive {
            seq: r.u64("sequence number")?,
        },
        10 => Command::CumulativeAck {
            seq: r.u64("sequence number")?,
        },
        11 => {
            let n = r.length("nack", 8)?;
            let seqs = (0..n)
                .map(|_| r.u64("sequence number"))
                .collect::<Result<_, _>>()?;
            Command::Nack { seqs }
        }
        12 => {
            let offset = r.u64("offset")?;
            let heartbeat_interval = r.u16("heartbeat interval")?;
            let n = r.length("snapshot", 2)?;
            let mut state = BTreeMap::new();
            for _ in 0..n {
                let k = data(r)?;
                let v = data(r)?;
                if state.insert(k, v).is_some() {
                    return Err(WireError::Duplicate("key", "snapshot"));
                }
            }
            Command::AckClone {
                offset,
                heartbeat_interval,
                state,
            }
        }
        13 => Command::RetransmitFailed {
            seq: r.u64("sequence number")?,
        },
        other => return Err(WireError::UnknownCommand(other)),
    };
    Ok(InternalCommand {
        seq,
        sender,
        receiver,
        content,
    })
}
