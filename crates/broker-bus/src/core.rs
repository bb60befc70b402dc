//! The bus's decisions, without I/O: the client registry (primaries and `name%%N`
//! secondaries), subscriptions and exclusions, routing of every operation, ACK codes, what
//! happens to a client whose queue is full. Drivers (the UNIX/TCP server, in-process clients)
//! hand it frames under one lock and it pushes into the receivers' [`Queue`]s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::aaa::ClientAaa;
use crate::frame::{self, code, ClientFrame, Kind, Op, Qos};
use crate::pattern::{self, SubMap, NAME, TOPIC};
use crate::queue::{Outbound, Pushed, Queue};

/// A client's handle inside the core.
pub type ClientId = u64;

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
}

impl ClientKind {
    /// busrt's name for it in `client.list`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Internal => "internal",
            ClientKind::LocalIpc => "local_ipc",
            ClientKind::Tcp => "tcp",
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
    name: String,
    primary: String,
    is_primary: bool,
    kind: ClientKind,
    source: Option<String>,
    port: Option<String>,
    queue: Arc<Queue>,
    /// Subscribed strings as sent, each with its stored (normalized) pattern.
    subs: HashMap<String, String>,
    /// How many subscribed strings share each stored pattern (so that unsubscribing `a/#/x`
    /// leaves `a/#` alone, unlike busrt).
    stored: HashMap<String, usize>,
    excludes: Vec<String>,
    counters: Counters,
    aaa: Option<ClientAaa>,
}

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
    clients: HashMap<ClientId, Client>,
    by_name: HashMap<String, ClientId>,
    subs: SubMap,
    next_id: ClientId,
    started: Instant,
    totals: Counters,
    scratch: Vec<ClientId>,
    /// Deliveries to in-process clients whose queues were full: the sender's driver waits
    /// for room (see [`Core::take_blocked`]).
    blocked: Vec<(Arc<Queue>, Bytes)>,
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
            clients: HashMap::new(),
            by_name: HashMap::new(),
            subs: SubMap::default(),
            next_id: 1,
            started: Instant::now(),
            totals: Counters::default(),
            scratch: Vec::new(),
            blocked: Vec::new(),
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
                name: r.name,
                primary,
                is_primary,
                kind: r.kind,
                source: r.source,
                port: r.port,
                queue: r.queue,
                subs: HashMap::new(),
                stored: HashMap::new(),
                excludes: Vec::new(),
                counters: Counters::default(),
                aaa: r.aaa,
            },
        );
        self.subscribe(id, WARN_TOPIC);
        Ok(id)
    }

    /// Whether `id` is (still) registered.
    pub fn is_registered(&self, id: ClientId) -> bool {
        self.clients.contains_key(&id)
    }

    /// The full name of a registered client.
    pub fn name(&self, id: ClientId) -> Option<&str> {
        self.clients.get(&id).map(|c| c.name.as_str())
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
        self.by_name.remove(&c.name);
        for pattern in c.stored.keys() {
            self.subs.remove(pattern, id);
        }
        c.queue.close();
        if c.is_primary {
            let secondaries: Vec<ClientId> = self
                .clients
                .iter()
                .filter(|(_, s)| !s.is_primary && s.primary == c.name)
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
        self.publish_from(BROKER_NAME, None, INFO_TOPIC, None, &payload, false);
    }

    /// Publishes `{"s": "shutdown", "t": ns}` on `.broker/warn` (the server is stopping).
    pub fn warn_shutdown(&mut self) {
        let payload = event_payload("shutdown", None, now_ns());
        self.publish_from(BROKER_NAME, None, WARN_TOPIC, None, &payload, false);
    }

    /// Handles a frame from client `id`. `Ok(Some(code))`: the sender wants an ACK with this
    /// code (queued by the caller on the sender's own queue, or returned to an in-process
    /// sender); `Err`: the frame was malformed and the connection must close.
    pub fn handle(&mut self, id: ClientId, f: &ClientFrame) -> Result<Option<u8>, Malformed> {
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
                let sender = self.clients[&id].name.clone();
                self.publish_from(&sender, Some(id), topic, None, &payload, realtime);
                code::OK
            }
            Op::PublishFor => {
                let (topic, rest) = frame::split_name(&f.body)
                    .ok_or(Malformed("a publish_for without its topic"))?;
                let (receiver, payload) = frame::split_name(&rest)
                    .ok_or(Malformed("a publish_for without its receiver"))?;
                let sender = self.clients[&id].name.clone();
                self.publish_from(&sender, Some(id), topic, Some(receiver), &payload, realtime);
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
                            let c = self.clients.get_mut(&id).expect("registered");
                            if !c.excludes.iter().any(|e| e == t) {
                                c.excludes.push(t.to_owned());
                            }
                        }
                        _ => {
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
        let n = c.stored.get_mut(&stored).expect("counted");
        *n -= 1;
        if *n == 0 {
            c.stored.remove(&stored);
            self.subs.remove(&stored, id);
        }
    }

    /// Queues `frame` to `to`; a full queue under the disconnect policy kicks an external
    /// client (false: not delivered).
    fn deliver(&mut self, to: ClientId, bytes: &Bytes) -> bool {
        let Some(c) = self.clients.get_mut(&to) else {
            return false;
        };
        // Behind frames already waiting for room in the same queue: order is kept.
        let waiting = c.kind == ClientKind::Internal
            && self.blocked.iter().any(|(q, _)| Arc::ptr_eq(q, &c.queue));
        let pushed = if waiting {
            Pushed::Refused
        } else {
            c.queue.push(Outbound::Frame(bytes.clone()))
        };
        match pushed {
            Pushed::Queued => {
                c.counters.w_frames += 1;
                c.counters.w_bytes += bytes.len() as u64;
                self.totals.w_frames += 1;
                self.totals.w_bytes += bytes.len() as u64;
                true
            }
            Pushed::Dropped => true,
            Pushed::Refused if c.kind == ClientKind::Internal && !c.queue.is_closed() => {
                // An in-process receiver paces its senders: the sender's driver waits for
                // room (busrt blocks the sender too, then disconnects it; we never do).
                c.counters.w_frames += 1;
                c.counters.w_bytes += bytes.len() as u64;
                self.totals.w_frames += 1;
                self.totals.w_bytes += bytes.len() as u64;
                self.blocked.push((c.queue.clone(), bytes.clone()));
                true
            }
            Pushed::Refused => {
                if c.kind != ClientKind::Internal {
                    tracing::warn!(client = %c.name, "client queue overflow: disconnected");
                    self.kick(to);
                }
                false
            }
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

    fn publish_from(
        &mut self,
        sender: &str,
        sender_id: Option<ClientId>,
        topic: &str,
        receiver: Option<&str>,
        payload: &[u8],
        realtime: bool,
    ) {
        let _ = sender_id;
        let mut targets = std::mem::take(&mut self.scratch);
        targets.clear();
        self.subs.lookup(topic, &mut targets);
        if targets.is_empty() {
            self.scratch = targets;
            return;
        }
        targets.sort_unstable();
        targets.dedup();
        targets.retain(|t| {
            let c = &self.clients[t];
            receiver.is_none_or(|r| c.primary == r)
                && !c.excludes.iter().any(|e| pattern::matches(TOPIC, e, topic))
        });
        if !targets.is_empty() {
            let bytes = frame::delivery(Kind::Publish, realtime, sender, Some(topic), payload);
            for &t in &targets {
                self.deliver(t, &bytes);
            }
        }
        self.scratch = targets;
    }

    fn send(&mut self, sender: &str, target: &str, payload: &[u8], realtime: bool) -> u8 {
        let Some(to) = self.lookup(target) else {
            return code::NOT_REGISTERED;
        };
        let bytes = frame::delivery(Kind::Message, realtime, sender, None, payload);
        if self.deliver(to, &bytes) {
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
        for t in targets {
            self.deliver(t, &bytes);
        }
    }

    /// Sends from an in-process client by name (the `.broker` service's replies).
    pub fn send_from(&mut self, id: ClientId, target: &str, payload: &[u8], qos: Qos) -> u8 {
        let Some(sender) = self.name(id).map(str::to_owned) else {
            return code::NOT_REGISTERED;
        };
        self.send(&sender, target, payload, qos.is_realtime())
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
                name: c.name.clone(),
                kind: c.kind,
                source: c.source.clone(),
                port: c.port.clone(),
                counters: c.counters,
                queue: c.queue.len(),
                instances: 1 + self
                    .clients
                    .values()
                    .filter(|s| !s.is_primary && s.primary == c.name)
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
