//! Pub/sub throughput of the bus, one publisher to one subscriber: in process, and over a
//! UNIX socket and TCP with busrt 0.5.6's own client (QoS No, 100 B and 1 KiB). Prints
//! messages per second, median of three runs. `cargo bench -p broker-bus --bench pubsub`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use broker_bus::{Bus, BusConfig, Qos, ServerConfig};
use busrt::client::AsyncClient;
use busrt::ipc::{Client, Config};
use busrt::QoS;

// The allocator `broker bus serve` runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One publisher, one subscriber, in process: `publish` per message, or `publish_many`
/// with runs of `run` payloads.
async fn in_process(n: u64, size: usize, run: usize) -> f64 {
    let bus = Bus::new(BusConfig::default());
    let publisher = bus.register_client("pub").unwrap();
    let subscriber = bus.register_client("sub").unwrap();
    subscriber.subscribe(&["bench/#"]).await.unwrap();
    let payload = vec![0x5a; size];
    let taker = tokio::spawn(async move {
        let mut got = 0u64;
        let mut batch = Vec::with_capacity(8192);
        while got < n && subscriber.recv_batch(&mut batch).await {
            got += batch.len() as u64;
            batch.clear();
        }
        got
    });
    let start = Instant::now();
    if run <= 1 {
        for _ in 0..n {
            publisher
                .publish("bench/x", &payload, Qos::No)
                .await
                .unwrap();
        }
    } else {
        let mut left = n;
        while left > 0 {
            let k = left.min(run as u64);
            let payloads = (0..k).map(|_| payload.as_slice());
            publisher
                .publish_many("bench/x", payloads, Qos::No)
                .await
                .unwrap();
            left -= k;
        }
    }
    assert_eq!(taker.await.unwrap(), n);
    n as f64 / start.elapsed().as_secs_f64()
}

async fn over_socket(path: &str, n: u64, size: usize) -> f64 {
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let config = |role: &str| {
        Config::new(path, &format!("{role}{run}"))
            .timeout(Duration::from_secs(10))
            .queue_size(65536)
    };
    let mut sub = Client::connect(&config("sub")).await.unwrap();
    let rx = sub.take_event_channel().unwrap();
    sub.subscribe("bench/#", QoS::Processed)
        .await
        .unwrap()
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let mut publisher = Client::connect(&config("pub")).await.unwrap();
    // busrt has no flow control (a subscriber that falls a queue behind is disconnected):
    // the publisher stays within a window of what the subscriber has taken.
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let taken2 = taken.clone();
    let taker = tokio::spawn(async move {
        let mut got = 0u64;
        while got < n {
            if rx.recv().await.is_err() {
                break;
            }
            got += 1;
            if got.is_multiple_of(1024) {
                taken2.store(got, std::sync::atomic::Ordering::Relaxed);
            }
        }
        (got, Instant::now())
    });
    let payload = vec![0x5a; size];
    let start = Instant::now();
    for i in 0..n {
        while i >= taken.load(std::sync::atomic::Ordering::Relaxed) + 32_768 {
            assert!(!taker.is_finished(), "the subscriber was disconnected");
            tokio::task::yield_now().await;
        }
        publisher
            .publish("bench/x", payload.as_slice().into(), QoS::No)
            .await
            .unwrap();
    }
    let (got, end) = taker.await.unwrap();
    assert_eq!(got, n, "the subscriber got everything");
    drop(sub);
    n as f64 / (end - start).as_secs_f64()
}

/// A raw client: busrt's handshake by hand.
async fn raw(path: &str, name: &str) -> tokio::net::UnixStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    let mut hello = [0u8; 3];
    s.read_exact(&mut hello).await.unwrap();
    s.write_all(&hello).await.unwrap();
    let mut ok = [0u8; 1];
    s.read_exact(&mut ok).await.unwrap();
    s.write_all(&(name.len() as u16).to_le_bytes())
        .await
        .unwrap();
    s.write_all(name.as_bytes()).await.unwrap();
    s.read_exact(&mut ok).await.unwrap();
    assert_eq!(ok, [1]);
    s
}

fn client_frame(op_id: u32, flags: u8, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&op_id.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
}

/// The server alone: a publisher writing frames in batches and a subscriber parsing them,
/// both speaking the protocol directly (busrt's client library costs more than the server).
async fn over_unix_raw(path: &str, n: u64, size: usize) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut sub = raw(path, &format!("rawsub{run}")).await;
    let mut f = Vec::new();
    client_frame(1, 0x42, b"bench/#", &mut f);
    sub.write_all(&f).await.unwrap();
    let mut ack = [0u8; 6];
    sub.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack[0], 0xFE);
    let mut publisher = raw(path, &format!("rawpub{run}")).await;
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let taken2 = taken.clone();
    let taker = tokio::spawn(async move {
        let mut buf = bytes::BytesMut::with_capacity(1 << 20);
        let mut got = 0u64;
        while got < n {
            if sub.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                break;
            }
            // Whole frames: 6-byte header with the body length.
            let mut at = 0;
            while buf.len() - at >= 6 {
                let len = u32::from_le_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]])
                    as usize;
                if buf.len() - at < 6 + len {
                    break;
                }
                at += 6 + len;
                got += 1;
            }
            let _ = buf.split_to(at);
            taken2.store(got, std::sync::atomic::Ordering::Relaxed);
        }
        (got, Instant::now())
    });
    let mut body = b"bench/x\0".to_vec();
    body.extend(std::iter::repeat_n(0x5a, size));
    let mut batch = Vec::with_capacity(256 * (9 + body.len()));
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        while sent >= taken.load(std::sync::atomic::Ordering::Relaxed) + 32_768 {
            assert!(!taker.is_finished(), "the subscriber was disconnected");
            tokio::task::yield_now().await;
        }
        batch.clear();
        let k = 256.min(n - sent);
        for i in 0..k {
            client_frame((sent + i) as u32 + 1, 0x01, &body, &mut batch);
        }
        publisher.write_all(&batch).await.unwrap();
        sent += k;
    }
    let (got, end) = taker.await.unwrap();
    assert_eq!(got, n, "the subscriber got everything");
    n as f64 / (end - start).as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("broker-bus-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("bench.sock");
        let bus = Bus::new(BusConfig {
            queue_size: 65536,
            ..BusConfig::default()
        });
        bus.spawn_unix_server(&sock, ServerConfig::default())
            .await
            .unwrap();
        let (_, addr) = bus
            .spawn_tcp_server("127.0.0.1:0", ServerConfig::default())
            .await
            .unwrap();
        let (sock, tcp) = (sock.display().to_string(), addr.to_string());
        // `cargo bench -p broker-bus --bench pubsub -- in-process` runs that case alone (also
        // `in-process-runs`, `unix`, `tcp`, `unix-raw`).
        let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        let runs = |case: &str| only.as_deref().is_none_or(|o| o == case);
        for size in [100usize, 1024] {
            let n = if size == 100 { 2_000_000 } else { 500_000 };
            let mut inp = Vec::new();
            let mut inp_many = Vec::new();
            let mut unix = Vec::new();
            let mut t = Vec::new();
            let mut rawu = Vec::new();
            for _ in 0..3 {
                if runs("in-process") {
                    inp.push(in_process(n * 2, size, 1).await);
                }
                if runs("in-process") || runs("in-process-runs") {
                    inp_many.push(in_process(n * 2, size, 64).await);
                }
                if runs("unix") {
                    unix.push(over_socket(&sock, n, size).await);
                }
                if runs("tcp") {
                    t.push(over_socket(&tcp, n, size).await);
                }
                if runs("unix-raw") {
                    rawu.push(over_unix_raw(&sock, n * 2, size).await);
                }
            }
            let show = |case: &str, v: Vec<f64>, what: &str| {
                if !v.is_empty() {
                    println!(
                        "pubsub {size:>5} B  {case:<10} {:>12.0} msg/s{what}",
                        median(v)
                    );
                }
            };
            show("in-process", inp, " (publish)");
            show("in-process", inp_many, " (publish_many, runs of 64)");
            show("UNIX", unix, " (busrt's client)");
            show("TCP", t, " (busrt's client)");
            show("UNIX", rawu, " (frames written and parsed directly)");
        }
        let _ = std::fs::remove_dir_all(dir);
    });
}
