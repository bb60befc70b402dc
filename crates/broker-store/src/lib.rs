//! A sans-IO engine for Broker's data stores: the [`Master`] that owns a store's
//! [`Backend`](broker_backend::Backend) and the [`Clone`](struct@Clone) that mirrors it on another endpoint.
//!
//! Neither does any I/O or reads a clock. The caller feeds them local requests, store commands
//! that arrived from the network and the current time, and drains [`Output`]s: commands to
//! publish (in Broker's encoding from `broker-wire`, on Broker's topics `<name>/<$>/data/master`
//! and `<name>/<$>/data/clone`), store events for local subscribers, answers to requests and
//! failures to report. `poll_timeout` says when to call `handle_timeout` next. This makes the
//! replication protocol testable on virtual time (see `tests/simulation.rs`), and lets the
//! `broker` facade run each store as one task.
//!
//! Replication is Broker's: the master is the producer of a reliable [`channel`] whose
//! consumers are the clones (a clone joins with a NACK for 0 and gets the whole store in its
//! handshake); each clone is in turn the producer of a channel to the master for its writes,
//! which become visible at the clone only when the master's update comes back.
//!
//! ```
//! use broker_backend_memory::MemoryBackend;
//! use broker_data::{Data, Timestamp};
//! use broker_store::{Master, Output, Query, StoreConfig};
//! use broker_wire::{Command, EndpointId, EntityId};
//!
//! let id = EntityId { endpoint: EndpointId::from_bytes([1; 16]), object: 1 };
//! let now = Timestamp::from_nanos(0);
//! let mut m = Master::new("users", id, MemoryBackend::new(), StoreConfig::default(), now).unwrap();
//! m.mutate(now, Command::Put { key: "alice".into(), value: Data::Count(1), expiry: None,
//!                              publisher: id });
//! m.query(now, 7, Query::Get("alice".into()));
//! let answer = std::iter::from_fn(|| m.poll_output()).find_map(|o| match o {
//!     Output::Response { id, result } => Some((id, result)),
//!     _ => None,
//! });
//! assert_eq!(answer, Some((7, Ok(Data::Count(1)))));
//! ```

#![forbid(unsafe_code)]
// Conditions with side effects (removals) read better inside the arm than in a guard.
#![allow(clippy::collapsible_match)]

use broker_backend::BackendError;
use broker_data::{Data, Timespan};
use broker_wire::{EndpointId, ErrorCode, InternalCommand, Topic};

pub mod channel;
mod clone;
mod events;
mod master;

pub use clone::{Clone, CloneConfig};
pub use master::Master;

/// The id a caller gives a request, returned with its answer.
pub type RequestId = u64;

/// A failed store operation: Broker's error code and a reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
#[non_exhaustive]
pub struct StoreError {
    /// Broker's error code (`no_such_key`, `type_clash`, `stale_data`, `backend_failure`, …).
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

impl StoreError {
    /// An error with a code and a reason.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        StoreError {
            code,
            message: message.into(),
        }
    }
}

impl From<BackendError> for StoreError {
    fn from(e: BackendError) -> Self {
        let code = match &e {
            BackendError::NoSuchKey => ErrorCode::NoSuchKey,
            BackendError::TypeClash(_) => ErrorCode::TypeClash,
            BackendError::InvalidData(_) => ErrorCode::InvalidData,
            // (Any failure a later backend adds is the backend's.)
            _ => ErrorCode::BackendFailure,
        };
        StoreError::new(code, e.to_string())
    }
}

/// A read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The value at a key (`no_such_key` when absent).
    Get(Data),
    /// Whether a key exists (a boolean).
    Exists(Data),
    /// `get_index_from_value`: an element of the container at a key.
    GetIndex(Data, Data),
    /// Every key, as a set.
    Keys,
}

/// Something the engine wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Publish a store command on `topic`: to the one endpoint `to`, or to every subscriber.
    Command {
        /// `<name>/<$>/data/master` or `<name>/<$>/data/clone`.
        topic: Topic,
        /// The receiving endpoint of a unicast, none for a broadcast.
        to: Option<EndpointId>,
        /// The command (shared: a broadcast is kept for retransmission).
        command: std::sync::Arc<InternalCommand>,
    },
    /// A store event (insert, update, erase, expire) in Broker's layout, for local subscribers
    /// of [`events_topic`].
    Event(Data),
    /// The answer to a request.
    Response {
        /// The request's id.
        id: RequestId,
        /// The value or the error.
        result: Result<Data, StoreError>,
    },
    /// A mutation failed or a problem arose that no request is waiting for (reported as an
    /// error status by the facade).
    Failure(StoreError),
}

/// Timing of a store (both frontends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// How often the channel ticks (Broker: 100 ms).
    pub tick_interval: Timespan,
    /// Channel timing in ticks.
    pub timing: channel::Timing,
    /// The largest key and value (together), and the largest snapshot, the store replicates:
    /// a peer refuses frames over 16 MiB (and drops the connection), so a mutation or a
    /// snapshot that would not fit fails with an error instead of reaching the network.
    pub max_message_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            tick_interval: Timespan::from_nanos(100_000_000),
            timing: channel::Timing::default(),
            max_message_bytes: 16 * 1024 * 1024 - 64 * 1024,
        }
    }
}

/// The topic a store's master listens on: `<name>/<$>/data/master`.
pub fn master_topic(name: &str) -> Topic {
    Topic::new(format!("{name}/<$>/data/master")).unwrap_or_default()
}

/// The topic a store's clones listen on: `<name>/<$>/data/clone`.
pub fn clone_topic(name: &str) -> Topic {
    Topic::new(format!("{name}/<$>/data/clone")).unwrap_or_default()
}

/// The topic of a store's events: `<$>/local/data/store-events/<name>`.
pub fn events_topic(name: &str) -> Topic {
    Topic::new(format!("<$>/local/data/store-events/{name}")).unwrap_or_default()
}

/// The prefix of every store's event topic.
pub const EVENTS_PREFIX: &str = "<$>/local/data/store-events/";
