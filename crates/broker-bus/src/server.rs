//! The tokio layer: UNIX-socket and TCP listeners speaking busrt's protocol, in-process
//! clients, keepalive and timeouts, all driving one [`Core`] under one lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use crate::core::{ClientId, ClientKind, Core, CoreConfig, Registration};
use crate::frame::{self, code, ClientFrame, Delivery, Op, Qos};
use crate::queue::{Outbound, OverflowPolicy, Queue};

/// Settings of a bus.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Frames a client's queue holds (busrt's default 8,192).
    pub queue_size: usize,
    /// What a full queue does (busrt: disconnect the client).
    pub overflow_policy: OverflowPolicy,
    /// A primary registering under a taken name disconnects the old one.
    pub force_register: bool,
    /// How long a sender waits for room in an in-process receiver's full queue before the
    /// frame is dropped (counted in the receiver's queue; the sender stays connected).
    pub send_timeout: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            queue_size: 8192,
            overflow_policy: OverflowPolicy::Disconnect,
            force_register: false,
            send_timeout: Duration::from_secs(5),
        }
    }
}

/// Settings of one listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// busrt's `timeout` T: each handshake step and frame body within T, every write within
    /// T, a NOP every T/2, and a client that sends no header for 1.25·T is disconnected.
    pub timeout: Duration,
    /// The largest frame body accepted (busrt has none; memory is never reserved before the
    /// bytes arrive either way).
    pub max_frame_size: u32,
    /// Connections open at once (handshakes included); more are refused.
    pub max_connections: usize,
    /// Access rules by primary name: with a map, only names in it may connect, from where
    /// and doing what their rules allow (none: everyone, everything).
    pub aaa_map: Option<crate::aaa::AaaMap>,
    /// TLS on TCP and WebSocket listeners (UNIX sockets ignore it).
    pub tls: Option<TlsConfig>,
    /// Browser origins (`https://host`, or `*`) a WebSocket listener admits: a handshake
    /// that carries an `Origin` header not listed here is refused (403), so that a web page
    /// cannot reach the bus through its visitor's browser. busrt's clients send none.
    pub web_origins: Vec<String>,
    /// How long a connection whose client answers within this time watches its socket
    /// before it sleeps (plain UNIX and TCP sockets; one connection of a bus at a time):
    /// request/response clients are answered without a wake-up. Zero: never.
    pub spin: Duration,
}

/// TLS settings of a TCP listener.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM).
    pub certificate: std::path::PathBuf,
    /// Its key (PEM).
    pub key: std::path::PathBuf,
    /// CA certificates clients must present a certificate from (PEM); none: clients need no
    /// certificate.
    pub ca_file: Option<std::path::PathBuf>,
    /// A client may register only a name its certificate carries (its common name or a DNS
    /// name): the name is proven, not claimed. Needs `ca_file`.
    pub name_from_certificate: bool,
}

pub(crate) fn tls_acceptor(t: &TlsConfig) -> std::io::Result<openssl::ssl::SslAcceptor> {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
    let err = |e: openssl::error::ErrorStack| std::io::Error::other(e.to_string());
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(err)?;
    b.set_certificate_chain_file(&t.certificate).map_err(err)?;
    b.set_private_key_file(&t.key, SslFiletype::PEM)
        .map_err(err)?;
    b.check_private_key().map_err(err)?;
    if let Some(ca) = &t.ca_file {
        b.set_ca_file(ca).map_err(err)?;
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    } else if t.name_from_certificate {
        return Err(std::io::Error::other(
            "name_from_certificate needs a CA file to verify clients with",
        ));
    }
    Ok(b.build())
}

/// The names a verified peer certificate carries: common names and DNS names.
fn certificate_names(cert: &openssl::x509::X509Ref) -> Vec<String> {
    let mut names: Vec<String> = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .filter_map(|e| e.data().to_string().ok())
        .collect();
    if let Some(alt) = cert.subject_alt_names() {
        names.extend(alt.iter().filter_map(|n| n.dnsname().map(str::to_owned)));
    }
    names
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            timeout: Duration::from_secs(5),
            max_frame_size: 64 << 20,
            max_connections: 4096,
            aaa_map: None,
            tls: None,
            web_origins: Vec::new(),
            spin: Duration::from_micros(50),
        }
    }
}

/// Errors of the embedded API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// busrt's code (`frame::code`).
    pub code: u8,
    /// What happened.
    pub message: String,
}

impl Error {
    fn new(code: u8, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (busrt code 0x{:02x})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

pub(crate) struct Shared {
    pub(crate) core: Mutex<Core>,
    pub(crate) config: BusConfig,
    /// Connections spinning now (at most one).
    pub(crate) spinners: std::sync::atomic::AtomicUsize,
    /// Told whenever a connection's client is unregistered (see [`TAKEN_NAME_GRACE`]).
    pub(crate) departed: tokio::sync::Notify,
    /// Second handles on registered socket clients' plain sockets, to tell a holder of a name
    /// whose client hung up (see [`TAKEN_NAME_GRACE`]).
    pub(crate) sockets: Mutex<HashMap<ClientId, Arc<crate::conn::RawSocket>>>,
}

/// How long a connection that asks for a name a socket client holds waits for that client to
/// go before it is refused with `BUSY`. A client that closes its connection and connects again
/// at once under the same name (busrt's own benchmark does, between its stages) may otherwise
/// find the server still unaware of the close, which comes on another socket. When the
/// holder's socket shows the close already (a plain socket at its end), the wait lasts until
/// the holder's connection notices, up to the timeout: a busy server may take longer than
/// the grace to get to it.
const TAKEN_NAME_GRACE: Duration = Duration::from_millis(100);

impl Shared {
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sockets(&self) -> MutexGuard<'_, HashMap<ClientId, Arc<crate::conn::RawSocket>>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes what waited for room in in-process receivers' queues (the caller holds no
    /// lock): the sender is paced by its slowest in-process receiver.
    pub(crate) async fn unblock(&self, blocked: Vec<(Arc<Queue>, Bytes)>) {
        if blocked.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.config.send_timeout;
        for (q, b) in blocked {
            if !q.push_wait(Outbound::Frame(b), deadline).await {
                tracing::warn!("bus: an in-process client's queue stayed full: a frame dropped");
            }
        }
    }
}

/// A bus: clients register by name, in process ([`Bus::register_client`]) or over the
/// listeners it spawns, and exchange messages, publications and broadcasts.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use broker_bus::{Bus, Qos};
/// let bus = Bus::new(Default::default());
/// let a = bus.register_client("a").unwrap();
/// let b = bus.register_client("b").unwrap();
/// b.subscribe(&["news/#"]).await.unwrap();
/// a.publish("news/today", b"hello", Qos::Processed).await.unwrap();
/// let got = b.recv().await.unwrap();
/// assert_eq!((got.sender(), got.topic()), ("a", Some("news/today")));
/// assert_eq!(got.payload(), b"hello");
/// # });
/// ```
#[derive(Clone)]
pub struct Bus {
    pub(crate) shared: Arc<Shared>,
}

/// A running listener; dropping it does not stop it, [`ServerHandle::stop`] does.
#[derive(Debug)]
pub struct ServerHandle {
    pub(crate) task: JoinHandle<()>,
    pub(crate) path: Option<PathBuf>,
}

impl ServerHandle {
    /// Stops accepting (connections already open stay).
    pub fn stop(self) {
        self.task.abort();
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Bus {
    /// An empty bus.
    pub fn new(config: BusConfig) -> Bus {
        Bus {
            shared: Arc::new(Shared {
                core: Mutex::new(Core::new(CoreConfig {
                    force_register: config.force_register,
                })),
                config,
                spinners: std::sync::atomic::AtomicUsize::new(0),
                departed: tokio::sync::Notify::new(),
                sockets: Mutex::default(),
            }),
        }
    }

    fn queue(&self) -> Arc<Queue> {
        Arc::new(Queue::new(
            self.shared.config.queue_size,
            self.shared.config.overflow_policy,
        ))
    }

    /// Registers an in-process client (no serialization beyond the one shared frame). Its
    /// queue never drops: a full one makes the senders wait (up to `send_timeout`).
    pub fn register_client(&self, name: &str) -> Result<Client, Error> {
        let queue = Arc::new(Queue::new(
            self.shared.config.queue_size,
            OverflowPolicy::Disconnect,
        ));
        let id = self
            .shared
            .core()
            .register(Registration {
                name: name.to_owned(),
                kind: ClientKind::Internal,
                source: None,
                port: None,
                queue: queue.clone(),
                aaa: None,
            })
            .map_err(|c| Error::new(c, format!("cannot register {name:?}")))?;
        Ok(Client {
            shared: self.shared.clone(),
            id,
            name: name.to_owned(),
            queue,
            op_id: std::sync::atomic::AtomicU32::new(1),
            spare: Mutex::new(Vec::new()),
        })
    }

    /// Disconnects an external client (its settings, e.g. access rules, are read again when
    /// it reconnects).
    pub fn force_disconnect(&self, name: &str) -> Result<(), Error> {
        self.shared
            .core()
            .force_disconnect(name)
            .map_err(|c| Error::new(c, format!("cannot disconnect {name:?}")))
    }

    /// Registers `.broker` and answers busrt's default RPC methods on it (`test`, `info`,
    /// `stats`, `client.list`, `benchmark.test`).
    pub fn init_default_core_rpc(&self) -> Result<JoinHandle<()>, Error> {
        let client = self.register_client(crate::core::BROKER_NAME)?;
        self.shared.core().set_service(crate::rpc::answer_broker);
        Ok(tokio::spawn(crate::rpc::serve_broker(client)))
    }

    /// How many clients are registered (in-process ones included).
    pub fn clients(&self) -> usize {
        self.shared.core().len()
    }

    /// Publishes `{"s": "shutdown"}` on `.broker/warn` (every client is subscribed).
    pub fn warn_shutdown(&self) {
        self.shared.core().warn_shutdown();
    }

    /// Disconnects every client (their queues are written out first).
    pub fn shutdown(&self) {
        let mut core = self.shared.core();
        for id in core.ids() {
            core.unregister(id);
        }
    }

    /// Listens on a UNIX socket (an existing socket file is replaced, as busrtd does).
    pub async fn spawn_unix_server(
        &self,
        path: impl AsRef<Path>,
        config: ServerConfig,
    ) -> std::io::Result<ServerHandle> {
        let path = path.as_ref().to_owned();
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        let bus = self.clone();
        let port = path.display().to_string();
        let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let cred = stream.peer_cred().ok();
                let peer = crate::aaa::Peer::Unix {
                    uid: cred.map(|c| c.uid()),
                    gid: cred.map(|c| c.gid()),
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!("bus: too many connections, refusing one");
                    continue;
                };
                let bus = bus.clone();
                let (config, port) = (config.clone(), port.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let origin = Origin {
                        kind: ClientKind::LocalIpc,
                        source: None,
                        peer,
                        cert_names: None,
                        port,
                        raw: crate::conn::RawSocket::unix(&stream).map(Arc::new),
                    };
                    serve(bus, stream, origin, config).await;
                });
            }
        });
        Ok(ServerHandle {
            task,
            path: Some(path),
        })
    }

    /// Listens on TCP; returns the handle and the bound address.
    pub async fn spawn_tcp_server(
        &self,
        addr: &str,
        config: ServerConfig,
    ) -> std::io::Result<(ServerHandle, std::net::SocketAddr)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let bus = self.clone();
        // busrt reports the bind string; the bound address says the same, and the real port
        // when 0 was asked for.
        let port = local.to_string();
        let slots = config.max_connections;
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(tls_acceptor(t)?)),
            None => None,
        };
        let task = accept_tcp(listener, slots, move |stream, peer| {
            let ip = crate::aaa::Peer::Tcp(peer.ip());
            let bus = bus.clone();
            let (config, port, tls) = (config.clone(), port.clone(), tls.clone());
            async move {
                let source = Some(peer.to_string());
                let Some(acceptor) = tls else {
                    let origin = Origin {
                        kind: ClientKind::Tcp,
                        source,
                        peer: ip,
                        cert_names: None,
                        port,
                        raw: crate::conn::RawSocket::tcp(&stream).map(Arc::new),
                    };
                    serve(bus, stream, origin, config).await;
                    return;
                };
                let Some((s, names)) = accept_tls(&acceptor, stream, &config).await else {
                    tracing::debug!(%peer, "bus: a TLS handshake failed");
                    return;
                };
                let origin = Origin {
                    kind: ClientKind::Tcp,
                    source,
                    peer: ip,
                    cert_names: names,
                    port,
                    raw: None,
                };
                serve(bus, s, origin, config).await;
            }
        });
        Ok((ServerHandle { task, path: None }, local))
    }
}

/// Accepts TCP connections on `listener` until stopped, at most `slots` open at once (more
/// are refused), each served by `serve` in a task of its own (`TCP_NODELAY` set).
pub(crate) fn accept_tcp<F, Fut>(listener: TcpListener, slots: usize, serve: F) -> JoinHandle<()>
where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(slots));
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!("bus: too many connections, refusing one");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = serve(stream, peer);
            tokio::spawn(async move {
                let _permit = permit;
                connection.await;
            });
        }
    })
}

/// A TLS server handshake on `stream` within the timeout; the stream and, when the name must
/// be proven, the names the client's certificate carries.
pub(crate) async fn accept_tls(
    acceptor: &openssl::ssl::SslAcceptor,
    stream: tokio::net::TcpStream,
    config: &ServerConfig,
) -> Option<(
    tokio_openssl::SslStream<tokio::net::TcpStream>,
    Option<Vec<String>>,
)> {
    let accepted = async {
        let ssl = openssl::ssl::Ssl::new(acceptor.context()).ok()?;
        let mut s = tokio_openssl::SslStream::new(ssl, stream).ok()?;
        std::pin::Pin::new(&mut s).accept().await.ok()?;
        Some(s)
    };
    let s = tokio::time::timeout(config.timeout, accepted)
        .await
        .ok()??;
    let names = s.ssl().peer_certificate().map(|c| certificate_names(&c));
    let names = if config.tls.as_ref().is_some_and(|t| t.name_from_certificate) {
        Some(names.unwrap_or_default())
    } else {
        None
    };
    Some((s, names))
}

/// The client over a socket that holds `name`, if one does.
fn socket_holder(bus: &Bus, name: &str) -> Option<ClientId> {
    let core = bus.shared.core();
    core.lookup(name)
        .filter(|id| core.kind_of(*id).is_some_and(|k| k != ClientKind::Internal))
}

/// Whether the client of `id` hung up its plain socket (its connection has yet to notice).
fn hung_up(bus: &Bus, id: ClientId) -> bool {
    let socket = bus.shared.sockets().get(&id).cloned();
    socket.is_some_and(|s| s.hung_up())
}

/// Keeps a registered socket client's second handle in [`Shared::sockets`] while it lives.
struct Listed<'a> {
    bus: &'a Bus,
    id: ClientId,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.bus.shared.sockets().remove(&self.id);
    }
}

/// One connection: handshake, then a reader (this task) and a writer task.
/// Who is at the other end of a connection, as its listener saw it.
pub(crate) struct Origin {
    pub(crate) kind: ClientKind,
    pub(crate) source: Option<String>,
    pub(crate) peer: crate::aaa::Peer,
    /// Names a verified certificate carries, when the name must be one of them.
    pub(crate) cert_names: Option<Vec<String>>,
    pub(crate) port: String,
    /// The plain socket's descriptor, for spinning and for telling that the client hung up
    /// (none for TLS).
    pub(crate) raw: Option<Arc<crate::conn::RawSocket>>,
}

pub(crate) async fn serve<S>(bus: Bus, stream: S, origin: Origin, config: ServerConfig)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Origin {
        kind,
        source,
        peer,
        cert_names,
        port,
        raw,
    } = origin;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let t = config.timeout;
    let Ok(Ok(name)) = tokio::time::timeout(t * 2, handshake(&mut rd, &mut wr)).await else {
        return;
    };
    let Some(name) = name else { return };
    let queue = bus.queue();
    // busrt's order: a bad name first, then the AAA map (the primary's entry, the peer's
    // address or credentials), then registration.
    let rules = match &config.aaa_map {
        Some(map) if !(name.is_empty() || name.starts_with('.')) => {
            let primary = name.split("%%").next().unwrap_or_default();
            match map.get(primary) {
                Some(r) if r.admits(&peer) => Ok(Some(r)),
                _ => Err(code::ACCESS),
            }
        }
        _ => Ok(None),
    };
    // A name proven by the client's certificate, when the listener asks for that.
    let primary = name.split("%%").next().unwrap_or_default();
    let rules = match &cert_names {
        Some(names) if !names.iter().any(|n| n == primary) => Err(code::ACCESS),
        _ => rules,
    };
    let register = |aaa: Option<crate::aaa::ClientAaa>| {
        bus.shared.core().register(Registration {
            name: name.clone(),
            kind,
            source: source.clone(),
            port: Some(port.clone()),
            queue: queue.clone(),
            aaa,
        })
    };
    let mut registered = rules.clone().and_then(register);
    // A name held by a socket client that may be on its way out: wait for departures, a
    // moment (or, when its client hung up already, until its connection notices), before
    // refusing it.
    let begun = tokio::time::Instant::now();
    let mut deadline = begun + TAKEN_NAME_GRACE;
    while registered == Err(code::BUSY) {
        let Some(holder) = socket_holder(&bus, &name) else {
            // Freed since the last attempt (its connection noticed the close just now), or
            // held by an in-process client: one more attempt says which.
            registered = rules.clone().and_then(register);
            break;
        };
        // Looked at again after every wait: the close may show only later.
        if hung_up(&bus, holder) {
            deadline = deadline.max(begun + t);
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let departed = bus.shared.departed.notified();
        tokio::pin!(departed);
        departed.as_mut().enable();
        registered = rules.clone().and_then(register);
        if registered != Err(code::BUSY) {
            break;
        }
        let _ = tokio::time::timeout_at(deadline, departed).await;
        registered = rules.clone().and_then(register);
    }
    let answer = match registered {
        Ok(_) => code::OK,
        Err(c) => c,
    };
    let _listed = match (registered, &raw) {
        (Ok(id), Some(socket)) => {
            bus.shared.sockets().insert(id, socket.clone());
            Some(Listed { bus: &bus, id })
        }
        _ => None,
    };
    if tokio::time::timeout(t, wr.write_all(&[answer]))
        .await
        .is_err()
    {
        if let Ok(id) = registered {
            bus.shared.core().unregister(id);
        }
        return;
    }
    let Ok(id) = registered else { return };
    let reason = crate::conn::run(&bus, id, &queue, (rd, wr), raw, &config).await;
    tracing::debug!(client = %name, reason, "bus client gone");
}

/// busrt's handshake; `Ok(None)`: refused (the result byte was sent, or none is due).
async fn handshake<R, W>(rd: &mut R, wr: &mut W) -> std::io::Result<Option<String>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    wr.write_all(&frame::HELLO).await?;
    let mut echo = [0u8; 3];
    rd.read_exact(&mut echo).await?;
    if echo[0] != frame::GREETING
        || u16::from_le_bytes([echo[1], echo[2]]) != frame::PROTOCOL_VERSION
    {
        wr.write_all(&[code::NOT_SUPPORTED]).await?;
        return Ok(None);
    }
    wr.write_all(&[code::OK]).await?;
    let mut len = [0u8; 2];
    rd.read_exact(&mut len).await?;
    let mut name = vec![0u8; u16::from_le_bytes(len) as usize];
    rd.read_exact(&mut name).await?;
    // Not UTF-8: dropped without a byte, as busrt does.
    Ok(String::from_utf8(name).ok())
}

/// An in-process client of a [`Bus`].
pub struct Client {
    shared: Arc<Shared>,
    id: ClientId,
    name: String,
    queue: Arc<Queue>,
    op_id: std::sync::atomic::AtomicU32,
    /// [`recv_batch`](Self::recv_batch)'s buffer.
    spare: Mutex<Vec<Outbound>>,
}

impl Client {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn op(&self, op: Op, qos: Qos, body: Vec<u8>) -> Result<(), Error> {
        let f = ClientFrame {
            op_id: self
                .op_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            op,
            qos,
            body: Bytes::from(body),
        };
        let (result, blocked) = {
            let mut core = self.shared.core();
            let result = match core.handle(self.id, &f) {
                Ok(Some(c)) if c != code::OK => Err(Error::new(c, format!("{op:?} refused"))),
                Ok(_) if !core.is_registered(self.id) => Err(Error::new(
                    code::NOT_REGISTERED,
                    "this client was disconnected",
                )),
                Ok(_) => Ok(()),
                Err(e) => Err(Error::new(code::DATA, e.0)),
            };
            (result, core.take_blocked())
        };
        self.shared.unblock(blocked).await;
        result
    }

    /// Sends `payload` to the client named `target` (p2p); with a QoS that needs an ACK the
    /// error says `NOT_REGISTERED` or `NOT_DELIVERED`.
    pub async fn send(&self, target: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.op(Op::Message, qos, frame::body(&[target.as_bytes(), payload]))
            .await
    }

    /// Sends to every client whose name `mask` matches (`?` one segment, `*` the rest).
    pub async fn send_broadcast(&self, mask: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.op(Op::Broadcast, qos, frame::body(&[mask.as_bytes(), payload]))
            .await
    }

    /// Publishes on a topic.
    pub async fn publish(&self, topic: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.publish_direct(topic, None, payload, qos).await
    }

    async fn publish_direct(
        &self,
        topic: &str,
        receiver: Option<&str>,
        payload: &[u8],
        qos: Qos,
    ) -> Result<(), Error> {
        let (done, blocked) = {
            let mut core = self.shared.core();
            let done = core.publish_direct(self.id, topic, receiver, payload, qos);
            (done, core.take_blocked())
        };
        self.shared.unblock(blocked).await;
        match done {
            Some(_) => Ok(()),
            None => Err(Error::new(
                code::NOT_REGISTERED,
                "this client was disconnected",
            )),
        }
    }

    /// Publishes a run of payloads on one topic, in order, as that many publications: one
    /// trip into the bus for the run (the fast way to publish a stream in process; each
    /// receiver still gets one delivery per payload).
    pub async fn publish_many<'a>(
        &self,
        topic: &str,
        payloads: impl IntoIterator<Item = &'a [u8]>,
        qos: Qos,
    ) -> Result<(), Error> {
        self.publish_run(topic, None, payloads, qos).await
    }

    async fn publish_run<'a>(
        &self,
        topic: &str,
        receiver: Option<&str>,
        payloads: impl IntoIterator<Item = &'a [u8]>,
        qos: Qos,
    ) -> Result<(), Error> {
        // At most RUN payloads per trip: others get the core between trips, and what waits
        // for room in a slow in-process receiver stays bounded.
        const RUN: usize = 256;
        let mut payloads = payloads.into_iter().peekable();
        loop {
            let (done, blocked) = {
                let mut core = self.shared.core();
                let run = payloads.by_ref().take(RUN);
                let done = core.publish_direct_many(self.id, topic, receiver, run, qos);
                (done, core.take_blocked())
            };
            self.shared.unblock(blocked).await;
            if done.is_none() {
                return Err(Error::new(
                    code::NOT_REGISTERED,
                    "this client was disconnected",
                ));
            }
            if payloads.peek().is_none() {
                return Ok(());
            }
        }
    }

    /// Publishes to `receiver`'s instances subscribed to the topic.
    pub async fn publish_for(
        &self,
        topic: &str,
        receiver: &str,
        payload: &[u8],
        qos: Qos,
    ) -> Result<(), Error> {
        self.publish_direct(topic, Some(receiver), payload, qos)
            .await
    }

    async fn topics_op(&self, op: Op, topics: &[&str]) -> Result<(), Error> {
        let parts: Vec<&[u8]> = topics.iter().map(|t| t.as_bytes()).collect();
        self.op(op, Qos::Processed, frame::body(&parts)).await
    }

    /// Subscribes to topic patterns (`+` one segment, `#` one or more).
    pub async fn subscribe(&self, topics: &[&str]) -> Result<(), Error> {
        self.topics_op(Op::Subscribe, topics).await
    }

    /// Unsubscribes (the strings as subscribed).
    pub async fn unsubscribe(&self, topics: &[&str]) -> Result<(), Error> {
        self.topics_op(Op::Unsubscribe, topics).await
    }

    /// Stops receiving publications whose topic matches these patterns.
    pub async fn exclude(&self, topics: &[&str]) -> Result<(), Error> {
        self.topics_op(Op::Exclude, topics).await
    }

    /// Undoes [`exclude`](Self::exclude).
    pub async fn unexclude(&self, topics: &[&str]) -> Result<(), Error> {
        self.topics_op(Op::Unexclude, topics).await
    }

    /// The next delivery (none once the client is disconnected).
    pub async fn recv(&self) -> Option<Delivery> {
        let mut batch = Vec::with_capacity(1);
        loop {
            if !self.queue.drain_one(&mut batch).await {
                return None;
            }
            for o in batch.drain(..) {
                if let Outbound::Frame(b) = o {
                    if let Some(d) = Delivery::parse_own(b) {
                        return Some(d);
                    }
                }
            }
        }
    }

    /// Every delivery waiting now, at least one (none once disconnected): the fast way to
    /// take a stream.
    pub async fn recv_batch(&self, out: &mut Vec<Delivery>) -> bool {
        // The buffer is kept between calls (taken out: no lock is held across the wait).
        let mut batch = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()));
        let more = self.queue.drain(&mut batch).await;
        for o in batch.drain(..) {
            match o {
                Outbound::Frame(b) => out.extend(Delivery::parse_own(b)),
                Outbound::Ack(_) => {}
                run @ Outbound::Run { .. } => {
                    out.reserve(run.frames());
                    out.extend(run.into_frames().filter_map(Delivery::parse_own));
                }
            }
        }
        *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = batch;
        more
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.core().unregister(self.id);
    }
}

/// An in-process client for code that does not run async: each call waits on the bus's
/// runtime. Do not use it from inside that runtime's tasks (use [`Client`] there).
pub struct BlockingClient {
    client: Client,
    handle: tokio::runtime::Handle,
}

impl BlockingClient {
    /// Registers `name` on `bus`, whose runtime is `handle`.
    pub fn new(
        bus: &Bus,
        name: &str,
        handle: tokio::runtime::Handle,
    ) -> Result<BlockingClient, Error> {
        Ok(BlockingClient {
            client: bus.register_client(name)?,
            handle,
        })
    }

    /// [`Client::send`].
    pub fn send(&self, target: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.handle.block_on(self.client.send(target, payload, qos))
    }

    /// [`Client::send_broadcast`].
    pub fn send_broadcast(&self, mask: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.handle
            .block_on(self.client.send_broadcast(mask, payload, qos))
    }

    /// [`Client::publish`].
    pub fn publish(&self, topic: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.handle
            .block_on(self.client.publish(topic, payload, qos))
    }

    /// [`Client::publish_many`].
    pub fn publish_many<'a>(
        &self,
        topic: &str,
        payloads: impl IntoIterator<Item = &'a [u8]>,
        qos: Qos,
    ) -> Result<(), Error> {
        self.handle
            .block_on(self.client.publish_many(topic, payloads, qos))
    }

    /// [`Client::publish_for`].
    pub fn publish_for(
        &self,
        topic: &str,
        receiver: &str,
        payload: &[u8],
        qos: Qos,
    ) -> Result<(), Error> {
        self.handle
            .block_on(self.client.publish_for(topic, receiver, payload, qos))
    }

    /// [`Client::subscribe`].
    pub fn subscribe(&self, topics: &[&str]) -> Result<(), Error> {
        self.handle.block_on(self.client.subscribe(topics))
    }

    /// [`Client::unsubscribe`].
    pub fn unsubscribe(&self, topics: &[&str]) -> Result<(), Error> {
        self.handle.block_on(self.client.unsubscribe(topics))
    }

    /// [`Client::exclude`].
    pub fn exclude(&self, topics: &[&str]) -> Result<(), Error> {
        self.handle.block_on(self.client.exclude(topics))
    }

    /// [`Client::unexclude`].
    pub fn unexclude(&self, topics: &[&str]) -> Result<(), Error> {
        self.handle.block_on(self.client.unexclude(topics))
    }

    /// The next delivery, waiting at most `timeout` (none then, or once disconnected).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Delivery> {
        self.handle.block_on(async {
            tokio::time::timeout(timeout, self.client.recv())
                .await
                .ok()
                .flatten()
        })
    }
}

#[cfg(test)]
mod blocking_tests {
    use super::*;

    /// A run far longer than a trip's 256 and than the receiver's queue arrives whole and
    /// in order at an in-process receiver that reads slowly: the publisher waits for room.
    #[test]
    fn a_long_run_paces_itself_to_a_slow_receiver() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let bus = Bus::new(BusConfig {
            queue_size: 16,
            ..BusConfig::default()
        });
        let p = BlockingClient::new(&bus, "p", rt.handle().clone()).unwrap();
        let r = BlockingClient::new(&bus, "r", rt.handle().clone()).unwrap();
        r.subscribe(&["t"]).unwrap();
        let values: Vec<[u8; 4]> = (0u32..1000).map(u32::to_le_bytes).collect();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 1000 {
                let d = r.recv_timeout(Duration::from_secs(5)).expect("in time");
                got.push(u32::from_le_bytes(d.payload().try_into().unwrap()));
                if got.len() % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            got
        });
        p.publish_many("t", values.iter().map(|v| &v[..]), Qos::No)
            .unwrap();
        assert_eq!(reader.join().unwrap(), (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn a_blocking_client_talks_to_an_async_one() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let bus = Bus::new(BusConfig::default());
        let b = BlockingClient::new(&bus, "plain", rt.handle().clone()).unwrap();
        let a = rt.block_on(async {
            let a = bus.register_client("async").unwrap();
            a.subscribe(&["x/#"]).await.unwrap();
            a
        });
        b.subscribe(&["y"]).unwrap();
        b.publish("x/1", b"one", Qos::Processed).unwrap();
        let got = rt.block_on(a.recv()).unwrap();
        assert_eq!((got.sender(), got.payload()), ("plain", &b"one"[..]));
        rt.block_on(a.publish("y", b"two", Qos::No)).unwrap();
        let got = b.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got.payload(), b"two");
        assert!(b.recv_timeout(Duration::from_millis(50)).is_none());
        assert_eq!(
            b.send("ghost", b"", Qos::Processed).unwrap_err().code,
            code::NOT_REGISTERED
        );
    }
}
