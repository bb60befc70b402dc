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
#[derive(clap::Args)]
pub(crate) struct FanOutArgs {
    /// Subscriber endpoints.
    #[arg(short = 'p', long, default_value_t = 10)]
    pub(crate) peer_count: u64,
    /// Messages to publish.
    #[arg(short = 'm', long, default_value_t = 10_000)]
    pub(crate) message_count: u64,
    /// Bytes per message (a random alphanumeric string).
    #[arg(short = 's', long, default_value_t = 1_000)]
    pub(crate) payload_size: u64,
    /// Seed of the payload generator.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Publish one message per call instead of in batches.
    #[arg(long)]
    pub(crate) naive_publish: bool,
    /// Plain TCP instead of TLS.
    #[arg(long)]
    pub(crate) disable_ssl: bool,
    /// Say what happens.
    #[arg(long)]
    pub(crate) verbose: bool,
}

const WAIT: Duration = Duration::from_secs(120);

/// Distinct payloads made before the run.
const POOL: u64 = 1000;

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
    // Every subscriber connects at once: the publisher takes all their handshakes together
    // (its default, 64, would evict the oldest of a larger burst).
    let publisher = Endpoint::new(Configuration {
        max_handshakes: (args.peer_count as usize + 16).max(64),
        ..config(&args)
    })?;
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
            let started = (|| -> Result<_> {
                let ep = Endpoint::new(cfg)?;
                let sub = ep.make_subscriber(&["/benchmark"], None)?;
                ep.peer("127.0.0.1", port, None)?;
                Ok((ep, sub))
            })();
            let (ep, sub) = match started {
                Ok(x) => {
                    let _ = id_tx.send(Ok(x.0.node_id()));
                    x
                }
                Err(e) => {
                    let _ = id_tx.send(Err(format!("subscriber {index}: {e:#}")));
                    return Err(e);
                }
            };
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
        match id_rx.recv_timeout(WAIT) {
            Ok(Ok(id)) => ids.push(id),
            Ok(Err(e)) => bail!("{e}"),
            Err(_) => bail!("a subscriber did not start within {} s", WAIT.as_secs()),
        }
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
    // Payloads are made before the clock starts (Broker's tool makes each while it runs, so
    // its time includes 1 KiB of random numbers per message): a pool of 1,000 random strings,
    // published in turn (values are shared, as a publisher's are).
    let mut gen = Payloads {
        state: (args.seed % 2_147_483_647).max(1),
        size: args.payload_size as usize,
    };
    let pool: Vec<Data> = (0..POOL.min(args.message_count.max(1)))
        .map(|_| gen.next())
        .collect();
    let mut values = pool.iter().cycle();
    let t0 = Instant::now();
    if args.naive_publish {
        for value in values.by_ref().take(args.message_count as usize) {
            publisher.publish("/benchmark/fan-out", value.clone())?;
        }
    } else {
        let mut left = args.message_count;
        while left > 0 {
            let k = left.min(1000);
            publisher.publish_batch(
                values
                    .by_ref()
                    .take(k as usize)
                    .map(|v| ("/benchmark/fan-out", v.clone())),
            )?;
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
