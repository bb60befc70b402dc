//! A deterministic network simulator for routers: endpoints joined by FIFO links with seeded
//! latencies, on virtual time, with links that fail and endpoints that restart, and a checker
//! that compares what each subscriber received against the ground truth of the graph.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use broker_data::Data;
use broker_routing::{Config, Content, Event, Message, PeerKind, PeerLoss, Router, SubscriberId};
use broker_wire::{EndpointId, StatusCode, Topic};

/// xorshift64*, so every run is reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

pub fn id_of(i: usize) -> EndpointId {
    let mut b = [0u8; 16];
    b[0] = 0x10;
    b[8..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    EndpointId::from_bytes(b)
}

pub fn topic(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

/// One delivery as the checker sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub node: usize,
    /// The receiving endpoint's incarnation: a restarted endpoint is a new process, which may
    /// legitimately receive again what its previous life received.
    pub incarnation: u64,
    /// Whether, at delivery time, every listed subscriber was subscribed to a prefix of the
    /// topic and no matching subscriber of the node was missing.
    pub subscribers_right: bool,
    pub subscribers: Vec<SubscriberId>,
    pub publication: u64,
    pub ttl: u16,
}

/// A publication made in the simulation.
#[derive(Debug, Clone)]
pub struct Published {
    pub node: usize,
    pub topic: Topic,
    /// Published while the network was quiet and stayed so until delivery: must arrive exactly
    /// once at every reachable subscriber.
    pub settled: bool,
    /// Ground truth at publication time: node → subscribers that must receive it.
    pub expected: BTreeMap<usize, BTreeSet<SubscriberId>>,
    /// Each node's incarnation at publication time (the one that must receive it).
    pub incarnations: Vec<u64>,
}

pub struct SimNode {
    pub router: Router,
    pub incarnation: u64,
    pub forwarding: bool,
    pub subs: BTreeMap<SubscriberId, BTreeSet<Topic>>,
    /// Status events since the node's last (re)start.
    pub statuses: Vec<(StatusCode, EndpointId)>,
}

struct Link {
    up: bool,
    /// Messages in flight, per direction: [low → high, high → low].
    queues: [VecDeque<(Instant, Message)>; 2],
}

pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub rng: Rng,
    pub nodes: Vec<SimNode>,
    links: BTreeMap<(usize, usize), Link>,
    pub ttl: u16,
    pub deliveries: Vec<Delivery>,
    pub published: Vec<Published>,
    pub disconnects: Vec<(usize, EndpointId, String)>,
    pub max_latency_ms: u64,
    index: HashMap<EndpointId, usize>,
    pub steps: u64,
    /// Router timeouts run so far.
    pub timeouts: u64,
    /// Nodes that left for good (all their links cut, never healed).
    pub departed: BTreeSet<usize>,
}

impl Sim {
    /// Which nodes received publication `n` (in their current incarnation).
    pub fn receivers(&self, n: u64) -> BTreeSet<usize> {
        self.deliveries
            .iter()
            .filter(|d| d.publication == n)
            .map(|d| d.node)
            .collect()
    }

    /// Replaces node `a`'s router with one using `config` (before it has peers).
    pub fn configure(&mut self, a: usize, config: Config) {
        self.nodes[a].forwarding = config.forwarding;
        self.nodes[a].router = Router::new(id_of(a), self.nodes[a].incarnation, config);
    }

    pub fn new(seed: u64, n: usize, config: Config) -> Sim {
        let start = Instant::now();
        let ttl = config.ttl;
        let nodes = (0..n)
            .map(|i| SimNode {
                router: Router::new(id_of(i), 1, config.clone()),
                incarnation: 1,
                forwarding: config.forwarding,
                subs: BTreeMap::new(),
                statuses: Vec::new(),
            })
            .collect();
        Sim {
            start,
            now: start,
            rng: Rng::new(seed),
            nodes,
            links: BTreeMap::new(),
            ttl,
            deliveries: Vec::new(),
            published: Vec::new(),
            disconnects: Vec::new(),
            max_latency_ms: 10,
            index: (0..n).map(|i| (id_of(i), i)).collect(),
            steps: 0,
            timeouts: 0,
            departed: BTreeSet::new(),
        }
    }

    fn key(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    pub fn link_up(&self, a: usize, b: usize) -> bool {
        self.links.get(&Self::key(a, b)).is_some_and(|l| l.up)
    }

    pub fn connect(&mut self, a: usize, b: usize) {
        self.connect_as(a, b, PeerKind::Routed);
    }

    /// Connects two endpoints speaking `kind` to each other (`Broker`: plain version 1, as
    /// C++ Broker would), each learning the other's filter from the handshake.
    pub fn connect_as(&mut self, a: usize, b: usize, kind: PeerKind) {
        if a == b || self.link_up(a, b) {
            return;
        }
        self.links.insert(
            Self::key(a, b),
            Link {
                up: true,
                queues: [VecDeque::new(), VecDeque::new()],
            },
        );
        let (ia, ib) = (id_of(a), id_of(b));
        let now = self.now;
        let (fa, fb) = match kind {
            PeerKind::Broker => (
                self.nodes[a].router.announced_filter(ib),
                self.nodes[b].router.announced_filter(ia),
            ),
            PeerKind::Routed => (vec![], vec![]),
        };
        self.nodes[a].router.add_peer(now, ib, kind, fb);
        self.nodes[b].router.add_peer(now, ia, kind, fa);
        self.pump(a);
        self.pump(b);
    }

    /// Cuts a link; messages in flight on it are lost and both ends see `peer_lost`.
    pub fn cut(&mut self, a: usize, b: usize) {
        let Some(link) = self.links.get_mut(&Self::key(a, b)) else {
            return;
        };
        if !link.up {
            return;
        }
        link.up = false;
        link.queues = [VecDeque::new(), VecDeque::new()];
        let now = self.now;
        self.nodes[a]
            .router
            .remove_peer(now, id_of(b), PeerLoss::Lost("link cut".into()));
        self.nodes[b]
            .router
            .remove_peer(now, id_of(a), PeerLoss::Lost("link cut".into()));
        self.pump(a);
        self.pump(b);
    }

    pub fn neighbors(&self, a: usize) -> Vec<usize> {
        self.links
            .iter()
            .filter(|(_, l)| l.up)
            .filter_map(|(&(x, y), _)| {
                if x == a {
                    Some(y)
                } else if y == a {
                    Some(x)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Node `a` leaves for good: its links are cut and never come back.
    pub fn depart(&mut self, a: usize) {
        for b in self.neighbors(a) {
            self.cut(a, b);
        }
        self.departed.insert(a);
    }

    /// After churn has settled and time has passed (`advance`): every live router holds link
    /// states only of endpoints it can reach (its own included) and of no departed endpoint,
    /// and keeps at most one tombstone per endpoint that is gone.
    pub fn check_link_state_databases(&self, seed: u64) {
        for (i, node) in self.nodes.iter().enumerate() {
            if self.departed.contains(&i) {
                continue;
            }
            let mut allowed = self.reachable(i);
            allowed.insert(id_of(i));
            for id in node.router.known_endpoints() {
                assert!(
                    allowed.contains(&id),
                    "seed {seed}: node {i} still holds the link state of {id}, which it cannot reach \
                     (departed: {:?}; its links: {:?})",
                    self.departed,
                    self.index.get(&id).map(|&k| self.neighbors(k))
                );
            }
            assert!(
                node.router.tombstones() <= self.nodes.len(),
                "seed {seed}: node {i} keeps {} tombstones",
                node.router.tombstones()
            );
        }
    }

    /// Whether any live router still knows an id of a departed node (link state or tombstone
    /// aside: the tombstone count is checked separately).
    pub fn departed_ids_known(&self) -> usize {
        let gone: BTreeSet<EndpointId> = self.departed.iter().map(|&d| id_of(d)).collect();
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.departed.contains(i))
            .map(|(_, n)| {
                n.router
                    .known_endpoints()
                    .iter()
                    .filter(|id| gone.contains(id))
                    .count()
                    + n.router.tombstones()
            })
            .sum()
    }

    /// Restarts endpoint `a` with the same id: its links drop and come back, its subscribers
    /// subscribe again.
    pub fn restart(&mut self, a: usize) {
        let neighbors = self.neighbors(a);
        for &b in &neighbors {
            self.cut(a, b);
        }
        let node = &mut self.nodes[a];
        node.incarnation += 1;
        let mut config = node.router.config().clone();
        config.forwarding = node.forwarding;
        node.router = Router::new(id_of(a), node.incarnation, config);
        node.statuses.clear();
        let subs: Vec<(SubscriberId, Topic)> = node
            .subs
            .iter()
            .flat_map(|(s, ts)| ts.iter().map(move |t| (*s, t.clone())))
            .collect();
        for (s, t) in subs {
            self.nodes[a].router.subscribe(s, t);
        }
        self.pump(a);
        for b in neighbors {
            self.connect(a, b);
        }
    }

    pub fn subscribe(&mut self, a: usize, sub: SubscriberId, t: Topic) {
        self.nodes[a].subs.entry(sub).or_default().insert(t.clone());
        self.nodes[a].router.subscribe(sub, t);
        self.pump(a);
    }

    pub fn unsubscribe(&mut self, a: usize, sub: SubscriberId, t: &Topic) {
        if let Some(ts) = self.nodes[a].subs.get_mut(&sub) {
            ts.remove(t);
        }
        self.nodes[a].router.unsubscribe(sub, t);
        self.pump(a);
    }

    /// Publishes from `a`; the payload is the publication's number.
    pub fn publish(&mut self, a: usize, t: Topic, settled: bool) -> u64 {
        let n = self.published.len() as u64;
        let expected = if settled {
            self.expected(a, &t)
        } else {
            BTreeMap::new()
        };
        let incarnations = self.nodes.iter().map(|n| n.incarnation).collect();
        self.published.push(Published {
            node: a,
            topic: t.clone(),
            settled,
            expected,
            incarnations,
        });
        let now = self.now;
        self.nodes[a]
            .router
            .publish(now, t, Content::Data(Data::Count(n).into()));
        self.pump(a);
        n
    }

    /// Ground truth: subscribers that the graph lets a message from `a` on `t` reach within
    /// its TTL (through forwarding endpoints only), other than `a`'s own.
    pub fn expected(&self, a: usize, t: &Topic) -> BTreeMap<usize, BTreeSet<SubscriberId>> {
        let mut dist = vec![usize::MAX; self.nodes.len()];
        dist[a] = 0;
        let mut queue = VecDeque::from([a]);
        while let Some(u) = queue.pop_front() {
            if u != a && !self.nodes[u].forwarding {
                continue;
            }
            for v in self.neighbors(u) {
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    queue.push_back(v);
                }
            }
        }
        let mut out = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            // The publisher's own subscribers never receive it (Broker's core filters local
            // publications out of local delivery).
            if i == a || dist[i] > usize::from(self.ttl) {
                continue;
            }
            let subs: BTreeSet<SubscriberId> = node
                .subs
                .iter()
                .filter(|(_, ts)| ts.iter().any(|p| t.starts_with(p.as_str())))
                .map(|(s, _)| *s)
                .collect();
            if !subs.is_empty() {
                out.insert(i, subs);
            }
        }
        out
    }

    /// The endpoints `a` can reach (excluding itself), by the ground truth.
    pub fn reachable(&self, a: usize) -> BTreeSet<EndpointId> {
        let mut seen = vec![false; self.nodes.len()];
        seen[a] = true;
        let mut queue = VecDeque::from([a]);
        let mut out = BTreeSet::new();
        while let Some(u) = queue.pop_front() {
            if u != a && !self.nodes[u].forwarding {
                continue;
            }
            for v in self.neighbors(u) {
                if !seen[v] {
                    seen[v] = true;
                    out.insert(id_of(v));
                    queue.push_back(v);
                }
            }
        }
        out
    }

    /// Moves what node `a` wants to send onto its links and records its events.
    fn pump(&mut self, a: usize) {
        while let Some((to, msg)) = self.nodes[a].router.poll_transmit() {
            let b = self.index[&to];
            let latency = Duration::from_micros(1 + self.rng.next() % (self.max_latency_ms * 1000));
            let now = self.now;
            let Some(link) = self.links.get_mut(&Self::key(a, b)) else {
                continue;
            };
            if !link.up {
                continue;
            }
            let q = &mut link.queues[usize::from(a > b)];
            // FIFO: never deliver before what is already in flight.
            let at = q
                .back()
                .map_or(now + latency, |(last, _)| (*last).max(now + latency));
            q.push_back((at, msg));
        }
        while let Some(ev) = self.nodes[a].router.poll_event() {
            match ev {
                Event::Deliver {
                    subscribers,
                    publication,
                } => {
                    let Content::Data(d) = &publication.content else {
                        panic!("unexpected command")
                    };
                    let n = d.as_count().expect("payload is the publication number");
                    let want: Vec<SubscriberId> = self.nodes[a]
                        .subs
                        .iter()
                        .filter(|(_, ts)| {
                            ts.iter().any(|t| publication.topic.starts_with(t.as_str()))
                        })
                        .map(|(s, _)| *s)
                        .collect();
                    let subscribers_right = want == subscribers.to_vec();
                    let incarnation = self.nodes[a].incarnation;
                    self.deliveries.push(Delivery {
                        node: a,
                        incarnation,
                        subscribers_right,
                        subscribers: subscribers.to_vec(),
                        publication: n,
                        ttl: publication.ttl,
                    });
                }
                Event::Status { code, endpoint, .. } => {
                    self.nodes[a].statuses.push((code, endpoint))
                }
                Event::Disconnect { peer, reason } => {
                    self.disconnects.push((a, peer, reason));
                    let b = self.index[&peer];
                    if let Some(link) = self.links.get_mut(&Self::key(a, b)) {
                        link.up = false;
                        link.queues = [VecDeque::new(), VecDeque::new()];
                    }
                    let now = self.now;
                    self.nodes[b].router.remove_peer(
                        now,
                        id_of(a),
                        PeerLoss::Lost("disconnected by peer".into()),
                    );
                    self.pump(b);
                }
                Event::Pong { .. }
                | Event::Overflow { .. }
                | Event::Error { .. }
                | Event::SubscriptionsChanged { .. } => {}
            }
        }
    }

    /// The earliest time some router wants its `handle_timeout`, and which routers then.
    fn next_timeout(&self) -> Option<(Instant, Vec<usize>)> {
        let t = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.departed.contains(i))
            .filter_map(|(_, n)| n.router.poll_timeout())
            .min()?;
        let due = (0..self.nodes.len())
            .filter(|i| !self.departed.contains(i))
            .filter(|&i| self.nodes[i].router.poll_timeout() == Some(t))
            .collect();
        Some((t, due))
    }

    /// Runs the routers whose timeout comes at `t`.
    fn fire(&mut self, t: Instant, due: Vec<usize>) {
        self.now = self.now.max(t);
        let now = self.now;
        for i in due {
            self.nodes[i].router.handle_timeout(now);
            self.timeouts += 1;
            self.pump(i);
        }
    }

    /// Runs virtual time forward by `d`: messages and timeouts in their order, even while no
    /// message is in flight (so refreshes and purges happen).
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let delivery = self.next_delivery().map(|(t, _, _)| t);
            let timeout = self.next_timeout();
            match (delivery, timeout) {
                (Some(dt), Some((tt, _))) if tt < dt && tt <= end => {
                    let (t, due) = self.next_timeout().unwrap();
                    self.fire(t, due);
                }
                (Some(dt), _) if dt <= end => {
                    self.step();
                }
                (None, Some((tt, due))) if tt <= end => self.fire(tt, due),
                _ => break,
            }
        }
        self.now = self.now.max(end);
    }

    fn next_delivery(&self) -> Option<(Instant, usize, usize)> {
        self.links
            .iter()
            .flat_map(|(&(lo, hi), l)| {
                l.queues[0]
                    .front()
                    .map(|(t, _)| (*t, lo, hi))
                    .into_iter()
                    .chain(l.queues[1].front().map(|(t, _)| (*t, hi, lo)))
            })
            .min()
    }

    /// Delivers the next message in flight (running any router timeout that comes first, as
    /// virtual time passes it); false when no message is left.
    pub fn step(&mut self) -> bool {
        if let (Some((dt, _, _)), Some((tt, due))) = (self.next_delivery(), self.next_timeout()) {
            if tt < dt {
                self.fire(tt, due);
                return true;
            }
        }
        let Some((at, from, to)) = self.next_delivery() else {
            return false;
        };
        let link = self.links.get_mut(&Self::key(from, to)).unwrap();
        let queue = &mut link.queues[usize::from(from > to)];
        // What arrives at the same instant on one link is one read: one batch for the router
        // (link states in it rebuild the graph once, see `Router::handle_messages`).
        let mut batch = Vec::new();
        while queue.front().is_some_and(|(t, _)| *t <= at) {
            batch.push(queue.pop_front().unwrap().1);
        }
        self.now = self.now.max(at);
        self.steps += batch.len() as u64;
        let now = self.now;
        self.nodes[to]
            .router
            .handle_messages(now, id_of(from), batch);
        self.pump(to);
        true
    }

    /// Runs until no message is in flight. Panics if that takes absurdly long (a message
    /// circulating forever would).
    pub fn settle(&mut self, seed: u64) {
        let limit = self.steps + 2_000_000;
        while self.step() {
            if self.steps + 50 == limit {
                for ((a, b), l) in &self.links {
                    for (_, m) in l.queues[0].iter().chain(l.queues[1].iter()).take(3) {
                        let what = match m {
                            Message::LinkState(ls) => format!(
                                "LS origin={} inc={} v={} nb={:?}",
                                ls.origin,
                                ls.incarnation,
                                ls.version,
                                ls.neighbors.len()
                            ),
                            Message::Publication(p) => {
                                format!("pub origin={} seq={} ttl={}", p.origin, p.seq, p.ttl)
                            }
                            other => format!("{other:?}"),
                        };
                        eprintln!("link {a}-{b}: {what}");
                    }
                }
            }
            assert!(
                self.steps < limit,
                "seed {seed}: the network never settles (messages circulate)"
            );
        }
    }

    /// Checks every property of the run so far.
    pub fn check(&self, seed: u64) {
        let mut per_node: HashMap<(usize, u64, u64), usize> = HashMap::new();
        let mut last_seen: HashMap<(usize, u64, usize), u64> = HashMap::new();
        for d in &self.deliveries {
            let p = &self.published[d.publication as usize];
            // Nobody receives anything twice.
            let count = per_node
                .entry((d.node, d.incarnation, d.publication))
                .or_default();
            *count += 1;
            assert_eq!(
                *count, 1,
                "seed {seed}: node {} got publication {} twice",
                d.node, d.publication
            );
            // Per-publisher order.
            let last = last_seen
                .entry((d.node, d.incarnation, p.node))
                .or_insert(0);
            assert!(
                d.publication + 1 > *last,
                "seed {seed}: node {} got publication {} after a later one from node {}",
                d.node,
                d.publication,
                p.node
            );
            *last = d.publication + 1;
            // Only subscribers of the topic, and all of the node's matching subscribers.
            assert!(
                d.subscribers_right,
                "seed {seed}: node {} delivered {} to {:?}, not to its subscribers of that topic",
                d.node, p.topic, d.subscribers
            );
            if p.settled && d.incarnation == p.incarnations[d.node] {
                let want = p.expected.get(&d.node);
                let got: BTreeSet<SubscriberId> = d.subscribers.iter().copied().collect();
                assert_eq!(
                    want,
                    Some(&got),
                    "seed {seed}: publication {} ({}) from {} at node {}",
                    d.publication,
                    p.topic,
                    p.node,
                    d.node
                );
            }
        }
        // Every settled publication reached every expected subscriber.
        for (n, p) in self.published.iter().enumerate() {
            if !p.settled {
                continue;
            }
            for node in p.expected.keys() {
                let inc = p.incarnations[*node];
                if !per_node.contains_key(&(*node, inc, n as u64)) {
                    eprintln!(
                        "links: {:?}",
                        self.links
                            .iter()
                            .filter(|(_, l)| l.up)
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                    );
                    for (i, nd) in self.nodes.iter().enumerate() {
                        eprintln!(
                            "node {i} fwd={} inc={} subs={:?} reach={:?}",
                            nd.forwarding,
                            nd.incarnation,
                            nd.subs,
                            nd.router.reachable().len()
                        );
                    }
                    eprintln!("expected {:?}", p.expected);
                    eprintln!(
                        "deliveries of {n}: {:?}",
                        self.deliveries
                            .iter()
                            .filter(|d| d.publication == n as u64)
                            .collect::<Vec<_>>()
                    );
                    eprintln!(
                        "stats of node {}: {:?}",
                        p.node,
                        self.nodes[p.node].router.stats()
                    );
                    eprintln!(
                        "stats of node {node}: {:?}",
                        self.nodes[*node].router.stats()
                    );
                }
                assert!(
                    per_node.contains_key(&(*node, inc, n as u64)),
                    "seed {seed}: publication {n} on {} from node {} never reached node {node} ({} nodes)",
                    p.topic,
                    p.node,
                    self.nodes.len()
                );
            }
        }
        // Status events agree with the final topology.
        for (i, node) in self.nodes.iter().enumerate() {
            let mut discovered = BTreeSet::new();
            let mut peers = BTreeSet::new();
            for (code, ep) in &node.statuses {
                match code {
                    StatusCode::EndpointDiscovered => assert!(
                        discovered.insert(*ep),
                        "seed {seed}: node {i} discovered {ep} twice"
                    ),
                    StatusCode::EndpointUnreachable => assert!(
                        discovered.remove(ep),
                        "seed {seed}: node {i} lost {ep} it never found"
                    ),
                    StatusCode::PeerAdded => assert!(
                        peers.insert(*ep),
                        "seed {seed}: node {i} added peer {ep} twice"
                    ),
                    StatusCode::PeerRemoved | StatusCode::PeerLost => assert!(
                        peers.remove(ep),
                        "seed {seed}: node {i} removed unknown peer {ep}"
                    ),
                    StatusCode::Unspecified => {}
                }
            }
            let truth_peers: BTreeSet<EndpointId> =
                self.neighbors(i).into_iter().map(id_of).collect();
            assert_eq!(
                peers, truth_peers,
                "seed {seed}: node {i}'s peer statuses disagree with its links"
            );
            let mut truth = self.reachable(i);
            truth.extend(truth_peers);
            assert_eq!(
                discovered, truth,
                "seed {seed}: node {i}'s discovery statuses disagree with the topology"
            );
            assert_eq!(
                node.router.reachable(),
                &truth,
                "seed {seed}: node {i}'s reachable set"
            );
        }
    }
}
