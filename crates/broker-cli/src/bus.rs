//! `broker bus`: the stand-alone bus server (busrtd's options).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use broker_bus::{Bus, BusConfig, OverflowPolicy, ServerConfig};
use clap::{Args, Subcommand};

/// `broker bus ...`.
#[derive(Subcommand)]
pub(crate) enum BusCommand {
    /// Run a busrt-compatible bus server (busrtd's options): busrt's clients, CLI and
    /// Python packages work against it.
    Serve(ServeArgs),
}

/// busrtd's options.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Where to listen (repeatable): a UNIX socket path (starting with `/` or ending in
    /// `.sock`, `.socket`, `.ipc`) or `HOST:PORT`.
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
    /// Write the process id here (removed at exit).
    #[arg(short = 'P', long)]
    pid_file: Option<std::path::PathBuf>,
}

pub(crate) fn run(cmd: BusCommand) -> Result<()> {
    match cmd {
        BusCommand::Serve(a) => serve(a),
    }
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
                        if is_unix_path(b) {
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

fn is_unix_path(s: &str) -> bool {
    s.starts_with('/') || s.ends_with(".sock") || s.ends_with(".socket") || s.ends_with(".ipc")
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
            ..ServerConfig::default()
        };
        let mut servers = Vec::new();
        for b in &a.bind {
            if is_unix_path(b) {
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
