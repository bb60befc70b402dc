//! Small messages cost no allocation each: two endpoints over loopback TCP, runs of counts
//! published and taken, every allocation of the process (both endpoints, every thread)
//! counted. A count, like any value without a container, travels from the publisher through
//! the router, the wire and the receiving router to the subscriber held in place
//! (`SharedData`); what is left is per batch (frames, queues' growth, the vector `get_n`
//! returns). Not a timed test: it counts, so a slow machine passes as well as a fast one.

use std::time::Duration;

use broker_data::Data;

#[path = "../../crates/broker/benches/support/small.rs"]
mod small;

#[global_allocator]
static GLOBAL: small::Counting = small::Counting;

const RUN: u64 = 1000;
const RUNS: u64 = 50;

/// Counts, and strings short enough to be held inline, cost well under one allocation a
/// message across both endpoints; a vector (a container, shared behind one reference count)
/// costs its own allocations and is the control that the count sees them.
#[test]
fn a_small_value_costs_no_allocation_between_two_endpoints() {
    let (publisher, sub, _endpoints) = small::publisher_and_subscriber("/a/small");
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
        let before = small::allocations();
        for _ in 0..RUNS {
            run();
        }
        (small::allocations() - before) as f64 / (RUNS * RUN) as f64
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
