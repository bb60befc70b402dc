//! Floods one endpoint's subscriber from another endpoint of the same process, peered directly
//! (shared values), and prints the rate: `cargo run --release -p broker --example local_flood`.

use std::time::Instant;

use broker::{Configuration, Endpoint};
use broker_data::Data;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let (a, b) = (
        Endpoint::new(Configuration::default()).unwrap(),
        Endpoint::new(Configuration::default()).unwrap(),
    );
    let sub = b.make_subscriber(&["/f"], Some(1_000_000)).unwrap();
    a.peer_local(&b).unwrap();
    let start = Instant::now();
    let publisher = std::thread::spawn(move || {
        let value = Data::Count(1);
        for _ in 0..n / 1000 {
            a.publish_batch((0..1000).map(|_| ("/f", value.clone())))
                .unwrap();
        }
        a
    });
    let mut got = 0u64;
    while got < n {
        got += sub.get_n(1_000_000, None).len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let _a = publisher.join().unwrap();
    println!("{n} messages in {secs:.3} s: {:.0} msg/s", n as f64 / secs);
}
