//! Values the API hands out: received messages, statuses, peer information.

use std::net::SocketAddr;
use std::sync::Arc;

use broker_data::Data;
use broker_wire::{EndpointId, ErrorCode, StatusCode, Topic};

/// A message received by a subscriber: a topic and a shared value.
#[derive(Debug, Clone, PartialEq)]
pub struct DataMessage {
    /// The topic it was published on.
    pub topic: Topic,
    /// The value (shared with every other local subscriber).
    pub data: Arc<Data>,
}

/// Which endpoint a status or error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Its id.
    pub id: EndpointId,
    /// Its network address, when it is a direct peer.
    pub address: Option<SocketAddr>,
}

/// What a status subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusEvent {
    /// A change in connectivity (only when the subscriber asked for statuses).
    Status {
        /// Broker's status code.
        code: StatusCode,
        /// The endpoint concerned.
        context: EndpointInfo,
        /// A human-readable explanation.
        message: String,
    },
    /// An error.
    Error {
        /// Broker's error code.
        code: ErrorCode,
        /// The endpoint concerned.
        context: EndpointInfo,
        /// A human-readable explanation.
        message: String,
    },
}

/// The state of a peering, as Broker names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Being set up.
    Initializing,
    /// Dialing.
    Connecting,
    /// Connected, handshake under way.
    Connected,
    /// Peered: messages flow.
    Peered,
    /// Gone.
    Disconnected,
    /// Lost; dialing again after the retry interval.
    Reconnecting,
}

/// One peer of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's id, once known.
    pub id: Option<EndpointId>,
    /// Its address.
    pub address: SocketAddr,
    /// Whether we dialed it (as opposed to it dialing us).
    pub outbound: bool,
    /// The state of the peering.
    pub state: PeerState,
}
