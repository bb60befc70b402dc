//! Broker's native wire protocol, byte for byte, as Broker 2.x (Zeek 5 and later) speaks it.
//!
//! * [`encode_data`] / [`decode_data`]: the binary data format "bin v1" for every
//!   [`Data`](broker_data::Data) type.
//! * [`Handshake`]: hello, probe, version_select, drop_conn, originator_syn,
//!   responder_syn_ack, originator_ack.
//! * [`Envelope`] (and [`RawEnvelope`], header only): the operational frame — sender,
//!   receiver, type, TTL, topic, payload — for data, store commands, routing updates, ping, pong.
//! * [`InternalCommand`]: the store commands and the replication channel's control messages.
//! * Protocol version 2, our routing extension: [`Payload::RoutedData`],
//!   [`Payload::RoutedCommand`] and [`LinkState`] (see the `routed` docs and
//!   `docs/routing.md`).
//! * [`GeneratorWriter`] / [`GeneratorReader`]: Broker's generator files (the `messages.dat`
//!   of a recording directory), versions 1 and 2.
//! * [`encode_frame`] / [`FrameDecoder`]: the `u32` length prefix; with the `codec` feature, a
//!   tokio-util [`FrameCodec`].
//!
//! The formats, with test vectors, are specified in `docs/protocol.md`.
//!
//! This crate is pure: no I/O, no clock, no tokio outside the optional codec adapter. Decoding
//! treats its input as hostile: every length is checked against the bytes present (and against
//! [`Limits`]) before anything is allocated, nesting is bounded, and every problem is a
//! [`WireError`], never a panic.
//!
//! ```
//! use broker_data::{vector, Data};
//! use broker_wire::{decode_data, encode_data, Limits};
//! let value = vector![1u64, "two", 3.0];
//! let mut buf = Vec::new();
//! encode_data(&value, &mut buf);
//! assert_eq!(decode_data(&buf, &Limits::default()).unwrap(), value);
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "codec")]
mod codec;
mod codes;
mod command;
mod data;
mod envelope;
mod error;
mod frame;
mod generator;
mod handshake;
mod ids;
mod reader;
mod routed;

#[cfg(feature = "codec")]
pub use codec::{CodecError, FrameCodec};
pub use codes::{ErrorCode, StatusCode};
pub use command::{Command, InternalCommand, SequenceNumber};
pub use data::{decode_data, decode_data_shared, encode_data, encoded_data_len};
pub use envelope::{
    bye_token, encode_envelope, encode_routed_batch, Envelope, Payload, PayloadRef, RawEnvelope,
    HEADER_LEN,
};
pub use error::WireError;
pub use frame::{encode_frame, FrameDecoder};
pub use generator::{
    generator_header, GeneratorEntry, GeneratorLimits, GeneratorReader, GeneratorStats,
    GeneratorWriter, GENERATOR_HEADER_LEN, GENERATOR_MAGIC, GENERATOR_VERSION,
};
pub use handshake::{Filter, Handshake, MessageType, MAGIC, PROTOCOL_VERSION};
pub use ids::{EndpointId, EntityId, Topic};
pub use routed::{
    LinkState, LINK_STATE, ROUTED_BATCH, ROUTED_COMMAND, ROUTED_DATA, ROUTED_PROTOCOL_VERSION,
};

/// Bounds that decoding enforces on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest frame accepted, in bytes (default 16 MiB).
    pub max_frame_len: usize,
    /// The deepest container nesting accepted (default 64).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_len: 16 * 1024 * 1024,
            max_depth: 64,
        }
    }
}
