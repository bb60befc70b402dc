//! The facade's path for small messages, per message: one endpoint publishes runs of small
//! values (counts) to another in the same process over loopback TCP, and a subscriber takes
//! them. The time runs until the subscriber has the whole run: encoding, writing, reading,
//! decoding, routing and delivery at both endpoints, on this machine's processors (the
//! layers below have their own benches: `broker-wire` `stream_64_counts`, `broker-routing`
//! `route/receive_and_deliver`). It also prints the allocations per message of a run (both
//! endpoints, every thread). `cargo bench -p broker --bench receive`.
#![allow(missing_docs)]

use std::time::Duration;

use broker::data::Data;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "support/small.rs"]
mod small;

const RUN: u64 = 1000;

#[global_allocator]
static GLOBAL: small::Counting = small::Counting;

fn bench(c: &mut Criterion) {
    let (publisher, sub, _endpoints) = small::publisher_and_subscriber("/bench/small");
    let run = || {
        publisher.publish_batch((0..RUN).map(Data::Count)).unwrap();
        let mut got = 0;
        while got < RUN {
            let n = sub
                .get_n((RUN - got) as usize, Some(Duration::from_secs(10)))
                .len();
            assert!(n > 0, "a run did not arrive");
            got += n as u64;
        }
    };
    for _ in 0..100 {
        run();
    }
    let before = small::allocations();
    for _ in 0..100 {
        run();
    }
    let per = (small::allocations() - before) as f64 / (100 * RUN) as f64;
    eprintln!("facade/small_values_between_two_endpoints: {per:.2} allocations per message");
    let mut g = c.benchmark_group("facade");
    g.throughput(Throughput::Elements(RUN));
    g.bench_function("small_values_between_two_endpoints", |b| b.iter(run));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
