//! Endpoint configuration, with Broker's option names and defaults.

use std::time::Duration;

pub use broker_routing::OverflowPolicy;

/// How an endpoint behaves. The defaults are Broker's.
///
/// ```
/// let c = broker::Configuration::default();
/// assert_eq!(c.ttl, 20);
/// assert_eq!(c.peer_buffer_size, 2048);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    /// Forward messages from peers to other peers (Broker's `forward`, default on).
    pub forward: bool,
    /// Hop limit of published messages (default 20).
    pub ttl: u16,
    /// Messages buffered per peer before the overflow policy applies (default 2048).
    pub peer_buffer_size: usize,
    /// What happens when a peer's buffer is full (default: disconnect it).
    pub peer_overflow_policy: OverflowPolicy,
    /// Default size of a subscriber's queue (Broker's 64).
    pub subscriber_queue_size: usize,
    /// Turn TLS off. This release speaks plain TCP only, so it must stay `true`; TLS (anonymous
    /// ECDH as Broker's default, and certificates) is the next step.
    pub disable_ssl: bool,
    /// Worker threads of the endpoint's runtime (default 2).
    pub threads: usize,
    /// How long a handshake may take before the connection is dropped.
    pub handshake_timeout: Duration,
    /// Largest frame accepted from a peer (16 MiB).
    pub max_frame_len: usize,
}

impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            forward: true,
            ttl: 20,
            peer_buffer_size: 2048,
            peer_overflow_policy: OverflowPolicy::Disconnect,
            subscriber_queue_size: 64,
            disable_ssl: true,
            threads: 2,
            handshake_timeout: Duration::from_secs(10),
            max_frame_len: 16 * 1024 * 1024,
        }
    }
}
