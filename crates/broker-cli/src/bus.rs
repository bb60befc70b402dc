//! `broker bus`: the stand-alone bus server (busrtd's options).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use broker_bus::ipc::is_unix_path;
use broker_bus::{Bus, BusConfig, OverflowPolicy, ServerConfig};
use clap::{Args, Subcommand};

/// `broker bus ...`.
#[derive(Subcommand)]
pub(crate) enum BusCommand {
    /// Run a busrt-compatible bus server (busrtd's options): busrt's clients, CLI and
    /// Python packages work against it.
    Serve(ServeArgs),
    /// The server's `.broker` info, stats and clients.
    Info(ClientArgs),
    /// Send a message to a client (a broadcast when TARGET has `*` or `?`); prints OK.
    Send {
        #[command(flatten)]
        client: ClientArgs,
        /// The client's name, or a mask.
        target: String,
        /// The payload (text; `-` reads stdin).
        payload: String,
    },
    /// Publish on a topic; prints OK.
    Publish {
        #[command(flatten)]
        client: ClientArgs,
        /// The topic.
        topic: String,
        /// The payload (text; `-` reads stdin).
        payload: String,
    },
    /// Print what arrives: messages, broadcasts, and publications on `-t` topics.
    Listen {
        #[command(flatten)]
        client: ClientArgs,
        /// Topic patterns to subscribe to (repeatable).
        #[arg(short = 't', long = "topic")]
        topics: Vec<String>,
    },
    /// Call METHOD at TARGET over busrt's RPC layer with `key=value` parameters (a
    /// MessagePack map: true/false, integers, reals, else text); prints the result.
    Call {
        #[command(flatten)]
        client: ClientArgs,
        /// The client that serves the method (`.broker` for the server's own).
        target: String,
        /// The method.
        method: String,
        /// Parameters, `key=value`.
        params: Vec<String>,
    },
    /// Round trips and throughput through the server with this client.
    Bench {
        #[command(flatten)]
        client: ClientArgs,
        /// Iterations per stage.
        #[arg(short = 'i', long, default_value_t = 100_000)]
        iters: u64,
        /// Payload bytes.
        #[arg(long, default_value_t = 100)]
        payload_size: usize,
    },
}

/// Where the bus is and who we are.
#[derive(Args)]
pub(crate) struct ClientArgs {
    /// The bus: a UNIX socket path or HOST:PORT.
    path: String,
    /// This client's name (default `broker.cli.<pid>`).
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Seconds for connecting, each write and each answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Connect over TLS, trusting servers whose certificate chains to this CA (PEM).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// Present this certificate (PEM) to a TLS server; with `--tls-key`.
    #[arg(long)]
    tls_certificate: Option<std::path::PathBuf>,
    /// The certificate's key (PEM).
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
}

impl ClientArgs {
    async fn connect(&self) -> Result<broker_bus::ipc::IpcClient> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("broker.cli.{}", std::process::id()));
        let timeout = Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .with_context(|| format!("bad timeout {}", self.timeout))?;
        let client = match &self.tls_ca {
            Some(ca) => {
                let identity = match (&self.tls_certificate, &self.tls_key) {
                    (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                    (None, None) => None,
                    _ => bail!("--tls-certificate and --tls-key go together"),
                };
                broker_bus::ipc::IpcClient::connect_tls(&self.path, &name, timeout, ca, identity)
                    .await
            }
            None => broker_bus::ipc::IpcClient::connect(&self.path, &name, timeout).await,
        };
        client.with_context(|| format!("cannot connect to {}", self.path))
    }
}

/// busrtd's options.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Where to listen (repeatable): a UNIX socket path (starting with `/` or ending in
    /// `.sock`, `.socket`, `.ipc`), `HOST:PORT`, or busrt's WebSocket transport as
    /// `ws://HOST:PORT` (`wss://HOST:PORT` with the config file's `[tls]`).
    #[arg(short = 'B', long = "bind", required = true)]
    bind: Vec<String>,
    /// Seconds for each handshake step, frame body and write; NOPs every half of it, and a
    /// client silent for 1.25 times it is disconnected.
    #[arg(short = 't', long, default_value_t = 5.0)]
    timeout: f64,
    /// Frames each client's queue holds.
    #[arg(long, default_value_t = 8192)]
    queue_size: usize,
    /// What a full queue does: disconnect (busrt's rule), drop_oldest or drop_newest.
    #[arg(long, default_value = "disconnect")]
    overflow_policy: String,
    /// busrtd's write-buffer time to live in µs (accepted; our writers flush each batch).
    #[arg(long, default_value_t = 10)]
    buf_ttl: u64,
    /// busrtd's write buffer size (accepted; our writers size their buffers themselves).
    #[arg(long, default_value_t = 16384)]
    buf_size: usize,
    /// busrtd's worker count (accepted; the runtime uses every core).
    #[arg(short = 'w', long, default_value_t = 4)]
    workers: usize,
    /// A primary registering under a taken name disconnects the old one.
    #[arg(long)]
    force_register: bool,
    /// The largest frame body accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_frame_size: u32,
    /// µs a connection whose client answered within this time watches its socket before
    /// it sleeps (plain sockets, one connection at a time; 0: never).
    #[arg(long, default_value_t = 50)]
    spin_us: u64,
    /// Write the process id here (removed at exit).
    #[arg(short = 'P', long)]
    pid_file: Option<std::path::PathBuf>,
    /// A TOML file with access rules: `[aaa."NAME"]` tables with `hosts`, `uids`, `gids`
    /// and allow lists `p2p`, `broadcast`, `publish`, `subscribe` (an empty list denies;
    /// a missing key allows everything). With it, only the names it lists may connect.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

/// `[aaa."NAME"]` of `broker bus serve --config`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AaaEntry {
    hosts: Option<Vec<String>>,
    uids: Option<Vec<u32>>,
    gids: Option<Vec<u32>>,
    p2p: Option<Vec<String>>,
    broadcast: Option<Vec<String>>,
    publish: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BusFile {
    #[serde(default)]
    aaa: std::collections::BTreeMap<String, AaaEntry>,
    tls: Option<TlsEntry>,
    /// Browser origins the WebSocket listeners admit (none by default).
    #[serde(default)]
    web_origins: Vec<String>,
}

/// `[tls]` of `broker bus serve --config`: TLS on every TCP listener (and `wss://` ones).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsEntry {
    certificate: std::path::PathBuf,
    key: std::path::PathBuf,
    ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    name_from_certificate: bool,
}

/// The TLS settings of a `--config` file.
fn tls_config(text: &str) -> Result<Option<broker_bus::TlsConfig>> {
    let file: BusFile = toml::from_str(text)?;
    Ok(file.tls.map(|t| broker_bus::TlsConfig {
        certificate: t.certificate,
        key: t.key,
        ca_file: t.ca_file,
        name_from_certificate: t.name_from_certificate,
    }))
}

/// The access rules of a `--config` file.
fn aaa_map(text: &str) -> Result<broker_bus::AaaMap> {
    use broker_bus::ClientAaa;
    let file: BusFile = toml::from_str(text)?;
    let map = broker_bus::AaaMap::new();
    for (name, e) in file.aaa {
        let mut r = ClientAaa::new();
        if let Some(h) = e.hosts {
            let nets = h
                .iter()
                .map(|n| {
                    n.parse()
                        .map_err(|m: String| anyhow::anyhow!("{name}: {m}"))
                })
                .collect::<Result<Vec<_>>>()?;
            r = r.hosts_allow(nets);
        }
        if let Some(u) = e.uids {
            r = r.uids_allow(u);
        }
        if let Some(g) = e.gids {
            r = r.gids_allow(g);
        }
        fn masks(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        if let Some(m) = &e.p2p {
            r = if m.is_empty() {
                r.deny_p2p()
            } else {
                r.allow_p2p_to(&masks(m))
            };
        }
        if let Some(m) = &e.broadcast {
            r = if m.is_empty() {
                r.deny_broadcast()
            } else {
                r.allow_broadcast_to(&masks(m))
            };
        }
        if let Some(m) = &e.publish {
            r = if m.is_empty() {
                r.deny_publish()
            } else {
                r.allow_publish_to(&masks(m))
            };
        }
        if let Some(m) = &e.subscribe {
            r = if m.is_empty() {
                r.deny_subscribe()
            } else {
                r.allow_subscribe_to(&masks(m))
            };
        }
        map.insert(&name, r);
    }
    Ok(map)
}

pub(crate) fn run(cmd: BusCommand) -> Result<()> {
    if let BusCommand::Serve(a) = cmd {
        return serve(a);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(client_command(cmd))
}

fn payload(p: &str) -> Result<Vec<u8>> {
    if p == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        Ok(v)
    } else {
        Ok(p.as_bytes().to_vec())
    }
}

/// A payload for people: a Broker value if it is one in MessagePack, else text, else hex.
fn show(p: &[u8]) -> String {
    if let Ok(d) = broker_bus::msgpack::decode(p) {
        return String::from_utf8_lossy(&d.to_broker_text()).into_owned();
    }
    match std::str::from_utf8(p) {
        Ok(t) => format!("STR: {t}"),
        Err(_) => format!(
            "HEX: {}",
            p.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

fn params_map(params: &[String]) -> Result<Vec<u8>> {
    use broker_data::Data;
    if params.is_empty() {
        return Ok(Vec::new());
    }
    let mut t = std::collections::BTreeMap::new();
    for p in params {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("parameter {p:?} is not key=value"))?;
        let value = match v {
            "true" => Data::Boolean(true),
            "false" => Data::Boolean(false),
            _ => match (v.parse::<u64>(), v.parse::<i64>(), v.parse::<f64>()) {
                (Ok(n), _, _) => Data::Count(n),
                (_, Ok(n), _) => Data::Integer(n),
                (_, _, Ok(r)) => Data::Real(r),
                _ => Data::String(v.into()),
            },
        };
        t.insert(Data::String(k.into()), value);
    }
    Ok(broker_bus::msgpack::to_vec(&Data::Table(t)))
}

async fn client_command(cmd: BusCommand) -> Result<()> {
    use broker_bus::Qos;
    match cmd {
        BusCommand::Serve(_) => unreachable!("served above"),
        BusCommand::Info(c) => {
            let mut client = c.connect().await?;
            for method in ["info", "stats", "client.list"] {
                let r = client
                    .call(".broker", method, b"")
                    .await
                    .map_err(|e| anyhow::anyhow!("{method}: {e}"))?;
                println!("{method}: {}", show(&r));
            }
        }
        BusCommand::Send {
            client,
            target,
            payload: p,
        } => {
            let c = client.connect().await?;
            let body = payload(&p)?;
            if target.contains('*') || target.contains('?') {
                c.send_broadcast(&target, &body, Qos::Processed).await?;
            } else {
                c.send(&target, &body, Qos::Processed).await?;
            }
            println!("OK");
        }
        BusCommand::Publish {
            client,
            topic,
            payload: p,
        } => {
            let c = client.connect().await?;
            c.publish(&topic, &payload(&p)?, Qos::Processed).await?;
            println!("OK");
        }
        BusCommand::Listen { client, topics } => {
            let mut c = client.connect().await?;
            if !topics.is_empty() {
                let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
                c.subscribe(&refs).await?;
            }
            println!("listening as {}", c.name());
            use std::io::Write;
            std::io::stdout().flush()?;
            while let Some(d) = c.recv().await {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:?} from {} ({})",
                    d.kind(),
                    d.sender(),
                    d.primary_sender()
                )?;
                if let Some(t) = d.topic() {
                    writeln!(out, "topic: {t}")?;
                }
                writeln!(out, "{}", show(d.payload()))?;
                out.flush()?;
            }
        }
        BusCommand::Call {
            client,
            target,
            method,
            params,
        } => {
            let mut c = client.connect().await?;
            match c.call(&target, &method, &params_map(&params)?).await {
                Ok(r) => println!("{}", show(&r)),
                Err(e) => bail!("{e}"),
            }
        }
        BusCommand::Bench {
            client,
            iters,
            payload_size,
        } => bench(&client, iters, payload_size).await?,
    }
    Ok(())
}

async fn bench(args: &ClientArgs, iters: u64, size: usize) -> Result<()> {
    use broker_bus::Qos;
    use std::time::Instant;
    let mut c = args.connect().await?;
    let me = c.name().to_owned();
    let body = vec![0x5au8; size];
    let mut rows = Vec::new();
    // Send to ourselves and receive, in windows (busrt has no flow control).
    let start = Instant::now();
    let mut got = 0u64;
    for i in 0..iters {
        c.send(&me, &body, Qos::No).await?;
        if (i + 1) % 1024 == 0 || i + 1 == iters {
            while got < i + 1 {
                c.recv().await.context("disconnected")?;
                got += 1;
            }
        }
    }
    rows.push(("send+recv.qos.no", start.elapsed()));
    let start = Instant::now();
    for _ in 0..iters / 10 {
        c.send(&me, &body, Qos::Processed).await?;
        c.recv().await.context("disconnected")?;
    }
    rows.push(("send+recv.qos.processed (iters / 10)", start.elapsed()));
    let start = Instant::now();
    for _ in 0..iters / 10 {
        let r = c
            .call(".broker", "benchmark.test", &body)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(r.len() == size, "the echo differs");
    }
    rows.push(("rpc.call .broker (iters / 10)", start.elapsed()));
    println!("{:<40} {:>12}", "stage", "iters/s");
    for (name, t) in rows {
        let n = if name.contains("/ 10") {
            iters / 10
        } else {
            iters
        };
        println!("{name:<40} {:>12.0}", n as f64 / t.as_secs_f64());
    }
    Ok(())
}

/// A bus running beside a node, bridged to its endpoint (`broker node --bus`).
pub(crate) struct BridgedBus {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl BridgedBus {
    /// Announces the shutdown on the bus, closes it and waits for its thread.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Starts a bus on its own runtime thread, listening on `binds`, bridged to `ep` for
/// `prefixes`; prints where it listens.
pub(crate) fn serve_bridged(
    ep: &broker::Endpoint,
    binds: &[String],
    prefixes: &[String],
) -> Result<BridgedBus> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ep, binds, prefixes) = (ep.clone(), binds.to_vec(), prefixes.to_vec());
    let thread = std::thread::Builder::new()
        .name("broker-bus".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let bus = Bus::new(BusConfig::default());
                let started = async {
                    bus.init_default_core_rpc()?;
                    let mut servers = Vec::new();
                    for b in &binds {
                        if let Some(addr) = b.strip_prefix("ws://") {
                            let (h, bound) = bus
                                .spawn_websocket_server(addr, ServerConfig::default())
                                .await?;
                            servers.push(h);
                            println!("bus listening on ws://{bound}");
                        } else if is_unix_path(b) {
                            servers.push(bus.spawn_unix_server(b, ServerConfig::default()).await?);
                            println!("bus listening on {b}");
                        } else {
                            let (h, addr) =
                                bus.spawn_tcp_server(b, ServerConfig::default()).await?;
                            servers.push(h);
                            println!("bus listening on {addr}");
                        }
                    }
                    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
                    let bridge =
                        broker_bus::bridge::bridge(&bus, &ep, "broker.bridge", &refs).await?;
                    Ok::<_, anyhow::Error>((servers, bridge))
                };
                match started.await {
                    Ok((servers, bridge)) => {
                        let _ = ready_tx.send(Ok(()));
                        let _ = stopped.await;
                        bus.warn_shutdown();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        drop(bridge);
                        bus.shutdown();
                        for s in servers {
                            s.stop();
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
    ready_rx
        .recv()
        .context("the bus thread ended before it started")??;
    Ok(BridgedBus { stop, thread })
}

fn serve(a: ServeArgs) -> Result<()> {
    let overflow_policy = match a.overflow_policy.as_str() {
        "disconnect" => OverflowPolicy::Disconnect,
        "drop_oldest" => OverflowPolicy::DropOldest,
        "drop_newest" => OverflowPolicy::DropNewest,
        other => bail!("unknown overflow policy {other:?} (disconnect, drop_oldest, drop_newest)"),
    };
    let timeout = Duration::try_from_secs_f64(a.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("bad timeout {}", a.timeout))?;
    let _ = (a.buf_ttl, a.buf_size, a.workers);
    let (aaa, tls, web_origins) = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let file: BusFile =
                toml::from_str(&text).with_context(|| format!("{}", p.display()))?;
            let aaa = (!file.aaa.is_empty())
                .then(|| aaa_map(&text))
                .transpose()
                .with_context(|| format!("{}", p.display()))?;
            (aaa, tls_config(&text)?, file.web_origins)
        }
        None => (None, None, Vec::new()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let bus = Bus::new(BusConfig {
            queue_size: a.queue_size,
            overflow_policy,
            force_register: a.force_register,
            send_timeout: timeout,
        });
        bus.init_default_core_rpc()?;
        let config = ServerConfig {
            timeout,
            max_frame_size: a.max_frame_size,
            aaa_map: aaa,
            tls,
            web_origins,
            spin: Duration::from_micros(a.spin_us),
            ..ServerConfig::default()
        };
        let mut servers = Vec::new();
        for b in &a.bind {
            if let Some((scheme, addr)) = b.split_once("://") {
                let config = match scheme {
                    "ws" => ServerConfig {
                        tls: None,
                        ..config.clone()
                    },
                    "wss" if config.tls.is_some() => config.clone(),
                    "wss" => bail!("{b}: wss:// needs a [tls] table in the --config file"),
                    _ => bail!("{b}: unknown scheme (ws://, wss://, a path or HOST:PORT)"),
                };
                let (h, bound) = bus
                    .spawn_websocket_server(addr, config)
                    .await
                    .with_context(|| format!("cannot listen on {b}"))?;
                servers.push(h);
                println!("bus listening on {scheme}://{bound}");
            } else if is_unix_path(b) {
                servers.push(
                    bus.spawn_unix_server(b, config.clone())
                        .await
                        .with_context(|| format!("cannot listen on {b}"))?,
                );
                println!("bus listening on {b}");
            } else {
                let (h, addr) = bus
                    .spawn_tcp_server(b, config.clone())
                    .await
                    .with_context(|| format!("cannot listen on {b}"))?;
                servers.push(h);
                println!("bus listening on {addr}");
            }
        }
        if let Some(p) = &a.pid_file {
            std::fs::write(p, format!("{}\n", std::process::id()))
                .with_context(|| format!("cannot write {}", p.display()))?;
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        println!("shutting down");
        // `.broker/warn` "shutdown" to every client, a moment for it to leave, then close.
        bus.warn_shutdown();
        tokio::time::sleep(Duration::from_millis(200)).await;
        bus.shutdown();
        for s in servers {
            s.stop();
        }
        if let Some(p) = &a.pid_file {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn access_rules_from_a_file() {
        let map = super::aaa_map(
            "[aaa.alice]\nhosts = [\"10.0.0.0/8\"]\np2p = [\"svc.*\"]\npublish = []\n[aaa.bob]\n",
        )
        .unwrap();
        let alice = map.get("alice").unwrap();
        assert!(alice.may_send("svc.x") && !alice.may_send("other"));
        assert!(!alice.may_publish("t") && alice.may_subscribe("#"));
        assert!(!alice.admits(&broker_bus::aaa::Peer::Tcp("192.168.1.1".parse().unwrap())));
        assert!(map.get("bob").unwrap().may_publish("anything"));
        assert!(map.get("carol").is_none());
        assert!(super::aaa_map("[aaa.x]\nhosts = [\"nope\"]").is_err());
        assert!(super::aaa_map("[aaa.x]\nunknown = 1").is_err());
        let tls = super::tls_config(
            "[tls]\ncertificate = \"s.crt\"\nkey = \"s.key\"\nca_file = \"ca.crt\"\nname_from_certificate = true\n",
        )
        .unwrap()
        .unwrap();
        assert!(tls.name_from_certificate && tls.ca_file.is_some());
        assert!(super::tls_config("").unwrap().is_none());
    }
}
