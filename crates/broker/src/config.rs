//! Endpoint configuration, with Broker's option names and defaults.

use std::path::PathBuf;
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
    /// Turn TLS off (plain TCP). By default TLS is on: anonymous ECDH (encrypted, not
    /// authenticated, what a default-configured Zeek speaks) unless certificates are set.
    pub disable_ssl: bool,
    /// This endpoint's certificate (PEM); with a key and a CA, peers must present valid
    /// certificates too.
    pub ssl_certificate: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub ssl_key: Option<PathBuf>,
    /// The passphrase of an encrypted key.
    pub ssl_passphrase: Option<String>,
    /// CA certificates (PEM file) that peers' certificates must chain to.
    pub ssl_cafile: Option<PathBuf>,
    /// A directory of CA certificates (hashed, as `c_rehash` makes).
    pub ssl_capath: Option<PathBuf>,
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
            disable_ssl: false,
            ssl_certificate: None,
            ssl_key: None,
            ssl_passphrase: None,
            ssl_cafile: None,
            ssl_capath: None,
            threads: 2,
            handshake_timeout: Duration::from_secs(10),
            max_frame_len: 16 * 1024 * 1024,
        }
    }
}
