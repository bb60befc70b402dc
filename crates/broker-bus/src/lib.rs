//! Bus mode: a bus compatible with busrt 0.5 (its wire protocol, matching rules, QoS, RPC
//! layer and `.broker` service), so that busrt's own clients — the `busrt` crate's `ipc` and
//! `rpc` clients, its CLI, its Python packages — work against it unmodified.
//!
//! Layers, as in the rest of the workspace: [`frame`] (the codec, no I/O), [`pattern`] (the
//! matching rules and the subscription tree), [`core`] (registry and routing decisions under
//! one lock, pushing into bounded [`queue`]s), and the tokio layer ([`Bus`]: UNIX and TCP
//! listeners, in-process [`Client`]s, the `.broker` RPC service). See `docs/bus.md`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use broker_bus::{Bus, Qos};
//! let bus = Bus::new(Default::default());
//! let worker = bus.register_client("worker.1").unwrap();
//! let manager = bus.register_client("manager").unwrap();
//! manager.send_broadcast("worker.*", b"reload", Qos::No).await.unwrap();
//! let got = worker.recv().await.unwrap();
//! assert_eq!((got.sender(), got.payload()), ("manager", &b"reload"[..]));
//! # });
//! ```

pub mod aaa;
#[cfg(feature = "bridge")]
pub mod bridge;
mod conn;
pub mod core;
pub mod frame;
pub mod ipc;
pub mod msgpack;
pub mod pattern;
pub mod queue;
pub mod rpc;
mod server;
mod ws;

pub use crate::aaa::{AaaMap, ClientAaa, IpNet};
pub use crate::frame::{Delivery, Kind, Qos};
pub use crate::queue::OverflowPolicy;
pub use crate::server::{
    BlockingClient, Bus, BusConfig, Client, Error, ServerConfig, ServerHandle, TlsConfig,
};
