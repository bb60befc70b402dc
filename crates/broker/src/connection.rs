//! One peer connection: the handshake (with version negotiation), then a reader that decodes
//! frames into router messages and a writer that drains the core's chunks onto the socket.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use broker_routing::PeerKind;
use broker_wire::{EndpointId, ErrorCode, Limits, Topic};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::cmd::Cmd;
use crate::handshake::{self, Announce, Claims, Framed, Peered, Refused, Side, Stream};
use crate::inbox::{Inbox, Tcp};
use crate::outbox::{Outbox, Pipe, Turn};
use crate::spin::Activity;
use crate::tls::Tls;
use crate::{Configuration, Error};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id (connections and in-process peerings share the numbering).
pub(crate) fn next_conn_id() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// The handshake's hooks into the core (see [`Announce`]) for one connection: it asks for the
/// filter to announce and installs the peer with the connection's outbox, which holds what the
/// core sends until the handshake is over.
struct Installer<'a> {
    core: &'a mpsc::UnboundedSender<Cmd>,
    addr: SocketAddr,
    outbound: bool,
    conn: u64,
    outbox: Mutex<Option<Outbox>>,
    /// The peer, once installed (the core must hear if the handshake fails after that).
    installed: Mutex<Option<EndpointId>>,
}

impl Announce for Installer<'_> {
    fn filter_for(&self, peer: EndpointId) -> impl std::future::Future<Output = Vec<Topic>> + Send {
        let (tx, rx) = oneshot::channel();
        let _ = self.core.send(Cmd::AnnouncedFilter { peer, reply: tx });
        async move { rx.await.unwrap_or_default() }
    }

    fn install(
        &self,
        peer: EndpointId,
        kind: PeerKind,
        filter: Vec<Topic>,
        announced: Vec<Topic>,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send {
        let outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (reply, rx) = oneshot::channel();
        match outbox {
            Some(outbox) => {
                let _ = self.core.send(Cmd::Handshaken {
                    peer,
                    kind,
                    filter,
                    announced,
                    addr: self.addr,
                    outbound: self.outbound,
                    conn: self.conn,
                    outbox,
                    reply,
                });
            }
            None => {
                let _ = reply.send(Err(Error::new(
                    ErrorCode::LogicError,
                    "a connection installs one peer",
                )));
            }
        }
        async move {
            let r = rx.await.unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorCode::ShuttingDown,
                    "the endpoint shut down",
                ))
            });
            if r.is_ok() {
                *self.installed.lock().unwrap_or_else(|e| e.into_inner()) = Some(peer);
            }
            r
        }
    }
}

/// What every connection of an endpoint needs, made once per endpoint and shared: the
/// endpoint's id and configuration, the core's command queue, TLS, and the connection counts.
pub(crate) struct Net {
    pub(crate) me: EndpointId,
    pub(crate) config: Arc<Configuration>,
    pub(crate) core: mpsc::UnboundedSender<Cmd>,
    pub(crate) tls: Option<Tls>,
    pub(crate) live: Arc<Live>,
}

/// Makes the kernel give up on a peer that went silent for `timeout`: data it does not
/// acknowledge (`TCP_USER_TIMEOUT`), or an idle connection whose keepalive probes go unanswered
/// (first probe after half the timeout, then three more within the other half). A cut link or
/// a vanished host then ends the connection, so the peer is reported lost and routing finds
/// another way, instead of waiting on the kernel's defaults for many minutes.
pub(crate) fn watch_liveness(tcp: &TcpStream, timeout: Duration) {
    if timeout.is_zero() {
        return;
    }
    let sock = socket2::SockRef::from(tcp);
    let half = (timeout / 2).max(Duration::from_secs(1));
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(half)
        .with_interval((half / 3).max(Duration::from_secs(1)))
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&keepalive);
    let _ = sock.set_tcp_user_timeout(Some(timeout));
}

/// Sets up a new TCP connection: TLS first when configured, then Broker's handshake, then the
/// connection runs until it closes. `peered` learns the outcome of the handshakes.
pub(crate) async fn establish(
    tcp: TcpStream,
    addr: SocketAddr,
    side: Side,
    net: Arc<Net>,
    peered: Option<oneshot::Sender<Result<EndpointId, Refused>>>,
    slot: Slot,
) {
    let _ = tcp.set_nodelay(true);
    watch_liveness(&tcp, net.config.peer_silence_timeout);
    // Only so many connections are ever watched by a waiting subscriber (see `Live::lend`):
    // only they get a second handle of their socket.
    let tcp = Tcp::new(tcp, net.live.open() <= MAX_WATCHED, net.tls.is_none());
    let modes = tcp.modes();
    let Some(tls) = net.tls.as_ref() else {
        return run(tcp, modes, addr, side, &net, peered, slot).await;
    };
    let handshake = async {
        match side {
            Side::Acceptor => tls.accept(tcp).await,
            Side::Connector => tls.connect(tcp).await,
        }
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(net.config.handshake_timeout, handshake) => {
            r.unwrap_or_else(|_| Err(Error::new(ErrorCode::PeerTimeout, "TLS handshake timed out")))
        }
        // Evicted (see `Live::admit`): counted and logged there, not reported per connection.
        () = slot.evicted() => return,
    };
    match outcome {
        Ok(stream) => run(stream, modes, addr, side, &net, peered, slot).await,
        Err(e) => handshake_failed(&net.core, addr, peered, e),
    }
}

/// Reports a failed handshake (TLS or Broker's) to status subscribers and to the waiting caller.
fn handshake_failed(
    core: &mpsc::UnboundedSender<Cmd>,
    addr: SocketAddr,
    peered: Option<oneshot::Sender<Result<EndpointId, Refused>>>,
    e: Error,
) {
    let _ = core.send(Cmd::ConnectionError {
        code: e.code,
        addr: Some(addr),
        peer: None,
        message: e.message.clone(),
    });
    if let Some(tx) = peered {
        let _ = tx.send(Err(Refused::Failed(e)));
    }
}

/// Broker's handshake on `stream` and, once peered, the connection until it closes.
async fn run<S: Stream>(
    stream: S,
    modes: Arc<crate::inbox::Modes>,
    addr: SocketAddr,
    side: Side,
    net: &Net,
    peered: Option<oneshot::Sender<Result<EndpointId, Refused>>>,
    mut slot: Slot,
) {
    let Net {
        me,
        ref config,
        ref core,
        ref live,
        ..
    } = *net;
    let mut f = Framed::new(stream);
    let conn = next_conn_id();
    // The stream splits only once the handshake is over: until then the core's chunks wait in
    // the pipe's queue, behind the handshake's last message.
    let pipe = Arc::new(Pipe::default());
    let installer = Installer {
        core,
        addr,
        outbound: side == Side::Connector,
        conn,
        outbox: Mutex::new(Some(Outbox::new(pipe.clone(), config.fast_paths))),
        installed: Mutex::new(None),
    };
    let cx = handshake::Context {
        me,
        side,
        conn,
        claims: &live.claims,
        announce: &installer,
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(config.handshake_timeout, handshake::handshake(&mut f, &cx)) => {
            r.unwrap_or_else(|_| {
                Err(Refused::Failed(Error::new(
                    ErrorCode::PeerTimeout,
                    "handshake timed out",
                )))
            })
        }
        // Evicted (see `Live::admit`): counted and logged there, not reported per connection.
        () = slot.evicted() => Err(Refused::Evicted),
    };
    slot.handshaken();
    let installed = installer
        .installed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let peer = match outcome {
        Ok(Peered {
            peer, kind, claim, ..
        }) => (peer, kind, claim),
        Err(refused) => {
            if let Some(peer) = installed {
                // Installed, then the handshake failed: the core forgets the peer again.
                let _ = core.send(Cmd::Closed {
                    peer,
                    conn,
                    reason: Some("the handshake did not complete".into()),
                });
            }
            match refused {
                Refused::Evicted => {}
                Refused::Failed(e) if e.code == ErrorCode::ShuttingDown => {
                    tracing::debug!(%addr, "the core refused a peer: shutting down");
                    if let Some(tx) = peered {
                        let _ = tx.send(Err(Refused::Failed(e)));
                    }
                }
                Refused::Failed(e) => handshake_failed(core, addr, peered, e),
                Refused::Redundant(peer) => {
                    // Another connection carries this peering: not an error (Broker reports
                    // none).
                    tracing::debug!(%peer, %addr, "dropped a redundant connection");
                    if let Some(tx) = peered {
                        let _ = tx.send(Err(Refused::Redundant(peer)));
                    }
                }
            }
            return;
        }
    };
    let (peer, kind, claim) = peer;
    if let Some(tx) = peered {
        let _ = tx.send(Ok(peer));
    }
    let Framed {
        stream,
        buf,
        frames: _,
    } = f;
    let (read, write) = tokio::io::split(stream);
    pipe.attach(Box::pin(write));
    let activity = live.activity.clone();
    let writer = tokio::spawn(write_loop(
        pipe,
        core.clone(),
        LiveWriter::new(live.clone()),
    ));
    let limits = Limits {
        max_frame_len: config.max_frame_len,
        ..Limits::default()
    };
    let inbox = Inbox::new(Box::pin(read), buf, modes, peer, conn, kind, limits);
    let listed = live.list(inbox.clone());
    let reason = inbox.read_loop(core, &activity).await;
    drop(listed);
    writer.abort();
    let _ = core.send(Cmd::Closed {
        peer,
        conn,
        reason: reason.map(|e| e.to_string()),
    });
    // Only now may another connection to this peer be accepted.
    drop(claim);
}

/// The most connections a waiting subscriber's thread watches itself: with more, a node
/// serves many peers and the runtime's thread, which watches them all anyway, hands over.
pub(crate) const MAX_WATCHED: usize = 8;

/// What an endpoint's connections share: how many writers still run (a shutdown waits for
/// them to put what they hold on the wire) and where readers report traffic (the runtime's
/// spinner, see `spin`).
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) writers: AtomicUsize,
    pub(crate) activity: Arc<Activity>,
    /// The connections' incoming sides, for subscribers' threads that read while they wait.
    inboxes: Mutex<Vec<Arc<Inbox>>>,
    /// Which of them such a thread looks at next.
    turn: AtomicUsize,
    /// Which connection holds each peer (see `handshake::Claims`).
    pub(crate) claims: Arc<Claims>,
    /// Connections open (either direction), and those still in their handshakes (TLS and
    /// Broker's): what the limits `max_connections` and `max_handshakes` bound.
    connections: AtomicUsize,
    handshaking: AtomicUsize,
    /// Incoming connections refused by those limits, in all and since the last log line.
    refused: AtomicU64,
    refused_unlogged: AtomicU64,
    last_refusal_log: Mutex<Option<std::time::Instant>>,
    /// Incoming connections in their handshakes, oldest first, each with the signal that
    /// evicts it (see [`Live::admit`]).
    pending: Mutex<std::collections::VecDeque<(u64, Arc<tokio::sync::Notify>)>>,
    next_slot: AtomicU64,
}

/// Holds a connection's place in the endpoint's counts (see [`Live::admit`]): its handshake's
/// until [`handshaken`](Self::handshaken), its connection's until dropped.
pub(crate) struct Slot {
    live: Arc<Live>,
    handshaking: bool,
    id: u64,
    evict: Arc<tokio::sync::Notify>,
}

impl Slot {
    /// The handshakes are over (done or failed): the connection leaves the handshake count.
    fn handshaken(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.live.handshaking.fetch_sub(1, Ordering::SeqCst);
            let id = self.id;
            self.live.pending().retain(|(p, _)| *p != id);
        }
    }

    /// Completes when a newer incoming connection took this one's handshake place.
    async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.handshaken();
        self.live.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Live {
    /// A place for an incoming connection, refused when the endpoint has `max_connections`
    /// connections or `max_handshakes` handshakes under way: counted, and logged at most once
    /// a second with how many were refused meanwhile.
    ///
    /// When `max_handshakes` are under way the oldest of them is evicted instead: a peer that
    /// opens connections and never finishes a handshake can hold places only until newer ones
    /// come, so a well-behaved peer still gets through (and nothing is held longer than
    /// `handshake_timeout` anyway).
    pub(crate) fn admit(self: &Arc<Self>, config: &Configuration) -> Option<Slot> {
        let (slot, connections, handshaking) = self.place(true);
        if connections >= config.max_connections || handshaking >= config.max_handshakes * 2 {
            drop(slot);
            self.turned_away(config, connections, handshaking);
            return None;
        }
        if handshaking >= config.max_handshakes {
            let oldest = self.pending().pop_front();
            if let Some((_, evict)) = oldest {
                evict.notify_one();
                self.turned_away(config, connections, handshaking);
            }
        }
        Some(slot)
    }

    /// Counts a connection refused or evicted by the limits; logs at most once a second, with
    /// how many since the last line.
    fn turned_away(&self, config: &Configuration, connections: usize, handshaking: usize) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let unlogged = self.refused_unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let now = std::time::Instant::now();
        let mut last = self
            .last_refusal_log
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1)) {
            *last = Some(now);
            self.refused_unlogged.fetch_sub(unlogged, Ordering::Relaxed);
            tracing::warn!(
                turned_away = unlogged,
                connections,
                handshaking,
                max_connections = config.max_connections,
                max_handshakes = config.max_handshakes,
                "too many incoming connections: closing the newest (connection limit) or the \
                 oldest unfinished handshakes"
            );
        }
    }

    /// Connections open now (handshakes included).
    pub(crate) fn open(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// A place for a connection we dial: always given.
    pub(crate) fn slot(self: &Arc<Self>) -> Slot {
        self.place(false).0
    }

    /// Counts a connection in (an incoming one, `evictable`, also among those a newer one may
    /// evict); returns its slot and the counts before it.
    fn place(self: &Arc<Self>, evictable: bool) -> (Slot, usize, usize) {
        let connections = self.connections.fetch_add(1, Ordering::SeqCst);
        let handshaking = self.handshaking.fetch_add(1, Ordering::SeqCst);
        let id = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(tokio::sync::Notify::new());
        if evictable {
            self.pending().push_back((id, evict.clone()));
        }
        let slot = Slot {
            live: self.clone(),
            handshaking: true,
            id,
            evict,
        };
        (slot, connections, handshaking)
    }

    fn pending(
        &self,
    ) -> MutexGuard<'_, std::collections::VecDeque<(u64, Arc<tokio::sync::Notify>)>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Incoming connections refused by the limits so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Where an endpoint's connections meet; `activity` is its runtime's (see `spin`).
    pub(crate) fn new(activity: Arc<Activity>) -> Live {
        Live {
            activity,
            ..Live::default()
        }
    }

    fn inboxes(&self) -> MutexGuard<'_, Vec<Arc<Inbox>>> {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lists `inbox` for waiting subscribers until the guard drops (with its connection's
    /// task, however that ends: an inbox left listed would keep its socket open).
    fn list(&self, inbox: Arc<Inbox>) -> Listed<'_> {
        self.inboxes().push(inbox.clone());
        Listed { live: self, inbox }
    }

    /// Lends up to [`MAX_WATCHED`] connections' sockets to a subscriber's thread about to wait
    /// (see `Inbox::lend`); it gives each back with `Inbox::unlend`. None while a connection is
    /// coming or going.
    pub(crate) fn lend(&self) -> Vec<Arc<Inbox>> {
        let Ok(inboxes) = self.inboxes.try_lock() else {
            return Vec::new();
        };
        if inboxes.len() > MAX_WATCHED {
            return Vec::new();
        }
        let all: Vec<Arc<Inbox>> = inboxes.clone();
        drop(inboxes);
        all.into_iter().filter(|i| i.lend()).collect()
    }

    /// The next connection for a waiting subscriber's thread to read, in turn (none while
    /// there are none or a connection is coming or going).
    pub(crate) fn next_inbox(&self) -> Option<Arc<Inbox>> {
        let inboxes = self.inboxes.try_lock().ok()?;
        if inboxes.is_empty() {
            return None;
        }
        let i = self.turn.fetch_add(1, Ordering::Relaxed) % inboxes.len();
        Some(inboxes[i].clone())
    }
}

/// See [`Live::list`].
struct Listed<'a> {
    live: &'a Live,
    inbox: Arc<Inbox>,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.live.inboxes().retain(|i| !Arc::ptr_eq(i, &self.inbox));
    }
}

/// Counts a connection's writer among the endpoint's live writers while it runs.
pub(crate) struct LiveWriter(Arc<Live>);

impl LiveWriter {
    pub(crate) fn new(live: Arc<Live>) -> Self {
        live.writers.fetch_add(1, Ordering::SeqCst);
        LiveWriter(live)
    }
}

impl Drop for LiveWriter {
    fn drop(&mut self) {
        self.0.writers.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn write_loop(pipe: Arc<Pipe>, core: mpsc::UnboundedSender<Cmd>, _live: LiveWriter) {
    loop {
        match poll_fn(|cx| pipe.poll_write_queue(cx)).await {
            // Room in the queue again: the core found it full and moves more from the router's
            // buffer.
            Turn::Wrote { room: true } => {
                let _ = core.send(Cmd::Writable);
            }
            Turn::Wrote { room: false } => {}
            Turn::Done => break,
        }
    }
    let _ = poll_fn(|cx| pipe.poll_shutdown(cx)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peering's socket gives up on a silent peer after `peer_silence_timeout` (the chaos
    /// harness's `ring-cut` shows what happens without: a cut goes unnoticed).
    #[test]
    fn sockets_give_up_on_a_silent_peer_after_the_timeout() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let tcp = TcpStream::connect(addr).await.unwrap();
            watch_liveness(&tcp, Duration::from_secs(12));
            let sock = socket2::SockRef::from(&tcp);
            assert!(sock.keepalive().unwrap());
            assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(6));
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(2)
            );
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
            assert_eq!(
                sock.tcp_user_timeout().unwrap(),
                Some(Duration::from_secs(12))
            );
            // Zero: the kernel's defaults, untouched.
            let other = TcpStream::connect(addr).await.unwrap();
            watch_liveness(&other, Duration::ZERO);
            let sock = socket2::SockRef::from(&other);
            assert!(!sock.keepalive().unwrap());
            assert_eq!(sock.tcp_user_timeout().unwrap(), None);
        });
    }
}
