//! The public endpoint API: peering, publishing, subscribing.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use broker_data::{Data, SharedData};
use broker_routing::{Config as RouterConfig, Router};
use broker_wire::{EndpointId, EntityId, ErrorCode, Topic};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::cmd::{Cmd, Publications, StoreOutput};
use crate::connection::{self, Live};
use crate::core::Core;
use crate::handshake::{Refused, Side};
use crate::intake::Intake;
use crate::queue::{deadline, Queue};
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::tls::Tls;
use crate::types::{DataMessage, Metrics, PeerInfo, PeerState, StatusEvent};
use crate::{Configuration, Error};

/// Publication batches the endpoint buffers before `publish` blocks.
const PUBLICATION_BATCHES: usize = 64;

/// Most publications in one batch of the publication channel: larger batches are handed over
/// in parts, so that the channel holds at most `PUBLICATION_BATCHES` times this many (16,384).
const MAX_PUBLICATION_BATCH: usize = 256;

/// `batch` in parts of at most `MAX_PUBLICATION_BATCH` publications, in order.
fn split(batch: Publications) -> impl Iterator<Item = Publications> {
    let mut batch = Some(batch);
    std::iter::from_fn(move || {
        let mut head = batch.take()?;
        if head.len() > MAX_PUBLICATION_BATCH {
            batch = Some(head.split_off(MAX_PUBLICATION_BATCH));
        }
        Some(head)
    })
}

/// Store output batches the core may hold before stores wait.
const STORE_BATCHES: usize = 64;

/// How long a shutdown waits for the store threads to write what they hold and close their
/// backends (a disk that takes longer cannot hold the shutdown up forever).
const STORE_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

struct Dialer {
    state: PeerState,
    cancel: Arc<AtomicBool>,
}

struct Inner {
    id: EndpointId,
    config: Arc<Configuration>,
    core: mpsc::UnboundedSender<Cmd>,
    /// Publications, bounded: a full channel blocks publishers (the core takes from it only
    /// while the peers keep up).
    pubs: mpsc::Sender<Publications>,
    /// The core's state, for publications that go straight out (see `Shared::publish_now`).
    shared: Arc<Shared>,
    runtime: Mutex<Option<Runtime>>,
    handle: tokio::runtime::Handle,
    next_id: AtomicU64,
    dialers: Arc<Mutex<HashMap<SocketAddr, Dialer>>>,
    /// What every connection needs (id, configuration, the core's channel, TLS, counts).
    net: Arc<connection::Net>,
    /// Whether anybody subscribes to store events (shared with the core and the stores).
    store_events: Arc<AtomicBool>,
    /// Where stores hand the core what they publish (bounded: stores wait for the peers).
    stores: mpsc::Sender<StoreOutput>,
    /// Connection writers still running (a shutdown lets them finish) and the spinner's
    /// activity.
    live: Arc<Live>,
    /// The stores attached here, by name.
    local_stores: crate::store::LocalStores,
    /// The HTTP server's shared state, once a listener of it opened.
    web: Mutex<Option<Arc<crate::web::Web>>>,
    /// The addresses this endpoint listens on, by purpose (for the status page).
    listeners: Mutex<Vec<(String, SocketAddr)>>,
}

impl crate::web::StatusSource for Inner {
    fn stores(&self) -> crate::web::StoresFuture<'_> {
        Box::pin(crate::store::sizes(&self.local_stores))
    }

    fn listeners(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn refused_connections(&self) -> u64 {
        self.live.refused()
    }
}

impl Inner {
    /// For a subscriber's thread that waits: reads one connection's socket, in turn, and
    /// routes what it holds (see `inbox`). Returns whether it found messages.
    fn read_now(&self) -> bool {
        self.live
            .next_inbox()
            .is_some_and(|inbox| self.shared.read_now(&inbox))
    }
}

impl Inner {
    /// For a subscriber's thread about to sleep on `queue`: watches the endpoint's sockets
    /// itself and reads what arrives (see `Inbox::lend`), until the queue has items, the
    /// deadline passes or no socket is left to watch. A socket whose data this thread cannot
    /// take at once (the core or the inbox is busy) goes back to its reader task.
    fn watch(&self, queue: &dyn crate::queue::Watched, deadline: Option<Instant>) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        if !self.shared.fast() {
            return;
        }
        let mut lent = self.live.lend();
        let mut ready = Vec::with_capacity(lent.len() + 1);
        while !lent.is_empty() && !queue.pending() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            ready.clear();
            let mut failed = false;
            let slept = queue.sleep(&mut |fd| {
                let mut fds = Vec::with_capacity(lent.len() + 1);
                fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                for inbox in &lent {
                    if let Some(fd) = inbox.watch_fd() {
                        fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                    }
                }
                let timeout = deadline.map(|d| {
                    let left = d.saturating_duration_since(Instant::now());
                    Timespec {
                        tv_sec: left.as_secs() as i64,
                        tv_nsec: i64::from(left.subsec_nanos()),
                    }
                });
                match poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => ready.extend(fds.iter().map(|f| !f.revents().is_empty())),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => failed = true,
                }
            });
            if !slept || failed {
                break;
            }
            if ready.is_empty() || ready[0] {
                continue;
            }
            let mut i = 0;
            lent.retain(|inbox| {
                i += 1;
                if !ready[i] || self.shared.read_now(inbox) {
                    return true;
                }
                // Readable, but not readable here now (or only its end or an error, which the
                // reader task reports): the reader task takes it.
                inbox.unlend();
                false
            });
        }
        for inbox in lent {
            inbox.unlend();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            rt.stop();
        }
    }
}

/// A Broker endpoint: peers with others over TCP, publishes and subscribes by topic prefix.
///
/// Cloning is cheap and gives another handle to the same endpoint. The blocking methods must
/// not be called from inside an async task (use [`Subscriber`]'s `Stream` there).
///
/// ```
/// use broker::{Configuration, Endpoint};
/// use broker_data::Data;
/// use std::time::Duration;
///
/// let alice = Endpoint::new(Configuration::default()).unwrap();
/// let bob = Endpoint::new(Configuration::default()).unwrap();
/// let port = bob.listen("127.0.0.1", 0).unwrap();
/// let sub = bob.make_subscriber(&["/test"], None).unwrap();
/// alice.peer("127.0.0.1", port, None).unwrap();
/// alice.await_peer(bob.node_id(), Duration::from_secs(5)).unwrap();
/// // Bob's subscription reaches Alice with the handshake.
/// alice.publish("/test/greeting", Data::from("hello")).unwrap();
/// let msg = sub.get_timeout(Duration::from_secs(5)).expect("a message");
/// assert_eq!(msg.topic.as_str(), "/test/greeting");
/// assert_eq!(*msg.data, Data::from("hello"));
/// ```
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

fn random_id() -> EndpointId {
    // From the clock, the process id and a counter, hashed: ids only need to be unique, not
    // secret.
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    // Marked as broker-rs's (a version-8 UUID with a check): how a peer tells us from Broker.
    EndpointId::broker_rs(bytes)
}

/// Waits until the core lists `peer`, for at most `timeout`, or until the connection that held
/// it (see `handshake::Claims`) ends without peering. The peer may refuse our connection as
/// redundant before its own one has reached us and claimed it here (its drop_conn on one
/// socket can overtake its version_select on the other), so a claim not yet held is waited
/// for; one held and released is the end.
async fn await_peered(
    core: &mpsc::UnboundedSender<Cmd>,
    live: &Live,
    peer: EndpointId,
    timeout: Duration,
) -> Result<(), Error> {
    let end = tokio::time::Instant::now() + timeout;
    let mut seen_held = false;
    loop {
        let (tx, rx) = oneshot::channel();
        core.send(Cmd::Peers(tx)).map_err(|_| closed())?;
        let peers = rx.await.map_err(|_| closed())?;
        if peers.iter().any(|p| p.id == Some(peer)) {
            return Ok(());
        }
        let held = live.claims.is_held(peer);
        let released = seen_held && !held;
        seen_held |= held;
        if released || tokio::time::Instant::now() >= end {
            return Err(Error::new(
                ErrorCode::PeerUnavailable,
                format!("the peering with {peer} over another connection did not complete"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, Error> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::new(
                ErrorCode::PeerInvalid,
                format!("cannot resolve {host}:{port}: {e}"),
            )
        })?
        .next()
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PeerInvalid,
                format!("no address for {host}:{port}"),
            )
        })
}

/// Binds a TCP listener at `addr` for `purpose` (used in the error); returns it with the
/// address it got (port 0 picks a free one). Must run on a runtime with a reactor.
async fn bind_at(addr: SocketAddr, purpose: &str) -> Result<(TcpListener, SocketAddr), Error> {
    let err = |e: std::io::Error| {
        Error::new(
            ErrorCode::CannotOpenResource,
            format!("cannot {purpose} on {addr}: {e}"),
        )
    };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}

fn topic(t: &str) -> Result<Topic, Error> {
    Topic::try_from(t).map_err(|e| Error::new(ErrorCode::InvalidTopicKey, e.to_string()))
}

fn closed() -> Error {
    Error::new(ErrorCode::ShuttingDown, "the endpoint has shut down")
}

impl Endpoint {
    /// Starts an endpoint with its own runtime and a fresh id.
    pub fn new(mut config: Configuration) -> Result<Endpoint, Error> {
        let tls = Tls::new(&config)?;
        let config_metrics_port = config.metrics_port;
        let (runtime, handle) = Runtime::start(config.threads).map_err(|e| {
            Error::new(ErrorCode::Unspecified, format!("cannot start runtime: {e}"))
        })?;
        let id = random_id();
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        let router = Router::new(
            id,
            incarnation,
            RouterConfig {
                ttl: config.ttl,
                forwarding: config.forward,
                peer_buffer_size: config.peer_buffer_size,
                overflow_policy: config.peer_overflow_policy,
                link_state_refresh: config.link_state_refresh,
            },
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let (pub_tx, pub_rx) = mpsc::channel(PUBLICATION_BATCHES);
        let (store_tx, store_rx) = mpsc::channel(STORE_BATCHES);
        let recorder = match &config.recording_directory {
            Some(dir) => Some(crate::recording::Recorder::open(
                dir,
                id,
                &config,
                Default::default(),
            )?),
            None => None,
        };
        let core = Core::new(router)
            .with_sender(&tx)
            .with_recorder(recorder)
            .with_intake(Intake::new(rx, pub_rx, store_rx));
        let store_events = core.store_events_flag();
        let live = Arc::new(Live::new(core.activity()));
        // One switch turns every fast path off (see `Configuration::fast_paths`).
        let fast = config.fast_paths_in_effect();
        if !fast {
            config.fast_paths = false;
            config.spin_wait = Duration::ZERO;
        }
        handle.spawn(crate::spin::spinner(core.activity(), config.spin_wait));
        let shared = Shared::new(core, fast, handle.clone());
        handle.spawn(Core::run(shared.clone()));
        let metrics_port = config_metrics_port;
        let config = Arc::new(config);
        let net = Arc::new(connection::Net {
            me: id,
            config: config.clone(),
            core: tx.clone(),
            tls,
            live: live.clone(),
        });
        let endpoint = Endpoint {
            inner: Arc::new(Inner {
                id,
                config,
                core: tx,
                pubs: pub_tx,
                shared,
                runtime: Mutex::new(Some(runtime)),
                handle,
                next_id: AtomicU64::new(1),
                dialers: Arc::new(Mutex::new(HashMap::new())),
                net,
                store_events,
                stores: store_tx,
                live,
                local_stores: Default::default(),
                web: Mutex::new(None),
                listeners: Mutex::new(Vec::new()),
            }),
        };
        if let Some(port) = metrics_port {
            endpoint.serve_metrics("127.0.0.1", port)?;
        }
        if let Some(port) = endpoint.inner.config.web_socket_port {
            let address = endpoint.inner.config.web_socket_address.clone();
            endpoint.listen_websocket(&address, port)?;
        }
        Ok(endpoint)
    }

    /// This endpoint's id.
    pub fn node_id(&self) -> EndpointId {
        self.inner.id
    }

    fn send(&self, cmd: Cmd) -> Result<(), Error> {
        self.inner.core.send(cmd).map_err(|_| closed())
    }

    /// A fresh number for an object of this endpoint (subscribers, stores).
    pub(crate) fn next_object_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn ask_async<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| closed())
    }

    fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.blocking_recv().map_err(|_| closed())
    }

    /// Binds a TCP listener (port 0 picks a free one) for `purpose` (used in the error).
    fn bind(
        &self,
        address: &str,
        port: u16,
        purpose: &str,
    ) -> Result<(TcpListener, SocketAddr), Error> {
        self.check_running()?;
        let addr = resolve(address, port)?;
        self.inner.handle.block_on(bind_at(addr, purpose))
    }

    /// Listens for peers on `address:port` (port 0 picks a free one) and returns the port.
    pub fn listen(&self, address: &str, port: u16) -> Result<u16, Error> {
        self.check_running()?;
        let addr = resolve(address, port)?;
        self.inner.handle.block_on(self.listen_on(addr))
    }

    /// [`listen`](Self::listen), trying again every `retry` while the address is unavailable
    /// (e.g. a restarted node whose port is still held), for at most `give_up_after`.
    pub fn listen_with_retry(
        &self,
        address: &str,
        port: u16,
        retry: Duration,
        give_up_after: Duration,
    ) -> Result<u16, Error> {
        // No deadline when it lies beyond what `Instant` can hold (e.g. `Duration::MAX`).
        let end = std::time::Instant::now().checked_add(give_up_after);
        loop {
            match self.listen(address, port) {
                Ok(p) => return Ok(p),
                Err(e) => {
                    let next = std::time::Instant::now().checked_add(retry);
                    let out_of_time = matches!((end, next), (Some(end), Some(next)) if next > end);
                    if retry.is_zero() || out_of_time || e.code == ErrorCode::ShuttingDown {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, ?retry, "cannot listen yet; retrying");
                    std::thread::sleep(retry);
                }
            }
        }
    }

    /// [`listen`](Self::listen) for async code (any runtime).
    pub async fn listen_async(&self, address: &str, port: u16) -> Result<u16, Error> {
        let addr = resolve(address, port)?;
        let this = self.clone();
        // Bound on the endpoint's own runtime, whose reactor serves its sockets.
        self.inner
            .handle
            .spawn(async move { this.listen_on(addr).await })
            .await
            .map_err(|_| closed())?
    }

    /// Binds and starts accepting; must run on the endpoint's runtime.
    async fn listen_on(&self, addr: SocketAddr) -> Result<u16, Error> {
        let (listener, bound) = bind_at(addr, "listen").await?;
        self.note_listener("peers", bound);
        let net = self.inner.net.clone();
        let (config, live) = (net.config.clone(), net.live.clone());
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer_addr)) => {
                        // Beyond the limits the socket closes at once (see `Live::admit`).
                        let Some(slot) = live.admit(&config) else {
                            continue;
                        };
                        tokio::spawn(connection::establish(
                            stream,
                            peer_addr,
                            Side::Acceptor,
                            net.clone(),
                            None,
                            slot,
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    } // The loop ends with the runtime.
                }
            }
        });
        Ok(bound.port())
    }

    fn start_dialer(
        &self,
        addr: SocketAddr,
        retry: Option<Duration>,
        first: oneshot::Sender<Result<EndpointId, Error>>,
    ) {
        let cancel = Arc::new(AtomicBool::new(false));
        self.inner
            .dialers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                addr,
                Dialer {
                    state: PeerState::Connecting,
                    cancel: cancel.clone(),
                },
            );
        let (config, core, dialers) = (
            self.inner.config.clone(),
            self.inner.core.clone(),
            self.inner.dialers.clone(),
        );
        let net = self.inner.net.clone();
        let live = self.inner.live.clone();
        let set_state = move |state: PeerState| {
            if let Some(d) = dialers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&addr)
            {
                d.state = state;
            }
        };
        self.inner.handle.spawn(async move {
            let mut first = Some(first);
            loop {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        set_state(PeerState::Connected);
                        let (tx, rx) = oneshot::channel();
                        let slot = live.slot();
                        let conn = tokio::spawn(connection::establish(
                            stream,
                            addr,
                            Side::Connector,
                            net.clone(),
                            Some(tx),
                            slot,
                        ));
                        let result = rx.await.unwrap_or_else(|_| {
                            Err(Refused::Failed(Error::new(
                                ErrorCode::PeerUnavailable,
                                "connection task ended",
                            )))
                        });
                        match result {
                            Ok(peer) => {
                                set_state(PeerState::Peered);
                                if let Some(f) = first.take() {
                                    let _ = f.send(Ok(peer));
                                }
                                let _ = conn.await;
                            }
                            Err(Refused::Redundant(peer)) => {
                                // Another connection carries (or is about to carry) this
                                // peering: as in Broker, the peering is ours too, and
                                // unpeering this address ends it.
                                let _ = core.send(Cmd::Alias { peer, addr });
                                let outcome =
                                    await_peered(&core, &live, peer, config.handshake_timeout)
                                        .await;
                                let ok = outcome.is_ok();
                                if ok {
                                    set_state(PeerState::Peered);
                                }
                                if let Some(f) = first.take() {
                                    let _ = f.send(outcome.map(|()| peer));
                                }
                                if ok {
                                    live.claims.released(peer).await;
                                }
                            }
                            Err(Refused::Failed(e)) => {
                                if let Some(f) = first.take() {
                                    let _ = f.send(Err(e));
                                }
                            }
                            // Only incoming connections are evicted.
                            Err(Refused::Evicted) => {}
                        }
                    }
                    Err(e) => {
                        let err = Error::new(
                            ErrorCode::PeerUnavailable,
                            format!("cannot connect to {addr}: {e}"),
                        )
                        .with_source(e);
                        let _ = core.send(Cmd::ConnectionError {
                            code: err.code,
                            addr: Some(addr),
                            peer: None,
                            message: err.message.clone(),
                        });
                        if let Some(f) = first.take() {
                            let _ = f.send(Err(err));
                        }
                    }
                }
                let again = retry.filter(|d| !d.is_zero() && !cancel.load(Ordering::Relaxed));
                let Some(delay) = again else { break };
                set_state(PeerState::Reconnecting);
                tokio::time::sleep(delay).await;
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                set_state(PeerState::Connecting);
            }
            set_state(PeerState::Disconnected);
        });
    }

    /// Peers with the endpoint at `address:port`, blocking until the handshake completes or
    /// fails. With a `retry` interval, a lost peering (or a failed first attempt) is dialed
    /// again at that interval until [`unpeer`](Self::unpeer).
    pub fn peer(
        &self,
        address: &str,
        port: u16,
        retry: Option<Duration>,
    ) -> Result<EndpointId, Error> {
        let addr = resolve(address, port)?;
        let (tx, rx) = oneshot::channel();
        self.start_dialer(addr, retry, tx);
        rx.blocking_recv().map_err(|_| closed())?
    }

    /// [`peer`](Self::peer) for async code (any runtime).
    pub async fn peer_async(
        &self,
        address: &str,
        port: u16,
        retry: Option<Duration>,
    ) -> Result<EndpointId, Error> {
        let addr = resolve(address, port)?;
        let (tx, rx) = oneshot::channel();
        self.start_dialer(addr, retry, tx);
        rx.await.map_err(|_| closed())?
    }

    /// Like [`peer`](Self::peer), without waiting.
    pub fn peer_nosync(
        &self,
        address: &str,
        port: u16,
        retry: Option<Duration>,
    ) -> Result<(), Error> {
        let addr = resolve(address, port)?;
        let (tx, _rx) = oneshot::channel();
        self.start_dialer(addr, retry, tx);
        Ok(())
    }

    /// Peers with another endpoint of this process directly: messages pass as shared values,
    /// never serialized, as Broker's manual promises for in-memory endpoints.
    ///
    /// ```
    /// use broker::{Configuration, Endpoint};
    /// use broker_data::Data;
    /// use std::time::Duration;
    /// let (a, b) = (Endpoint::new(Configuration::default()).unwrap(), Endpoint::new(Configuration::default()).unwrap());
    /// let sub = b.make_subscriber(&["/local"], None).unwrap();
    /// a.peer_local(&b).unwrap();
    /// a.publish("/local", Data::from("no bytes were harmed")).unwrap();
    /// assert_eq!(*sub.get_timeout(Duration::from_secs(5)).unwrap().data, Data::from("no bytes were harmed"));
    /// ```
    pub fn peer_local(&self, other: &Endpoint) -> Result<(), Error> {
        let filter_of =
            |ep: &Endpoint, peer: EndpointId| ep.ask(|reply| Cmd::AnnouncedFilter { peer, reply });
        let (mine, theirs) = (
            filter_of(self, other.node_id())?,
            filter_of(other, self.node_id())?,
        );
        let (conn_here, conn_there) = (connection::next_conn_id(), connection::next_conn_id());
        let here = self.ask(|reply| Cmd::LocalHandshaken {
            peer: other.node_id(),
            filter: theirs,
            core: other.inner.core.clone(),
            conn: conn_here,
            remote_conn: conn_there,
            in_flight: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            reply,
        })?;
        here?;
        let there = other.ask(|reply| Cmd::LocalHandshaken {
            peer: self.node_id(),
            filter: mine,
            core: self.inner.core.clone(),
            conn: conn_there,
            remote_conn: conn_here,
            in_flight: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            reply,
        })?;
        if let Err(e) = there {
            let _ = self.ask(|reply| Cmd::LocalUnpeer {
                peer: other.node_id(),
                reply,
            });
            return Err(e);
        }
        Ok(())
    }

    /// Ends an in-process peering (`peer_removed` here, `peer_lost` at the peer, as Broker
    /// reports an ending). Returns whether it existed.
    pub fn unpeer_local(&self, other: &Endpoint) -> Result<bool, Error> {
        self.ask(|reply| Cmd::LocalUnpeer {
            peer: other.node_id(),
            reply,
        })
    }

    /// Ends the peering with `address:port` gracefully and stops re-dialing it. Returns
    /// whether such a peering existed.
    pub fn unpeer(&self, address: &str, port: u16) -> Result<bool, Error> {
        let addr = resolve(address, port)?;
        let dialed = self.stop_dialing(addr);
        let found = self.ask(|reply| Cmd::Unpeer { addr, reply })?;
        Ok(found || dialed)
    }

    /// [`unpeer`](Self::unpeer) for async code (any runtime).
    pub async fn unpeer_async(&self, address: &str, port: u16) -> Result<bool, Error> {
        let addr = resolve(address, port)?;
        let dialed = self.stop_dialing(addr);
        let found = self.ask_async(|reply| Cmd::Unpeer { addr, reply }).await?;
        Ok(found || dialed)
    }

    /// Stops re-dialing `addr`; returns whether a dialer existed.
    fn stop_dialing(&self, addr: SocketAddr) -> bool {
        let dialer = self
            .inner
            .dialers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
        if let Some(d) = &dialer {
            d.cancel.store(true, Ordering::Relaxed);
        }
        dialer.is_some()
    }

    /// The peers and peerings under way, with their states.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut out = self.ask(Cmd::Peers).unwrap_or_default();
        let dialers = self.inner.dialers.lock().unwrap_or_else(|e| e.into_inner());
        for (addr, d) in dialers.iter() {
            if d.state != PeerState::Peered && !out.iter().any(|p| p.address == Some(*addr)) {
                out.push(PeerInfo {
                    id: None,
                    address: Some(*addr),
                    outbound: true,
                    state: d.state,
                });
            }
        }
        out
    }

    /// The endpoint's counters: routing totals, per-peer traffic and buffer fill, subscriber
    /// drops.
    pub fn metrics(&self) -> Result<Metrics, Error> {
        let mut m = self.ask(Cmd::Metrics)?;
        m.refused_connections = self.inner.live.refused();
        Ok(m)
    }

    /// Serves [`metrics`](Self::metrics) in Prometheus' text format at
    /// `http://address:port/metrics` and returns the bound port (0 picks a free one).
    pub fn serve_metrics(&self, address: &str, port: u16) -> Result<u16, Error> {
        let (listener, bound) = self.bind(address, port, "serve metrics")?;
        self.serve_http(listener, bound, "http")
    }

    /// Opens Zeek's WebSocket API (Broker's JSON API v1) on `address:port` (port 0 picks a
    /// free one) and returns the port: clients connect to `ws://address:port/v1/messages/json`
    /// (`wss://` when `web_socket_certificate` and `web_socket_key` are configured), send
    /// their topic prefixes, and then publish and receive JSON data messages as participants
    /// of this endpoint. The same server answers `/metrics` and the status page `/`.
    ///
    /// ```
    /// use broker::{Configuration, Endpoint};
    /// let ep = Endpoint::new(Configuration::default()).unwrap();
    /// let port = ep.listen_websocket("127.0.0.1", 0).unwrap();
    /// assert!(port > 0);
    /// ```
    pub fn listen_websocket(&self, address: &str, port: u16) -> Result<u16, Error> {
        let (listener, bound) = self.bind(address, port, "listen for WebSocket clients")?;
        self.serve_http(listener, bound, "websocket")
    }

    /// [`listen_websocket`](Self::listen_websocket) for async code (any runtime).
    pub async fn listen_websocket_async(&self, address: &str, port: u16) -> Result<u16, Error> {
        self.check_running()?;
        let addr = resolve(address, port)?;
        let this = self.clone();
        self.inner
            .handle
            .spawn(async move {
                let (listener, bound) = bind_at(addr, "listen for WebSocket clients").await?;
                this.serve_http(listener, bound, "websocket")
            })
            .await
            .map_err(|_| closed())?
    }

    /// Serves the HTTP server (WebSocket API, metrics, status page) on a bound listener.
    fn serve_http(
        &self,
        listener: TcpListener,
        bound: SocketAddr,
        purpose: &str,
    ) -> Result<u16, Error> {
        let web = self.web()?;
        let _guard = self.inner.handle.enter();
        crate::web::start(web, listener);
        self.note_listener(purpose, bound);
        Ok(bound.port())
    }

    /// The HTTP server's shared state (made with the first listener).
    fn web(&self) -> Result<Arc<crate::web::Web>, Error> {
        let mut web = self.inner.web.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = &*web {
            return Ok(w.clone());
        }
        let weak: std::sync::Weak<dyn crate::web::StatusSource> =
            Arc::downgrade(&self.inner) as std::sync::Weak<Inner>;
        let w = Arc::new(crate::web::Web::new(
            self.inner.id,
            self.inner.config.clone(),
            self.inner.core.clone(),
            weak,
            self.inner.live.clone(),
        )?);
        *web = Some(w.clone());
        Ok(w)
    }

    fn note_listener(&self, purpose: &str, addr: SocketAddr) {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((purpose.to_owned(), addr));
    }

    /// Attaches the master of store `name` with a backend. When this endpoint has that master
    /// already, returns it (as Broker does; the backend arguments are then unused). Fails with
    /// `master_exists` when a reachable endpoint has a master of that name, and with
    /// `backend_failure` (and the reason) when the backend cannot be opened — a corrupt or
    /// foreign file is never overwritten.
    ///
    /// ```
    /// use broker::{BackendType, Configuration, Endpoint};
    /// let ep = Endpoint::new(Configuration::default()).unwrap();
    /// let store = ep.attach_master("users", BackendType::Memory, Default::default()).unwrap();
    /// store.put("alice", 1u64, None);
    /// assert_eq!(store.get("alice").unwrap(), broker::data::Data::Count(1));
    /// assert_eq!(store.get("bob").unwrap_err().code, broker::ErrorCode::NoSuchKey);
    /// ```
    pub fn attach_master(
        &self,
        name: &str,
        backend: crate::BackendType,
        options: crate::BackendOptions,
    ) -> Result<crate::Store, Error> {
        crate::store::attach_master(self, name, backend, options)
    }

    /// Attaches a clone of store `name` (the clone already here, if there is one; a master of
    /// that name here is `no_such_master`, as in Broker). It finds its master among the reachable endpoints (now
    /// or when one appears), receives the whole store, then follows every change; its
    /// mutations go to the master. Reads wait for the first synchronization (up to 5 s, then
    /// `stale_data`), and fail with `stale_data` once the master has been gone for the stale
    /// interval.
    pub fn attach_clone(
        &self,
        name: &str,
        options: crate::CloneOptions,
    ) -> Result<crate::Store, Error> {
        crate::store::attach_clone(self, name, options)
    }

    /// Whether this endpoint's fast paths are on (see `Configuration::fast_paths`).
    pub fn fast_paths(&self) -> bool {
        self.inner.config.fast_paths
    }

    /// Broker's `peer_subscriptions`: the topic prefixes that other reachable endpoints
    /// subscribe to.
    pub fn peer_subscriptions(&self) -> Result<Vec<Topic>, Error> {
        self.ask(Cmd::PeerSubscriptions)
    }

    /// Waits until `peer` is a direct peer, up to `timeout`.
    pub fn await_peer(&self, peer: EndpointId, timeout: Duration) -> Result<(), Error> {
        let end = std::time::Instant::now() + timeout;
        loop {
            if self.ask(Cmd::Peers)?.iter().any(|p| p.id == Some(peer)) {
                return Ok(());
            }
            if std::time::Instant::now() >= end {
                return Err(Error::new(
                    ErrorCode::PeerTimeout,
                    format!("{peer} did not peer within {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn send_publications(&self, batch: Publications) -> Result<(), Error> {
        for batch in split(batch) {
            let Some(batch) = self.inner.shared.publish_now(batch) else {
                continue;
            };
            self.inner.pubs.blocking_send(batch).map_err(|_| closed())?;
        }
        Ok(())
    }

    /// [`send_publications`](Self::send_publications) for async code.
    async fn send_publications_async(&self, batch: Publications) -> Result<(), Error> {
        for batch in split(batch) {
            let Some(batch) = self.inner.shared.publish_now(batch) else {
                continue;
            };
            self.inner.pubs.send(batch).await.map_err(|_| closed())?;
        }
        Ok(())
    }

    /// Publishes `batch` if that needs no waiting; otherwise hands it back.
    fn try_send_publications(
        &self,
        batch: Publications,
    ) -> Result<(), mpsc::error::TrySendError<Publications>> {
        let Some(batch) = self.inner.shared.publish_now(batch) else {
            return Ok(());
        };
        self.inner.pubs.try_send(batch)
    }

    /// [`publish`](Self::publish) for async code (any runtime): waits without blocking a thread.
    pub async fn publish_async(
        &self,
        topic_name: &str,
        data: impl Into<Data>,
    ) -> Result<(), Error> {
        let batch = vec![(topic(topic_name)?, SharedData::from(data.into()))];
        self.send_publications_async(batch).await
    }

    /// [`publish_batch`](Self::publish_batch) for async code (any runtime).
    pub async fn publish_batch_async<I, T, D>(&self, items: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = (T, D)>,
        T: AsRef<str>,
        D: Into<Data>,
    {
        let batch = items
            .into_iter()
            .map(|(t, d)| Ok((topic(t.as_ref())?, SharedData::from(d.into()))))
            .collect::<Result<Vec<_>, Error>>()?;
        self.send_publications_async(batch).await
    }

    /// Publishes `data` on `topic` to every subscriber, here and at peers. Blocks while the
    /// endpoint's buffers are full, i.e. while the network cannot keep up (a peer that stays
    /// behind for a second counts as slow and no longer holds publishers back; its overflow
    /// policy applies instead).
    pub fn publish(&self, topic_name: &str, data: impl Into<Data>) -> Result<(), Error> {
        self.send_publications(vec![(topic(topic_name)?, SharedData::from(data.into()))])
    }

    /// Publishes a batch of ready-made publications (topics already checked, values shared),
    /// waiting while the endpoint's buffers are full. Language bindings use it to convert
    /// values first and wait without holding their interpreter lock.
    pub fn publish_prepared(&self, batch: Publications) -> Result<(), Error> {
        self.send_publications(batch)
    }

    /// [`publish_prepared`](Self::publish_prepared) if the buffers have room; otherwise the
    /// batch comes back at once.
    pub fn try_publish_prepared(
        &self,
        batch: Publications,
    ) -> Result<(), TryPublishError<Publications>> {
        match self.try_send_publications(batch) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(b)) => Err(TryPublishError::Full(b)),
            Err(mpsc::error::TrySendError::Closed(b)) => Err(TryPublishError::Closed(b)),
        }
    }

    /// Publishes several messages at once.
    pub fn publish_batch<I, T, D>(&self, items: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = (T, D)>,
        T: AsRef<str>,
        D: Into<Data>,
    {
        let batch = items
            .into_iter()
            .map(|(t, d)| Ok((topic(t.as_ref())?, SharedData::from(d.into()))))
            .collect::<Result<Vec<_>, Error>>()?;
        self.send_publications(batch)
    }

    /// A publisher for one topic, with demand: [`Publisher::publish`] waits while the network
    /// cannot keep up, [`Publisher::try_publish`] hands the value back instead.
    ///
    /// ```
    /// let ep = broker::Endpoint::new(broker::Configuration::default()).unwrap();
    /// let publisher = ep.make_publisher("/metrics").unwrap();
    /// assert!(publisher.demand() > 0);
    /// publisher.publish(broker_data::Data::Count(1)).unwrap();
    /// ```
    pub fn make_publisher(&self, topic_name: &str) -> Result<Publisher, Error> {
        Ok(Publisher {
            topic: topic(topic_name)?,
            endpoint: self.clone(),
        })
    }

    /// Broker's `forward`: route these topics through this endpoint without delivering them.
    pub fn forward(&self, topics: &[&str]) -> Result<(), Error> {
        let topics = topics.iter().map(|t| topic(t)).collect::<Result<_, _>>()?;
        self.send(Cmd::Forward(topics))
    }

    /// A subscriber to topic prefixes, with a queue of `queue_size` messages
    /// (`Configuration::subscriber_queue_size` when `None`). What a full queue does is the
    /// endpoint's `subscriber_overflow_policy`: by default nothing is lost, and the endpoint
    /// takes nothing more from its peers and publishers until the subscriber makes room (see
    /// [`SubscriberOverflow`](crate::SubscriberOverflow)).
    pub fn make_subscriber(
        &self,
        topics: &[&str],
        queue_size: Option<usize>,
    ) -> Result<Subscriber, Error> {
        self.make_subscriber_with(
            topics,
            queue_size,
            self.inner.config.subscriber_overflow_policy,
        )
    }

    /// [`make_subscriber`](Self::make_subscriber) with this subscriber's own overflow policy:
    /// a monitor that must never slow the cluster down asks for
    /// [`DropOldest`](crate::SubscriberOverflow::DropOldest).
    ///
    /// ```
    /// use broker::{Configuration, Endpoint, SubscriberOverflow};
    /// use broker_data::Data;
    /// use std::time::{Duration, Instant};
    /// let (a, b) = (Endpoint::new(Configuration::default()).unwrap(), Endpoint::new(Configuration::default()).unwrap());
    /// let monitor = b
    ///     .make_subscriber_with(&["/a"], Some(2), SubscriberOverflow::DropOldest)
    ///     .unwrap();
    /// a.peer_local(&b).unwrap();
    /// for i in 0..3u64 {
    ///     a.publish("/a/x", i).unwrap();
    /// }
    /// // Nobody reads yet: the first of the three made room for the third.
    /// let end = Instant::now() + Duration::from_secs(5);
    /// while monitor.dropped() < 1 && Instant::now() < end {
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// let got: Vec<Data> = monitor.poll().into_iter().map(|m| (*m.data).clone()).collect();
    /// assert_eq!(got, [Data::Count(1), Data::Count(2)]);
    /// assert_eq!(monitor.dropped(), 1);
    /// ```
    pub fn make_subscriber_with(
        &self,
        topics: &[&str],
        queue_size: Option<usize>,
        overflow: crate::SubscriberOverflow,
    ) -> Result<Subscriber, Error> {
        let topics = topics
            .iter()
            .map(|t| topic(t))
            .collect::<Result<Vec<_>, _>>()?;
        let size = queue_size.unwrap_or(self.inner.config.subscriber_queue_size);
        let queue = Arc::new(
            Queue::new(size, self.inner.config.spin_wait)
                .map_err(|e| Error::new(ErrorCode::CannotOpenResource, e.to_string()))?,
        );
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Cmd::Subscribe {
            id,
            topics,
            queue: queue.clone(),
            overflow,
            client: None,
        })?;
        Ok(Subscriber {
            waiting_since: None,
            id,
            queue,
            endpoint: self.clone(),
        })
    }

    /// Publishes a store command on `topic` as if one of this endpoint's stores had (sender:
    /// this endpoint, to every subscriber of the topic). Stores do this themselves; this is for
    /// replaying recorded traffic (`broker bench cluster`), where the commands of a recorded
    /// master or clone go out without the store. Like a store's output it waits while the peers
    /// are behind.
    pub fn publish_command(
        &self,
        topic_name: &str,
        command: broker_wire::Command,
    ) -> Result<(), Error> {
        let t = topic(topic_name)?;
        let content = Arc::new(broker_wire::InternalCommand {
            seq: 0,
            sender: EntityId {
                endpoint: self.inner.id,
                object: 0,
            },
            receiver: EntityId::NIL,
            content: command,
        });
        let out = crate::cmd::StoreOutput {
            commands: vec![(t, None, content)],
            ..Default::default()
        };
        self.inner.stores.blocking_send(out).map_err(|_| closed())
    }

    /// A counter of the messages published on topics with these prefixes, data and store
    /// commands alike, by publishing endpoint: a subscription that keeps counts instead of
    /// messages, so it never holds anybody back. `broker bench cluster` checks with counters
    /// that every node receives what it should from each sender.
    ///
    /// ```
    /// use broker::{Configuration, Endpoint};
    /// use std::time::Duration;
    /// let (a, b) = (Endpoint::new(Configuration::default()).unwrap(), Endpoint::new(Configuration::default()).unwrap());
    /// let counter = b.make_counter(&["/a"]).unwrap();
    /// a.peer_local(&b).unwrap();
    /// b.await_peer(a.node_id(), Duration::from_secs(5)).unwrap();
    /// a.publish_batch((0..3u64).map(|i| ("/a/x", i))).unwrap();
    /// assert_eq!(counter.wait_for(3, Duration::from_secs(5)), 3);
    /// assert_eq!(counter.by_sender()[&a.node_id()].data, 3);
    /// ```
    pub fn make_counter(&self, topics: &[&str]) -> Result<MessageCounter, Error> {
        let topics = topics
            .iter()
            .map(|t| topic(t))
            .collect::<Result<Vec<_>, _>>()?;
        let tally = Arc::new(crate::counter::Tally::default());
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Cmd::Count {
            id,
            topics,
            tally: tally.clone(),
        })?;
        Ok(MessageCounter {
            id,
            tally,
            endpoint: self.clone(),
        })
    }

    /// A subscriber to errors, and to statuses too when `receive_statuses`.
    pub fn make_status_subscriber(
        &self,
        receive_statuses: bool,
    ) -> Result<StatusSubscriber, Error> {
        let queue = Arc::new(
            Queue::new(1024, self.inner.config.spin_wait)
                .map_err(|e| Error::new(ErrorCode::CannotOpenResource, e.to_string()))?,
        );
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Cmd::StatusSubscribe {
            id,
            queue: queue.clone(),
            statuses: receive_statuses,
        })?;
        Ok(StatusSubscriber {
            id,
            queue,
            endpoint: self.clone(),
        })
    }

    /// Closes every peering and stops the endpoint: subscribers' blocking calls return, its
    /// listening ports are released, and later calls fail with `shutting_down`.
    pub fn shutdown(&self) {
        self.stop_all_dialers();
        let _ = self.ask(Cmd::Shutdown);
        let end = std::time::Instant::now() + STORE_CLOSE_TIMEOUT;
        while self.inner.local_stores.running() > 0 && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.stop_runtime();
    }

    /// [`shutdown`](Self::shutdown) for async code (any runtime).
    pub async fn shutdown_async(&self) {
        self.stop_all_dialers();
        let _ = self.ask_async(Cmd::Shutdown).await;
        // Wait for the writers on the endpoint's own runtime (its timer), awaited from any.
        let inner = self.inner.clone();
        let _ = self
            .inner
            .handle
            .spawn(async move {
                let end = tokio::time::Instant::now() + STORE_CLOSE_TIMEOUT;
                while inner.local_stores.running() > 0 && tokio::time::Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let end = tokio::time::Instant::now() + Duration::from_secs(2);
                while inner.live.writers.load(Ordering::SeqCst) > 0
                    && tokio::time::Instant::now() < end
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
        self.stop_runtime_now();
    }

    /// Ends every task of the endpoint (listeners included), once the connections' writers
    /// have put what they hold on the wire (for at most two seconds: a peer that stopped
    /// reading cannot hold a shutdown up).
    fn stop_runtime(&self) {
        let end = std::time::Instant::now() + Duration::from_secs(2);
        while self.inner.live.writers.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < end
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.stop_runtime_now();
    }

    fn stop_runtime_now(&self) {
        let rt = self
            .inner
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = rt {
            rt.stop();
        }
    }

    /// `shutting_down` once [`shutdown`](Self::shutdown) ran: the runtime is gone.
    fn check_running(&self) -> Result<(), Error> {
        if self
            .inner
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            Ok(())
        } else {
            Err(closed())
        }
    }

    fn stop_all_dialers(&self) {
        for d in self
            .inner
            .dialers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            d.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// Publishes on one topic with demand (see [`Endpoint::make_publisher`]).
pub struct Publisher {
    topic: Topic,
    endpoint: Endpoint,
}

/// Why [`Publisher::try_publish`] (or [`Endpoint::try_publish_prepared`]) did not publish;
/// what was to be published comes back.
#[derive(Debug, PartialEq)]
pub enum TryPublishError<T = Data> {
    /// The endpoint's buffers are full: try again later (or use `publish`, which waits).
    Full(T),
    /// The endpoint has shut down.
    Closed(T),
}

impl Publisher {
    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Publishes, waiting while the endpoint's buffers are full.
    pub fn publish(&self, data: impl Into<Data>) -> Result<(), Error> {
        self.endpoint
            .send_publications(vec![(self.topic.clone(), SharedData::from(data.into()))])
    }

    /// Publishes several values, waiting while the buffers are full.
    pub fn publish_batch(&self, items: impl IntoIterator<Item = Data>) -> Result<(), Error> {
        let batch = items
            .into_iter()
            .map(|d| (self.topic.clone(), SharedData::from(d)))
            .collect();
        self.endpoint.send_publications(batch)
    }

    /// Publishes if the buffers have room; otherwise hands the value back at once.
    pub fn try_publish(&self, data: Data) -> Result<(), TryPublishError> {
        match self
            .endpoint
            .try_send_publications(vec![(self.topic.clone(), SharedData::from(data))])
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(mut v)) => {
                Err(TryPublishError::Full(v.remove(0).1.into_data()))
            }
            Err(mpsc::error::TrySendError::Closed(mut v)) => {
                Err(TryPublishError::Closed(v.remove(0).1.into_data()))
            }
        }
    }

    /// How many more `publish` calls fit before one would wait.
    pub fn demand(&self) -> usize {
        self.endpoint.inner.pubs.capacity()
    }

    /// How many `publish` calls the endpoint buffers at most before one waits.
    pub fn capacity(&self) -> usize {
        self.endpoint.inner.pubs.max_capacity()
    }
}

/// Receives messages on the topics it subscribed to.
///
/// Blocking (`get`, `get_timeout`, `get_n`), non-blocking (`poll`, `available`), a descriptor
/// for `poll(2)`/`epoll` (`fd`), and a `Stream` for async code.
pub struct Subscriber {
    /// As an async `Stream`: since when it has waited for a message (see `poll_next`).
    waiting_since: Option<Instant>,
    id: u64,
    queue: Arc<Queue<DataMessage>>,
    endpoint: Endpoint,
}

impl Subscriber {
    /// Waits for the next message (`None` once the endpoint shuts down).
    pub fn get(&self) -> Option<DataMessage> {
        self.take(1, None).pop()
    }

    /// Waits up to `timeout` for the next message.
    pub fn get_timeout(&self, timeout: Duration) -> Option<DataMessage> {
        self.take(1, deadline(Some(timeout))).pop()
    }

    /// Waits (up to `timeout`, if given) until a message is there, then takes up to `n`.
    pub fn get_n(&self, n: usize, timeout: Option<Duration>) -> Vec<DataMessage> {
        self.take(n, deadline(timeout))
    }

    /// Waits until the deadline for up to `n` messages: spins reading the sockets, then
    /// watches them (see `Inner::watch`), then sleeps.
    fn take(&self, n: usize, deadline: Option<Instant>) -> Vec<DataMessage> {
        let inner = &self.endpoint.inner;
        self.queue
            .take_watching(n, deadline, &|| inner.read_now(), &|q, d| inner.watch(q, d))
    }

    /// Everything pending, without waiting.
    pub fn poll(&self) -> Vec<DataMessage> {
        self.queue.take_all()
    }

    /// How many messages are pending.
    pub fn available(&self) -> usize {
        self.queue.len()
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// Whether the endpoint shut down: no more messages will come after the pending ones.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// A descriptor that is readable exactly while messages are pending.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.queue.fd()
    }

    /// Adds a topic prefix.
    pub fn add_topic(&self, t: &str) -> Result<(), Error> {
        self.endpoint.send(Cmd::AddTopic {
            id: self.id,
            topic: topic(t)?,
        })
    }

    /// Removes a topic prefix.
    pub fn remove_topic(&self, t: &str) -> Result<(), Error> {
        self.endpoint.send(Cmd::RemoveTopic {
            id: self.id,
            topic: topic(t)?,
        })
    }
}

/// Counts the messages on some topics by publishing endpoint (see
/// [`Endpoint::make_counter`]). Dropping it ends the subscription.
pub struct MessageCounter {
    id: u64,
    tally: Arc<crate::counter::Tally>,
    endpoint: Endpoint,
}

impl MessageCounter {
    /// Messages counted so far.
    pub fn total(&self) -> u64 {
        self.tally.total()
    }

    /// Messages counted so far, by the endpoint that published them.
    pub fn by_sender(&self) -> std::collections::BTreeMap<EndpointId, crate::MessageCounts> {
        self.tally.by_sender()
    }

    /// Waits until at least `total` messages were counted or `timeout` passed, and returns
    /// the count then.
    pub fn wait_for(&self, total: u64, timeout: Duration) -> u64 {
        self.tally.wait_for(total, timeout)
    }
}

impl std::fmt::Debug for MessageCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCounter")
            .field("total", &self.total())
            .finish()
    }
}

impl Drop for MessageCounter {
    fn drop(&mut self) {
        let _ = self.endpoint.send(Cmd::DropSubscriber(self.id));
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.endpoint.send(Cmd::DropSubscriber(self.id));
    }
}

impl futures_core::Stream for Subscriber {
    type Item = DataMessage;
    /// The next message. With nothing there, the first poll after a message waits as a
    /// blocking `get` does before it sleeps: for up to `Configuration::spin_wait` it looks at
    /// the queue and reads the endpoint's sockets itself (see `shared`), on the polling
    /// thread. A message that arrives meanwhile is then taken without a wake-up from the
    /// runtime's thread, which costs tens of microseconds; the price is one poll of up to
    /// `spin_wait` per message (100 µs by default, within what tokio allows a task between
    /// awaits; `spin_wait = 0` never holds the executor), and only while spinning pays (a
    /// trickle of messages turns it off, see `governor`). Later polls that find nothing (a
    /// spurious wake-up, a `select!` sibling's turn) return at once.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<DataMessage>> {
        let this = self.get_mut();
        let mut next = this.queue.poll_one(cx.waker());
        if matches!(next, Ok(None)) && this.waiting_since.is_none() {
            this.waiting_since = Some(Instant::now());
            this.queue.spin_reading(&|| this.endpoint.inner.read_now());
            next = this.queue.poll_one(cx.waker());
        }
        match next {
            Ok(Some(m)) => {
                if let Some(since) = this.waiting_since.take() {
                    this.queue.waited(since);
                }
                Poll::Ready(Some(m))
            }
            Ok(None) => Poll::Pending,
            Err(()) => Poll::Ready(None),
        }
    }
}

/// Receives errors (and, if asked, statuses) with Broker's codes.
pub struct StatusSubscriber {
    id: u64,
    queue: Arc<Queue<StatusEvent>>,
    endpoint: Endpoint,
}

impl StatusSubscriber {
    /// Waits for the next event (reading the endpoint's sockets while it spins, as
    /// [`Subscriber::get`] does).
    pub fn get(&self) -> Option<StatusEvent> {
        self.get_n(1, None).pop()
    }

    /// Waits up to `timeout` for the next event.
    pub fn get_timeout(&self, timeout: Duration) -> Option<StatusEvent> {
        self.get_n(1, Some(timeout)).pop()
    }

    /// Waits (up to `timeout`, if given) until an event is there, then takes up to `n`.
    pub fn get_n(&self, n: usize, timeout: Option<Duration>) -> Vec<StatusEvent> {
        self.queue
            .take_reading(n, deadline(timeout), &|| self.endpoint.inner.read_now())
    }

    /// Everything pending, without waiting.
    pub fn poll(&self) -> Vec<StatusEvent> {
        self.queue.take_all()
    }

    /// How many events are pending.
    pub fn available(&self) -> usize {
        self.queue.len()
    }

    /// Whether the endpoint shut down: no more events will come after the pending ones.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// A descriptor that is readable exactly while events are pending.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.queue.fd()
    }
}

impl Drop for StatusSubscriber {
    fn drop(&mut self) {
        let _ = self.endpoint.send(Cmd::DropStatusSubscriber(self.id));
    }
}

impl crate::store::Host for Endpoint {
    fn store_entity(&self) -> EntityId {
        EntityId {
            endpoint: self.node_id(),
            object: self.next_object_id(),
        }
    }

    fn local_stores(&self) -> &crate::store::LocalStores {
        &self.inner.local_stores
    }

    fn store_support(&self) -> (Arc<AtomicBool>, mpsc::Sender<StoreOutput>) {
        (self.inner.store_events.clone(), self.inner.stores.clone())
    }

    fn core_sender(&self) -> mpsc::UnboundedSender<Cmd> {
        self.inner.core.clone()
    }

    fn attach_to_core(
        &self,
        id: u64,
        name: &str,
        master: bool,
        sink: mpsc::Sender<crate::cmd::StoreInbound>,
    ) -> Result<(), Error> {
        self.ask(|reply| Cmd::AttachStore {
            id,
            name: name.to_owned(),
            master,
            sink,
            reply,
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_batches_are_handed_over_in_parts_in_order() {
        let t = topic("/t").unwrap();
        let batch: Publications = (0..600u64)
            .map(|i| (t.clone(), SharedData::from(Data::Count(i))))
            .collect();
        let parts: Vec<Publications> = split(batch).collect();
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, [256, 256, 88]);
        let values: Vec<Data> = parts
            .concat()
            .into_iter()
            .map(|(_, d)| (*d).clone())
            .collect();
        assert_eq!(values, (0..600u64).map(Data::Count).collect::<Vec<_>>());
        assert_eq!(split(Vec::new()).count(), 1, "an empty batch stays one");
    }

    #[test]
    fn a_second_shutdown_and_questions_after_the_first_return_at_once() {
        let ep = Endpoint::new(Configuration::default()).unwrap();
        ep.shutdown();
        let (tx, rx) = std::sync::mpsc::channel();
        let ep2 = ep.clone();
        std::thread::spawn(move || {
            ep2.shutdown();
            let _ = tx.send((ep2.peers(), ep2.metrics().is_err()));
        });
        let (peers, metrics_failed) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a second shutdown returns");
        assert!(peers.is_empty());
        assert!(metrics_failed);
    }
}
