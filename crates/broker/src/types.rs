//! Values the API hands out: received messages, statuses, peer information.

use std::net::SocketAddr;

use broker_data::SharedData;
use broker_wire::{EndpointId, ErrorCode, StatusCode, Topic};

/// A message received by a subscriber: a topic and a shared value.
#[derive(Debug, Clone, PartialEq)]
pub struct DataMessage {
    /// The topic it was published on.
    pub topic: Topic,
    /// The value, shared with every other local subscriber: a value without a container (a
    /// count, a string, an address, …) is held in place and cost no allocation on its way
    /// here; a container is shared behind one reference count. Read it as a `&Data`
    /// (`&*m.data`), take it with [`SharedData::into_data`].
    pub data: SharedData,
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
    /// Its address (none for an endpoint peered in this process).
    pub address: Option<SocketAddr>,
    /// Whether we dialed it (as opposed to it dialing us).
    pub outbound: bool,
    /// The state of the peering.
    pub state: PeerState,
}

/// Counters of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMetrics {
    /// The peer.
    pub id: EndpointId,
    /// Its address (none for an endpoint peered in this process).
    pub address: Option<SocketAddr>,
    /// Publications received from it.
    pub received: u64,
    /// Publications queued for it.
    pub sent: u64,
    /// Publications dropped by its overflow policy.
    pub dropped: u64,
    /// Messages waiting in its buffer.
    pub queued: usize,
    /// The buffer's size.
    pub buffer_size: usize,
}

/// An endpoint's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Routing counters (published, delivered, sent, received, TTL expiries, duplicates, …).
    pub router: broker_routing::Stats,
    /// Per-peer counters and buffer fill.
    pub peers: Vec<PeerMetrics>,
    /// Per local subscriber: (messages pending, messages dropped).
    pub subscribers: Vec<(usize, u64)>,
    /// Times a lossless subscriber's full queue made the endpoint hold messages back (and so
    /// pace its peers and publishers; `SubscriberOverflow::Block`).
    pub subscriber_waits: u64,
    /// Times a lossless subscriber was found stuck (nothing taken for a second while messages
    /// waited) and began to drop its oldest messages.
    pub stuck_subscribers: u64,
    /// Batches of incoming messages that subscribers' threads, while waiting in `get`, read
    /// from a socket and routed themselves instead of waiting for the endpoint's runtime.
    pub read_while_waiting: u64,
    /// Waits (of the runtime's spinner and of subscribers) that slept at once because
    /// spinning had not paid lately (`Configuration::spin_wait` is adaptive).
    pub spins_skipped: u64,
    /// Link states held (broker-rs endpoints known, this one included).
    pub link_states: usize,
    /// Incoming connections refused by `max_connections` or `max_handshakes`.
    pub refused_connections: u64,
    /// WebSocket clients connected now.
    pub web_socket_clients: usize,
    /// WebSocket clients disconnected because their buffer overflowed (policy `disconnect`).
    pub web_socket_overflows: u64,
    /// Messages recorded into the recording directory's `messages.dat`
    /// (`Configuration::recording_directory`).
    pub recorded: u64,
    /// Messages, subscriptions or peers that could not be recorded (a write failed, or a
    /// command the generator file's version cannot hold); each is logged.
    pub recording_errors: u64,
}

impl Metrics {
    /// The counters in Prometheus' text exposition format.
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let r = &self.router;
        for (name, help, v) in [
            (
                "broker_published_total",
                "Messages published by this endpoint.",
                r.published,
            ),
            (
                "broker_delivered_total",
                "Messages delivered to local subscribers.",
                r.delivered,
            ),
            ("broker_sent_total", "Publications queued to peers.", r.sent),
            (
                "broker_received_total",
                "Publications received from peers.",
                r.received,
            ),
            (
                "broker_ttl_expired_total",
                "Publications not forwarded because their TTL ran out.",
                r.ttl_expired,
            ),
            (
                "broker_duplicates_total",
                "Duplicate or stale publications dropped.",
                r.duplicates,
            ),
            (
                "broker_overflow_dropped_total",
                "Publications dropped by overflow policies.",
                r.overflow_dropped,
            ),
            (
                "broker_refused_connections_total",
                "Incoming connections refused by max_connections or max_handshakes.",
                self.refused_connections,
            ),
            (
                "broker_read_while_waiting_total",
                "Batches of incoming messages read and routed by subscribers' threads while they waited.",
                self.read_while_waiting,
            ),
            (
                "broker_subscriber_waits_total",
                "Times a lossless subscriber's full queue made the endpoint hold messages back.",
                self.subscriber_waits,
            ),
            (
                "broker_stuck_subscribers_total",
                "Times a lossless subscriber took nothing for a second and began dropping its oldest messages.",
                self.stuck_subscribers,
            ),
            (
                "broker_web_socket_overflows_total",
                "WebSocket clients disconnected because their buffer overflowed.",
                self.web_socket_overflows,
            ),
            (
                "broker_recorded_total",
                "Messages recorded into the recording directory's generator file.",
                self.recorded,
            ),
            (
                "broker_recording_errors_total",
                "Messages, subscriptions or peers that could not be recorded.",
                self.recording_errors,
            ),
            (
                "broker_spins_skipped_total",
                "Waits that slept at once because spinning had not paid lately.",
                self.spins_skipped,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP broker_peers Connected peers.\n# TYPE broker_peers gauge\nbroker_peers {}",
            self.peers.len()
        );
        let _ = writeln!(
            out,
            "# HELP broker_web_socket_clients Connected WebSocket clients.\n# TYPE broker_web_socket_clients gauge\nbroker_web_socket_clients {}",
            self.web_socket_clients
        );
        let _ = writeln!(
            out,
            "# HELP broker_link_states Link states held (broker-rs endpoints known).\n# TYPE broker_link_states gauge\nbroker_link_states {}",
            self.link_states
        );
        for (name, help, kind) in [
            (
                "broker_peer_received_total",
                "Publications received from a peer.",
                "counter",
            ),
            (
                "broker_peer_sent_total",
                "Publications queued for a peer.",
                "counter",
            ),
            (
                "broker_peer_dropped_total",
                "Publications dropped for a peer by its overflow policy.",
                "counter",
            ),
            (
                "broker_peer_buffer_fill",
                "Messages waiting in a peer's buffer.",
                "gauge",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for p in &self.peers {
                let v = match name {
                    "broker_peer_received_total" => p.received,
                    "broker_peer_sent_total" => p.sent,
                    "broker_peer_dropped_total" => p.dropped,
                    _ => p.queued as u64,
                };
                let address = p
                    .address
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "in-process".to_owned());
                let _ = writeln!(out, "{name}{{peer=\"{}\",address=\"{address}\"}} {v}", p.id);
            }
        }
        let dropped: u64 = self.subscribers.iter().map(|s| s.1).sum();
        let _ = writeln!(out, "# HELP broker_subscriber_dropped_total Messages dropped from full subscriber queues.\n# TYPE broker_subscriber_dropped_total counter\nbroker_subscriber_dropped_total {dropped}");
        out
    }
}
