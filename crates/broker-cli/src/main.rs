//! `broker`: run a Broker node, publish, subscribe.
//!
//! ```text
//! broker node [--address 127.0.0.1] [--port 9999] [--peer HOST:PORT]... [--no-forward] [--ttl N]
//! broker publish TOPIC [VALUE...] --peer HOST:PORT     (values in broker-data's literal syntax;
//!                                                       one per line from stdin when none given)
//! broker subscribe TOPIC... --peer HOST:PORT           (prints `topic: value` lines)
//! ```

mod bench;

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use broker::{Configuration, Endpoint, StatusCode, StatusEvent};
use broker_data::Data;
use clap::{Parser, Subcommand};

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

#[derive(Subcommand)]
enum Command {
    /// Run a long-lived endpoint that listens, peers, routes and prints status events.
    Node {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        address: String,
        /// Port to listen on (0 picks a free one; the bound port is printed).
        #[arg(long, default_value_t = 9999)]
        port: u16,
        /// Peers to dial, as HOST:PORT (repeatable); re-dialed every second after a loss.
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Do not forward messages between peers.
        #[arg(long)]
        no_forward: bool,
        /// Hop limit of published messages.
        #[arg(long, default_value_t = 20)]
        ttl: u16,
    },
    /// Publish values on a topic and exit once the peer has them.
    Publish {
        /// The topic.
        topic: String,
        /// Values in the literal syntax (`42`, `+42`, `"text"`, `(1, 2)`, `10.0.0.0/8`, ...);
        /// read one per line from stdin when none are given.
        values: Vec<String>,
        /// The endpoint to publish through, HOST:PORT.
        #[arg(long)]
        peer: String,
    },
    /// Measure throughput and latency between two processes and within one.
    Bench {
        /// Small messages per throughput case (1 KiB cases send a fifth of this).
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Ping-pong round trips per latency case.
        #[arg(long, default_value_t = 10_000)]
        rounds: u64,
        /// Measure over plain TCP instead of TLS.
        #[arg(long)]
        disable_ssl: bool,
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
    },
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

fn node(address: String, port: u16, peers: Vec<String>, no_forward: bool, ttl: u16) -> Result<()> {
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
    let config = Configuration {
        forward: !no_forward,
        ttl,
        ..Configuration::default()
    };
    let ep = Endpoint::new(config)?;
    let statuses = ep.make_status_subscriber(true)?;
    let bound = ep.listen(&address, port)?;
    println!("node {} listening on {address}:{bound}", ep.node_id());
    std::io::stdout().flush()?;
    for p in &peers {
        let (host, port) = split_peer(p)?;
        ep.peer_nosync(&host, port, Some(Duration::from_secs(1)))?;
    }
    let printer = std::thread::spawn(move || {
        while let Some(ev) = statuses.get() {
            println!("{}", describe(&ev));
            let _ = std::io::stdout().flush();
        }
    });
    signals.block_on(async {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    });
    println!("shutting down");
    ep.shutdown();
    let _ = printer.join();
    Ok(())
}

fn publish(topic: String, values: Vec<String>, peer: String) -> Result<()> {
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
            .map(|v| {
                v.parse::<Data>()
                    .with_context(|| format!("bad value {v:?}"))
            })
            .collect::<Result<_>>()?
    };
    let (host, port) = split_peer(&peer)?;
    let ep = Endpoint::new(Configuration::default())?;
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

fn subscribe(topics: Vec<String>, peer: String) -> Result<()> {
    let (host, port) = split_peer(&peer)?;
    let ep = Endpoint::new(Configuration::default())?;
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let sub = ep.make_subscriber(&refs, Some(100_000))?;
    ep.peer(&host, port, Some(Duration::from_secs(1)))
        .with_context(|| format!("cannot peer with {peer}"))?;
    let mut out = std::io::stdout().lock();
    while let Some(first) = sub.get() {
        for m in std::iter::once(first).chain(sub.poll()) {
            writeln!(out, "{}: {}", m.topic, m.data)?;
        }
        out.flush()?;
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Node {
            address,
            port,
            peers,
            no_forward,
            ttl,
        } => node(address, port, peers, no_forward, ttl),
        Command::Publish {
            topic,
            values,
            peer,
        } => publish(topic, values, peer),
        Command::Subscribe { topics, peer } => subscribe(topics, peer),
        Command::Bench {
            messages,
            rounds,
            disable_ssl,
        } => bench::run(messages, rounds, disable_ssl),
        Command::BenchPeer {
            mode,
            messages,
            transport,
        } => bench::peer(&mode, messages, &transport),
    }
}
