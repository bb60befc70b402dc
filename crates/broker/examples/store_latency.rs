//! Benchmark (not a test): ping-pong round trips between two endpoints of this process over
//! loopback, while the first endpoint's SQLite master takes a stream of puts on another
//! thread (and, for comparison, without it). Prints p50/p99 of each case.
//!
//! ```text
//! cargo run --release -p broker --example store_latency [ROUNDS]
//! ```

use std::time::{Duration, Instant};

use broker::data::Data;
use broker::{BackendOptions, BackendType, Configuration, Endpoint};

fn endpoint() -> Endpoint {
    Endpoint::new(Configuration {
        disable_ssl: true,
        ..Configuration::default()
    })
    .expect("an endpoint")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn ping_pong(a: &Endpoint, b: &Endpoint, rounds: usize) -> (Duration, Duration) {
    let at_a = a.make_subscriber(&["/pong"], None).expect("subscriber");
    let at_b = b.make_subscriber(&["/ping"], None).expect("subscriber");
    std::thread::sleep(Duration::from_millis(200));
    let echo = {
        let b = b.clone();
        std::thread::spawn(move || {
            for _ in 0..rounds {
                let m = at_b.get().expect("a ping");
                b.publish("/pong", (*m.data).clone()).expect("publish");
            }
        })
    };
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        a.publish("/ping", Data::Count(i as u64)).expect("publish");
        at_a.get().expect("a pong");
        times.push(t.elapsed());
    }
    echo.join().expect("the echo thread");
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let dir = std::env::temp_dir().join(format!("store-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (a, b) = (endpoint(), endpoint());
    let port = b.listen("127.0.0.1", 0).expect("listen");
    a.peer("127.0.0.1", port, None).expect("peer");
    let (p50, p99) = ping_pong(&a, &b, rounds);
    println!("idle store:      ping-pong p50 {p50:?} p99 {p99:?}");
    let mut options = BackendOptions::new();
    options.insert(
        "path".into(),
        Data::from(dir.join("s.sqlite").to_str().expect("a path")),
    );
    let master = a
        .attach_master("s", BackendType::Sqlite, options)
        .expect("a master");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                master.put(i % 100_000, "x".repeat(100), None);
                i += 1;
            }
            i
        })
    };
    let (p50, p99) = ping_pong(&a, &b, rounds);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let puts = writer.join().expect("the writer");
    println!("SQLite puts:     ping-pong p50 {p50:?} p99 {p99:?} ({puts} puts meanwhile)");
    let _ = std::fs::remove_dir_all(&dir);
}
