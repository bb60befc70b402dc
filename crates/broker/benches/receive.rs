//! The facade's path for small messages, per message: one endpoint publishes runs of small
//! values (counts) to another in the same process over loopback TCP, and a subscriber takes
//! them. The time runs until the subscriber has the whole run: encoding, writing, reading,
//! decoding, routing and delivery at both endpoints, on this machine's processors (the
//! layers below have their own benches: `broker-wire` `stream_64_counts`, `broker-routing`
//! `route/receive_and_deliver`). It also prints the allocations per message of a run (both
//! endpoints, every thread). `cargo bench -p broker --bench receive`.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use broker::data::Data;
use broker::{Configuration, Endpoint};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RUN: u64 = 1000;

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let sub = receiving.make_subscriber(&["/bench"], Some(8192)).unwrap();
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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        run();
    }
    let per = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / (100 * RUN) as f64;
    eprintln!("facade/small_values_between_two_endpoints: {per:.2} allocations per message");
    let mut g = c.benchmark_group("facade");
    g.throughput(Throughput::Elements(RUN));
    g.bench_function("small_values_between_two_endpoints", |b| b.iter(run));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
