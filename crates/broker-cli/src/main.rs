//! `broker`: run a Broker node, publish, subscribe.
//!
//! ```text
//! broker node [--address 127.0.0.1] [--port 9999] [--peer HOST:PORT]... [--no-forward] [--ttl N]
//!             [--subscribe TOPIC]... [--master-store NAME]... [--clone-store NAME]...
//! broker publish TOPIC [VALUE...] --peer HOST:PORT     (values in broker-data's literal syntax;
//!                                                       one per line from stdin when none given)
//! broker subscribe TOPIC... --peer HOST:PORT           (prints `topic: value` lines)
//! broker bench [--only CASES]                          (throughput and latency)
//! broker bench cluster DIR... | --config FILE          (replay recordings, Broker's cluster
//!                              [--processes]            benchmark; --generate-config prints
//!                              [--generate-config]      the configuration in Broker's format)
//! broker bench fan-out [-p PEERS] [-m MESSAGES] [-s BYTES]
//! ```

mod bench;
mod bus;
mod cluster;
mod cluster_config;
mod control;
mod fanout;
mod store_bench;
mod throughput;
mod ws_bench;

/// The binary's allocator. Messages are allocated by the publishing thread and freed by the
/// subscribing one; mimalloc's thread-local free lists take such cross-thread frees cheaply,
/// where glibc's arenas spend about 350 instructions per message on them (callgrind, in-process
/// throughput case). A library leaves that choice to its application; this binary is one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. Where the kernel backs every aligned
/// anonymous region with 2 MiB pages (`/sys/kernel/mm/transparent_hugepage/enabled` set to
/// `always`), mimalloc's arenas become resident 2 MiB at a time: a subscriber that holds a few
/// megabytes of messages then had 35–45 MiB resident, and 11–15 MiB without huge pages, at the
/// same speed (`sink_peak_rss_kib` of `broker bench --only tput`, docs/performance.md). The
/// setting is checked when a page is first touched, so it also covers the arena that the
/// allocator reserved before `main`.
#[allow(unsafe_code)]
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours; failure
    // (an old kernel) only leaves the kernel's default in place.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, mimalloc.h, v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Gives memory the process no longer uses back to the system 3 ms after it was freed,
/// instead of mimalloc's 1 s (unless `MIMALLOC_PURGE_DELAY` says otherwise). A subscriber
/// that frees messages as fast as they come otherwise keeps megabytes of freed pages
/// resident: peak `sink_peak_rss_kib` of `broker bench --only tput` 17–19 MiB with 1 s,
/// 14.4–15.6 (publisher up to 17.3) with 10 ms, 14.1–14.9 (publisher ≤ 14.5) with 3 ms,
/// alternating runs; 0 ms costs a quarter of the throughput in system calls
/// (docs/performance.md).
#[allow(unsafe_code)]
fn prompt_purge() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one integer option of the allocator; mimalloc allows it at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 3);
    }
}

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use broker::{
    BackendOptions, BackendType, CloneOptions, Configuration, Endpoint, StatusCode, StatusEvent,
    Subscriber,
};
use broker_data::Data;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "broker",
    version,
    about = "Zeek's Broker, in Rust: nodes, publishers, subscribers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How to connect: configuration file and TLS settings, shared by every command.
#[derive(Args, Clone, Default)]
struct Connection {
    /// A TOML configuration file (Broker's option names; `BROKER_*` variables override it).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Plain TCP instead of TLS.
    #[arg(long)]
    disable_ssl: bool,
    /// This endpoint's certificate (PEM); with --ssl-key and a CA, peers are verified.
    #[arg(long)]
    ssl_certificate: Option<std::path::PathBuf>,
    /// The certificate's key (PEM).
    #[arg(long)]
    ssl_key: Option<std::path::PathBuf>,
    /// The key's passphrase.
    #[arg(long)]
    ssl_passphrase: Option<String>,
    /// CA certificates peers must chain to (PEM file).
    #[arg(long)]
    ssl_cafile: Option<std::path::PathBuf>,
    /// A directory of CA certificates.
    #[arg(long)]
    ssl_capath: Option<std::path::PathBuf>,
}

impl Connection {
    /// Defaults, then the file, then these flags, then `BROKER_*` variables (which win).
    fn configuration(&self) -> Result<Configuration> {
        let mut c = Configuration::load(self.config.as_deref())?;
        self.apply(&mut c);
        c.apply_env(std::env::vars())?;
        Ok(c)
    }

    fn apply(&self, c: &mut Configuration) {
        if self.disable_ssl {
            c.disable_ssl = true;
        }
        let set = |dst: &mut Option<std::path::PathBuf>, src: &Option<std::path::PathBuf>| {
            if src.is_some() {
                dst.clone_from(src);
            }
        };
        set(&mut c.ssl_certificate, &self.ssl_certificate);
        set(&mut c.ssl_key, &self.ssl_key);
        set(&mut c.ssl_cafile, &self.ssl_cafile);
        set(&mut c.ssl_capath, &self.ssl_capath);
        if self.ssl_passphrase.is_some() {
            c.ssl_passphrase.clone_from(&self.ssl_passphrase);
        }
    }
}

// Parsed once at startup: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a long-lived endpoint that listens, peers, routes and prints status events.
    Node {
        /// Address to listen on (default 127.0.0.1).
        #[arg(long)]
        address: Option<String>,
        /// Port to listen on (default 9999; 0 picks a free one; the bound port is printed).
        #[arg(long)]
        port: Option<u16>,
        /// Peers to dial, as HOST:PORT (repeatable); re-dialed every second after a loss.
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Do not forward messages between peers.
        #[arg(long)]
        no_forward: bool,
        /// Hop limit of published messages (default 20).
        #[arg(long)]
        ttl: Option<u16>,
        /// Serve Prometheus metrics on 127.0.0.1 at this port.
        #[arg(long)]
        metrics_port: Option<u16>,
        /// Serve Zeek's WebSocket API (and the status page, and metrics) at this port (0
        /// picks a free one; the bound port is printed). Also `web_socket_port` in the
        /// configuration or `BROKER_WEB_SOCKET_PORT`.
        #[arg(long)]
        websocket_port: Option<u16>,
        /// Address of the WebSocket server (default 127.0.0.1).
        #[arg(long)]
        websocket_address: Option<String>,
        /// Subscribe to these topic prefixes and print `topic: value` for every message that
        /// arrives (repeatable), as `broker-node -t` subscribes.
        #[arg(long = "subscribe", value_name = "TOPIC")]
        subscribe: Vec<String>,
        /// Attach an in-memory master for this store (repeatable).
        #[arg(long = "master-store", value_name = "NAME")]
        master_stores: Vec<String>,
        /// Attach a clone of this store (repeatable).
        #[arg(long = "clone-store", value_name = "NAME")]
        clone_stores: Vec<String>,
        /// The backend of `--master-store`s: memory, sqlite or rocksdb (the last two keep
        /// their data in `--store-dir` as NAME.sqlite or NAME.rocksdb, across restarts).
        #[arg(long, value_name = "KIND", default_value = "memory")]
        store_backend: String,
        /// Where persistent masters keep their files (default: the current directory).
        #[arg(long, value_name = "DIR")]
        store_dir: Option<std::path::PathBuf>,
        /// How long a `--clone-store` keeps writes while it has no master (seconds, default
        /// 120, Zeek's); older ones are dropped and reported as `no_such_master` errors.
        #[arg(long, value_name = "SECS")]
        mutation_buffer_interval: Option<f64>,
        /// Messages the `--subscribe` queue holds before it drops the oldest (counted).
        #[arg(long, default_value_t = 100_000)]
        queue_size: usize,
        /// Also run a busrt-compatible bus here (repeatable: a UNIX socket path,
        /// HOST:PORT or ws://HOST:PORT), bridged to this endpoint: bus topics under
        /// `--bus-prefix` are Broker topics and back, payloads in MessagePack (docs/bus.md).
        #[arg(long = "bus", value_name = "PATH|HOST:PORT|ws://HOST:PORT")]
        bus: Vec<String>,
        /// Topic prefixes the bus bridge carries (repeatable; default `zeek/`).
        #[arg(long = "bus-prefix", value_name = "PREFIX")]
        bus_prefixes: Vec<String>,
        /// Read commands from stdin, one per line (`publish TOPIC VALUE`, `put STORE KEY
        /// VALUE`, `keys STORE`, `peers`, ...; `help` lists them); the end of input or `quit`
        /// shuts the node down.
        #[arg(long)]
        control: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Publish values on a topic and exit once the peer has them.
    Publish {
        /// The topic.
        topic: String,
        /// Values in the literal syntax (`42`, `+42`, `-42`, `"text"`, `(1, 2)`, `10.0.0.0/8`,
        /// ...); read one per line from stdin when none are given.
        values: Vec<String>,
        /// The endpoint to publish through, HOST:PORT.
        #[arg(long)]
        peer: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Measure throughput and latency between two processes and within one; `bench cluster`
    /// and `bench fan-out` are Broker's cluster and fan-out benchmarks.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        kind: Option<BenchKind>,
        /// Small messages per throughput case (1 KiB cases send a fifth of this).
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Ping-pong round trips per latency case.
        #[arg(long, default_value_t = 10_000)]
        rounds: u64,
        /// Measure over plain TCP instead of TLS.
        #[arg(long)]
        disable_ssl: bool,
        /// Measure the data stores instead (operations per case: --messages / 5).
        #[arg(long)]
        stores: bool,
        /// Run only these cases (comma-separated): tput (two processes), inproc (one process
        /// over loopback), local (peered in process), latency (ping-pong), flood (node memory),
        /// stream (the subscriber as an async Stream: throughput and ping-pong), singles (one
        /// `publish` call per message), trickle (processor share while receiving one message
        /// every 300 µs), contention (two publisher threads and two subscriber threads sharing
        /// endpoints), websocket (a WebSocket client against the node), recording (publishing
        /// with and without `broker.recording-directory`, medians of 3).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// C++ Broker's `broker-throughput`: `--server [ADDRESS]:PORT` counts events on
    /// /benchmark/events and prints `rate: N events/s` each second; `HOST:PORT` publishes
    /// `broker-throughput -t 1 -r 0`'s Zeek event as fast as the peer takes it.
    Throughput {
        /// `HOST:PORT` to publish to, or with `--server` `[ADDRESS]:PORT` to listen on.
        target: String,
        /// Run the counting server.
        #[arg(long)]
        server: bool,
        /// Plain TCP instead of TLS.
        #[arg(long)]
        disable_ssl: bool,
        /// Stop after this many seconds (0: run until killed).
        #[arg(long, default_value_t = 0)]
        seconds: u64,
    },
    /// Bus mode: a busrt-compatible bus (`broker bus serve -B PATH|HOST:PORT`).
    Bus {
        #[command(subcommand)]
        command: bus::BusCommand,
    },
    /// One node of `broker bench cluster --processes` (started by it).
    #[command(hide = true)]
    BenchClusterNode {
        /// The cluster configuration.
        config: String,
        /// The node's name.
        name: String,
    },
    /// The other side of a two-process benchmark (started by `broker bench`).
    #[command(hide = true)]
    BenchPeer {
        /// `sink` or `pong`.
        mode: String,
        /// Messages a sink waits for.
        messages: u64,
        /// `tls` or `plain`.
        transport: String,
    },
    /// Print `topic: value` for every message on the given topic prefixes.
    Subscribe {
        /// Topic prefixes.
        #[arg(required = true)]
        topics: Vec<String>,
        /// The endpoint to subscribe through, HOST:PORT.
        #[arg(long)]
        peer: String,
        #[command(flatten)]
        connection: Connection,
    },
}

/// Broker's benchmarks.
#[derive(Subcommand)]
enum BenchKind {
    /// Broker's cluster benchmark: replay the recordings of a cluster's nodes (directories
    /// written with `broker.recording-directory`) on a cluster of endpoints, or run a cluster
    /// configuration in Broker's format, and check that every node receives exactly what it
    /// should from each other node.
    Cluster(cluster::ClusterArgs),
    /// Broker's fan-out benchmark: one publisher, many subscriber endpoints in one process.
    FanOut(fanout::FanOutArgs),
}

fn split_peer(s: &str) -> Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("peer {s:?} is not HOST:PORT"))?;
    Ok((
        host.trim_matches(['[', ']']).to_owned(),
        port.parse().with_context(|| format!("bad port in {s:?}"))?,
    ))
}

fn describe(ev: &StatusEvent) -> String {
    let (kind, code, context, message) = match ev {
        StatusEvent::Status {
            code,
            context,
            message,
        } => ("status", code.name(), context, message),
        StatusEvent::Error {
            code,
            context,
            message,
        } => ("error", code.name(), context, message),
    };
    let addr = context
        .address
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    format!("{kind} {code}: {}{addr}: {message}", context.id)
}

struct NodeOptions {
    address: Option<String>,
    port: Option<u16>,
    peers: Vec<String>,
    no_forward: bool,
    ttl: Option<u16>,
    metrics_port: Option<u16>,
    websocket_port: Option<u16>,
    websocket_address: Option<String>,
    subscribe: Vec<String>,
    master_stores: Vec<String>,
    clone_stores: Vec<String>,
    store_backend: String,
    store_dir: Option<std::path::PathBuf>,
    mutation_buffer_interval: Option<f64>,
    queue_size: usize,
    bus: Vec<String>,
    bus_prefixes: Vec<String>,
    control: bool,
    connection: Connection,
}

fn node(o: NodeOptions) -> Result<()> {
    // Install the signal handlers before announcing anything, so that a Ctrl-C (or SIGTERM)
    // arriving right after the announcement already stops the node cleanly.
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = signals.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let mut config = Configuration::load(o.connection.config.as_deref())?;
    o.connection.apply(&mut config);
    if let Some(a) = o.address {
        config.listen_address = a;
    }
    if let Some(p) = o.port {
        config.port = p;
    }
    if o.no_forward {
        config.forward = false;
    }
    if let Some(t) = o.ttl {
        config.ttl = t;
    }
    if o.metrics_port.is_some() {
        config.metrics_port = o.metrics_port;
    }
    config.apply_env(std::env::vars())?;
    if o.websocket_port.is_some() {
        config.web_socket_port = o.websocket_port;
    }
    if let Some(a) = o.websocket_address {
        config.web_socket_address = a;
    }
    // The node opens the WebSocket server itself, to print the port it got.
    let websocket = config
        .web_socket_port
        .take()
        .map(|p| (config.web_socket_address.clone(), p));
    let (address, port, retry) = (
        config.listen_address.clone(),
        config.port,
        config.connect_retry,
    );
    let listen_retry = config.listen_retry;
    let (backend, extension) = match o.store_backend.as_str() {
        "memory" => (BackendType::Memory, ""),
        "sqlite" => (BackendType::Sqlite, "sqlite"),
        "rocksdb" => (BackendType::RocksDb, "rocksdb"),
        other => bail!("unknown store backend {other:?} (memory, sqlite or rocksdb)"),
    };
    let ep = Endpoint::new(config)?;
    let statuses = ep.make_status_subscriber(true)?;
    let mut stores = std::collections::BTreeMap::new();
    for name in &o.master_stores {
        let mut options = BackendOptions::default();
        if backend != BackendType::Memory {
            let dir = o.store_dir.clone().unwrap_or_else(|| ".".into());
            let path = dir.join(format!("{name}.{extension}"));
            options.insert("path".into(), path.to_string_lossy().into_owned().into());
        }
        stores.insert(
            name.clone(),
            ep.attach_master(name, backend, options)
                .with_context(|| format!("cannot attach a master for {name:?}"))?,
        );
    }
    let mut clone_options = CloneOptions::default();
    if let Some(secs) = o.mutation_buffer_interval {
        clone_options.mutation_buffer_interval = Some(
            Duration::try_from_secs_f64(secs)
                .with_context(|| format!("bad --mutation-buffer-interval {secs}"))?,
        );
    }
    for name in &o.clone_stores {
        stores.insert(
            name.clone(),
            ep.attach_clone(name, clone_options)
                .with_context(|| format!("cannot attach a clone of {name:?}"))?,
        );
    }
    let messages = if o.subscribe.is_empty() {
        None
    } else {
        let topics: Vec<&str> = o.subscribe.iter().map(String::as_str).collect();
        Some(std::sync::Arc::new(
            ep.make_subscriber(&topics, Some(o.queue_size))?,
        ))
    };
    // A node keeps trying to listen (every listen_retry) until it can.
    let bound = ep.listen_with_retry(&address, port, listen_retry, Duration::MAX)?;
    println!("node {} listening on {address}:{bound}", ep.node_id());
    if let Some((ws_address, ws_port)) = websocket {
        let ws_bound = ep.listen_websocket(&ws_address, ws_port)?;
        println!("websocket listening on ws://{ws_address}:{ws_bound}/v1/messages/json");
    }
    std::io::stdout().flush()?;
    for p in &o.peers {
        let (host, port) = split_peer(p)?;
        ep.peer_nosync(&host, port, Some(retry))?;
    }
    let printer = std::thread::spawn(move || {
        while let Some(ev) = statuses.get() {
            println!("{}", describe(&ev));
            let _ = std::io::stdout().flush();
        }
    });
    let bus = if o.bus.is_empty() {
        None
    } else {
        let prefixes = if o.bus_prefixes.is_empty() {
            vec!["zeek/".to_owned()]
        } else {
            o.bus_prefixes.clone()
        };
        Some(bus::serve_bridged(&ep, &o.bus, &prefixes)?)
    };
    let stall = control::Stall::default();
    let receiver = messages.clone().map(|sub| {
        let stall = stall.clone();
        std::thread::spawn(move || print_messages(&sub, &stall))
    });
    let (quit, mut quitting) = tokio::sync::oneshot::channel::<()>();
    if o.control {
        // Detached: it blocks reading stdin, which a signal does not interrupt.
        let node = control::Node {
            ep: ep.clone(),
            stores: stores.clone(),
            subscriber: messages.clone(),
            stall,
        };
        std::thread::spawn(move || {
            control::run(&node, std::io::stdin().lock(), &mut control::print);
            let _ = quit.send(());
        });
    } else {
        // Kept, never sent: only the signals end the node.
        std::mem::forget(quit);
    }
    signals.block_on(async {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            Ok(()) = &mut quitting => {}
        }
    });
    println!("shutting down");
    if let Some(b) = bus {
        b.stop();
    }
    drop(stores);
    ep.shutdown();
    let _ = printer.join();
    if let Some(r) = receiver {
        let _ = r.join();
    }
    Ok(())
}

/// Prints `topic: value` (Broker's text format, strings as their raw bytes) for every message
/// until the subscriber closes.
fn print_messages(sub: &Subscriber, stall: &control::Stall) -> Result<()> {
    loop {
        stall.wait();
        let Some(first) = sub.get() else { break };
        // Locked per batch, never while waiting: other threads print too.
        let mut out = std::io::stdout().lock();
        for m in std::iter::once(first).chain(sub.poll()) {
            out.write_all(m.topic.as_bytes())?;
            out.write_all(b": ")?;
            out.write_all(&m.data.to_broker_text())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(())
}

fn publish(topic: String, values: Vec<String>, peer: String, connection: Connection) -> Result<()> {
    let values: Vec<Data> = if values.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map(|l| Ok(l?.trim().to_owned()))
            .filter(|l: &Result<String>| l.as_ref().map_or(true, |s| !s.is_empty()))
            .map(|l| {
                l.and_then(|s| {
                    s.parse::<Data>()
                        .with_context(|| format!("bad value {s:?}"))
                })
            })
            .collect::<Result<_>>()?
    } else {
        values
            .iter()
            .map(|v| unmark(v))
            .map(|v| {
                v.parse::<Data>()
                    .with_context(|| format!("bad value {v:?}"))
            })
            .collect::<Result<_>>()?
    };
    let (host, port) = split_peer(&peer)?;
    let ep = Endpoint::new(connection.configuration()?)?;
    let statuses = ep.make_status_subscriber(true)?;
    ep.peer(&host, port, None)
        .with_context(|| format!("cannot peer with {peer}"))?;
    ep.publish_batch(values.into_iter().map(|v| (topic.as_str(), v)))?;
    // The graceful unpeer's pong comes back after everything sent before it has arrived.
    ep.unpeer(&host, port)?;
    loop {
        match statuses.get_timeout(Duration::from_secs(10)) {
            Some(StatusEvent::Status {
                code: StatusCode::PeerRemoved | StatusCode::PeerLost,
                ..
            }) => break,
            Some(_) => continue,
            None => bail!("the peer did not acknowledge within 10 s"),
        }
    }
    ep.shutdown();
    Ok(())
}

fn subscribe(topics: Vec<String>, peer: String, connection: Connection) -> Result<()> {
    let (host, port) = split_peer(&peer)?;
    let ep = Endpoint::new(connection.configuration()?)?;
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let sub = ep.make_subscriber(&refs, Some(100_000))?;
    ep.peer(&host, port, Some(Duration::from_secs(1)))
        .with_context(|| format!("cannot peer with {peer}"))?;
    print_messages(&sub, &control::Stall::default())
}

/// Marks an argument of `broker publish` that is a negative literal (`-5`, `-1.5`, `-1ns`,
/// `-inf`), which clap would take for an option, so that it reaches the values as it is: no
/// option of ours starts with a digit, a dot or `inf`/`nan`.
const LITERAL_MARK: char = '\u{1}';

fn protect_negative_literals(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut publishing = false;
    args.map(|a| {
        let Some(text) = a.to_str() else { return a };
        if text == "publish" {
            publishing = true;
        }
        let rest = text.strip_prefix('-').unwrap_or("");
        let literal = rest.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            || rest.starts_with("inf")
            || rest.starts_with("nan");
        if publishing && literal {
            format!("{LITERAL_MARK}{text}").into()
        } else {
            a
        }
    })
    .collect()
}

/// A value argument as the user wrote it (see [`protect_negative_literals`]).
fn unmark(v: &str) -> &str {
    v.strip_prefix(LITERAL_MARK).unwrap_or(v)
}

fn main() -> Result<()> {
    no_transparent_huge_pages();
    prompt_purge();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .init();
    match Cli::parse_from(protect_negative_literals(std::env::args_os())).command {
        Command::Node {
            address,
            port,
            peers,
            no_forward,
            ttl,
            metrics_port,
            websocket_port,
            websocket_address,
            subscribe,
            master_stores,
            clone_stores,
            store_backend,
            store_dir,
            mutation_buffer_interval,
            queue_size,
            bus,
            bus_prefixes,
            control,
            connection,
        } => node(NodeOptions {
            address,
            port,
            peers,
            no_forward,
            ttl,
            metrics_port,
            websocket_port,
            websocket_address,
            subscribe,
            master_stores,
            clone_stores,
            store_backend,
            store_dir,
            mutation_buffer_interval,
            queue_size,
            bus,
            bus_prefixes,
            control,
            connection,
        }),
        Command::Publish {
            topic,
            values,
            peer,
            connection,
        } => publish(topic, values, peer, connection),
        Command::Subscribe {
            topics,
            peer,
            connection,
        } => subscribe(topics, peer, connection),
        Command::Bench {
            kind: Some(kind), ..
        } => match kind {
            BenchKind::Cluster(args) => cluster::run(args),
            BenchKind::FanOut(args) => fanout::run(args),
        },
        Command::BenchClusterNode { config, name } => cluster::node_process(&config, &name),
        Command::Bus { command } => bus::run(command),
        Command::Bench {
            kind: None,
            messages,
            rounds,
            disable_ssl,
            stores,
            only,
        } => {
            if stores {
                store_bench::run((messages / 5).max(1), disable_ssl)
            } else {
                bench::run(messages, rounds, disable_ssl, &only)
            }
        }
        Command::Throughput {
            target,
            server,
            disable_ssl,
            seconds,
        } => {
            let (host, port) = split_peer(&target)?;
            if server {
                let address = if host.is_empty() { "127.0.0.1" } else { &host };
                throughput::server(address, port, disable_ssl, seconds)
            } else {
                throughput::client(&host, port, disable_ssl, seconds)
            }
        }
        Command::BenchPeer {
            mode,
            messages,
            transport,
        } => bench::peer(&mode, messages, &transport),
    }
}
