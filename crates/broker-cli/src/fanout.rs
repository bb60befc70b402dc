//! `broker bench fan-out`: Broker's fan-out benchmark. One publisher endpoint, `peer-count`
//! subscriber endpoints in the same process (each on its own thread, peered over loopback),
//! `message-count` messages of `payload-size` random alphanumeric bytes on
//! `/benchmark/fan-out`; the run ends when every subscriber has every message. Broker's tool
//! prints nothing and is timed from outside; this one reports the time from the first
//! publication to the last delivery.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker::{Configuration, Endpoint};
use broker_data::Data;

use crate::bench::peak_rss_kib;

/// What `broker bench fan-out` was asked (Broker's options and defaults).
pub(crate) struct FanOutArgs {
    pub(crate) peer_count: u64,
    pub(crate) message_count: u64,
    pub(crate) payload_size: u64,
    pub(crate) seed: u64,
    pub(crate) naive_publish: bool,
    pub(crate) disable_ssl: bool,
    pub(crate) verbose: bool,
}

const WAIT: Duration = Duration::from_secs(120);

/// Broker's generator: `minstd_rand` over its 62 characters.
struct Payloads {
    state: u64,
    size: usize,
}

impl Payloads {
    fn next(&mut self) -> Data {
        const CHARSET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut s = Vec::with_capacity(self.size);
        for _ in 0..self.size {
            self.state = self.state * 48_271 % 2_147_483_647;
            s.push(CHARSET[(self.state % CHARSET.len() as u64) as usize]);
        }
        Data::String(s.into())
    }
}

fn config(args: &FanOutArgs) -> Configuration {
    Configuration {
        disable_ssl: args.disable_ssl,
        ..Configuration::default()
    }
}

pub(crate) fn run(args: FanOutArgs) -> Result<()> {
    if args.peer_count == 0 {
        bail!("--peer-count must be at least 1");
    }
    let publisher = Endpoint::new(config(&args))?;
    let port = publisher.listen("127.0.0.1", 0)?;
    let n = args.peer_count as usize;
    let ready = Arc::new(Barrier::new(n + 1));
    let mut ids = Vec::new();
    let mut threads = Vec::new();
    let (id_tx, id_rx) = std::sync::mpsc::channel();
    for index in 0..n {
        let ready = ready.clone();
        let id_tx = id_tx.clone();
        let cfg = config(&args);
        let messages = args.message_count;
        let verbose = args.verbose;
        threads.push(std::thread::spawn(move || -> Result<Instant> {
            let ep = Endpoint::new(cfg)?;
            let sub = ep.make_subscriber(&["/benchmark"], None)?;
            ep.peer("127.0.0.1", port, None)?;
            let _ = id_tx.send(ep.node_id());
            ready.wait();
            let mut got = 0u64;
            while got < messages {
                let batch = sub.get_n(100_000, Some(WAIT));
                if batch.is_empty() {
                    bail!("subscriber {index} stalled after {got} of {messages} messages");
                }
                got += batch.len() as u64;
                if verbose && index == 0 && got % 1000 < batch.len() as u64 {
                    eprintln!("subscriber 1 received {got} items ...");
                }
            }
            let done = Instant::now();
            ep.shutdown();
            Ok(done)
        }));
    }
    drop(id_tx);
    for _ in 0..n {
        ids.push(
            id_rx
                .recv_timeout(WAIT)
                .context("a subscriber did not start")?,
        );
    }
    ready.wait();
    for id in &ids {
        publisher
            .await_peer(*id, WAIT)
            .context("peers failed to connect")?;
    }
    // Every subscription must have arrived before the first message goes out.
    let end = Instant::now() + WAIT;
    while !publisher
        .peer_subscriptions()?
        .iter()
        .any(|t| t.as_str() == "/benchmark")
    {
        if Instant::now() > end {
            bail!("the subscribers' subscriptions never arrived");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if args.verbose {
        eprintln!("received all {n} handshakes -> run!");
    }
    let mut gen = Payloads {
        state: (args.seed % 2_147_483_647).max(1),
        size: args.payload_size as usize,
    };
    let t0 = Instant::now();
    if args.naive_publish {
        for _ in 0..args.message_count {
            publisher.publish("/benchmark/fan-out", gen.next())?;
        }
    } else {
        let mut left = args.message_count;
        while left > 0 {
            let k = left.min(1000);
            publisher.publish_batch((0..k).map(|_| ("/benchmark/fan-out", gen.next())))?;
            left -= k;
        }
    }
    let published = t0.elapsed();
    let mut last = t0;
    for t in threads {
        let done = t
            .join()
            .map_err(|_| anyhow::anyhow!("a subscriber panicked"))??;
        last = last.max(done);
    }
    let secs = (last - t0).as_secs_f64();
    let per_sub = args.message_count as f64 / secs;
    let deliveries = per_sub * n as f64;
    println!(
        "fan-out: {} subscribers, {} messages of {} bytes: {secs:.3}s (published in {:.3}s), {per_sub:.0} msg/s per subscriber, {deliveries:.0} deliveries/s, peak memory {} KiB",
        n,
        args.message_count,
        args.payload_size,
        published.as_secs_f64(),
        peak_rss_kib()
    );
    println!(
        "{{\"bench\":\"fan-out\",\"subscribers\":{n},\"messages\":{},\"payload\":{},\"seconds\":{secs:.6},\"msgs_per_sec\":{per_sub:.0},\"deliveries_per_sec\":{deliveries:.0},\"peak_kib\":{}}}",
        args.message_count,
        args.payload_size,
        peak_rss_kib()
    );
    publisher.shutdown();
    Ok(())
}
