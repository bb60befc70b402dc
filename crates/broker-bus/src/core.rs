//! The bus's decisions, without I/O: the client registry (primaries and `name%%N`
//! secondaries), subscriptions and exclusions, routing of every operation, ACK codes, what
//! happens to a client whose queue is full. Drivers (the UNIX/TCP server, in-process clients)
//! hand it frames under one lock and it pushes into the receivers' [`Queue`]s.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use crate::aaa::ClientAaa;
use crate::frame::{self, code, ClientFrame, Kind, Op, Qos};
use crate::pattern::{self, SubMap, NAME, TOPIC};
use crate::queue::{Outbound, Pushed, Queue};

/// A client's handle inside the core.
pub type ClientId = u64;

/// The core's maps: seeded per process (a client cannot aim topics at one bucket), and
/// cheaper than SipHash on the publication path.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Topics whose receivers are remembered at most (the cache is emptied when full).
const ROUTES: usize = 4096;
/// Longer topics are looked up each time (the cache stays under 1 MiB of topics).
const ROUTE_TOPIC: usize = 256;
/// A run of publications is queued in buffers of about this many bytes (one allocation and
/// one queue entry per buffer and receiver).
const RUN_BYTES: usize = 64 * 1024;

/// The name of the bus's own client (its RPC service and events).
pub const BROKER_NAME: &str = ".broker";
/// Where registrations and departures are announced.
pub const INFO_TOPIC: &str = ".broker/info";
/// Where warnings (shutdown) are announced; every client is subscribed at registration.
pub const WARN_TOPIC: &str = ".broker/warn";

/// How a client is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// A task of the application that embeds the bus.
    Internal,
    /// A UNIX-socket client.
    LocalIpc,
    /// A TCP client.
    Tcp,
    /// A WebSocket client (`ws://`, `wss://`).
    WebSocket,
}

impl ClientKind {
    /// busrt's name for it in `client.list`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Internal => "internal",
            ClientKind::LocalIpc => "local_ipc",
            ClientKind::Tcp => "tcp",
            ClientKind::WebSocket => "websocket",
        }
    }
}

/// What the core needs to know of a client at registration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its full name (`name` or `name%%N`).
    pub name: String,
    /// How it is connected.
    pub kind: ClientKind,
    /// The peer's `ip:port` (TCP).
    pub source: Option<String>,
    /// The listener's bind string (none for internal clients).
    pub port: Option<String>,
    /// Its queue.
    pub queue: Arc<Queue>,
    /// Its access rules (none: everything allowed), copied from the AAA map at connect.
    pub aaa: Option<ClientAaa>,
}

/// Per-client (and global) frame counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received from the client (pings not counted).
    pub r_frames: u64,
    /// Their bytes (bodies).
    pub r_bytes: u64,
    /// Frames queued to the client (ACKs included, NOPs not).
    pub w_frames: u64,
    /// Their bytes.
    pub w_bytes: u64,
    /// Frames the access rules refused (with an ACCESS ack when an ack was asked for).
    pub denied: u64,
}

/// One row of `client.list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The primary name.
    pub name: String,
    /// How it is connected.
    pub kind: ClientKind,
    /// The peer's address (TCP).
    pub source: Option<String>,
    /// The listener's bind string.
    pub port: Option<String>,
    /// Its counters (the primary's).
    pub counters: Counters,
    /// Frames in its queue now.
    pub queue: usize,
    /// Secondaries + 1.
    pub instances: usize,
}

#[derive(Debug)]
struct Client {
    name: Arc<str>,
    primary: String,
    is_primary: bool,
    kind: ClientKind,
    source: Option<String>,
    port: Option<String>,
    queue: Arc<Queue>,
    /// Subscribed strings as sent, each with its stored (normalized) pattern.
    subs: Map<String, String>,
    /// How many subscribed strings share each stored pattern (so that unsubscribing `a/#/x`
    /// leaves `a/#` alone, unlike busrt).
    stored: Map<String, usize>,
    excludes: Vec<String>,
    counters: Counters,
    aaa: Option<ClientAaa>,
}

/// What the bus's own service made of a payload sent to [`BROKER_NAME`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not a request: delivered to the `.broker` client as any message.
    NotARequest,
    /// A request that wants no reply (id 0), done.
    NoReply,
    /// The reply payload, sent back to the requester from `.broker`.
    Reply(Vec<u8>),
}

/// Answers payloads sent to [`BROKER_NAME`] in place, under the core's lock: the `.broker`
/// RPC service needs nothing but the core, and a requester is answered without a trip
/// through another task.
pub type Service = fn(&Core, &[u8]) -> Answer;

/// The frame was malformed: the connection is closed (as busrt does), nothing routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Malformed {}

/// Settings of the core.
#[derive(Debug, Clone, Default)]
pub struct CoreConfig {
    /// A primary that registers under a taken name disconnects the old one.
    pub force_register: bool,
}

/// The registry and router.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    clients: Map<ClientId, Client>,
    by_name: Map<String, ClientId>,
    subs: SubMap,
    next_id: ClientId,
    started: Instant,
    totals: Counters,
    scratch: Vec<ClientId>,
    /// The receivers of recently published topics, subscriptions and exclusions applied
    /// (sorted, once each): emptied whenever either changes.
    routes: Map<Box<str>, Box<[ClientId]>>,
    /// The `.broker` service, answering in place once its client is registered.
    service: Option<Service>,
    /// Deliveries to in-process clients whose queues were full: the sender's driver waits
    /// for room (see [`Core::take_blocked`]).
    blocked: Vec<(Arc<Queue>, Bytes)>,
    /// Publications gathered while a read is handled (see [`Core::gathering`]).
    gathered: Gathered,
}

/// Consecutive publications of one client on one topic, laid back to back while a
/// [`Gathering`] lasts and queued together (as [`Core::publish_direct_many`] does) when
/// something else comes or it ends.
#[derive(Debug, Default)]
struct Gathered {
    on: bool,
    sender: ClientId,
    topic: String,
    realtime: bool,
    /// Who receives them (nobody can subscribe or leave while they gather: any other frame
    /// sends them first).
    targets: Vec<ClientId>,
    bytes: BytesMut,
    n: usize,
}

/// The core while a connection's read is handled: consecutive publications from the client
/// on one topic are queued to each receiver as one run (one buffer, one queue entry)
/// instead of one frame each. Whatever else comes sends them first, and so does the end of
/// the gathering (dropping this), so order and timing are those of handling the frames one
/// by one under the core's lock.
pub struct Gathering<'a> {
    core: &'a mut Core,
}

impl std::ops::Deref for Gathering<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        self.core
    }
}

impl std::ops::DerefMut for Gathering<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        self.core
    }
}

impl Drop for Gathering<'_> {
    fn drop(&mut self) {
        self.core.send_gathered();
        self.core.gathered.on = false;
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// MessagePack of `{"s": s, ["d": d,] "t": ns}` (busrt's event payload, fields in order).
pub fn event_payload(s: &str, d: Option<&str>, t: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.push(if d.is_some() { 0x83 } else { 0x82 });
    let str_ = |out: &mut Vec<u8>, v: &str| {
        let n = v.len();
        if n < 32 {
            out.push(0xA0 | n as u8);
        } else if n < 256 {
            out.extend_from_slice(&[0xD9, n as u8]);
        } else {
            out.push(0xDA);
            out.extend_from_slice(&(n.min(65535) as u16).to_be_bytes());
        }
        out.extend_from_slice(&v.as_bytes()[..n.min(65535)]);
    };
    str_(&mut out, "s");
    str_(&mut out, s);
    if let Some(d) = d {
        str_(&mut out, "d");
        str_(&mut out, d);
    }
    str_(&mut out, "t");
    out.push(0xCF);
    out.extend_from_slice(&t.to_be_bytes());
    out
}

impl Core {
    /// An empty bus.
    pub fn new(config: CoreConfig) -> Core {
        Core {
            config,
            clients: Map::default(),
            by_name: Map::default(),
            subs: SubMap::default(),
            next_id: 1,
            started: Instant::now(),
            totals: Counters::default(),
            scratch: Vec::new(),
            routes: Map::default(),
            service: None,
            blocked: Vec::new(),
            gathered: Gathered::default(),
        }
    }

    /// Registers a client; the error is busrt's handshake result byte.
    pub fn register(&mut self, r: Registration) -> Result<ClientId, u8> {
        let external = r.kind != ClientKind::Internal;
        if r.name.is_empty() || (external && r.name.starts_with('.')) {
            return Err(code::DATA);
        }
        let (primary, is_primary) = match r.name.split_once("%%") {
            Some((p, _)) => (p.to_owned(), false),
            None => (r.name.clone(), true),
        };
        if !is_primary && !self.by_name.contains_key(&primary) {
            return Err(code::NOT_REGISTERED);
        }
        if let Some(&old) = self.by_name.get(&r.name) {
            if is_primary
                && self.config.force_register
                && self.clients[&old].kind != ClientKind::Internal
            {
                self.kick(old);
            } else {
                return Err(code::BUSY);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        if is_primary {
            // Announced before the client hears its OK, as busrt does.
            self.announce("reg", &r.name);
        }
        self.by_name.insert(r.name.clone(), id);
        self.clients.insert(
            id,
            Client {
                name: r.name.into(),
                primary,
                is_primary,
                kind: r.kind,
                source: r.source,
                port: r.port,
                queue: r.queue,
                subs: Map::default(),
                stored: Map::default(),
                excludes: Vec::new(),
                counters: Counters::default(),
                aaa: r.aaa,
            },
        );
        self.subscribe(id, WARN_TOPIC);
        Ok(id)
    }

    /// Sets the service that answers what is sent to [`BROKER_NAME`] while a client of that
    /// name is registered.
    pub fn set_service(&mut self, service: Service) {
        self.service = Some(service);
    }

    /// Whether `id` is (still) registered.
    pub fn is_registered(&self, id: ClientId) -> bool {
        self.clients.contains_key(&id)
    }

    /// The full name of a registered client.
    pub fn name(&self, id: ClientId) -> Option<&str> {
        self.clients.get(&id).map(|c| &*c.name)
    }

    /// How a registered client is connected.
    pub fn kind_of(&self, id: ClientId) -> Option<ClientKind> {
        self.clients.get(&id).map(|c| c.kind)
    }

    /// The client registered under `name`.
    pub fn lookup(&self, name: &str) -> Option<ClientId> {
        self.by_name.get(name).copied()
    }

    /// Removes a client (its connection ended): its subscriptions go, its queue closes, a
    /// primary's secondaries are disconnected, and a primary's departure is announced.
    pub fn unregister(&mut self, id: ClientId) {
        let Some(c) = self.clients.remove(&id) else {
            return;
        };
        self.by_name.remove(&*c.name);
        self.routes.clear();
        for pattern in c.stored.keys() {
            self.subs.remove(pattern, id);
        }
        c.queue.close();
        if c.is_primary {
            let secondaries: Vec<ClientId> = self
                .clients
                .iter()
                .filter(|(_, s)| !s.is_primary && *s.primary == *c.name)
                .map(|(id, _)| *id)
                .collect();
            for s in secondaries {
                self.unregister(s);
            }
            self.announce("unreg", &c.name);
        }
    }

    /// Disconnects a client from outside (busrt's `force_disconnect`): `NOT_REGISTERED` for
    /// an unknown name, `NOT_SUPPORTED` for an in-process client.
    pub fn force_disconnect(&mut self, name: &str) -> Result<(), u8> {
        let id = self.lookup(name).ok_or(code::NOT_REGISTERED)?;
        if self.clients[&id].kind == ClientKind::Internal {
            return Err(code::NOT_SUPPORTED);
        }
        self.kick(id);
        Ok(())
    }

    fn kick(&mut self, id: ClientId) {
        self.unregister(id);
    }

    fn announce(&mut self, s: &str, name: &str) {
        let payload = event_payload(s, Some(name), now_ns());
        self.publish_from(BROKER_NAME, INFO_TOPIC, None, &payload, false);
    }

    /// Publishes `{"s": "shutdown", "t": ns}` on `.broker/warn` (the server is stopping).
    pub fn warn_shutdown(&mut self) {
        let payload = event_payload("shutdown", None, now_ns());
        self.publish_from(BROKER_NAME, WARN_TOPIC, None, &payload, false);
    }

    /// Handles a frame from client `id`. `Ok(Some(code))`: the sender wants an ACK with this
    /// code (queued by the caller on the sender's own queue, or returned to an in-process
    /// sender); `Err`: the frame was malformed and the connection must close.
    pub fn handle(&mut self, id: ClientId, f: &ClientFrame) -> Result<Option<u8>, Malformed> {
        if f.op != Op::Publish {
            self.send_gathered();
        }
        let Some(c) = self.clients.get_mut(&id) else {
            return Ok(None);
        };
        c.counters.r_frames += 1;
        c.counters.r_bytes += f.body.len() as u64;
        self.totals.r_frames += 1;
        self.totals.r_bytes += f.body.len() as u64;
        let realtime = f.qos.is_realtime();
        if !self.permitted(id, f)? {
            let c = self.clients.get_mut(&id).expect("registered");
            c.counters.denied += 1;
            tracing::debug!(client = %c.name, op = ?f.op, "bus: denied by the access rules");
            return Ok(f.qos.needs_ack().then_some(code::ACCESS));
        }
        let result = match f.op {
            Op::Nop => code::OK,
            Op::Publish => {
                let (topic, payload) = frame::split_name(&f.body)
                    .ok_or(Malformed("a publication without its topic"))?;
                if self.gathered.on {
                    self.gather(id, topic, &payload, realtime);
                } else {
                    let sender = self.clients[&id].name.clone();
                    self.publish_from(&sender, topic, None, &payload, realtime);
                }
                code::OK
            }
            Op::PublishFor => {
                let (topic, rest) = frame::split_name(&f.body)
                    .ok_or(Malformed("a publish_for without its topic"))?;
                let (receiver, payload) = frame::split_name(&rest)
                    .ok_or(Malformed("a publish_for without its receiver"))?;
                let sender = self.clients[&id].name.clone();
                self.publish_from(&sender, topic, Some(receiver), &payload, realtime);
                code::OK
            }
            Op::Message => {
                let (target, payload) =
                    frame::split_name(&f.body).ok_or(Malformed("a message without its target"))?;
                let sender = self.clients[&id].name.clone();
                self.send(&sender, target, &payload, realtime)
            }
            Op::Broadcast => {
                let (mask, payload) =
                    frame::split_name(&f.body).ok_or(Malformed("a broadcast without its mask"))?;
                let sender = self.clients[&id].name.clone();
                self.broadcast(&sender, mask, &payload, realtime);
                code::OK
            }
            Op::Subscribe | Op::Unsubscribe | Op::Exclude | Op::Unexclude => {
                let topics =
                    frame::topics(&f.body).ok_or(Malformed("a topic that is not UTF-8"))?;
                for t in topics {
                    match f.op {
                        Op::Subscribe => self.subscribe(id, t),
                        Op::Unsubscribe => self.unsubscribe(id, t),
                        Op::Exclude => {
                            self.routes.clear();
                            let c = self.clients.get_mut(&id).expect("registered");
                            if !c.excludes.iter().any(|e| e == t) {
                                c.excludes.push(t.to_owned());
                            }
                        }
                        _ => {
                            self.routes.clear();
                            let c = self.clients.get_mut(&id).expect("registered");
                            c.excludes.retain(|e| e != t);
                        }
                    }
                }
                code::OK
            }
        };
        Ok(f.qos.needs_ack().then_some(result))
    }

    /// Whether the client's access rules allow the frame (a malformed frame is an error as
    /// it is without rules). A subscription is allowed whole or not at all.
    fn permitted(&self, id: ClientId, f: &ClientFrame) -> Result<bool, Malformed> {
        let Some(rules) = self.clients.get(&id).and_then(|c| c.aaa.as_ref()) else {
            return Ok(true);
        };
        let first = || frame::split_name(&f.body).map(|(n, _)| n);
        Ok(match f.op {
            Op::Publish | Op::PublishFor => {
                rules.may_publish(first().ok_or(Malformed("a publication without its topic"))?)
            }
            Op::Message => {
                rules.may_send(first().ok_or(Malformed("a message without its target"))?)
            }
            Op::Broadcast => {
                rules.may_broadcast(first().ok_or(Malformed("a broadcast without its mask"))?)
            }
            Op::Subscribe => frame::topics(&f.body)
                .ok_or(Malformed("a topic that is not UTF-8"))?
                .iter()
                .all(|t| rules.may_subscribe(t)),
            Op::Nop | Op::Unsubscribe | Op::Exclude | Op::Unexclude => true,
        })
    }

    fn subscribe(&mut self, id: ClientId, topic: &str) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if c.subs.contains_key(topic) {
            return;
        }
        let stored = pattern::normalize(TOPIC, topic);
        self.routes.clear();
        c.subs.insert(topic.to_owned(), stored.clone());
        let n = c.stored.entry(stored.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.subs.insert(&stored, id);
        }
    }

    fn unsubscribe(&mut self, id: ClientId, topic: &str) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(stored) = c.subs.remove(topic) else {
            return;
        };
        self.routes.clear();
        let n = c.stored.get_mut(&stored).expect("counted");
        *n -= 1;
        if *n == 0 {
            c.stored.remove(&stored);
            self.subs.remove(&stored, id);
        }
    }

    /// Queues `frame` to `to`; a full queue under the disconnect policy kicks an external
    /// client (false: not delivered).
    fn deliver(&mut self, to: ClientId, bytes: Bytes) -> bool {
        let Some(c) = self.clients.get_mut(&to) else {
            return false;
        };
        // Behind frames already waiting for room in the same queue: order is kept.
        let waiting = c.kind == ClientKind::Internal
            && self.blocked.iter().any(|(q, _)| Arc::ptr_eq(q, &c.queue));
        let n = bytes.len() as u64;
        let pushed = if waiting {
            Err(Outbound::Frame(bytes))
        } else {
            c.queue.try_push(Outbound::Frame(bytes))
        };
        match pushed {
            Ok(Pushed::Queued) => {
                c.counters.w_frames += 1;
                c.counters.w_bytes += n;
                self.totals.w_frames += 1;
                self.totals.w_bytes += n;
                true
            }
            Ok(Pushed::Dropped) => true,
            Err(Outbound::Frame(bytes))
                if c.kind == ClientKind::Internal && !c.queue.is_closed() =>
            {
                // An in-process receiver paces its senders: the sender's driver waits for
                // room (busrt blocks the sender too, then disconnects it; we never do).
                c.counters.w_frames += 1;
                c.counters.w_bytes += n;
                self.totals.w_frames += 1;
                self.totals.w_bytes += n;
                self.blocked.push((c.queue.clone(), bytes));
                true
            }
            Ok(Pushed::Refused) | Err(_) => {
                if c.kind != ClientKind::Internal {
                    tracing::warn!(client = %c.name, "client queue overflow: disconnected");
                    self.kick(to);
                }
                false
            }
        }
    }

    /// Queues one frame to each of `targets` (the last one takes the frame itself: a frame
    /// that is never shared is never promoted to a shared buffer).
    fn deliver_all(&mut self, targets: &[ClientId], bytes: Bytes) {
        if let Some((&last, rest)) = targets.split_last() {
            for &t in rest {
                self.deliver(t, bytes.clone());
            }
            self.deliver(last, bytes);
        }
    }

    /// Queues `n` frames laid back to back in `bytes` to each of `targets`: one entry per
    /// receiver whose queue has room for all of them, else frame by frame under its policy.
    fn deliver_run(&mut self, targets: &[ClientId], bytes: Bytes, n: usize) {
        if n == 1 {
            return self.deliver_all(targets, bytes);
        }
        if let Some((&last, rest)) = targets.split_last() {
            for &t in rest {
                self.deliver_frames(t, bytes.clone(), n);
            }
            self.deliver_frames(last, bytes, n);
        }
    }

    fn deliver_frames(&mut self, to: ClientId, bytes: Bytes, n: usize) {
        let Some(c) = self.clients.get_mut(&to) else {
            return;
        };
        let waiting = c.kind == ClientKind::Internal
            && self.blocked.iter().any(|(q, _)| Arc::ptr_eq(q, &c.queue));
        let len = bytes.len() as u64;
        let run = Outbound::Run { bytes, frames: n };
        let run = if waiting {
            run
        } else {
            match c.queue.try_push(run) {
                Ok(_) => {
                    c.counters.w_frames += n as u64;
                    c.counters.w_bytes += len;
                    self.totals.w_frames += n as u64;
                    self.totals.w_bytes += len;
                    return;
                }
                Err(run) => run,
            }
        };
        for f in run.into_frames() {
            self.deliver(to, f);
        }
    }

    /// Deliveries waiting for room in in-process receivers' queues, to be pushed with
    /// [`Queue::push_wait`] by the sender's driver before it handles more.
    pub fn take_blocked(&mut self) -> Vec<(Arc<Queue>, Bytes)> {
        std::mem::take(&mut self.blocked)
    }

    /// Counts an ACK queued on a client's own queue.
    pub fn count_ack(&mut self, id: ClientId) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.counters.w_frames += 1;
            c.counters.w_bytes += 6;
            self.totals.w_frames += 1;
            self.totals.w_bytes += 6;
        }
    }

    /// Publishes from an in-process client without building a client frame first (what
    /// [`handle`](Self::handle) does for a PUBLISH or PUBLISH_FOR).
    pub fn publish_direct(
        &mut self,
        id: ClientId,
        topic: &str,
        receiver: Option<&str>,
        payload: &[u8],
        qos: Qos,
    ) -> Option<u8> {
        let sender = self.clients.get(&id)?.name.clone();
        self.publish_from(&sender, topic, receiver, payload, qos.is_realtime());
        let head = (topic.len() + 1 + receiver.map_or(0, |r| r.len() + 1)) as u64;
        self.count_received(id, 1, head + payload.len() as u64);
        Some(code::OK)
    }

    /// Counts publications an in-process client made (as frames received from it).
    fn count_received(&mut self, id: ClientId, frames: u64, bytes: u64) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.counters.r_frames += frames;
            c.counters.r_bytes += bytes;
        }
        self.totals.r_frames += frames;
        self.totals.r_bytes += bytes;
    }

    /// [`publish_direct`](Self::publish_direct) for a run of payloads on one topic, in
    /// order: the receivers are looked up once for the run.
    pub fn publish_direct_many<'a>(
        &mut self,
        id: ClientId,
        topic: &str,
        receiver: Option<&str>,
        payloads: impl IntoIterator<Item = &'a [u8]>,
        qos: Qos,
    ) -> Option<u8> {
        let sender = self.clients.get(&id)?.name.clone();
        let targets = self.receivers(topic, receiver);
        let head = (topic.len() + 1 + receiver.map_or(0, |r| r.len() + 1)) as u64;
        let (mut frames, mut bytes) = (0, 0);
        let realtime = qos.is_realtime();
        // The frames are laid back to back in one buffer and queued as one entry per
        // receiver (a run of at most RUN_BYTES).
        let payloads = payloads.into_iter();
        let expected = payloads.size_hint().0.max(1);
        let mut run = BytesMut::new();
        let mut in_run = 0;
        for payload in payloads {
            frames += 1;
            bytes += head + payload.len() as u64;
            if targets.is_empty() {
                continue;
            }
            if run.capacity() == 0 {
                let one = 8 + sender.len() + topic.len() + payload.len();
                run.reserve(one.saturating_mul(expected).min(RUN_BYTES));
            }
            frame::delivery_into(
                &mut run,
                Kind::Publish,
                realtime,
                &sender,
                Some(topic),
                payload,
            );
            in_run += 1;
            if run.len() >= RUN_BYTES {
                self.deliver_run(&targets, std::mem::take(&mut run).freeze(), in_run);
                in_run = 0;
            }
        }
        if in_run > 0 {
            self.deliver_run(&targets, run.freeze(), in_run);
        }
        self.scratch = targets;
        self.count_received(id, frames, bytes);
        Some(code::OK)
    }

    /// The core, gathering publications while a read is handled (see [`Gathering`]).
    pub fn gathering(&mut self) -> Gathering<'_> {
        self.gathered.on = true;
        Gathering { core: self }
    }

    fn gather(&mut self, id: ClientId, topic: &str, payload: &[u8], realtime: bool) {
        let g = &self.gathered;
        if g.n > 0 && (g.sender != id || g.topic != topic || g.realtime != realtime) {
            self.send_gathered();
        }
        if self.gathered.n == 0 {
            let targets = self.receivers(topic, None);
            if targets.contains(&id) {
                // A sender that hears itself is not gathered: its own queue overflowing
                // disconnects it at this publication, and it must send nothing after it.
                self.scratch = targets;
                let sender = self.clients[&id].name.clone();
                return self.publish_from(&sender, topic, None, payload, realtime);
            }
            let g = &mut self.gathered;
            self.scratch = std::mem::replace(&mut g.targets, targets);
            g.sender = id;
            g.topic.clear();
            g.topic.push_str(topic);
            g.realtime = realtime;
        }
        if self.gathered.targets.is_empty() {
            return;
        }
        let sender = &self.clients[&id].name;
        let g = &mut self.gathered;
        frame::delivery_into(
            &mut g.bytes,
            Kind::Publish,
            realtime,
            sender,
            Some(topic),
            payload,
        );
        g.n += 1;
        if g.bytes.len() >= RUN_BYTES {
            self.send_gathered();
        }
    }

    /// Queues what was gathered.
    fn send_gathered(&mut self) {
        let g = &mut self.gathered;
        if g.n == 0 {
            return;
        }
        let (bytes, n) = (std::mem::take(&mut g.bytes).freeze(), g.n);
        g.n = 0;
        let targets = std::mem::take(&mut g.targets);
        self.deliver_run(&targets, bytes, n);
        self.gathered.targets = targets;
    }

    fn publish_from(
        &mut self,
        sender: &str,
        topic: &str,
        receiver: Option<&str>,
        payload: &[u8],
        realtime: bool,
    ) {
        let targets = self.receivers(topic, receiver);
        if !targets.is_empty() {
            let bytes = frame::delivery(Kind::Publish, realtime, sender, Some(topic), payload);
            self.deliver_all(&targets, bytes);
        }
        self.scratch = targets;
    }

    /// Who receives a publication on `topic` (only `receiver`'s instances if given), sorted
    /// and once each, in the core's scratch vector (which the caller puts back).
    fn receivers(&mut self, topic: &str, receiver: Option<&str>) -> Vec<ClientId> {
        let mut targets = std::mem::take(&mut self.scratch);
        targets.clear();
        if let Some(known) = self.routes.get(topic) {
            targets.extend_from_slice(known);
        } else {
            self.subs.lookup(topic, &mut targets);
            targets.sort_unstable();
            targets.dedup();
            targets.retain(|t| {
                !self.clients[t]
                    .excludes
                    .iter()
                    .any(|e| pattern::matches(TOPIC, e, topic))
            });
            if topic.len() <= ROUTE_TOPIC {
                if self.routes.len() >= ROUTES {
                    self.routes.clear();
                }
                self.routes.insert(topic.into(), targets.as_slice().into());
            }
        }
        if let Some(r) = receiver {
            targets.retain(|t| self.clients[t].primary == r);
        }
        targets
    }

    fn send(&mut self, sender: &str, target: &str, payload: &[u8], realtime: bool) -> u8 {
        let Some(to) = self.lookup(target) else {
            return code::NOT_REGISTERED;
        };
        if let (Some(service), true) = (self.service, target == BROKER_NAME) {
            match service(self, payload) {
                Answer::NotARequest => {}
                Answer::NoReply => return code::OK,
                Answer::Reply(answer) => {
                    let Some(from) = self.lookup(sender) else {
                        return code::OK;
                    };
                    let bytes =
                        frame::delivery(Kind::Message, realtime, BROKER_NAME, None, &answer);
                    self.deliver(from, bytes);
                    return code::OK;
                }
            }
        }
        let bytes = frame::delivery(Kind::Message, realtime, sender, None, payload);
        if self.deliver(to, bytes) {
            code::OK
        } else {
            code::NOT_DELIVERED
        }
    }

    fn broadcast(&mut self, sender: &str, mask: &str, payload: &[u8], realtime: bool) {
        let targets: Vec<ClientId> = if pattern::has_wildcards(NAME, mask) {
            let mut t: Vec<ClientId> = self
                .clients
                .iter()
                .filter(|(_, c)| pattern::matches(NAME, mask, &c.name))
                .map(|(id, _)| *id)
                .collect();
            t.sort_unstable();
            t
        } else {
            self.lookup(mask).into_iter().collect()
        };
        if targets.is_empty() {
            return;
        }
        let bytes = frame::delivery(Kind::Broadcast, realtime, sender, None, payload);
        self.deliver_all(&targets, bytes);
    }

    /// Seconds since the bus started and the global counters.
    pub fn stats(&self) -> (u64, Counters) {
        (self.started.elapsed().as_secs(), self.totals)
    }

    /// Primaries (in-process ones included), sorted by name.
    pub fn client_list(&self) -> Vec<ClientInfo> {
        let mut out: Vec<ClientInfo> = self
            .clients
            .values()
            .filter(|c| c.is_primary)
            .map(|c| ClientInfo {
                name: c.name.to_string(),
                kind: c.kind,
                source: c.source.clone(),
                port: c.port.clone(),
                counters: c.counters,
                queue: c.queue.len(),
                instances: 1 + self
                    .clients
                    .values()
                    .filter(|s| !s.is_primary && *s.primary == *c.name)
                    .count(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Every client's id (to disconnect them all at shutdown).
    pub fn ids(&self) -> Vec<ClientId> {
        self.clients.keys().copied().collect()
    }
}

#[cfg(test)]
mod simulation {
    //! Seeded random clients, subscriptions, exclusions, masks and disconnects; every
    //! delivery is checked against a reference model of the matching rules (each client's
    //! patterns matched one by one), and nobody gets a frame twice.

    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::frame::Delivery;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len())]
        }
    }

    const SEGS: &[&str] = &["a", "b", "c", ""];
    const PATTERN_SEGS: &[&str] = &["a", "b", "c", "", "+", "#"];
    const NAMES: &[&str] = &["w.1", "w.2", "w.x.y", "m", "grp.a", "grp.b", "solo"];
    const MASKS: &[&str] = &["w.*", "w.?", "*", "grp.?", "?", "m", "w.x.?", "nobody"];

    fn path(rng: &mut Rng, segs: &[&str]) -> String {
        let n = 1 + rng.below(3);
        (0..n).map(|_| rng.pick(segs)).collect::<Vec<_>>().join("/")
    }

    #[derive(Default)]
    struct Model {
        subs: BTreeSet<String>,
        excludes: BTreeSet<String>,
        primary: String,
    }

    fn frame(op: Op, body: Vec<u8>) -> ClientFrame {
        ClientFrame {
            op_id: 1,
            op,
            qos: Qos::Processed,
            body: Bytes::from(body),
        }
    }

    fn drain(q: &Queue) -> Vec<Delivery> {
        let mut out = Vec::new();
        q.try_drain(&mut out);
        out.into_iter()
            .flat_map(Outbound::into_frames)
            .filter_map(Delivery::parse)
            .collect()
    }

    #[test]
    fn deliveries_match_the_reference_model() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut core = Core::new(CoreConfig::default());
            let mut live: BTreeMap<ClientId, (String, Arc<Queue>)> = BTreeMap::new();
            let mut model: BTreeMap<ClientId, Model> = BTreeMap::new();
            for step in 0..300 {
                // Drain everything first: only this step's deliveries count.
                for (_, q) in live.values() {
                    drain(q);
                }
                match rng.below(10) {
                    0 | 1 => {
                        // Register a primary or a secondary.
                        let base = rng.pick(NAMES);
                        let name = if rng.below(3) == 0 {
                            format!("{base}%%{}", rng.below(3))
                        } else {
                            base.to_owned()
                        };
                        let q = Arc::new(Queue::new(
                            1 << 16,
                            crate::queue::OverflowPolicy::Disconnect,
                        ));
                        let r = core.register(Registration {
                            name: name.clone(),
                            kind: ClientKind::Tcp,
                            source: None,
                            port: None,
                            queue: q.clone(),
                            aaa: None,
                        });
                        let taken = live.values().any(|(n, _)| *n == name);
                        let primary = name.split("%%").next().unwrap().to_owned();
                        let has_primary = live.values().any(|(n, _)| *n == primary);
                        match r {
                            Ok(id) => {
                                assert!(
                                    !taken && (name == primary || has_primary),
                                    "seed {seed} step {step}: {name}"
                                );
                                live.insert(id, (name, q));
                                model.insert(
                                    id,
                                    Model {
                                        subs: [WARN_TOPIC.to_owned()].into(),
                                        primary,
                                        ..Model::default()
                                    },
                                );
                            }
                            Err(c) => {
                                let want = if name != primary && !has_primary {
                                    code::NOT_REGISTERED
                                } else {
                                    code::BUSY
                                };
                                assert!(
                                    taken || c == code::NOT_REGISTERED,
                                    "seed {seed}: {name} refused"
                                );
                                assert_eq!(c, want, "seed {seed} step {step}: {name}");
                            }
                        }
                    }
                    2 if !live.is_empty() => {
                        // A client leaves (a primary takes its secondaries along).
                        let ids: Vec<ClientId> = live.keys().copied().collect();
                        let id = ids[rng.below(ids.len())];
                        core.unregister(id);
                        let (name, _) = live.remove(&id).unwrap();
                        model.remove(&id);
                        if !name.contains("%%") {
                            let gone: Vec<ClientId> = live
                                .iter()
                                .filter(|(_, (n, _))| {
                                    n.split("%%").next() == Some(name.as_str()) && n.contains("%%")
                                })
                                .map(|(id, _)| *id)
                                .collect();
                            for g in gone {
                                live.remove(&g);
                                model.remove(&g);
                            }
                        }
                        for (id, _) in live.iter() {
                            assert!(core.is_registered(*id));
                        }
                    }
                    3 | 4 if !live.is_empty() => {
                        // Subscribe, unsubscribe, exclude or unexclude.
                        let ids: Vec<ClientId> = live.keys().copied().collect();
                        let id = ids[rng.below(ids.len())];
                        let p = path(&mut rng, PATTERN_SEGS);
                        let m = model.get_mut(&id).unwrap();
                        let op = match rng.below(4) {
                            0 => {
                                m.subs.insert(p.clone());
                                Op::Subscribe
                            }
                            1 => {
                                m.subs.remove(&p);
                                Op::Unsubscribe
                            }
                            2 => {
                                m.excludes.insert(p.clone());
                                Op::Exclude
                            }
                            _ => {
                                m.excludes.remove(&p);
                                Op::Unexclude
                            }
                        };
                        assert_eq!(
                            core.handle(id, &frame(op, p.into_bytes())),
                            Ok(Some(code::OK))
                        );
                    }
                    _ if !live.is_empty() => {
                        // Publish, publish_for, send or broadcast from a random client.
                        let ids: Vec<ClientId> = live.keys().copied().collect();
                        let from = ids[rng.below(ids.len())];
                        let sender = live[&from].0.clone();
                        let (op, body, want): (Op, Vec<u8>, BTreeSet<ClientId>) = match rng.below(4)
                        {
                            0 | 1 => {
                                let t = path(&mut rng, SEGS);
                                let want = model
                                    .iter()
                                    .filter(|(_, m)| {
                                        m.subs.iter().any(|p| pattern::matches(TOPIC, p, &t))
                                            && !m
                                                .excludes
                                                .iter()
                                                .any(|e| pattern::matches(TOPIC, e, &t))
                                    })
                                    .map(|(id, _)| *id)
                                    .collect();
                                (Op::Publish, [t.as_bytes(), b"\0x"].concat(), want)
                            }
                            2 => {
                                let t = path(&mut rng, SEGS);
                                let r = rng.pick(NAMES);
                                let want = model
                                    .iter()
                                    .filter(|(_, m)| {
                                        m.primary == r
                                            && m.subs.iter().any(|p| pattern::matches(TOPIC, p, &t))
                                            && !m
                                                .excludes
                                                .iter()
                                                .any(|e| pattern::matches(TOPIC, e, &t))
                                    })
                                    .map(|(id, _)| *id)
                                    .collect();
                                (
                                    Op::PublishFor,
                                    [t.as_bytes(), b"\0", r.as_bytes(), b"\0x"].concat(),
                                    want,
                                )
                            }
                            _ => {
                                let mask = rng.pick(MASKS);
                                let want = live
                                    .iter()
                                    .filter(|(_, (n, _))| pattern::matches(NAME, mask, n))
                                    .map(|(id, _)| *id)
                                    .collect();
                                (Op::Broadcast, [mask.as_bytes(), b"\0x"].concat(), want)
                            }
                        };
                        assert_eq!(core.handle(from, &frame(op, body)), Ok(Some(code::OK)));
                        let mut got = BTreeSet::new();
                        for (id, (_, q)) in &live {
                            let ds = drain(q);
                            assert!(ds.len() <= 1, "seed {seed} step {step}: a frame twice");
                            if let Some(d) = ds.first() {
                                assert_eq!(d.sender(), sender);
                                got.insert(*id);
                            }
                        }
                        assert_eq!(got, want, "seed {seed} step {step}: {op:?} from {sender}");
                    }
                    _ => {}
                }
            }
            // p2p: to each live name, and to one that is not.
            if let Some((&from, _)) = live.iter().next() {
                for (id, (name, q)) in &live {
                    drain(q);
                    let r = core.handle(
                        from,
                        &frame(Op::Message, [name.as_bytes(), b"\0p"].concat()),
                    );
                    assert_eq!(r, Ok(Some(code::OK)));
                    assert_eq!(drain(q).len(), 1, "{id}");
                }
                let r = core.handle(from, &frame(Op::Message, b"no.such\0p".to_vec()));
                assert_eq!(r, Ok(Some(code::NOT_REGISTERED)));
            }
        }
    }

    fn client(core: &mut Core, name: &str) -> (ClientId, Arc<Queue>) {
        let q = Arc::new(Queue::new(64, crate::queue::OverflowPolicy::Disconnect));
        (register(core, name, ClientKind::Internal, &q), q)
    }

    fn register(core: &mut Core, name: &str, kind: ClientKind, q: &Arc<Queue>) -> ClientId {
        core.register(Registration {
            name: name.into(),
            kind,
            source: None,
            port: None,
            queue: q.clone(),
            aaa: None,
        })
        .unwrap()
    }

    fn payloads(q: &Queue) -> Vec<Vec<u8>> {
        drain(q).iter().map(|d| d.payload().to_vec()).collect()
    }

    /// The receivers of a topic are remembered after its first publication: every change
    /// that can alter them (a registration's own subscription, subscribe, unsubscribe,
    /// exclude, unexclude, a departure) forgets them.
    #[test]
    fn remembered_receivers_follow_every_change() {
        let mut core = Core::new(CoreConfig::default());
        let (p, _) = client(&mut core, "p");
        let (a, qa) = client(&mut core, "a");
        let sub = |op, t: &str| frame(op, t.as_bytes().to_vec());
        let publish = |core: &mut Core, v: &[u8]| {
            core.publish_direct(p, "t/x", None, v, Qos::No).unwrap();
        };
        publish(&mut core, b"0");
        assert!(payloads(&qa).is_empty());
        core.handle(a, &sub(Op::Subscribe, "t/#")).unwrap();
        publish(&mut core, b"1");
        assert_eq!(payloads(&qa), [b"1"]);
        core.handle(a, &sub(Op::Exclude, "t/x")).unwrap();
        publish(&mut core, b"2");
        assert!(payloads(&qa).is_empty());
        core.handle(a, &sub(Op::Unexclude, "t/x")).unwrap();
        publish(&mut core, b"3");
        assert_eq!(payloads(&qa), [b"3"]);
        core.handle(a, &sub(Op::Unsubscribe, "t/#")).unwrap();
        publish(&mut core, b"4");
        assert!(payloads(&qa).is_empty());
        core.handle(a, &sub(Op::Subscribe, "t/x")).unwrap();
        // A departure, then a newcomer: registration subscribes it to `.broker/warn`.
        core.warn_shutdown();
        drain(&qa);
        core.unregister(a);
        publish(&mut core, b"5");
        assert!(payloads(&qa).is_empty());
        let (_, qb) = client(&mut core, "b");
        core.warn_shutdown();
        assert_eq!(drain(&qb).len(), 1, "the newcomer hears the warning");
    }

    /// A run of publications is that many deliveries, in order, to each receiver (and only
    /// to `receiver`'s instances with `publish_for`), counted as that many frames.
    #[test]
    fn a_run_of_publications_is_each_one_in_order() {
        let mut core = Core::new(CoreConfig::default());
        let (p, _) = client(&mut core, "p");
        let (a, qa) = client(&mut core, "a");
        let (b, qb) = client(&mut core, "b");
        for id in [a, b] {
            core.handle(id, &frame(Op::Subscribe, b"t".to_vec()))
                .unwrap();
        }
        let run: [&[u8]; 3] = [b"1", b"2", b"3"];
        core.publish_direct_many(p, "t", None, run, Qos::No)
            .unwrap();
        assert_eq!(payloads(&qa), [b"1", b"2", b"3"]);
        assert_eq!(payloads(&qb), [b"1", b"2", b"3"]);
        core.publish_direct_many(p, "t", Some("b"), run, Qos::No)
            .unwrap();
        assert!(payloads(&qa).is_empty());
        assert_eq!(payloads(&qb), [b"1", b"2", b"3"]);
        let row = core
            .client_list()
            .into_iter()
            .find(|c| c.name == "p")
            .unwrap();
        assert_eq!(row.counters.r_frames, 6);
        assert_eq!(row.counters.r_bytes, 3 * 3 + 3 * 5);
    }

    /// A run published together is queued as one entry where it fits, and frame by frame
    /// under the receiver's policy where it does not: either way every receiver ends with
    /// exactly what publishing the payloads one by one gives it (queued frames, frames
    /// waiting for room, disconnection, counters), whatever its kind, policy, room and the
    /// run's length.
    #[test]
    fn a_run_ends_as_its_publications_one_by_one() {
        use crate::queue::OverflowPolicy::*;
        // What a receiver holds after the publications, and what the sender waits to push.
        type Outcome = (Vec<Vec<u8>>, Vec<Vec<u8>>, bool, Counters, Counters);
        let outcome = |kind, policy, capacity, queued: usize, run: usize, together: bool| {
            let mut core = Core::new(CoreConfig::default());
            let (p, _) = client(&mut core, "p");
            let q = Arc::new(Queue::new(capacity, policy));
            let r = register(&mut core, "r", kind, &q);
            core.handle(r, &frame(Op::Subscribe, b"t".to_vec()))
                .unwrap();
            for i in 0..queued {
                core.publish_direct(p, "t", None, &[100 + i as u8], Qos::No)
                    .unwrap();
            }
            let published: Vec<Vec<u8>> = (0..run).map(|i| vec![i as u8; 1 + i % 3]).collect();
            if together {
                core.publish_direct_many(p, "t", None, published.iter().map(|v| &v[..]), Qos::No)
                    .unwrap();
            } else {
                for v in &published {
                    core.publish_direct(p, "t", None, v, Qos::No).unwrap();
                }
            }
            let blocked = core
                .take_blocked()
                .into_iter()
                .map(|(_, b)| Delivery::parse(b).unwrap().payload().to_vec())
                .collect();
            let list = core.client_list();
            let row = |n: &str| list.iter().find(|c| c.name == n).map(|c| c.counters);
            let registered = row("r").is_some();
            let out: Outcome = (
                payloads(&q),
                blocked,
                registered,
                row("r").unwrap_or_default(),
                core.totals,
            );
            out
        };
        let mut runs_queued_whole = 0;
        for kind in [ClientKind::Internal, ClientKind::LocalIpc] {
            for policy in [Disconnect, DropOldest, DropNewest] {
                for capacity in [1, 2, 3, 5, 8] {
                    for queued in 0..=capacity {
                        for run in [2, 3, 7] {
                            let one_by_one = outcome(kind, policy, capacity, queued, run, false);
                            let together = outcome(kind, policy, capacity, queued, run, true);
                            assert_eq!(
                                together, one_by_one,
                                "{kind:?} {policy:?} capacity {capacity}, {queued} queued, run of {run}"
                            );
                            runs_queued_whole += usize::from(queued + run <= capacity);
                        }
                    }
                }
            }
        }
        assert!(
            runs_queued_whole > 10,
            "the case of a run that fits was tried"
        );
    }

    /// A read's frames handled while gathering end exactly as handled one by one: the same
    /// frames, in the same order, with the same flags, in every receiver's queue (policies
    /// and small queues included), the same disconnections and counters, whatever else the
    /// client does between its publications (subscribing itself, excluding, messages).
    #[test]
    fn gathering_a_read_changes_nothing_but_the_queue_entries() {
        use crate::queue::OverflowPolicy::*;
        let ops = |rng: &mut Rng| -> Vec<ClientFrame> {
            (0..1 + rng.below(40))
                .map(|i| {
                    let mut f = match rng.below(10) {
                        0 => frame(Op::Subscribe, b"t/#".to_vec()),
                        1 => frame(Op::Unsubscribe, b"t/#".to_vec()),
                        2 => frame(Op::Exclude, b"t/2".to_vec()),
                        3 => frame(Op::Message, b"a\0m".to_vec()),
                        _ => {
                            let topic = rng.pick(&["t/1", "t/2", "u"]);
                            frame(Op::Publish, format!("{topic}\0p{i}").into_bytes())
                        }
                    };
                    f.qos = [Qos::No, Qos::Processed, Qos::Realtime][rng.below(3)];
                    f
                })
                .collect()
        };
        type Outcome = (Vec<Vec<Vec<u8>>>, Vec<bool>, Counters);
        let outcome = |frames: &[ClientFrame], cut: &[usize], seed: u64, gather: bool| {
            let mut rng = Rng(seed);
            let mut core = Core::new(CoreConfig::default());
            let mut queues = Vec::new();
            for (name, sub) in [("s", ""), ("a", "t/#"), ("b", "t/1"), ("c", "t/2")] {
                let policy = [Disconnect, DropOldest, DropNewest][rng.below(3)];
                let q = Arc::new(Queue::new([3, 8, 1000][rng.below(3)], policy));
                let kind = [ClientKind::Internal, ClientKind::LocalIpc][rng.below(2)];
                let id = register(&mut core, name, kind, &q);
                if !sub.is_empty() {
                    core.handle(id, &frame(Op::Subscribe, sub.as_bytes().to_vec()))
                        .unwrap();
                }
                queues.push((id, q));
            }
            let sender = queues[0].0;
            let mut blocked = Vec::new();
            let mut start = 0;
            for &end in cut.iter().chain([&frames.len()]) {
                if gather {
                    let mut core = core.gathering();
                    for f in &frames[start..end] {
                        let _ = core.handle(sender, f);
                    }
                } else {
                    for f in &frames[start..end] {
                        let _ = core.handle(sender, f);
                    }
                }
                // What waits for room, per receiver (in order for each; the order between
                // receivers is only the order the sender waits in).
                for (q, b) in core.take_blocked() {
                    let to = queues.iter().position(|(_, r)| Arc::ptr_eq(r, &q)).unwrap();
                    blocked.push((to, b.to_vec()));
                }
                start = end;
            }
            let mut got: Vec<Vec<Vec<u8>>> = queues
                .iter()
                .map(|(_, q)| {
                    let mut out = Vec::new();
                    q.try_drain(&mut out);
                    out.into_iter()
                        .flat_map(Outbound::into_frames)
                        .map(|b| b.to_vec())
                        .collect()
                })
                .collect();
            blocked.sort_by_key(|(to, _)| *to);
            got.push(blocked.into_iter().map(|(_, b)| b).collect());
            let registered = queues
                .iter()
                .map(|(id, _)| core.is_registered(*id))
                .collect();
            let out: Outcome = (got, registered, core.totals);
            out
        };
        let mut gathered_runs = 0;
        for seed in 1..=300u64 {
            let mut rng = Rng(seed * 7919);
            let frames = ops(&mut rng);
            let mut cut: Vec<usize> = (0..rng.below(3)).map(|_| rng.below(frames.len())).collect();
            cut.sort_unstable();
            let one_by_one = outcome(&frames, &cut, seed, false);
            let gathered = outcome(&frames, &cut, seed, true);
            assert_eq!(gathered, one_by_one, "seed {seed}");
            gathered_runs += usize::from(
                frames
                    .windows(2)
                    .any(|w| w[0].op == Op::Publish && w[1].op == Op::Publish),
            );
        }
        assert!(gathered_runs > 100, "runs of publications were tried");
    }
}
