//! Routing throughput of the core alone (no I/O) and topic matching against large filter sets.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use broker_data::Data;
use broker_routing::{Config, Content, Message, PeerKind, PrefixMap, Router};
use broker_wire::{EndpointId, LinkState, Topic};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn id(n: u8) -> EndpointId {
    EndpointId::from_bytes([n; 16])
}

/// Two routed endpoints, A publishing, B subscribed to `/bench` plus 1,000 other filters.
fn pair() -> (Router, Router) {
    let now = Instant::now();
    let mut a = Router::new(
        id(1),
        1,
        Config {
            peer_buffer_size: usize::MAX,
            ..Config::default()
        },
    );
    let mut b = Router::new(id(2), 1, Config::default());
    b.subscribe(1, Topic::new("/bench").unwrap());
    for i in 0..1000 {
        b.subscribe(2, Topic::new(format!("/filter/{i:04}/")).unwrap());
    }
    a.add_peer(now, id(2), PeerKind::Routed, vec![]);
    b.add_peer(now, id(1), PeerKind::Routed, vec![]);
    loop {
        let mut moved = false;
        while let Some((_, m)) = a.poll_transmit() {
            b.handle_message(now, id(1), m);
            moved = true;
        }
        while let Some((_, m)) = b.poll_transmit() {
            a.handle_message(now, id(2), m);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    (a, b)
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let topic = Topic::new("/bench/events").unwrap();
    let payload = broker_data::SharedData::from(Data::Count(42));
    const BATCH: u64 = 1000;

    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(BATCH));
    let (mut a, _) = pair();
    g.bench_function("publish_to_subscribing_peer", |bch| {
        bch.iter(|| {
            for _ in 0..BATCH {
                a.publish(now, topic.clone(), Content::Data(payload.clone()));
            }
            let mut n = 0;
            while let Some(m) = a.poll_transmit_for(id(2)) {
                black_box(&m);
                n += 1;
            }
            assert_eq!(n, BATCH);
        })
    });
    let (mut a2, mut b2) = pair();
    g.bench_function("receive_and_deliver", |bch| {
        bch.iter_batched(
            || {
                for _ in 0..BATCH {
                    a2.publish(now, topic.clone(), Content::Data(payload.clone()));
                }
                std::iter::from_fn(|| a2.poll_transmit_for(id(2))).collect::<Vec<Message>>()
            },
            |msgs| {
                for m in msgs {
                    b2.handle_message(now, id(1), m);
                }
                let mut n = 0;
                while let Some(e) = b2.poll_event() {
                    black_box(&e);
                    n += 1;
                }
                assert_eq!(n, BATCH);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // Topic matching against 100,000 filters.
    let mut filters = PrefixMap::new();
    for i in 0..100_000u32 {
        filters.insert(
            format!("zeek/cluster/node-{:03}/topic-{i:06}", i % 500).as_bytes(),
            i,
        );
    }
    let topics: Vec<Vec<u8>> = (0..1024u32)
        .map(|i| {
            format!(
                "zeek/cluster/node-{:03}/topic-{:06}/event",
                (i * 7) % 500,
                (i * 97) % 100_000
            )
            .into_bytes()
        })
        .collect();
    let mut g = c.benchmark_group("match");
    g.throughput(Throughput::Elements(topics.len() as u64));
    g.bench_function("100k_filters", |bch| {
        bch.iter(|| {
            let mut hits = 0u32;
            for t in &topics {
                filters.for_each_prefix_of(black_box(t), |_| hits += 1);
            }
            hits
        })
    });
    g.finish();
}

/// A worker of a Zeek-like cluster of 1,000 endpoints (a manager and a logger peered with
/// every worker, 20 proxies), its link-state database full, and the manager's link state.
fn zeek_worker_of_1000() -> (Router, LinkState) {
    let now = Instant::now();
    let wid = |i: usize| {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        EndpointId::from_bytes(b)
    };
    let n = 1000;
    let proxies = 20;
    let mut neighbors: Vec<Vec<EndpointId>> = vec![Vec::new(); n];
    let mut link = |a: usize, b: usize| {
        neighbors[a].push(wid(b));
        neighbors[b].push(wid(a));
    };
    link(0, 1);
    for p in 2..2 + proxies {
        link(p, 0);
        link(p, 1);
    }
    for w in 2 + proxies..n {
        link(w, 0);
        link(w, 1);
        link(w, 2 + w % proxies);
    }
    let states: Vec<LinkState> = (0..n)
        .map(|i| LinkState {
            origin: wid(i),
            incarnation: 1,
            version: 1,
            forwarding: true,
            neighbors: neighbors[i].clone(),
            filter: vec![Topic::new(format!("zeek/cluster/node/{i}/")).unwrap()],
            stubs: vec![],
        })
        .collect();
    let me = n - 1;
    let mut r = Router::new(wid(me), 1, Config::default());
    for nb in &neighbors[me] {
        r.add_peer(now, *nb, PeerKind::Routed, vec![]);
    }
    r.subscribe(1, Topic::new(format!("zeek/cluster/node/{me}/")).unwrap());
    let batch: Vec<Message> = states
        .iter()
        .filter(|ls| ls.origin != wid(me))
        .map(|ls| Message::LinkState(Arc::new(ls.clone())))
        .collect();
    r.handle_messages(now, wid(0), batch);
    while r.poll_transmit().is_some() {}
    while r.poll_event().is_some() {}
    assert_eq!(r.known_endpoints().len(), n);
    (r, states[0].clone())
}

/// The control plane: what a new version of a hub's link state costs an endpoint of a large
/// cluster (the graph and filter index rebuilt, the floods queued).
fn control(c: &mut Criterion) {
    let now = Instant::now();
    let (mut r, mut manager) = zeek_worker_of_1000();
    let from = manager.origin;
    let mut g = c.benchmark_group("control");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hub_link_state_in_a_zeek_cluster_of_1000", |bch| {
        bch.iter(|| {
            manager.version += 1;
            r.handle_messages(now, from, [Message::LinkState(Arc::new(manager.clone()))]);
            while r.poll_transmit().is_some() {}
            while r.poll_event().is_some() {}
        })
    });
    g.finish();
}

criterion_group!(benches, bench, control);
criterion_main!(benches);
