//! Broker endpoints on real sockets: the crate users depend on.
//!
//! An [`Endpoint`] peers with other endpoints over TCP using Broker's native protocol
//! (`broker-wire`), byte-compatible with C++ Broker (Zeek 5 and later) and negotiating
//! broker-rs's routing extension with broker-rs peers; it publishes and subscribes by topic
//! prefix through the sans-IO router (`broker-routing`), which one core task per endpoint
//! drives with tokio.
//!
//! **Status of this crate:** peering (listen, peer with retry, unpeer with Broker's BYE
//! handshake), publish/subscribe with blocking, polling, descriptor and `Stream` access, and
//! status/error subscribers work over plain TCP. TLS, configuration files and environment
//! variables, metrics, in-process shared-pointer peering and the `broker` binary are not
//! there yet; `Configuration::disable_ssl` must stay `true`.
//!
//! This crate re-exports the data model (`broker_data`) as [`data`].

#![forbid(unsafe_code)]

mod config;
mod connection;
mod core;
mod endpoint;
mod error;
mod queue;
mod store;
mod tls;
mod types;

pub use broker_data as data;
pub use broker_wire::EntityId;
pub use broker_wire::{EndpointId, ErrorCode, StatusCode, Topic};
pub use config::{Configuration, OverflowPolicy, OPTIONS};
pub use endpoint::{Endpoint, Publisher, StatusSubscriber, Subscriber, TryPublishError};
pub use error::Error;
pub use store::{BackendOptions, BackendType, CloneOptions, Store, StoreProxy, StoreResponse};
pub use types::{
    DataMessage, EndpointInfo, Metrics, PeerInfo, PeerMetrics, PeerState, StatusEvent,
};
