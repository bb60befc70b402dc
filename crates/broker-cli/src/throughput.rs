//! `broker throughput`: C++ Broker's `broker-throughput` tool, for measuring broker-rs and
//! C++ Broker against each other with the same load.
//!
//! The server subscribes to `/benchmark/events` and prints `rate: N events/s` once a second;
//! the client peers with it and publishes the Zeek event of `broker-throughput -t 1` (the
//! vector `(1, 1, ("event_1", (42, "test")))`, 42 an integer) as fast as the network takes it
//! (`-r 0`). Either side can be C++ Broker's tool, so all four pairings run with one load.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use broker::{Configuration, Endpoint};
use broker_data::Data;

/// The event `broker-throughput -t 1` publishes.
fn event() -> Data {
    let args = Data::from(vec![Data::Integer(42), Data::from("test")]);
    Data::from(vec![
        Data::Count(1),
        Data::Count(1),
        Data::from(vec![Data::from("event_1"), args]),
    ])
}

fn endpoint(disable_ssl: bool) -> Result<Endpoint> {
    let mut config = Configuration::load(None)?;
    config.disable_ssl = config.disable_ssl || disable_ssl;
    Ok(Endpoint::new(config)?)
}

/// Counts events on `/benchmark/events` and prints the rate once a second, for `seconds`
/// seconds (forever when 0).
pub(crate) fn server(address: &str, port: u16, disable_ssl: bool, seconds: u64) -> Result<()> {
    let ep = endpoint(disable_ssl)?;
    let sub = ep.make_subscriber(&["/benchmark/events"], Some(1 << 20))?;
    let bound = ep.listen(address, port)?;
    println!("*** listening on {bound}");
    let start = Instant::now();
    let mut next = start + Duration::from_secs(1);
    let mut count = 0u64;
    loop {
        let left = next.saturating_duration_since(Instant::now());
        count += sub.get_n(100_000, Some(left)).len() as u64;
        if Instant::now() >= next {
            println!("rate: {count} events/s");
            count = 0;
            next += Duration::from_secs(1);
            if seconds > 0 && next > start + Duration::from_secs(seconds + 1) {
                return Ok(());
            }
        }
    }
}

/// Publishes the event as fast as the peer takes it, for `seconds` seconds (forever when 0).
pub(crate) fn client(host: &str, port: u16, disable_ssl: bool, seconds: u64) -> Result<()> {
    let ep = endpoint(disable_ssl)?;
    ep.peer(host, port, Some(Duration::from_secs(1)))
        .with_context(|| format!("cannot peer with {host}:{port}"))?;
    let publisher = ep.make_publisher("/benchmark/events")?;
    let batch: Vec<Data> = (0..256).map(|_| event()).collect();
    let end = Instant::now() + Duration::from_secs(seconds);
    while seconds == 0 || Instant::now() < end {
        publisher.publish_batch(batch.iter().cloned())?;
    }
    ep.shutdown();
    Ok(())
}
