//! The facade's path for small messages, per message: one endpoint publishes runs of small
//! values (counts) to another in the same process over loopback TCP, and a subscriber takes
//! them. The time runs until the subscriber has the whole run: encoding, writing, reading,
//! decoding, routing and delivery at both endpoints, on this machine's processors (the
//! layers below have their own benches: `broker-wire` `stream_64_counts`, `broker-routing`
//! `route/receive_and_deliver`). `cargo bench -p broker --bench receive`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use broker::data::Data;
use broker::{Configuration, Endpoint};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RUN: u64 = 1000;

fn endpoint() -> Endpoint {
    Endpoint::new(Configuration {
        disable_ssl: true,
        ..Configuration::default()
    })
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let (publishing, receiving) = (endpoint(), endpoint());
    let port = receiving.listen("127.0.0.1", 0).unwrap();
    let sub = receiving.make_subscriber(&["/bench"], None).unwrap();
    publishing.peer("127.0.0.1", port, None).unwrap();
    let publisher = publishing.make_publisher("/bench/small").unwrap();
    // Until the subscription has reached the publishing side.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        publisher.publish(Data::Count(0)).unwrap();
        if sub.get_timeout(Duration::from_millis(20)).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the subscription never arrived");
    }
    std::thread::sleep(Duration::from_millis(50));
    let _ = sub.poll();
    let mut g = c.benchmark_group("facade");
    g.throughput(Throughput::Elements(RUN));
    g.bench_function("small_values_between_two_endpoints", |b| {
        b.iter(|| {
            publisher.publish_batch((0..RUN).map(Data::Count)).unwrap();
            let mut got = 0;
            while got < RUN {
                let n = sub
                    .get_n((RUN - got) as usize, Some(Duration::from_secs(10)))
                    .len();
                assert!(n > 0, "a run did not arrive");
                got += n as u64;
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
