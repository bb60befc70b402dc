//! What measures a small message between two endpoints, shared by `benches/receive.rs` and
//! `tests/tests/allocations.rs` (each includes this file): the two endpoints, and the system
//! allocator counting allocations (each installs it as its binary's global allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use broker::data::Data;
use broker::{Configuration, Endpoint, Publisher, Subscriber};

/// Two endpoints over loopback TCP (no TLS): a publisher on `topic` at one, a subscriber to
/// its first segment at the other, once the subscription has reached the publishing side
/// (the endpoints are returned so that they live as long as the two).
pub(crate) fn publisher_and_subscriber(topic: &str) -> (Publisher, Subscriber, [Endpoint; 2]) {
    let endpoint = || {
        Endpoint::new(Configuration {
            disable_ssl: true,
            ..Configuration::default()
        })
        .unwrap()
    };
    let (publishing, receiving) = (endpoint(), endpoint());
    let port = receiving.listen("127.0.0.1", 0).unwrap();
    let prefix = format!(
        "/{}",
        topic.trim_start_matches('/').split('/').next().unwrap()
    );
    let sub = receiving
        .make_subscriber(&[prefix.as_str()], Some(8192))
        .unwrap();
    publishing.peer("127.0.0.1", port, None).unwrap();
    let publisher = publishing.make_publisher(topic).unwrap();
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
    (publisher, sub, [publishing, receiving])
}

/// The system allocator, counting allocations (and reallocations).
pub(crate) struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Allocations so far, every thread of the process.
pub(crate) fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

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
