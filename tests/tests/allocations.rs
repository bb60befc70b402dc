//! Small messages cost no allocation each: two endpoints over loopback TCP, runs of counts
//! published and taken, every allocation of the process (both endpoints, every thread)
//! counted. A count, like any value without a container, travels from the publisher through
//! the router, the wire and the receiving router to the subscriber held in place
//! (`SharedData`); what is left is per batch (frames, queues' growth, the vector `get_n`
//! returns). Not a timed test: it counts, so a slow machine passes as well as a fast one.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use broker::{Configuration, Endpoint};
use broker_data::Data;

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
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

const RUN: u64 = 1000;
const RUNS: u64 = 50;

fn endpoint() -> Endpoint {
    Endpoint::new(Configuration {
        disable_ssl: true,
        ..Configuration::default()
    })
    .unwrap()
}

/// Counts, and strings short enough to be held inline, cost well under one allocation a
/// message across both endpoints; a vector (a container, shared behind one reference count)
/// costs its own allocations and is the control that the count sees them.
#[test]
fn a_small_value_costs_no_allocation_between_two_endpoints() {
    let (publishing, receiving) = (endpoint(), endpoint());
    let port = receiving.listen("127.0.0.1", 0).unwrap();
    let sub = receiving.make_subscriber(&["/a"], Some(8192)).unwrap();
    publishing.peer("127.0.0.1", port, None).unwrap();
    let publisher = publishing.make_publisher("/a/small").unwrap();
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
    let per_message = |make: &dyn Fn(u64) -> Data| {
        let kind = make(0).data_type();
        let run = || {
            publisher.publish_batch((0..RUN).map(make)).unwrap();
            let mut got = 0;
            while got < RUN {
                let batch = sub.get_n((RUN - got) as usize, Some(Duration::from_secs(10)));
                assert!(!batch.is_empty(), "a run did not arrive");
                for m in &batch {
                    assert_eq!(m.data.data_type(), kind);
                }
                got += batch.len() as u64;
            }
        };
        // Buffers grow to their working size first.
        for _ in 0..RUNS {
            run();
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..RUNS {
            run();
        }
        (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / (RUNS * RUN) as f64
    };
    let counts = per_message(&Data::Count);
    const STATES: [&str; 4] = ["S0", "SF", "REJ", "RSTO"];
    let strings = per_message(&|i| Data::from(STATES[i as usize % 4]));
    let vectors = per_message(&|i| Data::from(vec![i]));
    eprintln!(
        "allocations per message: counts {counts:.2}, short strings {strings:.2}, vectors {vectors:.2}"
    );
    assert!(counts < 0.5, "{counts:.2} allocations per count");
    assert!(strings < 0.5, "{strings:.2} allocations per short string");
    assert!(
        vectors >= 2.0,
        "the control: a vector allocates, {vectors:.2}"
    );
}
