//! How link-state routing grows with the network: 200, 500 and 1,000 endpoints in random and
//! Zeek-like topologies, driven on virtual time (1 ms per hop) with every message in flight
//! on a global queue. For each network: the messages and virtual time until it is quiet after
//! it forms, then after each kind of change (a new subscription, a cut link, a new endpoint
//! joining) the control messages, their bytes and the virtual time until quiet, and the
//! link-state database's size per endpoint; beside it, what C++ Broker 2.8's subscription
//! announcements cost on the same graph. Not a test: run with
//! `cargo run --release -p broker-routing --example scale [-- 200 500 1000] [--direct]`.
//!
//! Every endpoint subscribes as a Zeek node does: its own node topic and its role's topic.
//! Forming a whole network at once costs O(n × links) messages, each a graph rebuild at its
//! receiver, which takes the simulation an hour at 1,000 endpoints; beyond 500 endpoints (or
//! with `--direct`) the network is formed by handing every endpoint the final link state of
//! every other in one batch instead of flooding them (the floods that would follow carry only
//! copies everybody holds), and the changes after it are simulated message by message as
//! always.
#![allow(missing_docs)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Arc;

use broker_routing::{Config, Message, PeerKind, PeerLoss, Router};
use broker_wire::{EndpointId, LinkState, Topic};

const HOP: Duration = Duration::from_millis(1);

fn id_of(i: usize) -> EndpointId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    EndpointId::from_bytes(b)
}

struct Net {
    start: Instant,
    now: Instant,
    routers: Vec<Router>,
    /// Messages in flight, earliest first.
    queue: BinaryHeap<Reverse<InFlight>>,
    payloads: std::collections::HashMap<u64, Message>,
    seq: u64,
    /// Messages delivered so far.
    delivered: u64,
    /// Their bytes on the wire (link states encoded; frame headers aside).
    bytes: u64,
    up: std::collections::HashSet<(usize, usize)>,
}

/// A message in flight, as the heap orders it: arrival, order of sending, from, to (the
/// message itself waits in `Net::payloads` under its order of sending).
type InFlight = (Instant, u64, usize, usize);

impl Net {
    fn new(n: usize) -> Net {
        let start = Instant::now();
        Net {
            start,
            now: start,
            routers: (0..n)
                .map(|i| Router::new(id_of(i), 1, Config::default()))
                .collect(),
            queue: BinaryHeap::new(),
            payloads: Default::default(),
            seq: 0,
            delivered: 0,
            bytes: 0,
            up: Default::default(),
        }
    }

    fn index(&self, id: EndpointId) -> usize {
        let b = id.as_bytes();
        u64::from_be_bytes(b[..8].try_into().unwrap()) as usize - 1
    }

    fn pump(&mut self, a: usize) {
        while let Some((to, msg)) = self.routers[a].poll_transmit() {
            let b = self.index(to);
            self.seq += 1;
            self.payloads.insert(self.seq, msg);
            self.queue.push(Reverse((self.now + HOP, self.seq, a, b)));
        }
        while self.routers[a].poll_event().is_some() {}
    }

    fn connect(&mut self, a: usize, b: usize) {
        if a == b || !self.up.insert((a.min(b), a.max(b))) {
            return;
        }
        let now = self.now;
        self.routers[a].add_peer(now, id_of(b), PeerKind::Routed, vec![]);
        self.routers[b].add_peer(now, id_of(a), PeerKind::Routed, vec![]);
        self.pump(a);
        self.pump(b);
    }

    fn cut(&mut self, a: usize, b: usize) {
        self.up.remove(&(a.min(b), a.max(b)));
        let now = self.now;
        self.routers[a].remove_peer(now, id_of(b), PeerLoss::Lost("cut".into()));
        self.routers[b].remove_peer(now, id_of(a), PeerLoss::Lost("cut".into()));
        self.pump(a);
        self.pump(b);
    }

    /// Forms the network without flooding: every connected endpoint gets the newest link
    /// state of every other one in one batch from one of its peers, and what they would
    /// flood next (copies that everybody now holds) is dropped. Returns the link states
    /// handed over.
    fn form_direct(&mut self) -> u64 {
        let mut newest: HashMap<EndpointId, Arc<LinkState>> = HashMap::new();
        for (_, msg) in self.payloads.drain() {
            if let Message::LinkState(ls) = msg {
                let keep = newest
                    .get(&ls.origin)
                    .is_none_or(|old| ls.is_newer_than(old));
                if keep {
                    newest.insert(ls.origin, ls);
                }
            }
        }
        self.queue.clear();
        let mut handed = 0;
        for r in 0..self.routers.len() {
            let Some(&(a, b)) = self.up.iter().find(|&&(a, b)| a == r || b == r) else {
                continue; // Not connected yet (the endpoint that joins later).
            };
            let from = if a == r { b } else { a };
            let me = id_of(r);
            let batch: Vec<Message> = newest
                .values()
                .filter(|ls| ls.origin != me)
                .map(|ls| Message::LinkState(ls.clone()))
                .collect();
            handed += batch.len() as u64;
            self.routers[r].handle_messages(self.now, id_of(from), batch);
            while let Some((_, msg)) = self.routers[r].poll_transmit() {
                if let Message::LinkState(ls) = &msg {
                    assert!(
                        ls.origin != me,
                        "an endpoint changed its own link state while forming"
                    );
                }
            }
            while self.routers[r].poll_event().is_some() {}
        }
        handed
    }

    /// Delivers everything in flight; returns (messages, bytes, virtual time until quiet).
    fn settle(&mut self) -> (u64, u64, Duration) {
        let (before, bytes_before, t0) = (self.delivered, self.bytes, self.now);
        while let Some(Reverse((at, seq, from, to))) = self.queue.pop() {
            self.now = at;
            // What arrives at once on one link is one read: one batch for the router.
            let mut batch = vec![self.payloads.remove(&seq).expect("sent")];
            while let Some(&Reverse((t, next, f, d))) = self.queue.peek() {
                if (t, f, d) != (at, from, to) {
                    break;
                }
                self.queue.pop();
                batch.push(self.payloads.remove(&next).expect("sent"));
            }
            if !self.up.contains(&(from.min(to), from.max(to))) {
                continue;
            }
            self.delivered += batch.len() as u64;
            for m in &batch {
                if let Message::LinkState(ls) = m {
                    let mut buf = Vec::new();
                    ls.encode(&mut buf);
                    self.bytes += buf.len() as u64;
                }
            }
            self.routers[to].handle_messages(at, id_of(from), batch);
            self.pump(to);
        }
        (
            self.delivered - before,
            self.bytes - bytes_before,
            self.now - t0,
        )
    }
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A random connected graph: a random spanning tree plus n/2 extra links.
fn random(n: usize, rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut e: Vec<(usize, usize)> = (1..n).map(|i| (rng.below(i), i)).collect();
    for _ in 0..n / 2 {
        e.push((rng.below(n), rng.below(n)));
    }
    e
}

/// A Zeek-like cluster: one manager, one logger, n/50 proxies (each peered with manager and
/// logger), every other node a worker peered with the manager, the logger and one proxy.
fn zeek_like(n: usize) -> Vec<(usize, usize)> {
    let proxies = (n / 50).max(1);
    let mut e = vec![(0, 1)];
    for p in 0..proxies {
        e.push((2 + p, 0));
        e.push((2 + p, 1));
    }
    for w in 2 + proxies..n {
        e.push((w, 0));
        e.push((w, 1));
        e.push((w, 2 + w % proxies));
    }
    e
}

/// What endpoint `i` subscribes to, as a Zeek node: its node topic and its role's.
fn filter_of(i: usize, n: usize, shape: &str) -> Vec<Topic> {
    let proxies = (n / 50).max(1);
    let role = match (shape, i) {
        ("zeek-like", 0) => "manager",
        ("zeek-like", 1) => "logger",
        ("zeek-like", i) if i < 2 + proxies => "proxy",
        _ => "worker",
    };
    [
        format!("zeek/cluster/node/{role}-{i}/"),
        format!("zeek/cluster/{role}/"),
    ]
    .into_iter()
    .map(|t| Topic::new(t).unwrap())
    .collect()
}

/// Bytes of a Broker 2.8 `routing_update` (or handshake filter) carrying `filter`: the frame
/// (length, sender, receiver, type, ttl, topic length; empty topic) and the varint-counted
/// topics.
fn broker_update_bytes(filter: &[Topic]) -> u64 {
    let frame: usize = 4 + 16 + 16 + 1 + 2 + 2;
    let varint = |n: usize| if n < 128 { 1 } else { 2 };
    let topics: usize = filter
        .iter()
        .map(|t| varint(t.as_bytes().len()) + t.as_bytes().len())
        .sum();
    (frame + varint(filter.len()) + topics) as u64
}

/// Our changes' costs, measured.
struct Ours {
    links: usize,
    form: (u64, Duration, bool),
    sub: (u64, u64, Duration),
    cut: (u64, u64, Duration),
    join: (u64, u64, Duration),
    lsdb_kib: f64,
    wall: f64,
}

/// C++ Broker 2.8 on the same graph: an endpoint announces its own filter to its direct
/// peers only (`broadcast_subscriptions`: one `routing_update` per peer with the whole
/// filter; a peering exchanges filters in the handshake), and keeps each peer's filter.
/// Nothing travels further: a cut costs no control message, and what a subscriber two hops
/// away wants reaches it only where the hop between subscribes too.
struct BrokerModel {
    sub: (u64, u64),
    join: (u64, u64),
    state_kib: f64,
}

fn broker_model(n: usize, shape: &str, edges: &[(usize, usize)], changed: usize) -> BrokerModel {
    let mut peers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a != b && !peers[a].contains(&b) {
            peers[a].push(b);
            peers[b].push(a);
        }
    }
    let filters: Vec<Vec<Topic>> = (0..n).map(|i| filter_of(i, n, shape)).collect();
    let mut grown = filters[changed].clone();
    grown.push(Topic::new("zeek/event/new").unwrap());
    let deg = peers[changed].len() as u64;
    let sub = (deg, deg * broker_update_bytes(&grown));
    // The newcomer peers with two endpoints: each handshake carries both filters.
    let join = (
        4,
        2 * broker_update_bytes(&filters[n - 1])
            + broker_update_bytes(&filters[0])
            + broker_update_bytes(&filters[1]),
    );
    // Each peer's filter as a vector of topics (`filter_type`: 24 bytes + the string).
    let state: usize = (0..n)
        .map(|i| {
            peers[i]
                .iter()
                .map(|&p| {
                    filters[p]
                        .iter()
                        .map(|t| 32 + t.as_bytes().len())
                        .sum::<usize>()
                        + 24
                })
                .sum::<usize>()
        })
        .sum();
    BrokerModel {
        sub,
        join,
        state_kib: state as f64 / n as f64 / 1024.0,
    }
}

fn run(n: usize, shape: &str, direct: bool) -> (Ours, BrokerModel) {
    let wall = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let edges = if shape == "random" {
        random(n - 1, &mut rng)
    } else {
        zeek_like(n - 1)
    };
    // The last endpoint joins later.
    let mut net = Net::new(n);
    for i in 0..n {
        for t in filter_of(i, n, shape) {
            net.routers[i].subscribe(1, t);
        }
    }
    for &(a, b) in &edges {
        net.connect(a, b);
    }
    let links = net.up.len();
    let form = if direct {
        let handed = net.form_direct();
        (handed, Duration::ZERO, true)
    } else {
        let (m, _, t) = net.settle();
        (m, t, false)
    };
    // A new subscription at one endpoint.
    let changed = n / 3;
    net.routers[changed].subscribe(1, Topic::new("zeek/event/new").unwrap());
    net.pump(changed);
    let sub = net.settle();
    // A cut link (one that keeps the network connected: an extra link of a random graph, a
    // worker's link to the logger in a Zeek-like one).
    let (a, b) = if shape == "random" {
        edges[n - 2 + 1]
    } else {
        (n - 2, 1)
    };
    net.cut(a, b);
    let cut = net.settle();
    // A new endpoint joins with two links.
    net.connect(n - 1, 0);
    net.connect(n - 1, 1);
    let join = net.settle();
    let lsdb: usize = net.routers.iter().map(Router::link_state_bytes).sum();
    let known = net.routers[n / 2].known_endpoints().len();
    assert_eq!(
        known, n,
        "the network did not converge: {known} of {n} known"
    );
    let _ = net.start;
    let ours = Ours {
        links,
        form,
        sub,
        cut,
        join,
        lsdb_kib: lsdb as f64 / n as f64 / 1024.0,
        wall: wall.elapsed().as_secs_f64(),
    };
    (ours, broker_model(n, shape, &edges, changed))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let always_direct = args.iter().any(|a| a == "--direct");
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![200, 500, 1000]
    } else {
        sizes
    };
    println!("| endpoints | topology | links | forming: messages / ms | subscription: messages / KiB / ms | cut: messages / KiB / ms | join: messages / KiB / ms | link states per endpoint | wall s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut broker_rows = Vec::new();
    for &n in &sizes {
        for shape in ["random", "zeek-like"] {
            let direct = always_direct || n > 500;
            let (o, b) = run(n, shape, direct);
            let kib = |x: u64| x as f64 / 1024.0;
            let form = if o.form.2 {
                format!("{} handed over (formed directly)", o.form.0)
            } else {
                format!("{} / {}", o.form.0, o.form.1.as_millis())
            };
            println!(
                "| {n} | {shape} | {} | {form} | {} / {:.0} / {} | {} / {:.0} / {} | {} / {:.0} / {} | {:.1} KiB | {:.1} |",
                o.links,
                o.sub.0,
                kib(o.sub.1),
                o.sub.2.as_millis(),
                o.cut.0,
                kib(o.cut.1),
                o.cut.2.as_millis(),
                o.join.0,
                kib(o.join.1),
                o.join.2.as_millis(),
                o.lsdb_kib,
                o.wall
            );
            broker_rows.push((n, shape, o, b));
        }
    }
    println!();
    println!("C++ Broker 2.8 on the same graphs (one-hop filter announcements, computed):");
    println!();
    println!("| endpoints | topology | subscription: messages / KiB (ours) | cut: messages (ours) | join: messages / KiB (ours) | filters kept per endpoint (ours: link states) |");
    println!("|---|---|---|---|---|---|");
    for (n, shape, o, b) in broker_rows {
        println!(
            "| {n} | {shape} | {} / {:.1} ({} / {:.0}) | 0 ({}) | {} / {:.1} ({} / {:.0}) | {:.2} KiB ({:.1} KiB) |",
            b.sub.0,
            b.sub.1 as f64 / 1024.0,
            o.sub.0,
            o.sub.1 as f64 / 1024.0,
            o.cut.0,
            b.join.0,
            b.join.1 as f64 / 1024.0,
            o.join.0,
            o.join.1 as f64 / 1024.0,
            b.state_kib,
            o.lsdb_kib
        );
    }
}
