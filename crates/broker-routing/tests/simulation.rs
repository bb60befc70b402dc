//! Seeded simulations: lines, stars, rings, full meshes and random graphs of up to 50
//! endpoints; random subscriptions and publications; links that fail and come back; endpoints
//! that restart. After each run the checker verifies exactly-once, in-order delivery to every
//! reachable subscriber, nothing for non-subscribers, no endless circulation, and status events
//! that match the topology.
//!
//! `SIM_SEEDS=n` runs n seeds (default 1000); `SIM_SEED=s` runs only seed s, to reproduce a
//! failure (every assertion names its seed).

mod sim;

use std::time::Duration;

use broker_routing::Config;
use sim::{topic, Sim};

const TOPICS: &[&str] = &["a", "a/b", "a/b/c", "b", "c/d", "zeek/", ""];
const PUBLISH: &[&str] = &["a/b/c/x", "a/x", "b/y", "c/d", "c/e", "zeek/event", "q"];

#[derive(Debug, Clone, Copy)]
enum Shape {
    Line,
    Star,
    Ring,
    Mesh,
    Random,
}

fn edges(shape: Shape, n: usize, rng: &mut sim::Rng) -> Vec<(usize, usize)> {
    match shape {
        Shape::Line => (1..n).map(|i| (i - 1, i)).collect(),
        Shape::Star => (1..n).map(|i| (0, i)).collect(),
        Shape::Ring => (0..n)
            .map(|i| (i, (i + 1) % n))
            .filter(|(a, b)| a != b)
            .collect(),
        Shape::Mesh => (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .collect(),
        Shape::Random => {
            // A random spanning tree plus extra edges that make loops.
            let mut e: Vec<(usize, usize)> = (1..n).map(|i| (rng.below(i), i)).collect();
            for _ in 0..n / 2 + 1 {
                let (a, b) = (rng.below(n), rng.below(n));
                if a != b {
                    e.push((a, b));
                }
            }
            e
        }
    }
}

fn publish_some(s: &mut Sim, count: usize, settled: bool, seed: u64) {
    for _ in 0..count {
        let a = s.rng.below(s.nodes.len());
        let t = PUBLISH[s.rng.below(PUBLISH.len())];
        s.publish(a, topic(t), settled);
        if settled && s.rng.chance(30) {
            s.settle(seed);
        }
    }
}

fn run(seed: u64) {
    let mut rng = sim::Rng::new(seed ^ 0xabcdef);
    let shape = [
        Shape::Line,
        Shape::Star,
        Shape::Ring,
        Shape::Mesh,
        Shape::Random,
    ][rng.below(5)];
    let max = if matches!(shape, Shape::Mesh) { 12 } else { 50 };
    // Mostly small networks (they exercise the same paths faster), sometimes the full 50.
    let n = if rng.chance(10) {
        max
    } else {
        2 + rng.below(max.min(20) - 1)
    };
    let mut config = Config::default();
    if rng.chance(20) {
        config.ttl = 2 + rng.below(6) as u16;
    }
    let mut s = Sim::new(seed, n, config);
    // Some endpoints do not forward (Broker's forward=false).
    if rng.chance(15) {
        let k = rng.below(n);
        s.nodes[k].forwarding = false;
        let mut c = s.nodes[k].router.config().clone();
        c.forwarding = false;
        s.nodes[k].router = broker_routing::Router::new(sim::id_of(k), 1, c);
    }
    for i in 0..n {
        for sub in 0..rng.below(3) as u64 {
            let t = TOPICS[rng.below(TOPICS.len())];
            s.subscribe(i, sub, topic(t));
        }
    }
    let links = edges(shape, n, &mut rng);
    for &(a, b) in &links {
        s.connect(a, b);
    }
    s.settle(seed);
    publish_some(&mut s, 20, true, seed);
    s.settle(seed);

    // Churn: links fail, endpoints restart, subscriptions change; messages published meanwhile
    // need only arrive at most once and in order.
    for _ in 0..3 {
        match rng.below(5) {
            0 => {
                let (a, b) = links[rng.below(links.len().max(1))];
                s.cut(a, b);
            }
            1 => {
                let k = rng.below(n);
                if !s.departed.contains(&k) {
                    s.restart(k);
                }
            }
            // An endpoint leaves for good (at most one, in networks of four or more).
            4 if n >= 4 && s.departed.is_empty() => s.depart(rng.below(n)),
            2 => {
                let a = rng.below(n);
                let t = TOPICS[rng.below(TOPICS.len())];
                s.subscribe(a, 9, topic(t));
            }
            _ => {
                let a = rng.below(n);
                if let Some((sub, t)) = s.nodes[a]
                    .subs
                    .iter()
                    .next()
                    .and_then(|(s, ts)| ts.iter().next().map(|t| (*s, t.clone())))
                {
                    s.unsubscribe(a, sub, &t);
                }
            }
        }
        publish_some(&mut s, 3, false, seed);
        for _ in 0..rng.below(20) {
            s.step();
        }
        // Sometimes a refresh period passes in the middle of the churn.
        if rng.chance(30) {
            s.advance(REFRESH + Duration::from_secs(10));
        }
    }
    s.settle(seed);
    publish_some(&mut s, 10, true, seed);
    s.settle(seed);

    // Heal: every failed link comes back (but a departed endpoint's).
    for &(a, b) in &links {
        if !s.departed.contains(&a) && !s.departed.contains(&b) {
            s.connect(a, b);
        }
    }
    s.settle(seed);
    publish_some(&mut s, 10, true, seed);
    s.settle(seed);
    s.check(seed);

    // Time passes: refreshes and purges run; every database holds only reachable endpoints,
    // and the network still delivers exactly once.
    s.advance(REFRESH * 3);
    s.settle(seed);
    s.check_link_state_databases(seed);
    publish_some(&mut s, 5, true, seed);
    s.settle(seed);
    s.check(seed);
    assert!(s.timeouts > 0, "seed {seed}: no router timeout ran");
    // Long after, a departed endpoint's id is forgotten everywhere, tombstones included.
    s.advance(REFRESH * 14);
    s.settle(seed);
    assert_eq!(
        s.departed_ids_known(),
        0,
        "seed {seed}: link states or tombstones outlive their endpoints"
    );
}

/// The routers' link-state refresh interval (the default).
const REFRESH: Duration = Duration::from_secs(60);

#[test]
fn simulated_topologies() {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        run(seed.parse().expect("SIM_SEED is a number"));
        return;
    }
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for seed in 0..seeds {
        run(seed);
    }
}
