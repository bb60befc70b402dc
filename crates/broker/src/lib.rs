//! Broker endpoints on real sockets: the crate users depend on.
//!
//! An [`Endpoint`] peers with other endpoints over TCP using Broker's native protocol
//! (`broker-wire`), byte-compatible with C++ Broker (Zeek 5 and later) and negotiating
//! broker-rs's routing extension with broker-rs peers; it publishes and subscribes by topic
//! prefix through the sans-IO router (`broker-routing`), which one core task per endpoint
//! drives with tokio.
//!
//! Data stores ride on the same peerings: [`Endpoint::attach_master`] (memory, SQLite or, with
//! the `rocksdb` feature, RocksDB) and [`Endpoint::attach_clone`] give a [`Store`] with every
//! mutation of Broker's manual, blocking and async reads, and a [`StoreProxy`] for event loops.
//!
//! This crate re-exports the data model (`broker_data`) as [`data`].

#![forbid(unsafe_code)]

mod cmd;
mod config;
mod connection;
mod core;
mod counter;
mod endpoint;
mod error;
mod governor;
mod handshake;
mod inbox;
mod inflight;
mod intake;
mod order;
mod outbox;
mod queue;
mod recording;
mod runtime;
mod shared;
mod spin;
mod store;
mod tls;
mod translate;
mod types;
mod web;
mod websocket;

pub use broker_data as data;
pub use broker_wire::{Command, EntityId};
pub use broker_wire::{EndpointId, ErrorCode, StatusCode, Topic};
pub use cmd::Publications;
pub use config::{Configuration, OverflowPolicy, SubscriberOverflow, OPTIONS};
pub use counter::MessageCounts;
pub use endpoint::{
    Endpoint, MessageCounter, Publisher, StatusSubscriber, Subscriber, TryPublishError,
};
pub use error::Error;
pub use store::{BackendOptions, BackendType, CloneOptions, Store, StoreProxy, StoreResponse};
pub use types::{
    DataMessage, EndpointInfo, Metrics, PeerInfo, PeerMetrics, PeerState, StatusEvent,
};
