//! Protocol versions 2 and 3: broker-rs's routing extension, selected by an originator only for
//! a peer whose id proves it is broker-rs (C++ Broker always gets plain version 1).
//!
//! A version-2 connection uses the same handshake and the same envelope header, with three more
//! message types, and version 3 adds a fourth (specified in `docs/protocol.md`):
//!
//! * `routed_data` (64) and `routed_command` (65): the v1 payload preceded by the message's
//!   origin (the endpoint that injected it into the routed domain, 16 bytes) and that origin's
//!   sequence number (`u64`), which every node uses to suppress duplicates;
//! * `link_state` (66): a link-state advertisement ([`LinkState`]), flooded so that every
//!   endpoint knows the topology and everyone's subscriptions;
//! * `routed_batch` (67, version 3): a run of values from one origin on one topic with
//!   consecutive sequence numbers, the header written once ([`crate::encode_routed_batch`]).

use bytes::BufMut;

use crate::handshake::{put_filter, read_filter, Filter};
use crate::reader::{put_varint, Reader};
use crate::{EndpointId, WireError};

/// The protocol version of the routing extension: 3, version 2 (origins, sequence numbers,
/// link states) with `routed_batch` frames. Endpoints of version 2 and 3 refuse each other's
/// `version_select` (no batch frame ever reaches an endpoint that cannot read it).
pub const ROUTED_PROTOCOL_VERSION: u8 = 3;

/// Message type of a run of values from one origin with consecutive sequence numbers.
pub const ROUTED_BATCH: u8 = 67;

/// Message type of data with origin and sequence number.
pub const ROUTED_DATA: u8 = 64;
/// Message type of a store command with origin and sequence number.
pub const ROUTED_COMMAND: u8 = 65;
/// Message type of a link-state advertisement.
pub const LINK_STATE: u8 = 66;

/// A link-state advertisement: what one endpoint says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkState {
    /// The endpoint this is about.
    pub origin: EndpointId,
    /// Grows when the endpoint restarts (a newer incarnation supersedes every older version).
    pub incarnation: u64,
    /// Grows with every change within an incarnation.
    pub version: u64,
    /// Whether the endpoint forwards messages for others (Broker's `forward` option).
    pub forwarding: bool,
    /// Its version-2 peers.
    pub neighbors: Vec<EndpointId>,
    /// Its own subscriptions.
    pub filter: Filter,
    /// Plain Broker (version 1) peers attached to it, with their filters.
    pub stubs: Vec<(EndpointId, Filter)>,
}

impl LinkState {
    /// Whether `self` supersedes `other` (same origin assumed).
    pub fn is_newer_than(&self, other: &LinkState) -> bool {
        (self.incarnation, self.version) > (other.incarnation, other.version)
    }

    /// Appends the payload encoding (after the envelope header).
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(self.origin.as_bytes());
        out.put_u64(self.incarnation);
        out.put_u64(self.version);
        out.put_u8(u8::from(self.forwarding));
        put_varint(out, self.neighbors.len() as u64);
        self.neighbors
            .iter()
            .for_each(|n| out.put_slice(n.as_bytes()));
        put_filter(out, &self.filter);
        put_varint(out, self.stubs.len() as u64);
        for (id, filter) in &self.stubs {
            out.put_slice(id.as_bytes());
            put_filter(out, filter);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<LinkState, WireError> {
        let origin = EndpointId::from_bytes(r.array("link state origin")?);
        let incarnation = r.u64("link state incarnation")?;
        let version = r.u64("link state version")?;
        let forwarding = match r.u8("link state forwarding")? {
            0 => false,
            1 => true,
            f => return Err(WireError::InvalidFlag(f)),
        };
        let n = r.length("link state neighbors", 16)?;
        let neighbors = (0..n)
            .map(|_| r.array("neighbor").map(EndpointId::from_bytes))
            .collect::<Result<_, _>>()?;
        let filter = read_filter(r)?;
        let n = r.length("link state stubs", 17)?;
        let mut stubs = Vec::with_capacity(n);
        for _ in 0..n {
            let id = EndpointId::from_bytes(r.array("stub")?);
            stubs.push((id, read_filter(r)?));
        }
        Ok(LinkState {
            origin,
            incarnation,
            version,
            forwarding,
            neighbors,
            filter,
            stubs,
        })
    }
}
