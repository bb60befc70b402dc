//! `broker bench --stores`: data store throughput per backend, at the master and through a
//! clone on another endpoint over loopback, and the time from a put at the master to its
//! visibility at the clone.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker::data::Data;
use broker::{BackendOptions, BackendType, CloneOptions, Configuration, Endpoint, Store};

const WAIT: Duration = Duration::from_secs(120);

fn endpoint(disable_ssl: bool) -> Result<Endpoint> {
    Ok(Endpoint::new(Configuration {
        disable_ssl,
        ..Configuration::default()
    })?)
}

fn backends() -> Vec<(&'static str, BackendType)> {
    let mut v = vec![
        ("memory", BackendType::Memory),
        ("sqlite", BackendType::Sqlite),
    ];
    if cfg!(feature = "rocksdb") {
        v.push(("rocksdb", BackendType::RocksDb));
    }
    v
}

fn options(kind: BackendType, dir: &std::path::Path, tag: &str) -> BackendOptions {
    let mut o = BackendOptions::new();
    let path = match kind {
        BackendType::Sqlite => dir.join(format!("{tag}.sqlite")),
        _ => dir.join(tag),
    };
    o.insert("path".into(), Data::from(path.to_string_lossy().as_ref()));
    o
}

/// Puts `n` entries and waits until the store has applied (and stored) them all.
fn puts(store: &Store, n: u64) -> Result<f64> {
    let start = Instant::now();
    for i in 0..n {
        store.put(i, i, None);
    }
    if !store.await_idle(WAIT) {
        bail!("store {} did not become idle", store.name());
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `n` gets, pipelined through a proxy (how an event loop reads).
fn proxy_gets(store: &Store, n: u64) -> Result<f64> {
    let proxy = store.proxy()?;
    let start = Instant::now();
    let mut received = 0;
    let mut sent = 0;
    while received < n {
        // Keep a window of requests in flight.
        while sent < n && sent - received < 4096 {
            proxy.get(sent % n);
            sent += 1;
        }
        let got = proxy.receive_n(4096, Some(WAIT));
        if got.is_empty() {
            bail!("no answer from store {}", store.name());
        }
        for r in &got {
            r.answer
                .as_ref()
                .map_err(|e| anyhow::anyhow!("get failed: {e}"))?;
        }
        received += got.len() as u64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `n` blocking gets, one after the other (latency-bound).
fn blocking_gets(store: &Store, n: u64) -> Result<f64> {
    let start = Instant::now();
    for i in 0..n {
        store.get(i % n.max(1))?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// From a put at the master to the clone's store event for it.
fn visibility(master: &Store, clone_ep: &Endpoint, rounds: u64) -> Result<(Duration, Duration)> {
    let events = clone_ep.make_subscriber(
        &[&format!("<$>/local/data/store-events/{}", master.name())],
        Some(1024),
    )?;
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let key = format!("latency-{i}");
        let start = Instant::now();
        master.put(key.as_str(), i, None);
        loop {
            let m = events
                .get_timeout(WAIT)
                .context("no store event at the clone")?;
            if let Data::Vector(v) = &*m.data {
                if v.get(2) == Some(&Data::from(key.as_str())) {
                    break;
                }
            }
        }
        samples.push(start.elapsed());
    }
    samples.sort();
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

/// Runs every store case and prints the results, then one JSON line.
pub(crate) fn run(ops: u64, disable_ssl: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("broker-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let transport = if disable_ssl { "plain TCP" } else { "TLS" };
    println!("broker bench --stores: {ops} operations per case, clones over loopback {transport}");
    let mut json = Vec::new();
    for (name, kind) in backends() {
        let ep = endpoint(disable_ssl)?;
        let master = ep.attach_master(&format!("bench-{name}"), kind, options(kind, &dir, name))?;
        let put = puts(&master, ops)?;
        let get = proxy_gets(&master, ops)?;
        let get1 = blocking_gets(&master, (ops / 10).max(1))?;
        println!(
            "{name:>8} master: put {put:>10.0}/s   get {get:>10.0}/s (proxy)   {get1:>8.0}/s (blocking)"
        );
        // A clone on another endpoint over loopback.
        let other = endpoint(disable_ssl)?;
        let port = ep.listen("127.0.0.1", 0)?;
        other.peer("127.0.0.1", port, None)?;
        let clone = other.attach_clone(master.name(), CloneOptions::default())?;
        if !clone.await_idle(WAIT) {
            bail!("the clone did not synchronize");
        }
        let cput = puts(&clone, ops)?;
        let cget = proxy_gets(&clone, ops)?;
        let (p50, p99) = visibility(&master, &other, 2_000)?;
        println!(
            "{name:>8} clone:  put {cput:>10.0}/s (acknowledged by the master)   get {cget:>10.0}/s (proxy)   put→visible p50 {:.0} µs p99 {:.0} µs",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
        json.push(format!(
            "\"{name}\":{{\"master_put\":{put:.0},\"master_get\":{get:.0},\"master_get_blocking\":{get1:.0},\"clone_put\":{cput:.0},\"clone_get\":{cget:.0},\"visible_p50_us\":{:.1},\"visible_p99_us\":{:.1}}}",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        ));
        other.shutdown();
        ep.shutdown();
    }
    println!("{{\"tls\":{},{}}}", !disable_ssl, json.join(","));
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
