//! The router: a deterministic state machine for one endpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_wire::{EndpointId, ErrorCode, LinkState, StatusCode, Topic};

use crate::bitset::Bitset;
use crate::fxhash::FxHashMap;
use crate::message::{Content, Message, PeerKind, Publication};
use crate::prefix::PrefixMap;
use crate::topology::{Branches, Topology};

/// Identifies a local subscriber (the facade's queue for one `make_subscriber`).
pub type SubscriberId = u64;

/// What to do when a peer's output buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OverflowPolicy {
    /// Disconnect the peer (Broker's default).
    #[default]
    Disconnect,
    /// Drop the oldest queued message to make room.
    DropOldest,
    /// Drop the new message.
    DropNewest,
}

/// Router settings, with Broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Hop limit of messages this endpoint publishes (Broker's `ttl`, default 20).
    pub ttl: u16,
    /// Whether messages from peers are forwarded to other peers (Broker's `forward`).
    pub forwarding: bool,
    /// Messages a peer's output buffer holds (default 2048).
    pub peer_buffer_size: usize,
    /// What happens when it is full.
    pub overflow_policy: OverflowPolicy,
    /// How often this endpoint re-advertises its link state, healing any divergence.
    pub link_state_refresh: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ttl: 20,
            forwarding: true,
            peer_buffer_size: 2048,
            overflow_policy: OverflowPolicy::Disconnect,
            link_state_refresh: Duration::from_secs(60),
        }
    }
}

/// Why a peer is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerLoss {
    /// Unpeered on purpose, by either side (`peer_removed`).
    Removed,
    /// Removed by this endpoint for the given reason, such as backpressure overflow
    /// (`peer_removed`, with the reason in its message).
    RemovedBecause(String),
    /// The connection broke (`peer_lost`).
    Lost(String),
}

/// Something the facade must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Hand `publication` to these local subscribers.
    Deliver {
        /// The subscribers whose topics match.
        subscribers: Arc<[SubscriberId]>,
        /// The message.
        publication: Publication,
    },
    /// A status for status subscribers (peer_added, peer_removed, peer_lost,
    /// endpoint_discovered, endpoint_unreachable).
    Status {
        /// Broker's status code.
        code: StatusCode,
        /// The endpoint it is about.
        endpoint: EndpointId,
        /// A human-readable explanation.
        message: String,
    },
    /// An error for error subscribers, with Broker's code.
    Error {
        /// Broker's error code.
        code: ErrorCode,
        /// The endpoint it is about.
        endpoint: EndpointId,
        /// A human-readable explanation.
        message: String,
    },
    /// Close the connection to `peer`; the router has already forgotten it.
    Disconnect {
        /// The peer.
        peer: EndpointId,
        /// Why, for logs and for the peer (e.g. backpressure overflow).
        reason: String,
    },
    /// A pong arrived (e.g. the answer to a graceful-unpeer ping).
    Pong {
        /// From whom.
        peer: EndpointId,
        /// Its bytes.
        payload: bytes::Bytes,
    },
    /// A peer's buffer overflowed and messages were dropped (the drop policies).
    Overflow {
        /// The peer.
        peer: EndpointId,
        /// Messages dropped for this peer so far.
        dropped: u64,
    },
    /// Another endpoint's subscriptions changed (a routing update from a Broker peer, or a
    /// link state with a new filter or new stubs): what was sent to nobody a moment ago may
    /// have a receiver now, so whoever waits for one (a clone looking for its master) should
    /// ask again. A new peer is announced by its `peer_added` status instead.
    SubscriptionsChanged {
        /// The endpoint whose subscriptions changed.
        endpoint: EndpointId,
    },
}

/// Counters for the whole router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages published locally.
    pub published: u64,
    /// Messages handed to local subscribers (once per message, not per subscriber).
    pub delivered: u64,
    /// Publications queued to peers.
    pub sent: u64,
    /// Publications received from peers.
    pub received: u64,
    /// Publications not forwarded further because their TTL ran out.
    pub ttl_expired: u64,
    /// Publications dropped as duplicates or stragglers (sequence number not new).
    pub duplicates: u64,
    /// Publications from a plain Broker peer that came from inside our routed domain.
    pub reflected: u64,
    /// Publications from a plain Broker peer heard through another of our endpoints (its
    /// designated attachment) and so not injected here.
    pub redundant: u64,
    /// Unicast publications for an endpoint we cannot reach.
    pub unroutable: u64,
    /// Publications dropped by overflow policies.
    pub overflow_dropped: u64,
}

/// Counters and state of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Publications received from the peer.
    pub received: u64,
    /// Publications queued for the peer.
    pub sent: u64,
    /// Publications dropped by its overflow policy.
    pub dropped: u64,
    /// Messages waiting in its buffer.
    pub queued: usize,
    /// Messages taken from its buffer for sending (it grows while the peer makes progress).
    pub taken: u64,
}

#[derive(Debug)]
struct Peer {
    kind: PeerKind,
    /// For a plain Broker peer: its filter.
    filter: Vec<Topic>,
    /// For a plain Broker peer: the filter we last announced to it.
    announced: Vec<Topic>,
    queue: VecDeque<Message>,
    /// Messages in `queue`, batches counted by their length.
    queued: usize,
    stats: PeerStats,
}

/// Where a publication goes from here.
#[derive(Debug, Default)]
struct Decision {
    peers: Vec<EndpointId>,
    local: Option<Arc<[SubscriberId]>>,
}

/// A Broker endpoint's routing, as a state machine without I/O or clock.
///
/// Feed it what happens ([`add_peer`](Self::add_peer), [`handle_message`](Self::handle_message),
/// [`publish`](Self::publish), …) with the current time; then drain what it wants done:
/// [`poll_transmit`](Self::poll_transmit) for messages to send, [`poll_event`](Self::poll_event)
/// for deliveries and statuses, and call [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Instant;
/// use broker_data::Data;
/// use broker_routing::{Config, Content, Event, Message, PeerKind, Router};
/// use broker_wire::{EndpointId, Topic};
///
/// let now = Instant::now();
/// let (a, b) = (EndpointId::from_bytes([1; 16]), EndpointId::from_bytes([2; 16]));
/// let mut alice = Router::new(a, 1, Config::default());
/// let mut bob = Router::new(b, 1, Config::default());
/// bob.subscribe(7, Topic::new("/greetings").unwrap());
/// alice.add_peer(now, b, PeerKind::Routed, vec![]);
/// bob.add_peer(now, a, PeerKind::Routed, vec![]);
/// // Exchange link states until both are quiet.
/// loop {
///     let mut moved = false;
///     while let Some((to, msg)) = alice.poll_transmit() { assert_eq!(to, b); bob.handle_message(now, a, msg); moved = true; }
///     while let Some((to, msg)) = bob.poll_transmit() { assert_eq!(to, a); alice.handle_message(now, b, msg); moved = true; }
///     if !moved { break; }
/// }
/// alice.publish(now, Topic::new("/greetings/en").unwrap(), Content::Data(Data::from("hi").into()));
/// let (to, msg) = alice.poll_transmit().unwrap();
/// bob.handle_message(now, a, msg);
/// let delivered = std::iter::from_fn(|| bob.poll_event()).find_map(|e| match e {
///     Event::Deliver { subscribers, publication } => Some((subscribers, publication)),
///     _ => None,
/// });
/// let (subs, publication) = delivered.unwrap();
/// assert_eq!(&subs[..], &[7]);
/// assert_eq!(publication.topic.as_str(), "/greetings/en");
/// ```
#[derive(Debug)]
pub struct Router {
    id: EndpointId,
    incarnation: u64,
    version: u64,
    config: Config,
    peers: BTreeMap<EndpointId, Peer>,
    local: PrefixMap<BTreeSet<SubscriberId>>,
    subscriptions: HashMap<SubscriberId, BTreeSet<Topic>>,
    forward_topics: BTreeSet<Topic>,
    lsdb: BTreeMap<EndpointId, LinkState>,
    /// The last (incarnation, version) of each forgotten link state, so an older copy cannot
    /// come back, and until when it is kept (`TOMBSTONE_PERIODS` refreshes).
    tombstones: HashMap<EndpointId, ((u64, u64), Instant)>,
    /// Highest sequence number seen per origin.
    seen: FxHashMap<EndpointId, u64>,
    next_seq: u64,
    topology: Topology,
    /// Our own index in `topology`.
    me: Option<usize>,
    branches: FxHashMap<usize, Arc<Branches>>,
    /// Cached decisions per origin index and topic (bounded: cleared when it grows too big).
    decisions: FxHashMap<usize, FxHashMap<Topic, Arc<Decision>>>,
    decision_count: usize,
    local_matches: FxHashMap<Topic, Option<Arc<[SubscriberId]>>>,
    discovered: BTreeSet<EndpointId>,
    /// Link states that were unreachable at the last timeout (forgotten at the next).
    unreachable: BTreeSet<EndpointId>,
    own_dirty: bool,
    topology_dirty: bool,
    events: VecDeque<Event>,
    ready: VecDeque<EndpointId>,
    next_refresh: Option<Instant>,
    stats: Stats,
}

impl Router {
    /// A router for endpoint `id`. `incarnation` must grow across restarts of the same id (the
    /// facade uses the start time in seconds): the new link state then supersedes the old, and
    /// sequence numbers start at `incarnation << 32`, above every number an earlier incarnation
    /// used (unless it published over 2^32 messages per second of its life).
    pub fn new(id: EndpointId, incarnation: u64, config: Config) -> Self {
        let mut r = Router {
            id,
            incarnation,
            version: 0,
            config,
            peers: BTreeMap::new(),
            local: PrefixMap::new(),
            subscriptions: HashMap::new(),
            forward_topics: BTreeSet::new(),
            lsdb: BTreeMap::new(),
            tombstones: HashMap::new(),
            seen: FxHashMap::default(),
            next_seq: incarnation << 32,
            topology: Topology::default(),
            me: None,
            branches: FxHashMap::default(),
            decisions: FxHashMap::default(),
            decision_count: 0,
            local_matches: FxHashMap::default(),
            discovered: BTreeSet::new(),
            unreachable: BTreeSet::new(),
            own_dirty: true,
            topology_dirty: true,
            events: VecDeque::new(),
            ready: VecDeque::new(),
            next_refresh: None,
            stats: Stats::default(),
        };
        r.refresh();
        r
    }

    /// This endpoint's id.
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Router-wide counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A peer's counters, if it is connected.
    pub fn peer_stats(&self, peer: EndpointId) -> Option<PeerStats> {
        self.peers.get(&peer).map(|p| PeerStats {
            queued: p.queued,
            ..p.stats.clone()
        })
    }

    /// The connected peers and how they speak.
    pub fn peers(&self) -> impl Iterator<Item = (EndpointId, PeerKind)> + '_ {
        self.peers.iter().map(|(id, p)| (*id, p.kind))
    }

    /// Every endpoint this one can currently reach (peers and beyond).
    pub fn reachable(&self) -> &BTreeSet<EndpointId> {
        &self.discovered
    }

    /// The filter to announce to a plain Broker peer, in the handshake and routing updates:
    /// our subscriptions and forward topics, plus (when forwarding) every subscription we can
    /// reach through others.
    ///
    /// A Broker peer that another of our endpoints is the designated attachment of (it peers
    /// with several) is announced nothing: it sends its messages there, and hears ours from
    /// there, once.
    pub fn announced_filter(&self, peer: EndpointId) -> Vec<Topic> {
        if self
            .topology
            .attachment(peer)
            .is_some_and(|at| at != self.id)
        {
            return Vec::new();
        }
        let mut topics: BTreeSet<Topic> = self.own_filter().into_iter().collect();
        topics.extend(self.forward_topics.iter().cloned());
        if self.config.forwarding {
            for ls in self.lsdb.values() {
                if ls.origin == peer
                    || ls.origin == self.id
                    || !self.discovered.contains(&ls.origin)
                {
                    continue;
                }
                topics.extend(ls.filter.iter().cloned());
                for (stub, filter) in &ls.stubs {
                    if *stub != peer {
                        topics.extend(filter.iter().cloned());
                    }
                }
            }
            for (id, p) in &self.peers {
                if *id != peer && p.kind == PeerKind::Broker {
                    topics.extend(p.filter.iter().cloned());
                }
            }
        }
        topics.into_iter().collect()
    }

    /// Broker's `peer_subscriptions`: every topic prefix that some other reachable endpoint
    /// subscribes to (from link states and from plain Broker peers' filters), sorted.
    pub fn peer_subscriptions(&self) -> Vec<Topic> {
        let mut topics: BTreeSet<Topic> = BTreeSet::new();
        for ls in self.lsdb.values() {
            if ls.origin == self.id || !self.discovered.contains(&ls.origin) {
                continue;
            }
            topics.extend(ls.filter.iter().cloned());
            for (_, filter) in &ls.stubs {
                topics.extend(filter.iter().cloned());
            }
        }
        for p in self.peers.values() {
            if p.kind == PeerKind::Broker {
                topics.extend(p.filter.iter().cloned());
            }
        }
        topics.into_iter().collect()
    }

    fn own_filter(&self) -> Vec<Topic> {
        let mut all: BTreeSet<Topic> = BTreeSet::new();
        for topics in self.subscriptions.values() {
            all.extend(topics.iter().cloned());
        }
        all.into_iter().collect()
    }

    // -- inputs ---------------------------------------------------------------------------------

    /// A peering is established. `filter` is the peer's filter from the handshake (used for
    /// plain Broker peers; routed peers advertise theirs in link states).
    pub fn add_peer(&mut self, now: Instant, peer: EndpointId, kind: PeerKind, filter: Vec<Topic>) {
        if peer == self.id {
            return;
        }
        if self.peers.contains_key(&peer) {
            self.drop_peer(peer, PeerLoss::Removed);
        }
        let announced = match kind {
            PeerKind::Broker => self.announced_filter(peer),
            PeerKind::Routed => Vec::new(),
        };
        self.peers.insert(
            peer,
            Peer {
                kind,
                filter,
                announced,
                queue: VecDeque::new(),
                queued: 0,
                stats: PeerStats::default(),
            },
        );
        if self.discovered.insert(peer) {
            self.status(
                StatusCode::EndpointDiscovered,
                peer,
                "found a new peer in the network",
            );
        }
        self.status(StatusCode::PeerAdded, peer, "handshake successful");
        self.own_dirty = true;
        if kind == PeerKind::Routed && !self.lsdb.contains_key(&peer) {
            // Until its link state arrives (right behind the handshake), the filter it sent
            // in the handshake (everything reachable through it) stands in for it, so
            // publications reach it at once; it forwards them on by its own trees. Incarnation
            // 0 makes any real link state supersede this one.
            self.lsdb.insert(
                peer,
                LinkState {
                    origin: peer,
                    incarnation: 0,
                    version: 0,
                    forwarding: true,
                    neighbors: vec![self.id],
                    filter: self.peers[&peer].filter.clone(),
                    stubs: Vec::new(),
                },
            );
            self.topology_dirty = true;
        }
        if kind == PeerKind::Routed && self.config.forwarding {
            // A new routed peer learns everything we know; our own state follows in refresh().
            // (Not from an endpoint that does not forward: see `on_link_state`.)
            let states: Vec<Arc<LinkState>> = self
                .lsdb
                .values()
                // Provisional states (incarnation 0) go too: until the real ones arrive they
                // are all the new peer can know of endpoints behind us.
                .filter(|ls| ls.origin != self.id)
                .map(|ls| Arc::new(ls.clone()))
                .collect();
            for ls in states {
                self.push(peer, Message::LinkState(ls));
            }
        }
        self.refresh();
        self.schedule_refresh(now);
    }

    /// Tells the router which filter a plain Broker peer was sent in the handshake (computed
    /// before [`add_peer`](Self::add_peer), so possibly older than what it would announce
    /// now): if it differs, a routing update follows at once. Without this call the router
    /// assumes the peer was told what it would announce at `add_peer`.
    pub fn announced_in_handshake(&mut self, peer: EndpointId, filter: Vec<Topic>) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.kind == PeerKind::Broker {
                p.announced = filter;
                self.refresh();
            }
        }
    }

    /// A peering ended.
    pub fn remove_peer(&mut self, _now: Instant, peer: EndpointId, loss: PeerLoss) {
        if self.peers.contains_key(&peer) {
            self.drop_peer(peer, loss);
            self.refresh();
        }
    }

    fn drop_peer(&mut self, peer: EndpointId, loss: PeerLoss) {
        self.peers.remove(&peer);
        self.ready.retain(|p| *p != peer);
        let (code, msg) = match &loss {
            PeerLoss::Removed => (
                StatusCode::PeerRemoved,
                "removed connection to remote peer".to_owned(),
            ),
            PeerLoss::RemovedBecause(why) => (
                StatusCode::PeerRemoved,
                format!("removed connection to remote peer: {why}"),
            ),
            PeerLoss::Lost(why) => (
                StatusCode::PeerLost,
                format!("lost connection to remote peer: {why}"),
            ),
        };
        self.status(code, peer, &msg);
        self.own_dirty = true;
    }

    /// Subscribes local subscriber `sub` to a topic prefix.
    pub fn subscribe(&mut self, sub: SubscriberId, topic: Topic) {
        if self
            .subscriptions
            .entry(sub)
            .or_default()
            .insert(topic.clone())
        {
            self.local
                .get_or_insert_with(topic.as_bytes(), BTreeSet::new)
                .insert(sub);
            self.subscriptions_changed();
        }
    }

    /// Removes one topic of a local subscriber.
    pub fn unsubscribe(&mut self, sub: SubscriberId, topic: &Topic) {
        let removed = self
            .subscriptions
            .get_mut(&sub)
            .is_some_and(|t| t.remove(topic));
        if removed {
            self.forget_local(sub, topic);
            self.subscriptions_changed();
        }
    }

    /// Removes a local subscriber and all its topics.
    pub fn remove_subscriber(&mut self, sub: SubscriberId) {
        for topic in self.subscriptions.remove(&sub).unwrap_or_default() {
            self.forget_local(sub, &topic);
        }
        self.subscriptions_changed();
    }

    fn forget_local(&mut self, sub: SubscriberId, topic: &Topic) {
        if let Some(set) = self.local.get_mut(topic.as_bytes()) {
            set.remove(&sub);
            if set.is_empty() {
                self.local.remove(topic.as_bytes());
            }
        }
    }

    /// Drops every cache that depends on local subscriptions and re-advertises them.
    fn subscriptions_changed(&mut self) {
        self.local_matches.clear();
        self.decisions.clear();
        self.decision_count = 0;
        self.own_dirty = true;
        self.refresh();
    }

    /// Broker's `forward(topics)`: attract these topics from plain Broker peers so they can be
    /// routed through this endpoint, without delivering them locally. (Between routed endpoints
    /// every endpoint already forwards whatever its neighbours need.)
    pub fn forward(&mut self, topic: Topic) {
        if self.forward_topics.insert(topic) {
            self.refresh();
        }
    }

    /// Publishes `content` on `topic` from this endpoint to every subscriber.
    pub fn publish(&mut self, _now: Instant, topic: Topic, content: Content) {
        self.publish_to(EndpointId::NIL, topic, content);
    }

    /// Publishes `content` to one endpoint (`receiver`), or to every subscriber when nil.
    pub fn publish_to(&mut self, receiver: EndpointId, topic: Topic, content: Content) {
        let n = content.count() as u64;
        if n == 0 {
            return;
        }
        self.stats.published += n;
        let seq = self.next_seq + 1;
        self.next_seq += n;
        let p = Publication {
            sender: self.id,
            receiver,
            origin: self.id,
            seq,
            ttl: self.config.ttl,
            topic,
            content,
        };
        self.route(p, None);
    }

    /// Delivers `content` on `topic` to this endpoint's own subscribers only (Broker's local
    /// publication, used for store events): never sent to a peer.
    pub fn publish_local(&mut self, topic: Topic, content: Content) {
        let n = content.count() as u64;
        if n == 0 {
            return;
        }
        if let Some(subscribers) = self.local_subscribers(&topic) {
            self.stats.delivered += n;
            let seq = self.next_seq + 1;
            self.next_seq += n;
            let publication = Publication {
                sender: self.id,
                receiver: self.id,
                origin: self.id,
                seq,
                ttl: 1,
                topic,
                content,
            };
            self.events.push_back(Event::Deliver {
                subscribers,
                publication,
            });
        }
    }

    /// The other reachable endpoints whose subscriptions include exactly `topic` (not merely a
    /// prefix of it): how a store learns that a master of its name exists elsewhere.
    ///
    /// Only endpoints this one can reach count: a link state that lingers from an endpoint that
    /// is gone (until it is purged) names no subscriber.
    pub fn subscribed_exactly(&self, topic: &Topic) -> Vec<EndpointId> {
        let Some(nodes) = self.topology.filters.get(topic.as_bytes()) else {
            return Vec::new();
        };
        self.topology
            .ids
            .iter()
            .enumerate()
            .filter(|(i, id)| {
                nodes.contains(*i) && **id != self.id && self.discovered.contains(*id)
            })
            .map(|(_, id)| *id)
            .collect()
    }

    /// The endpoints whose link states this router holds (itself included), in id order.
    pub fn known_endpoints(&self) -> Vec<EndpointId> {
        self.lsdb.keys().copied().collect()
    }

    /// The links this router knows: from the link states it holds (broker-rs endpoints'
    /// neighbors) and its own peers (Broker peers included), each as (endpoint, neighbor).
    pub fn links(&self) -> BTreeSet<(EndpointId, EndpointId)> {
        let mut links: BTreeSet<(EndpointId, EndpointId)> = self
            .lsdb
            .values()
            .flat_map(|ls| ls.neighbors.iter().map(move |n| (ls.origin, *n)))
            .collect();
        links.extend(self.peers.keys().map(|p| (self.id, *p)));
        links
    }

    /// About how many bytes the link-state database takes: each state's fixed part, its
    /// neighbors and its filters (topics counted by their length plus their handle).
    pub fn link_state_bytes(&self) -> usize {
        let filter = |f: &[Topic]| {
            f.iter()
                .map(|t| std::mem::size_of::<Topic>() + t.as_bytes().len())
                .sum::<usize>()
        };
        self.lsdb
            .values()
            .map(|ls| {
                std::mem::size_of::<LinkState>()
                    + std::mem::size_of::<EndpointId>() * (1 + ls.neighbors.len())
                    + filter(&ls.filter)
                    + ls.stubs
                        .iter()
                        .map(|(_, f)| std::mem::size_of::<EndpointId>() + filter(f))
                        .sum::<usize>()
            })
            .sum()
    }

    /// The topic prefixes local subscribers (and stores) subscribe to.
    pub fn local_topics(&self) -> BTreeSet<Topic> {
        self.subscriptions.values().flatten().cloned().collect()
    }

    /// How many forgotten endpoints' tombstones this router keeps.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Queues a ping for `peer` behind everything already queued for it (a graceful unpeer's
    /// BYE must not overtake earlier messages). Returns whether the peer is known.
    pub fn send_ping(&mut self, peer: EndpointId, payload: bytes::Bytes) -> bool {
        if !self.peers.contains_key(&peer) {
            return false;
        }
        self.push(peer, Message::Ping(payload));
        true
    }

    /// A message arrived from `from`.
    pub fn handle_message(&mut self, now: Instant, from: EndpointId, msg: Message) {
        self.handle_messages(now, from, [msg]);
    }

    /// Messages arrived from `from`, in this order (what one read brought): handled as one
    /// by one, except that link states only mark the graph out of date, and it is rebuilt
    /// (with the reachability statuses and the filters announced to Broker peers) once — when
    /// a publication needs it to be routed, and at the end. A burst of link states, as when a
    /// large network forms, so costs one rebuild instead of one per state. When this returns,
    /// everything derived is up to date, as after `handle_message`.
    pub fn handle_messages(
        &mut self,
        _now: Instant,
        from: EndpointId,
        msgs: impl IntoIterator<Item = Message>,
    ) {
        for msg in msgs {
            self.handle_one(from, msg);
        }
        if self.topology_dirty || self.own_dirty {
            self.refresh();
        }
    }

    fn handle_one(&mut self, from: EndpointId, msg: Message) {
        let Some(kind) = self.peers.get(&from).map(|p| p.kind) else {
            return; // A message from a peer we do not know (any more) is ignored.
        };
        match msg {
            Message::Publication(p) => {
                let n = p.count() as u64;
                if n == 0 {
                    return;
                }
                if self.topology_dirty || self.own_dirty {
                    // Routed with the graph of every link state before it.
                    self.refresh();
                }
                self.stats.received += n;
                if let Some(peer) = self.peers.get_mut(&from) {
                    peer.stats.received += n;
                }
                match kind {
                    PeerKind::Broker => self.on_broker_publication(from, p),
                    PeerKind::Routed => self.on_routed_publication(from, p),
                }
            }
            Message::RoutingUpdate(filter) => {
                if let Some(peer) = self.peers.get_mut(&from) {
                    if kind == PeerKind::Broker && peer.filter != *filter {
                        peer.filter = filter.to_vec();
                        self.own_dirty = true;
                        self.refresh();
                        self.events
                            .push_back(Event::SubscriptionsChanged { endpoint: from });
                    }
                }
            }
            Message::LinkState(ls) => {
                if kind == PeerKind::Routed {
                    self.on_link_state(from, ls);
                }
            }
            Message::Ping(b) => self.push(from, Message::Pong(b)),
            Message::Pong(payload) => self.events.push_back(Event::Pong {
                peer: from,
                payload,
            }),
        }
    }

    fn on_broker_publication(&mut self, from: EndpointId, mut p: Publication) {
        // A message that started inside our routed domain and came back through a Broker
        // peer has already been routed: drop it rather than deliver it twice.
        let n = p.count() as u64;
        if p.sender == self.id || self.lsdb.contains_key(&p.sender) {
            self.stats.reflected += n;
            return;
        }
        // A Broker peer attached to several of our endpoints is heard through one of them, its
        // designated attachment; the others announce it nothing, so this is only what was on
        // its way while the attachment changed. (Unicast to us comes straight from the peer
        // whatever it was announced, and is always ours.)
        if p.receiver.is_nil()
            && self
                .topology
                .attachment(from)
                .is_some_and(|at| at != self.id)
        {
            self.stats.redundant += n;
            return;
        }
        // Injected as published here: our sequence numbers and a fresh hop limit (Broker
        // resets it on every hop too).
        p.origin = self.id;
        p.seq = self.next_seq + 1;
        p.ttl = self.config.ttl;
        self.next_seq += n;
        self.route(p, Some(from));
    }

    fn on_routed_publication(&mut self, from: EndpointId, mut p: Publication) {
        let n = p.count() as u64;
        if p.origin == self.id {
            self.stats.duplicates += n;
            return;
        }
        // Sequence numbers only grow, across restarts too: anything not above the highest one
        // seen from this origin is a duplicate or a straggler from an older path.
        let last = self.seen.entry(p.origin).or_insert(0);
        let end = p.seq.saturating_add(n - 1);
        if end <= *last {
            self.stats.duplicates += n;
            return;
        }
        if p.seq <= *last {
            // A batch that overlaps what was seen: keep only its new tail.
            let skip = *last - p.seq + 1;
            if let Content::Batch(values) = &p.content {
                let tail: Vec<_> = values.iter().skip(skip as usize).cloned().collect();
                p.content = Content::Batch(Arc::new(tail));
            }
            p.seq += skip;
            self.stats.duplicates += skip;
        }
        *last = end;
        self.route(p, Some(from));
    }

    fn on_link_state(&mut self, from: EndpointId, ls: Arc<LinkState>) {
        if ls.origin == self.id {
            // Our own advertisement echoing back is normal in any loop. Only a copy newer than
            // ours (from an earlier life of this id) needs outgrowing.
            if (ls.incarnation, ls.version) > (self.incarnation, self.version) {
                self.incarnation = self.incarnation.max(ls.incarnation);
                self.version = ls.version;
                self.own_dirty = true;
                self.refresh();
            }
            return;
        }
        let newer = match (self.lsdb.get(&ls.origin), self.tombstones.get(&ls.origin)) {
            (Some(old), _) => ls.is_newer_than(old),
            // Not held (purged when it became unreachable): take it back unless it is older than
            // what we saw. An equal copy is how a healed partition re-learns the other side; it
            // cannot resurrect a departed endpoint, which no neighbour lists any more.
            (None, Some((t, _))) => (ls.incarnation, ls.version) >= *t,
            (None, None) => true,
        };
        if !newer {
            return;
        }
        self.tombstones.remove(&ls.origin);
        let subscriptions_changed = self
            .lsdb
            .get(&ls.origin)
            .is_none_or(|old| old.filter != ls.filter || old.stubs != ls.stubs);
        if subscriptions_changed {
            self.events.push_back(Event::SubscriptionsChanged {
                endpoint: ls.origin,
            });
        }
        self.lsdb.insert(ls.origin, (*ls).clone());
        // An endpoint that does not forward is nobody's transit: what lies behind it is
        // unreachable from its other side, so it passes on no link state but its own.
        let targets: Vec<EndpointId> = self
            .peers
            .iter()
            .filter(|(id, p)| self.config.forwarding && p.kind == PeerKind::Routed && **id != from)
            .map(|(id, _)| *id)
            .collect();
        for t in targets {
            self.push(t, Message::LinkState(ls.clone()));
        }
        // The graph is rebuilt once the batch of messages this came in is handled (see
        // `handle_messages`).
        self.topology_dirty = true;
    }

    /// Call when [`poll_timeout`](Self::poll_timeout)'s time has come: re-advertises our link
    /// state and forgets link states that were unreachable at the previous timeout too.
    ///
    /// Unreachable link states are not dropped at once: during a reconnection they arrive in
    /// any order (a neighbour's neighbour before the neighbour), and what is unreachable now is
    /// often reachable a moment later. Tombstones keep the versions of forgotten ones, so an
    /// older copy cannot come back.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_refresh.is_some_and(|t| t <= now) {
            let reachable: BTreeSet<EndpointId> =
                self.topology.reachable_from(self.id).into_iter().collect();
            let stale: Vec<EndpointId> = self
                .lsdb
                .keys()
                .filter(|id| !reachable.contains(id) && self.unreachable.contains(id))
                .copied()
                .collect();
            let keep_until = now + self.config.link_state_refresh * TOMBSTONE_PERIODS;
            for id in &stale {
                if let Some(ls) = self.lsdb.remove(id) {
                    self.tombstones
                        .insert(*id, ((ls.incarnation, ls.version), keep_until));
                }
            }
            // A departed endpoint's id is forgotten for good after a while: by then no copy of
            // its old link state is still travelling.
            self.tombstones.retain(|_, (_, until)| *until > now);
            self.unreachable = self
                .lsdb
                .keys()
                .filter(|id| !reachable.contains(id))
                .copied()
                .collect();
            self.topology_dirty |= !stale.is_empty();
            self.own_dirty = true;
            self.refresh();
            self.next_refresh = Some(now + self.config.link_state_refresh);
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_refresh
    }

    fn schedule_refresh(&mut self, now: Instant) {
        if self.next_refresh.is_none() {
            self.next_refresh = Some(now + self.config.link_state_refresh);
        }
    }

    // -- outputs --------------------------------------------------------------------------------

    /// The next message to send, to any peer (peers take turns).
    pub fn poll_transmit(&mut self) -> Option<(EndpointId, Message)> {
        while let Some(peer) = self.ready.pop_front() {
            if let Some(msg) = self.poll_transmit_for(peer) {
                if self.peers.get(&peer).is_some_and(|p| !p.queue.is_empty()) {
                    self.ready.push_back(peer);
                }
                return Some((peer, msg));
            }
        }
        None
    }

    /// The next message to send to `peer`: the facade's writer for that connection calls this
    /// whenever its socket can take more, so a slow peer only ever holds up itself.
    pub fn poll_transmit_for(&mut self, peer: EndpointId) -> Option<Message> {
        let p = self.peers.get_mut(&peer)?;
        let msg = p.queue.pop_front()?;
        p.queued -= msg.count();
        p.stats.taken += msg.count() as u64;
        Some(msg)
    }

    /// The next event (delivery, status, disconnect request, …).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn status(&mut self, code: StatusCode, endpoint: EndpointId, message: &str) {
        self.events.push_back(Event::Status {
            code,
            endpoint,
            message: message.to_owned(),
        });
    }

    /// Queues `msg` for `peer`, applying the overflow policy to publications. The buffer counts
    /// messages (a batch by its length); a batch larger than the whole buffer is taken when the
    /// buffer is empty.
    fn push(&mut self, peer: EndpointId, msg: Message) {
        let cap = self.config.peer_buffer_size;
        let policy = self.config.overflow_policy;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let n = msg.count();
        let is_publication = matches!(msg, Message::Publication(_));
        let overflows = |queued: usize| queued > 0 && queued + n > cap;
        if is_publication && overflows(p.queued) {
            match policy {
                OverflowPolicy::Disconnect => {
                    self.stats.overflow_dropped += n as u64;
                    let reason =
                        format!("backpressure overflow: more than {cap} messages buffered");
                    self.drop_peer(peer, PeerLoss::RemovedBecause(reason.clone()));
                    self.events.push_back(Event::Disconnect { peer, reason });
                    return;
                }
                OverflowPolicy::DropNewest => {
                    p.stats.dropped += n as u64;
                    self.stats.overflow_dropped += n as u64;
                    let dropped = p.stats.dropped;
                    self.events.push_back(Event::Overflow { peer, dropped });
                    return;
                }
                OverflowPolicy::DropOldest => {
                    // Only publications are dropped; control messages are never lost.
                    let mut lost = 0u64;
                    while overflows(p.queued) {
                        let Some(i) = p
                            .queue
                            .iter()
                            .position(|m| matches!(m, Message::Publication(_)))
                        else {
                            break;
                        };
                        if let Some(old) = p.queue.remove(i) {
                            p.queued -= old.count();
                            lost += old.count() as u64;
                        }
                    }
                    p.stats.dropped += lost;
                    self.stats.overflow_dropped += lost;
                    let dropped = p.stats.dropped;
                    self.events.push_back(Event::Overflow { peer, dropped });
                }
            }
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if is_publication {
            p.stats.sent += n as u64;
            self.stats.sent += n as u64;
        }
        if p.queue.is_empty() {
            self.ready.push_back(peer);
        }
        p.queued += n;
        p.queue.push_back(msg);
    }

    // -- routing --------------------------------------------------------------------------------

    /// Delivers locally and forwards `p`, which came from `from` (None: published here).
    fn route(&mut self, p: Publication, from: Option<EndpointId>) {
        let received = from.is_some();
        let decision = self.decide(&p);
        let forwards = !decision.peers.is_empty() && (!received || self.config.forwarding);
        // As in Broker, an endpoint's own subscribers do not receive what it publishes (a
        // Zeek node does not hear its own events); `publish_local` is the exception.
        let local = if received { &decision.local } else { &None };
        let n = p.count() as u64;
        let p = match local {
            Some(subs) => {
                self.stats.delivered += n;
                let subscribers = subs.clone();
                if !forwards {
                    // Nothing to forward: the publication itself goes to the subscribers.
                    self.events.push_back(Event::Deliver {
                        subscribers,
                        publication: p,
                    });
                    return;
                }
                self.events.push_back(Event::Deliver {
                    subscribers,
                    publication: p.clone(),
                });
                p
            }
            None if !forwards => return,
            None => p,
        };
        let mut out = p;
        if received {
            if out.ttl <= 1 {
                self.stats.ttl_expired += n;
                return;
            }
            out.ttl -= 1;
        }
        let n = decision.peers.len();
        for (i, peer) in decision.peers.iter().enumerate() {
            if Some(*peer) == from {
                continue;
            }
            let msg = if i + 1 == n {
                Message::Publication(std::mem::replace(&mut out, placeholder()))
            } else {
                Message::Publication(out.clone())
            };
            self.push(*peer, msg);
        }
    }

    fn decide(&mut self, p: &Publication) -> Arc<Decision> {
        let Some(me) = self.me else {
            return Arc::new(Decision::default());
        };
        // An origin we do not know yet (its link state is still on the way) is routed as if
        // it were us: duplicates, if any, are dropped by sequence number downstream.
        let origin = if p.origin == self.id {
            me
        } else {
            self.topology.index.get(&p.origin).copied().unwrap_or(me)
        };
        if p.receiver.is_nil() {
            if let Some(d) = self.decisions.get(&origin).and_then(|m| m.get(&p.topic)) {
                return d.clone();
            }
        }
        let branches = match self.branches.get(&origin) {
            Some(b) => b.clone(),
            None => {
                let b = Arc::new(self.topology.branches(origin, me));
                self.branches.insert(origin, b.clone());
                b
            }
        };
        let mut d = Decision::default();
        if p.receiver.is_nil() {
            let mut matched = Bitset::with_capacity(self.topology.ids.len());
            self.topology
                .filters
                .for_each_prefix_of(p.topic.as_bytes(), |b| matched.union_with(b));
            for (child, subtree) in &branches.children {
                if subtree.intersects(&matched) {
                    d.peers.push(*child);
                }
            }
            d.local = self.local_subscribers(&p.topic);
            let d = Arc::new(d);
            // Topics come from peers: bound the cache rather than let it grow without limit.
            if self.decision_count >= MAX_CACHED_DECISIONS {
                self.decisions.clear();
                self.decision_count = 0;
            }
            self.decision_count += 1;
            self.decisions
                .entry(origin)
                .or_default()
                .insert(p.topic.clone(), d.clone());
            d
        } else if p.receiver == self.id {
            d.local = self.local_subscribers(&p.topic);
            Arc::new(d)
        } else {
            match self.topology.index.get(&p.receiver) {
                Some(&r) => {
                    if let Some((child, _)) = branches.children.iter().find(|(_, s)| s.contains(r))
                    {
                        d.peers.push(*child);
                    }
                }
                None => {
                    self.stats.unroutable += p.count() as u64;
                    self.events.push_back(Event::Error {
                        code: ErrorCode::NoPathToPeer,
                        endpoint: p.receiver,
                        message: format!("no path to {} for a message on {}", p.receiver, p.topic),
                    });
                }
            }
            Arc::new(d)
        }
    }

    /// The local subscribers whose prefixes match `topic` (cached per topic until the local
    /// subscriptions change).
    pub fn local_subscribers(&mut self, topic: &Topic) -> Option<Arc<[SubscriberId]>> {
        if let Some(hit) = self.local_matches.get(topic) {
            return hit.clone();
        }
        if self.local_matches.len() >= MAX_CACHED_DECISIONS {
            self.local_matches.clear();
        }
        let mut subs: BTreeSet<SubscriberId> = BTreeSet::new();
        self.local
            .for_each_prefix_of(topic.as_bytes(), |s| subs.extend(s.iter().copied()));
        let hit: Option<Arc<[SubscriberId]>> = if subs.is_empty() {
            None
        } else {
            Some(subs.into_iter().collect())
        };
        self.local_matches.insert(topic.clone(), hit.clone());
        hit
    }

    /// Brings derived state up to date after any change: our own link state (flooded when it
    /// changed), the topology, reachability statuses, and the filters announced to Broker peers.
    fn refresh(&mut self) {
        if self.own_dirty {
            self.own_dirty = false;
            self.version += 1;
            let mut neighbors = Vec::new();
            let mut stubs = Vec::new();
            for (id, p) in &self.peers {
                match p.kind {
                    PeerKind::Routed => neighbors.push(*id),
                    PeerKind::Broker => stubs.push((*id, p.filter.clone())),
                }
            }
            let ls = LinkState {
                origin: self.id,
                incarnation: self.incarnation,
                version: self.version,
                forwarding: self.config.forwarding,
                neighbors,
                filter: self.own_filter(),
                stubs,
            };
            let changed = self.lsdb.get(&self.id).is_none_or(|old| {
                old.neighbors != ls.neighbors
                    || old.filter != ls.filter
                    || old.stubs != ls.stubs
                    || old.forwarding != ls.forwarding
            });
            self.lsdb.insert(self.id, ls.clone());
            let shared = Arc::new(ls);
            let targets: Vec<EndpointId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.kind == PeerKind::Routed)
                .map(|(id, _)| *id)
                .collect();
            for t in targets {
                self.push(t, Message::LinkState(shared.clone()));
            }
            self.topology_dirty |= changed;
        }
        if self.topology_dirty {
            self.topology_dirty = false;
            self.topology = Topology::build(&self.lsdb, self.id);
            self.me = self.topology.index.get(&self.id).copied();
            self.branches.clear();
            self.decisions.clear();
            self.decision_count = 0;
            let mut now_reachable: BTreeSet<EndpointId> =
                self.topology.reachable_from(self.id).into_iter().collect();
            now_reachable.extend(self.peers.keys().copied());
            now_reachable.remove(&self.id);
            let lost: Vec<EndpointId> = self
                .discovered
                .difference(&now_reachable)
                .copied()
                .collect();
            let found: Vec<EndpointId> = now_reachable
                .difference(&self.discovered)
                .copied()
                .collect();
            for id in found {
                self.status(
                    StatusCode::EndpointDiscovered,
                    id,
                    "found a new endpoint in the network",
                );
            }
            for id in lost {
                self.status(
                    StatusCode::EndpointUnreachable,
                    id,
                    "lost the last path to an endpoint",
                );
            }
            self.discovered = now_reachable;
        }
        // Tell plain Broker peers about filter changes.
        let broker_peers: Vec<EndpointId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.kind == PeerKind::Broker)
            .map(|(id, _)| *id)
            .collect();
        for peer in broker_peers {
            let filter = self.announced_filter(peer);
            let Some(p) = self.peers.get_mut(&peer) else {
                continue;
            };
            if p.announced != filter {
                p.announced = filter.clone();
                self.push(peer, Message::RoutingUpdate(Arc::new(filter)));
            }
        }
    }
}

/// How many refresh periods a forgotten link state's tombstone is kept.
const TOMBSTONE_PERIODS: u32 = 10;

/// Most distinct topics whose routing decisions are cached before the cache starts over.
const MAX_CACHED_DECISIONS: usize = 65_536;

fn placeholder() -> Publication {
    Publication {
        sender: EndpointId::NIL,
        receiver: EndpointId::NIL,
        origin: EndpointId::NIL,
        seq: 0,
        ttl: 0,
        topic: Topic::default(),
        content: Content::Data(broker_data::SharedData::default()),
    }
}
