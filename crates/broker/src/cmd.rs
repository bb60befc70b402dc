//! The facade's vocabulary: the commands everybody sends the core, what stores and the core
//! hand each other, and a batch of publications. A leaf: it names the types it carries and
//! nothing of the modules that handle them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use broker_data::{Data, SharedData};
use broker_routing::{Message, OverflowPolicy, PeerKind};
use broker_wire::{EndpointId, ErrorCode, InternalCommand, Topic};
use tokio::sync::{mpsc, oneshot};

use crate::config::SubscriberOverflow;
use crate::inflight::InFlight;
use crate::outbox::Outbox;
use crate::queue::Queue;
use crate::types::{DataMessage, Metrics, PeerInfo, StatusEvent};
use crate::Error;

/// A batch of publications: topics with shared values.
pub type Publications = Vec<(Topic, SharedData)>;

pub(crate) enum Cmd {
    Subscribe {
        id: u64,
        topics: Vec<Topic>,
        queue: Arc<Queue<DataMessage>>,
        overflow: SubscriberOverflow,
        /// A WebSocket client's subscription (see [`Client`]); none for the endpoint's own.
        client: Option<Client>,
    },
    /// Publications of a WebSocket client (the subscriber `origin`): they reach the peers and
    /// every local subscriber but the client's own.
    ClientPublish {
        origin: u64,
        items: Publications,
        /// The client's reader: told when these are handled (`weight` of them).
        reader: Arc<InFlight>,
        weight: usize,
    },
    AddTopic {
        id: u64,
        topic: Topic,
    },
    RemoveTopic {
        id: u64,
        topic: Topic,
    },
    /// A message counter (see `counter`): a subscription whose messages are only counted.
    Count {
        id: u64,
        topics: Vec<Topic>,
        tally: Arc<crate::counter::Tally>,
    },
    DropSubscriber(u64),
    StatusSubscribe {
        id: u64,
        queue: Arc<Queue<StatusEvent>>,
        statuses: bool,
    },
    DropStatusSubscriber(u64),
    Forward(Vec<Topic>),
    AnnouncedFilter {
        peer: EndpointId,
        reply: oneshot::Sender<Vec<Topic>>,
    },
    Handshaken {
        peer: EndpointId,
        kind: PeerKind,
        filter: Vec<Topic>,
        /// The filter we sent the peer in the handshake.
        announced: Vec<Topic>,
        addr: SocketAddr,
        outbound: bool,
        conn: u64,
        outbox: Outbox,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Incoming {
        peer: EndpointId,
        conn: u64,
        msgs: Vec<Message>,
        /// For an in-process peer: how to tell its core that these are processed.
        ack: Option<LocalAck>,
        /// For a socket's reader task: its count of batches in flight, told when these are
        /// handled.
        reader: Option<Arc<InFlight>>,
    },
    /// An in-process peering: messages go to `core` as they are, no serialization.
    LocalHandshaken {
        peer: EndpointId,
        filter: Vec<Topic>,
        core: mpsc::UnboundedSender<Cmd>,
        conn: u64,
        remote_conn: u64,
        in_flight: Arc<AtomicUsize>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Ends an in-process peering gracefully.
    LocalUnpeer {
        peer: EndpointId,
        reply: oneshot::Sender<bool>,
    },
    /// A connection (or in-process peering) ended without this endpoint ending it: as in
    /// Broker, `peer_lost`, whether or not the peer said BYE first.
    Closed {
        peer: EndpointId,
        conn: u64,
        /// Why, when it was not a clean close.
        reason: Option<String>,
    },
    ConnectionError {
        code: ErrorCode,
        addr: Option<SocketAddr>,
        peer: Option<EndpointId>,
        message: String,
    },
    Writable,
    Unpeer {
        addr: SocketAddr,
        reply: oneshot::Sender<bool>,
    },
    /// A connection to `addr` was dropped as redundant: the peering with `peer` over another
    /// connection stands for it (unpeering `addr` ends that one).
    Alias {
        peer: EndpointId,
        addr: SocketAddr,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// The topics other endpoints subscribe to.
    PeerSubscriptions(oneshot::Sender<Vec<Topic>>),
    Metrics(oneshot::Sender<Metrics>),
    /// What the status page draws: the endpoints and links known, the subscriptions.
    Topology(oneshot::Sender<TopologySnapshot>),
    Shutdown(oneshot::Sender<()>),
    /// A store frontend starts: it subscribes to its store's command topic.
    AttachStore {
        id: u64,
        name: String,
        master: bool,
        sink: mpsc::Sender<StoreInbound>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// A store frontend ended.
    DetachStore {
        id: u64,
        name: String,
    },
}

/// What makes a subscriber a WebSocket client: it also hears this endpoint's own publications
/// and other clients' (not its own), and its full queue follows a peer's overflow policy
/// instead of holding anybody back.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) overflow: OverflowPolicy,
    /// Set by the core when the client was disconnected for overflow (`disconnect` policy):
    /// its queue is closed at the same time.
    pub(crate) overflowed: Arc<AtomicBool>,
}

/// The endpoints and links this endpoint knows, and the subscriptions here and elsewhere.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopologySnapshot {
    pub(crate) nodes: std::collections::BTreeSet<EndpointId>,
    pub(crate) links: std::collections::BTreeSet<(EndpointId, EndpointId)>,
    pub(crate) local_topics: Vec<Topic>,
    pub(crate) peer_topics: Vec<Topic>,
}

/// What a store task hands the core after a batch of work.
#[derive(Default)]
pub(crate) struct StoreOutput {
    /// Store commands: topic, the one receiving endpoint (or every subscriber), the command.
    pub(crate) commands: Vec<(Topic, Option<EndpointId>, Arc<InternalCommand>)>,
    /// Store events, for local subscribers only.
    pub(crate) events: Vec<(Topic, Data)>,
    /// Failed mutations, for error subscribers.
    pub(crate) failures: Vec<Error>,
}

/// Lets the sending core of an in-process peering know its messages were taken.
pub(crate) struct LocalAck {
    pub(crate) core: mpsc::WeakUnboundedSender<Cmd>,
    pub(crate) in_flight: Arc<AtomicUsize>,
}

/// What the core hands a store task.
pub(crate) enum StoreInbound {
    /// A store command for this store.
    Command(Arc<InternalCommand>),
    /// A peer appeared: a clone without a master asks now.
    Poke,
    /// An endpoint became unreachable.
    Unreachable(EndpointId),
}
