//! The bus under bad input and slow clients: garbage, truncated and oversized frames end
//! only the offending connection; a client that stops reading is handled by its queue's
//! policy and never stalls the others; connections come and go by the thousand.

use std::time::Duration;

use broker_bus::{Bus, BusConfig, OverflowPolicy, Qos, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

async fn bus(config: BusConfig, server: ServerConfig) -> (Bus, String) {
    let bus = Bus::new(config);
    bus.init_default_core_rpc().unwrap();
    let (_, addr) = bus.spawn_tcp_server("127.0.0.1:0", server).await.unwrap();
    (bus, addr.to_string())
}

/// A raw connection whose greeting is exchanged: the server waits for a name.
async fn greeted(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hello = [0u8; 3];
    s.read_exact(&mut hello).await.unwrap();
    assert_eq!(hello, [0xEB, 1, 0]);
    s.write_all(&hello).await.unwrap();
    let mut ok = [0u8; 1];
    s.read_exact(&mut ok).await.unwrap();
    assert_eq!(ok, [1]);
    s
}

/// A raw client: the handshake done by hand, `name` registered.
async fn raw(addr: &str, name: &str) -> TcpStream {
    let mut s = greeted(addr).await;
    let mut ok = [0u8; 1];
    s.write_all(&(name.len() as u16).to_le_bytes())
        .await
        .unwrap();
    s.write_all(name.as_bytes()).await.unwrap();
    s.read_exact(&mut ok).await.unwrap();
    assert_eq!(ok, [1], "registration of {name}");
    s
}

fn frame(op_id: u32, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut v = op_id.to_le_bytes().to_vec();
    v.push(flags);
    v.extend_from_slice(&(body.len() as u32).to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// The connection ends (EOF or reset) within the wait.
async fn closed(s: &mut TcpStream) {
    let mut buf = [0u8; 256];
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the bus kept the connection"),
        }
    }
}

/// A client that still works: p2p to itself with an ACK.
async fn alive(addr: &str, name: &str) {
    let mut s = raw(addr, name).await;
    let mut body = name.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(b"ping");
    s.write_all(&frame(1, 0x52, &body)).await.unwrap();
    let mut got = vec![0u8; 6 + name.len() + 1 + 4 + 6];
    tokio::time::timeout(WAIT, s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got[0], 0x12);
    assert_eq!(&got[got.len() - 6..], &[0xFE, 1, 0, 0, 0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_end_only_their_connection() {
    let (_bus, addr) = bus(
        BusConfig::default(),
        ServerConfig {
            max_frame_size: 1024,
            timeout: Duration::from_millis(500),
            ..ServerConfig::default()
        },
    )
    .await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown op", frame(1, 0x3F, b"x")),
        ("oversized", {
            let mut v = 1u32.to_le_bytes().to_vec();
            v.push(0x01);
            v.extend_from_slice(&u32::MAX.to_le_bytes());
            v
        }),
        ("publish without topic", frame(1, 0x01, b"no-nul")),
        ("message without target", frame(1, 0x12, b"no-nul")),
        ("publish_for without receiver", frame(1, 0x06, b"t\0r")),
        ("topic not UTF-8", frame(1, 0x02, b"\xff\xfe")),
        ("garbage", vec![0x55; 64]),
    ];
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let mut s = raw(&addr, &format!("bad{i}")).await;
        s.write_all(bytes).await.unwrap();
        closed(&mut s).await;
        eprintln!("{what}: closed");
    }
    // A truncated frame: the header promises more than ever comes; the body timeout ends it.
    let mut s = raw(&addr, "truncated").await;
    s.write_all(&frame(1, 0x01, b"t\0payload")[..12])
        .await
        .unwrap();
    closed(&mut s).await;
    // A bad handshake: wrong greeting echo gets ERR_NOT_SUPPORTED.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut hello = [0u8; 3];
    s.read_exact(&mut hello).await.unwrap();
    s.write_all(&[0xEB, 2, 0]).await.unwrap();
    let mut r = [0u8; 1];
    s.read_exact(&mut r).await.unwrap();
    assert_eq!(r, [0x75]);
    // A name that is not UTF-8: dropped without a byte.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.read_exact(&mut hello).await.unwrap();
    s.write_all(&hello).await.unwrap();
    s.read_exact(&mut r).await.unwrap();
    s.write_all(&[2, 0, 0xff, 0xfe]).await.unwrap();
    closed(&mut s).await;
    alive(&addr, "survivor").await;
}

/// One subscriber stops reading while a publisher floods; another keeps reading.
async fn flood_with(policy: OverflowPolicy) -> (u64, bool) {
    let (bus, addr) = bus(
        BusConfig {
            queue_size: 256,
            overflow_policy: policy,
            ..BusConfig::default()
        },
        ServerConfig {
            timeout: Duration::from_millis(800),
            ..ServerConfig::default()
        },
    )
    .await;
    let mut stuck = raw(&addr, "stuck").await;
    stuck.write_all(&frame(1, 0x42, b"flood")).await.unwrap();
    let reader = bus.register_client("reader").unwrap();
    reader.subscribe(&["flood"]).await.unwrap();
    let publisher = bus.register_client("pub").unwrap();
    let payload = vec![7u8; 1024];
    let n = 20_000u64;
    let taker = tokio::spawn(async move {
        let mut got = 0u64;
        let mut batch = Vec::new();
        while got < n {
            match tokio::time::timeout(WAIT, reader.recv_batch(&mut batch)).await {
                Ok(true) => {
                    got += batch.len() as u64;
                    batch.clear();
                }
                _ => break,
            }
        }
        got
    });
    for i in 0..n {
        publisher.publish("flood", &payload, Qos::No).await.unwrap();
        if i.is_multiple_of(1000) {
            tokio::task::yield_now().await;
        }
    }
    let got = taker.await.unwrap();
    // Whether the stuck client is still registered.
    let still = publisher.send("stuck", b"?", Qos::Processed).await.is_ok();
    (got, still)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_never_stalls_the_others_under_each_policy() {
    // busrt's rule: the stuck client is disconnected; the reader gets everything.
    let (got, still) = flood_with(OverflowPolicy::Disconnect).await;
    assert_eq!(got, 20_000);
    assert!(!still, "the stuck client was disconnected");
    for policy in [OverflowPolicy::DropOldest, OverflowPolicy::DropNewest] {
        let (got, still) = flood_with(policy).await;
        assert_eq!(got, 20_000, "{policy:?}");
        assert!(still, "{policy:?} keeps the stuck client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_come_and_go_while_traffic_flows() {
    let (bus, addr) = bus(BusConfig::default(), ServerConfig::default()).await;
    let receiver = bus.register_client("sink").unwrap();
    receiver.subscribe(&["load/#"]).await.unwrap();
    let publisher = bus.register_client("source").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let pumping = tokio::spawn(async move {
        let mut sent = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            publisher.publish("load/x", b"data", Qos::No).await.unwrap();
            sent += 1;
            if sent.is_multiple_of(64) {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        sent
    });
    let counting = tokio::spawn(async move {
        let mut got = 0u64;
        let mut batch = Vec::new();
        while let Ok(true) =
            tokio::time::timeout(Duration::from_secs(2), receiver.recv_batch(&mut batch)).await
        {
            got += batch.len() as u64;
            batch.clear();
        }
        got
    });
    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = raw(&addr, &format!("c{i}")).await;
            if i.is_multiple_of(2) {
                // A subscriber that leaves at once, half of them without a goodbye.
                s.write_all(&frame(1, 0x02, b"load/#")).await.unwrap();
            }
            drop(s);
        }));
        if tasks.len() == 50 {
            for t in tasks.drain(..) {
                t.await.unwrap();
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = pumping.await.unwrap();
    let got = counting.await.unwrap();
    assert_eq!(got, sent, "the steady subscriber lost nothing");
    // Every connection's client is gone (and sink and source, dropped): only .broker remains.
    let end = std::time::Instant::now() + WAIT;
    loop {
        let n = bus.clients();
        if n == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "{n} clients still registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection whose queue an in-process publisher on another thread keeps filling, and
/// whose client keeps reading, still lets the other tasks of its runtime run: on a
/// single-threaded runtime a timer goes on firing while the stream flows.
#[test]
fn a_connection_that_always_has_work_still_yields() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bus = Bus::new(BusConfig {
            queue_size: 1 << 16,
            ..BusConfig::default()
        });
        let addr = rt.block_on(async {
            let (_, addr) = bus
                .spawn_tcp_server("127.0.0.1:0", ServerConfig::default())
                .await
                .unwrap();
            addr.to_string()
        });
        // The client, on its own thread: subscribes, then reads and discards.
        let client = std::net::TcpStream::connect(&addr).unwrap();
        let mut c = client.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut b = [0u8; 3];
            c.read_exact(&mut b).unwrap();
            c.write_all(&b).unwrap();
            let mut ok = [0u8; 1];
            c.read_exact(&mut ok).unwrap();
            c.write_all(&[3, 0]).unwrap();
            c.write_all(b"sub").unwrap();
            c.read_exact(&mut ok).unwrap();
            c.write_all(&frame(1, 0x42, b"flood")).unwrap();
            // Pings keep the connection's client a fast one (its spin stays on).
            let mut pinger = c.try_clone().unwrap();
            std::thread::spawn(move || {
                while pinger.write_all(&[0; 9]).is_ok() {
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
            let mut buf = vec![0u8; 1 << 16];
            while c.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
        });
        // The server handles the handshake and the subscription while this waits.
        rt.block_on(async {
            let deadline = tokio::time::Instant::now() + WAIT;
            while bus.clients() < 1 {
                assert!(tokio::time::Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
        let publisher = bus.register_client("pub").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let flood = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let payload = [1u8; 64];
                while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    let run = std::iter::repeat_n(&payload[..], 256);
                    publisher.publish_many("flood", run, Qos::No).await.unwrap();
                }
            });
        });
        let ticks = rt.block_on(async {
            let mut ticks = 0;
            let end = std::time::Instant::now() + Duration::from_secs(1);
            while std::time::Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks += 1;
            }
            ticks
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flood.join().unwrap();
        drop(client);
        let _ = done_tx.send(ticks);
        drop(rt);
        let _ = reader.join();
    });
    let ticks = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the runtime's other tasks were starved");
    assert!(ticks >= 10, "the timer fired {ticks} times in 1 s");
}

/// A client that closes its connection and registers the same name again at once (busrt's
/// own benchmark does, between its stages) gets it, although the close comes on another
/// socket than the new registration; a name held by a live client is still refused (BUSY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_freed_by_a_close_is_free_at_once() {
    let (_bus, addr) = bus(BusConfig::default(), ServerConfig::default()).await;
    for round in 0..30 {
        let old = raw(&addr, "again").await;
        let mut s = greeted(&addr).await;
        let mut ok = [0u8; 1];
        // The old one closes as the name goes out on the new one.
        s.set_nodelay(true).unwrap();
        drop(old);
        s.write_all(b"\x05\x00again").await.unwrap();
        s.read_exact(&mut ok).await.unwrap();
        assert_eq!(ok, [1], "round {round}");
    }
    let _holder = raw(&addr, "held").await;
    let mut s = greeted(&addr).await;
    let mut ok = [0u8; 1];
    s.write_all(b"\x04\x00held").await.unwrap();
    s.read_exact(&mut ok).await.unwrap();
    assert_eq!(ok, [0x76], "a live holder keeps its name");
}
