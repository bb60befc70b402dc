//! The typed messages the router takes and emits. Values are shared ([`SharedData`], small
//! ones in place and containers behind a reference count), so delivery inside a process never
//! serializes; the facade encodes for the wire.

use std::sync::Arc;

use broker_data::SharedData;
use broker_wire::{EndpointId, InternalCommand, LinkState, Topic};
use bytes::Bytes;

/// What a publication carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// A published value.
    Data(SharedData),
    /// A store command.
    Command(Arc<InternalCommand>),
    /// Values published one after the other on the same topic, routed as one: a publication
    /// with a batch of `n` values stands for `n` publications with sequence numbers `seq`,
    /// `seq + 1`, …, `seq + n - 1` (and is `n` messages on the wire, to any kind of peer). A
    /// router never makes an empty batch and ignores one it is given.
    Batch(Arc<Vec<SharedData>>),
}

impl Content {
    /// How many publications this content stands for (a batch's length, else one).
    pub fn count(&self) -> usize {
        match self {
            Content::Batch(values) => values.len(),
            _ => 1,
        }
    }
}

/// A published message on its way through the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The endpoint that published it (Broker's envelope sender).
    pub sender: EndpointId,
    /// The one endpoint it is for, or nil for every subscriber of the topic.
    pub receiver: EndpointId,
    /// The endpoint that brought it into the routed domain (usually the sender; the accepting
    /// endpoint for messages from plain Broker peers).
    pub origin: EndpointId,
    /// The origin's sequence number (0 on plain Broker connections).
    pub seq: u64,
    /// Hops it may still take.
    pub ttl: u16,
    /// Its topic.
    pub topic: Topic,
    /// Its content.
    pub content: Content,
}

impl Publication {
    /// How many publications this one stands for (see [`Content::Batch`]).
    pub fn count(&self) -> usize {
        self.content.count()
    }
}

/// A message between the router and one peer.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Data or a store command.
    Publication(Publication),
    /// A plain Broker peer's (or our) subscription filter.
    RoutingUpdate(Arc<Vec<Topic>>),
    /// A link-state advertisement (routed peers only).
    LinkState(Arc<LinkState>),
    /// A ping, to be answered with a pong carrying the same bytes.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
}

impl Message {
    /// How many messages this stands for on the wire (a batch's length, else one): what a
    /// peer's buffer counts.
    pub fn count(&self) -> usize {
        match self {
            Message::Publication(p) => p.count(),
            _ => 1,
        }
    }
}

/// How a peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// Plain Broker, protocol version 1 (C++ Broker, Zeek): filters in routing updates, no
    /// origins or sequence numbers. It is a leaf of the routed domain.
    Broker,
    /// broker-rs, protocol version 2: link states, origins and sequence numbers.
    Routed,
}
