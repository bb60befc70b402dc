//! The heart of a Broker endpoint: a deterministic state machine that routes messages by topic
//! prefix over any topology, with no I/O, no tokio and no clock of its own.
//!
//! The facade (`broker`) drives a [`Router`] over sockets: it reports peers coming and going,
//! messages arriving, subscriptions and publications, always with the current time, and carries
//! out what the router asks for — messages to send ([`Router::poll_transmit`]), deliveries and
//! statuses ([`Router::poll_event`]), and when to wake it ([`Router::poll_timeout`]). Values
//! travel as shared `Arc`s, so delivery inside a process never serializes; the facade encodes
//! for the wire with `broker-wire`.
//!
//! Between broker-rs endpoints (protocol version 2) routing is link-state: every endpoint knows
//! the topology and every subscription, forwards along the shortest-path tree of each message's
//! origin, and drops duplicates by the origin's sequence number, so each subscriber gets each
//! message exactly once in any connected topology — rings, meshes, redundant links — even
//! through endpoints that do not subscribe themselves. Towards C++ Broker (version 1) an endpoint
//! behaves exactly like Broker. `docs/routing.md` explains the mechanism and its costs.
//!
//! This crate knows nothing about sockets, TLS, threads or wall-clock time.

#![forbid(unsafe_code)]

mod bitset;
mod fxhash;
mod message;
mod prefix;
mod router;
mod topology;

pub use fxhash::{FxBuild, FxHashMap, FxHasher};
pub use message::{Content, Message, PeerKind, Publication};
pub use prefix::PrefixMap;
pub use router::{Config, Event, OverflowPolicy, PeerLoss, PeerStats, Router, Stats, SubscriberId};
