//! `broker bench`: end-to-end throughput and latency, between two processes over loopback and
//! between two endpoints in one process.
//!
//! The measuring side is this process; the other side of a two-process case is this same
//! binary started as `broker bench-peer`. Results print as lines for people and one JSON line
//! for scripts.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker::{Configuration, Endpoint, Subscriber};
use broker_data::Data;

const WAIT: Duration = Duration::from_secs(60);

/// Whether the benchmark runs without TLS (set once, before any endpoint exists).
static PLAIN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// An endpoint with the defaults and `BROKER_*` variables (so cases can be rerun with other
/// settings), TLS as the run asks.
fn endpoint() -> Result<Endpoint> {
    let mut config = Configuration::load(None)?;
    config.disable_ssl = PLAIN.get().copied().unwrap_or(false);
    Ok(Endpoint::new(config)?)
}

fn plain_flag() -> &'static str {
    if PLAIN.get().copied().unwrap_or(false) {
        "plain"
    } else {
        "tls"
    }
}

/// Peak resident memory of this process, in KiB (Linux `VmHWM`).
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn payload(kind: &str) -> Data {
    match kind {
        "1k" => Data::from("x".repeat(1024)),
        _ => Data::Count(42),
    }
}

/// Receives `n` messages, returning when the last arrived.
pub(crate) fn drain(sub: &Subscriber, n: u64) -> Result<Instant> {
    let mut got = 0u64;
    while got < n {
        let batch = sub.get_n(100_000, Some(WAIT));
        if batch.is_empty() {
            bail!("stalled after {got} of {n} messages");
        }
        got += batch.len() as u64;
    }
    Ok(Instant::now())
}

fn flood(ep: &Endpoint, n: u64, kind: &str) -> Result<()> {
    let value = payload(kind);
    let mut left = n;
    while left > 0 {
        let k = left.min(1000);
        ep.publish_batch((0..k).map(|_| ("/bench/data", value.clone())))?;
        left -= k;
    }
    Ok(())
}

/// The other side of a two-process case (`broker bench-peer MODE N`): `sink` counts `N`
/// messages, `pong` answers `/bench/ping` on `/bench/pong`. Prints `READY <port>`, then (sink)
/// `DONE <peak KiB>`.
pub(crate) fn peer(mode: &str, n: u64, transport: &str) -> Result<()> {
    let _ = PLAIN.set(transport == "plain");
    let ep = endpoint()?;
    let port = ep.listen("127.0.0.1", 0)?;
    match mode {
        "sink" => {
            let sub = ep.make_subscriber(&["/bench/data"], None)?;
            println!("READY {port}");
            std::io::stdout().flush()?;
            drain(&sub, n)?;
            println!("DONE {}", peak_rss_kib());
        }
        "node" => {
            println!("READY {port}");
            std::io::stdout().flush()?;
            // Runs until killed.
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        "pong" => {
            let sub = ep.make_subscriber(&["/bench/ping"], Some(1024))?;
            println!("READY {port}");
            std::io::stdout().flush()?;
            while let Some(m) = sub.get() {
                ep.publish("/bench/pong", (*m.data).clone())?;
            }
        }
        other => bail!("unknown bench-peer mode {other}"),
    }
    Ok(())
}

struct Peer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    port: u16,
}

impl Peer {
    fn start(mode: &str, n: u64) -> Result<Peer> {
        Peer::start_with(mode, n, plain_flag())
    }

    fn start_with(mode: &str, n: u64, transport: &str) -> Result<Peer> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["bench-peer", mode, &n.to_string(), transport])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let first = lines.next().context("bench peer ended early")??;
        let port = first
            .strip_prefix("READY ")
            .context("bench peer did not start")?
            .parse()?;
        Ok(Peer { child, lines, port })
    }

    fn line(&mut self) -> Result<String> {
        Ok(self.lines.next().context("bench peer ended early")??)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Throughput of `n` messages from this process to a sink process. Returns (msgs/s, sink KiB).
fn tput_two_processes(n: u64, kind: &str) -> Result<(f64, u64)> {
    let mut sink = Peer::start("sink", n)?;
    let ep = endpoint()?;
    ep.peer("127.0.0.1", sink.port, None)?;
    let start = Instant::now();
    flood(&ep, n, kind)?;
    let done = sink.line()?;
    let secs = start.elapsed().as_secs_f64();
    let kib = done
        .strip_prefix("DONE ")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((n as f64 / secs, kib))
}

/// Throughput between two endpoints in this process, over loopback TCP or (`local`) peered
/// directly with shared values.
fn tput_in_process(n: u64, kind: &str, local: bool) -> Result<f64> {
    tput_in_process_with(n, kind, local, endpoint()?)
}

/// Recording's cost: small messages between two endpoints peered in process, the publisher
/// recording (`broker.recording-directory`) or not, alternating three times. Returns the
/// medians without and with recording and the bytes recorded per message.
fn tput_recording(n: u64) -> Result<(f64, f64, f64)> {
    let dir = std::env::temp_dir().join(format!("broker-bench-rec-{}", std::process::id()));
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut bytes = 0.0;
    for rep in 0..6 {
        // Off, on, on, off, off, on: neither goes first more often.
        if [0, 3, 4].contains(&rep) {
            off.push(tput_in_process_with(n, "small", true, endpoint()?)?);
        } else {
            let mut config = Configuration::load(None)?;
            config.disable_ssl = PLAIN.get().copied().unwrap_or(false);
            config.recording_directory = Some(dir.clone());
            on.push(tput_in_process_with(
                n,
                "small",
                true,
                Endpoint::new(config)?,
            )?);
            bytes = std::fs::metadata(dir.join("messages.dat"))?.len() as f64 / n as f64;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(&mut off), median(&mut on), bytes))
}

/// [`tput_in_process`] with the publishing endpoint given; it is shut down at the end (so that
/// a recording is complete).
fn tput_in_process_with(n: u64, kind: &str, local: bool, a: Endpoint) -> Result<f64> {
    let b = endpoint()?;
    let sub = b.make_subscriber(&["/bench/data"], None)?;
    if local {
        a.peer_local(&b)?;
    } else {
        let port = b.listen("127.0.0.1", 0)?;
        a.peer("127.0.0.1", port, None)?;
    }
    let start = Instant::now();
    let publisher = {
        let a = a.clone();
        let kind = kind.to_owned();
        std::thread::spawn(move || flood(&a, n, &kind))
    };
    let end = drain(&sub, n)?;
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    a.shutdown();
    b.shutdown();
    Ok(n as f64 / end.duration_since(start).as_secs_f64())
}

/// The next message of a subscriber used as an async `Stream` (what async code does).
async fn next_of(sub: &mut Subscriber) -> Option<broker::DataMessage> {
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut *sub), cx))
        .await
}

/// Throughput in this process over loopback, received through the subscriber's async
/// `Stream` on a tokio runtime instead of blocking `get`.
fn tput_stream(n: u64) -> Result<f64> {
    let (a, b) = (endpoint()?, endpoint()?);
    let mut sub = b.make_subscriber(&["/bench/data"], None)?;
    let port = b.listen("127.0.0.1", 0)?;
    a.peer("127.0.0.1", port, None)?;
    let start = Instant::now();
    let publisher = {
        let a = a.clone();
        std::thread::spawn(move || flood(&a, n, "small"))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let got = rt.block_on(async {
        let mut got = 0u64;
        while got < n {
            match tokio::time::timeout(WAIT, next_of(&mut sub)).await {
                Ok(Some(_)) => got += 1,
                _ => break,
            }
        }
        got
    });
    if got < n {
        bail!("stalled after {got} of {n} messages");
    }
    let secs = start.elapsed().as_secs_f64();
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    Ok(n as f64 / secs)
}

/// Ping-pong in this process over loopback where both sides wait through async `Stream`s.
fn latency_stream(rounds: u64) -> Result<(Duration, Duration)> {
    let (a, b) = (endpoint()?, endpoint()?);
    let mut sa = a.make_subscriber(&["/bench/pong"], None)?;
    let mut sb = b.make_subscriber(&["/bench/ping"], None)?;
    let port = b.listen("127.0.0.1", 0)?;
    a.peer("127.0.0.1", port, None)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let echo = {
        let b = b.clone();
        rt.spawn(async move {
            while let Some(m) = next_of(&mut sb).await {
                if b.publish_async("/bench/pong", (*m.data).clone())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let times = rt.block_on(async {
        let mut times = Vec::with_capacity(rounds as usize);
        for i in 0..rounds {
            let t = Instant::now();
            a.publish_async("/bench/ping", Data::Count(i)).await?;
            match tokio::time::timeout(WAIT, next_of(&mut sa)).await {
                Ok(Some(_)) => times.push(t.elapsed()),
                _ => bail!("no pong for round {i}"),
            }
        }
        Ok::<_, anyhow::Error>(times)
    })?;
    echo.abort();
    let mut sorted = times;
    sorted.sort();
    Ok((percentile(&sorted, 0.5), percentile(&sorted, 0.99)))
}

/// Two publisher threads on one endpoint and two subscriber threads on another, peered over
/// loopback in this process, each pair on its own topic: what the endpoints' core locks cost
/// when threads share them.
fn tput_contention(n: u64) -> Result<f64> {
    let (a, b) = (endpoint()?, endpoint()?);
    let subs = [
        b.make_subscriber(&["/bench/c0"], None)?,
        b.make_subscriber(&["/bench/c1"], None)?,
    ];
    let port = b.listen("127.0.0.1", 0)?;
    a.peer("127.0.0.1", port, None)?;
    let half = n / 2;
    let start = Instant::now();
    let publishers: Vec<_> = (0..2)
        .map(|i| {
            let a = a.clone();
            std::thread::spawn(move || -> Result<()> {
                let topic = format!("/bench/c{i}");
                let mut left = half;
                while left > 0 {
                    let k = left.min(1000);
                    a.publish_batch((0..k).map(|_| (topic.as_str(), Data::Count(42))))?;
                    left -= k;
                }
                Ok(())
            })
        })
        .collect();
    let receivers: Vec<_> = subs
        .into_iter()
        .map(|s| std::thread::spawn(move || drain(&s, half)))
        .collect();
    let mut end = start;
    for r in receivers {
        end = end.max(
            r.join()
                .map_err(|_| anyhow::anyhow!("subscriber panicked"))??,
        );
    }
    for p in publishers {
        p.join()
            .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    }
    Ok((2 * half) as f64 / end.duration_since(start).as_secs_f64())
}

/// Throughput in this process over loopback when the publisher calls `publish` once per
/// message (what most applications and bindings do), instead of handing over batches.
fn tput_singles(n: u64) -> Result<f64> {
    let (a, b) = (endpoint()?, endpoint()?);
    let sub = b.make_subscriber(&["/bench/data"], None)?;
    let port = b.listen("127.0.0.1", 0)?;
    a.peer("127.0.0.1", port, None)?;
    let start = Instant::now();
    let publisher = std::thread::spawn(move || -> Result<()> {
        for i in 0..n {
            a.publish("/bench/data", Data::Count(i))?;
        }
        Ok(())
    });
    let end = drain(&sub, n)?;
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    Ok(n as f64 / end.duration_since(start).as_secs_f64())
}

/// Processor time this process has used so far (user and system, Linux `/proc/self/stat`, in
/// clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at its ')'.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// A trickle in this process over loopback: one small message every 300 µs (longer than the
/// spin budget), received by a thread blocked in `get`. Returns the processors' share used by
/// the whole process meanwhile (1.0 = one processor busy; spinning that does not pay shows)
/// and how many waits of both endpoints slept at once instead of spinning.
fn trickle_cpu(n: u64) -> Result<(f64, u64)> {
    let (a, b) = (endpoint()?, endpoint()?);
    let sub = b.make_subscriber(&["/bench/trickle"], None)?;
    let port = b.listen("127.0.0.1", 0)?;
    a.peer("127.0.0.1", port, None)?;
    let (start, cpu) = (Instant::now(), cpu_time());
    let a2 = a.clone();
    let publisher = std::thread::spawn(move || -> Result<()> {
        for i in 0..n {
            std::thread::sleep(Duration::from_micros(300));
            a.publish("/bench/trickle", Data::Count(i))?;
        }
        Ok(())
    });
    for _ in 0..n {
        if sub.get_timeout(WAIT).is_none() {
            bail!("the trickle stalled");
        }
    }
    let share = (cpu_time() - cpu).as_secs_f64() / start.elapsed().as_secs_f64();
    let skipped = a2.metrics()?.spins_skipped + b.metrics()?.spins_skipped;
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    Ok((share, skipped))
}

/// Resident memory of process `pid`, in KiB (Linux `VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A plain-Broker peer that completes the handshake subscribed to `topic`, then never reads.
fn stuck_subscriber(port: u16, topic: &str) -> Result<std::net::TcpStream> {
    use broker_wire::{encode_frame, EndpointId, FrameDecoder, Handshake, Topic, MAGIC};
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    let me = EndpointId::from_bytes([0; 16]);
    let mut buf = bytes::BytesMut::new();
    let mut frames = FrameDecoder::new(1 << 20);
    let mut recv = |s: &mut std::net::TcpStream| -> Result<Handshake> {
        loop {
            if let Some(f) = frames.decode(&mut buf)? {
                return Ok(Handshake::decode(&f)?);
            }
            let mut tmp = [0u8; 4096];
            let n = s.read(&mut tmp)?;
            if n == 0 {
                bail!("node closed during the handshake");
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    };
    let send = |s: &mut std::net::TcpStream, h: Handshake| -> Result<()> {
        let mut out = bytes::BytesMut::new();
        encode_frame(&mut out, |b| h.encode(b))?;
        s.write_all(&out)?;
        Ok(())
    };
    recv(&mut s)?; // probe
    send(&mut s, Handshake::hello(me, 1, 1))?;
    recv(&mut s)?; // the node's hello: its id is larger, so we originate
    send(
        &mut s,
        Handshake::VersionSelect {
            magic: MAGIC,
            sender: me,
            version: 1,
        },
    )?;
    send(
        &mut s,
        Handshake::OriginatorSyn {
            filter: vec![Topic::new(topic)?],
        },
    )?;
    recv(&mut s)?; // responder_syn_ack
    send(&mut s, Handshake::OriginatorAck)?;
    Ok(s)
}

/// A node process between a flooding publisher (this process) and a subscriber that stops
/// reading (over plain TCP): returns the node's resident memory before, at its peak, and after, in KiB.
fn node_memory_under_flood(n: u64) -> Result<(u64, u64, u64)> {
    // Over plain TCP: the stuck subscriber speaks the handshake by hand.
    let node = Peer::start_with("node", 0, "plain")?;
    let pid = node.child.id();
    let stuck = stuck_subscriber(node.port, "/bench/data")?;
    let mut config = Configuration::load(None)?;
    config.disable_ssl = true;
    let ep = Endpoint::new(config)?;
    ep.peer("127.0.0.1", node.port, None)?;
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(pid);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    flood(&ep, n, "1k")?;
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    let after = rss_kib(pid);
    drop(stuck);
    Ok((before, peak, after))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ping_pong(ep: &Endpoint, sub: &Subscriber, rounds: u64) -> Result<(Duration, Duration)> {
    // Warm up until the path works (subscriptions must have spread).
    let deadline = Instant::now() + WAIT;
    loop {
        ep.publish("/bench/ping", Data::Count(u64::MAX))?;
        if sub.get_timeout(Duration::from_millis(20)).is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!("no pong");
        }
    }
    while sub.get_timeout(Duration::from_millis(50)).is_some() {}
    let mut rtts = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let t = Instant::now();
        ep.publish("/bench/ping", Data::Count(i))?;
        let m = sub.get_timeout(WAIT).context("pong lost")?;
        rtts.push(t.elapsed());
        if *m.data != Data::Count(i) {
            bail!("pong out of order");
        }
    }
    rtts.sort();
    Ok((percentile(&rtts, 0.5), percentile(&rtts, 0.99)))
}

fn latency_two_processes(rounds: u64) -> Result<(Duration, Duration)> {
    let pong = Peer::start("pong", 0)?;
    let ep = endpoint()?;
    let sub = ep.make_subscriber(&["/bench/pong"], Some(1024))?;
    ep.peer("127.0.0.1", pong.port, None)?;
    ping_pong(&ep, &sub, rounds)
}

fn latency_in_process(rounds: u64) -> Result<(Duration, Duration)> {
    let (a, b) = (endpoint()?, endpoint()?);
    let port = b.listen("127.0.0.1", 0)?;
    let pings = b.make_subscriber(&["/bench/ping"], Some(1024))?;
    let pongs = a.make_subscriber(&["/bench/pong"], Some(1024))?;
    a.peer("127.0.0.1", port, None)?;
    let responder = std::thread::spawn(move || {
        while let Some(m) = pings.get() {
            if b.publish("/bench/pong", (*m.data).clone()).is_err() {
                break;
            }
        }
    });
    let r = ping_pong(&a, &pongs, rounds);
    a.shutdown();
    drop(responder);
    r
}

/// The machine's floor for a loopback round trip: plain TCP ping-pong of one frame's size
/// between two threads that spin (yielding) instead of sleeping, with no broker in between.
/// Loopback and scheduling costs vary a lot between machines and over time on shared ones;
/// this puts the ping-pong figures in proportion.
fn raw_tcp_floor(rounds: u64) -> Result<Duration> {
    use std::io::{ErrorKind, Read};
    use std::net::{TcpListener, TcpStream};
    const FRAME: usize = 85; // a ping's frame on the wire
    fn exchange(s: &mut TcpStream, buf: &mut [u8; FRAME], write_first: bool) -> Result<()> {
        if write_first {
            s.write_all(buf)?;
        }
        let mut got = 0;
        let deadline = Instant::now() + WAIT;
        while got < FRAME {
            match s.read(&mut buf[got..]) {
                Ok(0) => bail!("raw TCP peer closed"),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        bail!("raw TCP peer silent");
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !write_first {
            s.write_all(buf)?;
        }
        Ok(())
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut buf = [0u8; FRAME];
        for _ in 0..rounds {
            exchange(&mut s, &mut buf, false)?;
        }
        Ok(())
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    let mut buf = [0u8; FRAME];
    let mut rtts = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let t = Instant::now();
        exchange(&mut s, &mut buf, true)?;
        rtts.push(t.elapsed());
    }
    echo.join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))??;
    rtts.sort();
    Ok(percentile(&rtts, 0.5))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The cases `--only` may name.
const CASES: &[&str] = &[
    "tput",
    "inproc",
    "local",
    "latency",
    "flood",
    "stream",
    "singles",
    "trickle",
    "contention",
    "websocket",
    "recording",
];

/// A JSON number, or `null` for a case that did not run.
fn json(v: Option<f64>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| format!("{v:.1}"))
}

/// Runs the cases (all, or those in `only`) and prints the results.
pub(crate) fn run(messages: u64, rounds: u64, disable_ssl: bool, only: &[String]) -> Result<()> {
    if let Some(bad) = only.iter().find(|c| !CASES.contains(&c.as_str())) {
        bail!("unknown case {bad:?} (cases: {})", CASES.join(", "));
    }
    let wanted = |case: &str| only.is_empty() || only.iter().any(|c| c == case);
    let _ = PLAIN.set(disable_ssl);
    let small = messages;
    let big = (messages / 5).max(1);
    let transport = if disable_ssl {
        "plain TCP"
    } else {
        "TLS (anonymous ECDH)"
    };
    println!("broker bench over {transport}: {small} small / {big} 1 KiB messages, {rounds} ping-pong rounds");
    let mut fields: Vec<(&str, Option<f64>)> = Vec::new();
    if wanted("tput") {
        let (t2_small, sink_kib) = tput_two_processes(small, "small")?;
        // This process published them: its peak so far is the publisher's.
        let pub_kib = peak_rss_kib();
        println!(
            "two processes, one count:   {t2_small:>12.0} msg/s   (peak RSS: sink {:.1} MiB, publisher {:.1} MiB)",
            sink_kib as f64 / 1024.0,
            pub_kib as f64 / 1024.0
        );
        let (t2_big, _) = tput_two_processes(big, "1k")?;
        println!(
            "two processes, 1 KiB:       {t2_big:>12.0} msg/s   ({:.0} MB/s)",
            t2_big * 1024.0 / 1e6
        );
        fields.push(("tput_2proc_small_msgs", Some(t2_small)));
        fields.push(("tput_2proc_1k_msgs", Some(t2_big)));
        fields.push(("sink_peak_rss_kib", Some(sink_kib as f64)));
        fields.push(("pub_peak_rss_kib", Some(pub_kib as f64)));
    }
    if wanted("inproc") {
        let t1_small = tput_in_process(small, "small", false)?;
        println!("one process, one count:     {t1_small:>12.0} msg/s   (loopback TCP)");
        let t1_big = tput_in_process(big, "1k", false)?;
        println!("one process, 1 KiB:         {t1_big:>12.0} msg/s   (loopback TCP)");
        fields.push(("tput_inproc_small_msgs", Some(t1_small)));
        fields.push(("tput_inproc_1k_msgs", Some(t1_big)));
    }
    if wanted("local") {
        let tl_small = tput_in_process(small, "small", true)?;
        println!(
            "one process, one count:     {tl_small:>12.0} msg/s   (peered in process, shared values)"
        );
        fields.push(("tput_local_small_msgs", Some(tl_small)));
    }
    if wanted("recording") {
        let (off, on, bytes) = tput_recording(small)?;
        println!(
            "recording off / on:         {off:>12.0} / {on:.0} msg/s   (peered in process, medians of 3; {bytes:.1} bytes recorded per message)"
        );
        fields.push(("tput_recording_off_msgs", Some(off)));
        fields.push(("tput_recording_on_msgs", Some(on)));
    }
    if wanted("latency") {
        let (l2_50, l2_99) = latency_two_processes(rounds)?;
        println!(
            "ping-pong, two processes:   p50 {:>8.1} µs   p99 {:>8.1} µs",
            us(l2_50),
            us(l2_99)
        );
        let (l1_50, l1_99) = latency_in_process(rounds)?;
        println!(
            "ping-pong, one process:     p50 {:>8.1} µs   p99 {:>8.1} µs",
            us(l1_50),
            us(l1_99)
        );
        let floor = raw_tcp_floor(rounds)?;
        println!(
            "ping-pong, raw TCP floor:   p50 {:>8.1} µs   (two spinning threads, no broker)",
            us(floor)
        );
        fields.push(("lat_2proc_p50_us", Some(us(l2_50))));
        fields.push(("lat_2proc_p99_us", Some(us(l2_99))));
        fields.push(("lat_inproc_p50_us", Some(us(l1_50))));
        fields.push(("lat_inproc_p99_us", Some(us(l1_99))));
        fields.push(("lat_raw_tcp_p50_us", Some(us(floor))));
    }
    if wanted("stream") {
        let ts = tput_stream(small)?;
        println!("one process, one count:     {ts:>12.0} msg/s   (subscriber as an async Stream)");
        let (ls_50, ls_99) = latency_stream(rounds)?;
        println!(
            "ping-pong, async Streams:   p50 {:>8.1} µs   p99 {:>8.1} µs   (one process)",
            us(ls_50),
            us(ls_99)
        );
        fields.push(("tput_stream_small_msgs", Some(ts)));
        fields.push(("lat_stream_p50_us", Some(us(ls_50))));
        fields.push(("lat_stream_p99_us", Some(us(ls_99))));
    }
    if wanted("singles") {
        let ts = tput_singles(small / 2)?;
        println!("one process, one count:     {ts:>12.0} msg/s   (one publish call per message)");
        fields.push(("tput_singles_small_msgs", Some(ts)));
    }
    if wanted("trickle") {
        let (share, skipped) = trickle_cpu(3_000)?;
        println!(
            "trickle, one message / 300 µs: {:>6.1} % of a processor   (one process, both endpoints; {skipped} waits did not spin)",
            share * 100.0
        );
        fields.push(("trickle_cpu_pct", Some(share * 100.0)));
    }
    if wanted("contention") {
        let tc = tput_contention(small)?;
        println!(
            "2 publishers → 2 subscribers: {tc:>10.0} msg/s   (threads sharing each endpoint)"
        );
        fields.push(("tput_contention_small_msgs", Some(tc)));
    }
    if wanted("websocket") {
        let (into, out, p50, p99) = crate::ws_bench::run(endpoint()?, small / 5, rounds)?;
        println!("WebSocket client → node:     {into:>10.0} msg/s   (small Zeek events as JSON, to a native subscriber)");
        println!("node → WebSocket client:     {out:>10.0} msg/s   (from a native publisher)");
        println!(
            "ping-pong, WebSocket client: p50 {:>8.1} µs   p99 {:>8.1} µs   (native responder)",
            us(p50),
            us(p99)
        );
        fields.push(("ws_into_node_msgs", Some(into)));
        fields.push(("ws_out_of_node_msgs", Some(out)));
        fields.push(("lat_ws_p50_us", Some(us(p50))));
        fields.push(("lat_ws_p99_us", Some(us(p99))));
    }
    if wanted("flood") {
        let (nb, np, na) = node_memory_under_flood(big)?;
        let mib = |k: u64| k as f64 / 1024.0;
        println!(
            "node RSS while flooding a stuck subscriber with {big} 1 KiB messages: {:.1} MiB before, {:.1} MiB peak, {:.1} MiB after",
            mib(nb),
            mib(np),
            mib(na)
        );
        fields.push(("node_flood_rss_before_kib", Some(nb as f64)));
        fields.push(("node_flood_rss_peak_kib", Some(np as f64)));
        fields.push(("node_flood_rss_after_kib", Some(na as f64)));
    }
    let peak = peak_rss_kib();
    println!(
        "peak memory of this process: {:.1} MiB",
        peak as f64 / 1024.0
    );
    fields.push(("peak_rss_kib", Some(peak as f64)));
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\":{}", json(*v)))
        .collect();
    println!("{{\"tls\":{},{}}}", !disable_ssl, body.join(","));
    Ok(())
}
