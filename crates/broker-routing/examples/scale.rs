//! How link-state routing grows with the network: 200, 500 and 1,000 endpoints in random and
//! Zeek-like topologies, driven on virtual time (1 ms per hop) with every message in flight
//! on a global queue. For each network: the messages and virtual time until it is quiet after
//! it forms, then after each kind of change (a new subscription, a cut link, a new endpoint
//! joining), and the link-state database's size per endpoint. Not a test: run with
//! `cargo run --release -p broker-routing --example scale [-- 200 500 1000]`.
#![allow(missing_docs)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use broker_routing::{Config, Message, PeerKind, PeerLoss, Router};
use broker_wire::{EndpointId, Topic};

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

    /// Delivers everything in flight; returns (messages, virtual time until quiet).
    fn settle(&mut self) -> (u64, Duration) {
        let (before, t0) = (self.delivered, self.now);
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
            self.routers[to].handle_messages(at, id_of(from), batch);
            self.pump(to);
        }
        (self.delivered - before, self.now - t0)
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

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![200, 500, 1000]
    } else {
        sizes
    };
    println!("| endpoints | topology | links | form: msgs | form: ms | subscribe: msgs / ms | cut: msgs / ms | join: msgs / ms | LSDB KiB per endpoint | wall s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &n in &sizes {
        for shape in ["random", "zeek-like"] {
            let wall = Instant::now();
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
            let edges = if shape == "random" {
                random(n - 1, &mut rng)
            } else {
                zeek_like(n - 1)
            };
            // The last endpoint joins later.
            let mut net = Net::new(n);
            for &(a, b) in &edges {
                net.connect(a, b);
            }
            let links = net.up.len();
            let (form_msgs, form_t) = net.settle();
            // A new subscription at one endpoint.
            let t = Topic::new("zeek/event/new").unwrap();
            net.routers[n / 3].subscribe(1, t);
            net.pump(n / 3);
            let (sub_msgs, sub_t) = net.settle();
            // A cut link (one that keeps the network connected: an extra link of a random
            // graph, a worker's link to the logger in a Zeek-like one).
            let (a, b) = if shape == "random" {
                edges[n - 2 + 1]
            } else {
                (n - 2, 1)
            };
            net.cut(a, b);
            let (cut_msgs, cut_t) = net.settle();
            // A new endpoint joins with two links.
            net.connect(n - 1, 0);
            net.connect(n - 1, 1);
            let (join_msgs, join_t) = net.settle();
            let lsdb: usize = net.routers.iter().map(Router::link_state_bytes).sum();
            let known = net.routers[n / 2].known_endpoints().len();
            assert_eq!(
                known, n,
                "the network did not converge: {known} of {n} known"
            );
            let _ = net.start;
            println!(
                "| {n} | {shape} | {links} | {form_msgs} | {} | {sub_msgs} / {} | {cut_msgs} / {} | {join_msgs} / {} | {:.1} | {:.1} |",
                form_t.as_millis(),
                sub_t.as_millis(),
                cut_t.as_millis(),
                join_t.as_millis(),
                lsdb as f64 / n as f64 / 1024.0,
                wall.elapsed().as_secs_f64()
            );
        }
    }
}
