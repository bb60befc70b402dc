//! The endpoint's core: the state that owns the router and the intake (`Core`), a round of
//! work over the intake (`round`), what it does with each command (`handle`), the task loop
//! that runs rounds on the runtime thread (`run`), and link flushing (router messages to
//! outboxes and in-process peers). Whoever holds the core's lock — the
//! runtime thread here, or an application thread through the `shared` module — runs this code;
//! see that module for the one rule and the lock table.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use broker_data::SharedData;
use broker_routing::{
    Content, Event, FxHashMap, Message, OverflowPolicy, PeerKind, PeerLoss, Publication, Router,
};
use broker_wire::{bye_token, EndpointId, ErrorCode, StatusCode, Topic};
use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use crate::cmd::{Client, Cmd, LocalAck, Publications, StoreInbound, StoreOutput};
use crate::config::SubscriberOverflow;
use crate::intake::{Intake, Receive, Took, CMDS_PER_ROUND, PUBS_PER_ROUND};
use crate::order::Ordered;
use crate::outbox::Outbox;
use crate::queue::Queue;
use crate::recording::Recorder;
use crate::spin::Activity;
use crate::translate::{encode_message, MAX_BATCH};
use crate::types::{
    DataMessage, EndpointInfo, Metrics, PeerInfo, PeerMetrics, PeerState, StatusEvent,
};
use crate::Error;

/// Messages per chunk handed to a connection's writer.
const CHUNK_MESSAGES: usize = 256;

/// Messages an in-process peer may have received but not yet processed (what a socket
/// connection's queue of chunks allows).
const LOCAL_IN_FLIGHT: usize = 8 * CHUNK_MESSAGES;

/// How long a peer's buffer may stay over half full before the peer counts as slow and stops
/// holding publishers back.
const SLOW_PEER_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a lossless subscriber may take nothing while messages wait for room in its queue
/// before it counts as stuck (see [`SubscriberOverflow::Block`]).
const STUCK_SUBSCRIBER_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a shutdown lets the peers take what was published before it.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a shutdown waits for its peers to answer BYE (Broker's `unpeer_timeout`).
const UNPEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Publications the core holds while the peers catch up, before publishers block.
pub(crate) const MAX_PENDING: usize = 8_192;

/// Where a peer's messages go.
enum Link {
    /// Encoded, onto the connection's socket or to its writer task, which reports room
    /// (`Cmd::Writable`) when asked to.
    Socket(Outbox),
    /// As they are (shared values), to another endpoint's core in this process. `in_flight`
    /// counts messages sent but not yet processed, bounded like a connection's queue of chunks.
    Local {
        core: mpsc::UnboundedSender<Cmd>,
        remote_conn: u64,
        in_flight: Arc<AtomicUsize>,
    },
}

struct Conn {
    id: u64,
    kind: PeerKind,
    /// The peer's address (none for an in-process peer).
    addr: Option<SocketAddr>,
    outbound: bool,
    link: Link,
    /// The BYE token we sent when unpeering, awaiting its pong.
    bye: Option<Bytes>,
    /// The peer said BYE (the reason its closing gives).
    leaving: bool,
    /// Since when its buffer has been over half full without anything leaving it, and how
    /// many publications had left it then.
    high_since: Option<(Instant, u64)>,
}

impl Conn {
    fn new(id: u64, kind: PeerKind, addr: Option<SocketAddr>, outbound: bool, link: Link) -> Conn {
        Conn {
            id,
            kind,
            addr,
            outbound,
            link,
            bye: None,
            leaving: false,
            high_since: None,
        }
    }
}

/// A local subscriber as the core sees it.
struct Sub {
    queue: Arc<Queue<DataMessage>>,
    overflow: SubscriberOverflow,
    /// A WebSocket client: hears this endpoint's publications, not its own, and its full
    /// queue follows its overflow policy.
    client: Option<Client>,
    /// Since when deliveries wait for room in the queue, and how many items its reader had
    /// taken then: a reader that takes nothing for `STUCK_SUBSCRIBER_AFTER` is stuck.
    waiting: Option<(Instant, u64)>,
    /// The reader was stuck: its oldest messages are dropped until it takes again (the count
    /// it had taken when it was found stuck).
    stuck_at: Option<u64>,
}

impl Sub {
    /// Hands `batch` over, leaving in it what a lossless queue has no room for. Returns
    /// whether anything is left, and counts the waits that begin and the readers found stuck.
    fn deliver(
        &mut self,
        batch: &mut Vec<DataMessage>,
        now: &mut Option<Instant>,
        counts: &mut SubscriberCounts,
    ) -> bool {
        if let Some(client) = &self.client {
            match client.overflow {
                OverflowPolicy::DropOldest => {
                    self.queue.push_all(batch.drain(..));
                }
                OverflowPolicy::DropNewest => {
                    self.queue.push_room(batch);
                    self.queue.note_dropped(batch.len());
                    batch.clear();
                }
                OverflowPolicy::Disconnect => {
                    self.queue.push_room(batch);
                    if !batch.is_empty() && !client.overflowed.swap(true, Ordering::AcqRel) {
                        counts.client_overflows += 1;
                        tracing::warn!(
                            "a WebSocket client's buffer overflowed: disconnecting it \
                             (web_socket_overflow_policy = disconnect)"
                        );
                        self.queue.close();
                    }
                    batch.clear();
                }
            }
            return false;
        }
        if let Some(at) = self.stuck_at {
            if self.queue.taken() == at {
                self.queue.push_all(batch.drain(..));
                return false;
            }
            self.stuck_at = None;
        }
        if self.overflow == SubscriberOverflow::DropOldest {
            self.queue.push_all(batch.drain(..));
            return false;
        }
        self.queue.push_room(batch);
        if batch.is_empty() {
            self.waiting = None;
            return false;
        }
        let now = *now.get_or_insert_with(Instant::now);
        let taken = self.queue.taken();
        match self.waiting {
            Some((since, before)) if before == taken => {
                if now.duration_since(since) >= STUCK_SUBSCRIBER_AFTER {
                    let n = batch.len();
                    self.queue.push_all(batch.drain(..));
                    self.waiting = None;
                    self.stuck_at = Some(taken);
                    counts.stuck += 1;
                    tracing::warn!(
                        waited = ?STUCK_SUBSCRIBER_AFTER,
                        "a subscriber took nothing while messages waited: it drops its oldest \
                         messages ({n} now) until it reads again"
                    );
                    return false;
                }
            }
            Some(_) => self.waiting = Some((now, taken)),
            None => {
                counts.waits += 1;
                self.waiting = Some((now, taken));
            }
        }
        true
    }
}

/// How often lossless subscribers held messages back (see [`Metrics`]).
#[derive(Debug, Default)]
struct SubscriberCounts {
    /// Waits for room that began.
    waits: u64,
    /// Readers found stuck.
    stuck: u64,
    /// WebSocket clients disconnected because their buffer overflowed.
    client_overflows: u64,
}

pub(crate) struct Core {
    pub(crate) router: Router,
    id: EndpointId,
    conns: FxHashMap<EndpointId, Conn>,
    subs: FxHashMap<u64, Sub>,
    status_subs: FxHashMap<u64, (Arc<Queue<StatusEvent>>, bool)>,
    next_bye: u64,
    /// Deliveries collected during one flush, handed to each subscriber in one batch (one lock
    /// and one wake-up per batch instead of per message). What a lossless subscriber's queue
    /// had no room for stays here, and while anything does, the core takes nothing more from
    /// peers and local publishers (see [`Core::behind`]).
    deliveries: FxHashMap<u64, Vec<DataMessage>>,
    /// How many lossless subscribers have deliveries waiting for room.
    subs_waiting: usize,
    /// How often lossless subscribers held messages back.
    sub_counts: SubscriberCounts,
    /// How many of the subscribers are WebSocket clients (which hear this endpoint's own
    /// publications).
    clients: usize,
    /// Scratch space for the peers' ids during a flush (kept to avoid an allocation per flush).
    peer_ids: Vec<EndpointId>,
    /// This core's own command channel, for in-process peers' acknowledgements.
    me: Option<mpsc::WeakUnboundedSender<Cmd>>,
    /// Store frontends by subscriber id.
    stores: FxHashMap<u64, mpsc::Sender<StoreInbound>>,
    /// What a store's full inbox could not take yet, in order. While anything waits here, the
    /// core handles no further batches from peers (see [`Core::accept`]).
    store_overflow: std::collections::VecDeque<(u64, StoreInbound)>,
    /// Batches from peers that wait for the stores to catch up, in order.
    deferred: std::collections::VecDeque<Cmd>,
    /// Unpeerings that wait for the publications handed over before them to go out, in order.
    unpeers: std::collections::VecDeque<Cmd>,
    /// Local masters by store name.
    masters: HashMap<String, u64>,
    /// Whether any subscriber follows store events (stores skip building them otherwise).
    store_events_wanted: Arc<AtomicBool>,
    /// Where each round of work is reported, for the runtime's spinner.
    pub(crate) activity: Arc<Activity>,
    /// Publications taken from the intake that wait for room at the peers.
    pub(crate) pending: std::collections::VecDeque<(Topic, SharedData)>,
    /// A shutdown has begun: no new publications.
    pub(crate) closing: bool,
    /// The shutdown sent its peers BYE and waits for their pongs.
    saying_goodbye: bool,
    /// Batches that waiting subscribers' threads read from sockets and routed themselves.
    pub(crate) read_while_waiting: u64,
    /// Addresses we dialed whose connection was redundant, with the peer it reached.
    aliases: HashMap<SocketAddr, EndpointId>,
    /// Where everything reaches the core (none in tests that drive `handle` directly).
    pub(crate) intake: Option<Intake>,
    /// What `broker.recording-directory` asked to record (see `recording`).
    recorder: Option<Recorder>,
    /// Message counters, by subscriber id (see `counter`).
    counters: FxHashMap<u64, Arc<crate::counter::Tally>>,
}

/// Where the task loop ([`Core::run`]) finds the core: behind the lock that application
/// threads may also take (`shared::Shared`). Implemented above this module, so that the core
/// does not name it.
pub(crate) trait Driver: Send + Sync + 'static {
    /// The core's state if its lock is free at once.
    fn try_lock(&self) -> Option<Ordered<MutexGuard<'_, Core>>>;
    /// The core's doorbell.
    fn activity(&self) -> Arc<Activity>;
}

/// Rounds the task loop runs in a row before it lets other tasks on its thread run.
const ROUNDS_BEFORE_YIELD: usize = 8;

/// Work an application thread brings to its round, handled after everything queued before it.
pub(crate) enum Own {
    /// Its publications.
    Publish(Publications),
    /// A batch it read from a socket (`Cmd::Incoming`).
    Handle(Cmd),
}

/// What a round did (see [`Core::round`]).
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// It took items from the intake: more may be there.
    pub(crate) took: bool,
    /// When the runtime thread must look again by itself.
    pub(crate) deadline: Option<Instant>,
    /// The task loop ends.
    pub(crate) finished: bool,
    /// The runtime thread must look (the loop ends, or the deadline is sooner than the one it
    /// slept with).
    pub(crate) needs_runtime: bool,
}

impl Core {
    pub(crate) fn new(router: Router) -> Core {
        let id = router.id();
        Core {
            router,
            id,
            conns: FxHashMap::default(),
            subs: FxHashMap::default(),
            status_subs: FxHashMap::default(),
            next_bye: 1,
            deliveries: FxHashMap::default(),
            subs_waiting: 0,
            sub_counts: SubscriberCounts::default(),
            clients: 0,
            peer_ids: Vec::new(),
            me: None,
            stores: FxHashMap::default(),
            store_overflow: std::collections::VecDeque::new(),
            deferred: std::collections::VecDeque::new(),
            unpeers: std::collections::VecDeque::new(),
            masters: HashMap::new(),
            store_events_wanted: Arc::new(AtomicBool::new(false)),
            activity: Arc::default(),
            pending: std::collections::VecDeque::new(),
            closing: false,
            saying_goodbye: false,
            read_while_waiting: 0,
            aliases: HashMap::new(),
            intake: None,
            recorder: None,
            counters: FxHashMap::default(),
        }
    }

    /// Where the core reports its rounds of work (see `spin`).
    pub(crate) fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// The flag telling stores whether anybody follows their events.
    pub(crate) fn store_events_flag(&self) -> Arc<AtomicBool> {
        self.store_events_wanted.clone()
    }

    fn record_subscription(&mut self, t: &Topic) {
        if let Some(r) = &mut self.recorder {
            r.subscription(t);
        }
    }

    fn note_topic(&self, t: &Topic) {
        let prefix = broker_store::EVENTS_PREFIX;
        if prefix.starts_with(t.as_str()) || t.as_str().starts_with(prefix) {
            self.store_events_wanted.store(true, Ordering::Relaxed);
        }
    }

    /// Adds a peer whose handshake completed, unless it is ourselves or already a peer;
    /// returns whether it did.
    fn admit(
        &mut self,
        now: Instant,
        peer: EndpointId,
        filter: Vec<Topic>,
        conn: Conn,
        reply: oneshot::Sender<Result<(), Error>>,
    ) -> bool {
        if self.conns.contains_key(&peer) || peer == self.id {
            let _ = reply.send(Err(Error::new(
                ErrorCode::RedundantConnection,
                format!("already peered with {peer}"),
            )));
            return false;
        }
        let kind = conn.kind;
        self.conns.insert(peer, conn);
        self.router.add_peer(now, peer, kind, filter);
        let _ = reply.send(Ok(()));
        true
    }

    /// Lets the core hand its own channel to in-process peers.
    pub(crate) fn with_sender(mut self, tx: &mpsc::UnboundedSender<Cmd>) -> Core {
        self.me = Some(tx.downgrade());
        self
    }

    /// Gives the core a recorder (`broker.recording-directory`).
    pub(crate) fn with_recorder(mut self, recorder: Option<Recorder>) -> Core {
        self.recorder = recorder;
        self
    }

    /// Gives the core its intake (see [`round`](Self::round)).
    pub(crate) fn with_intake(mut self, intake: Intake) -> Core {
        self.intake = Some(intake);
        self
    }

    /// The task loop on the runtime thread: a round of work whenever the doorbell rings (an
    /// item in the intake, or an application thread that drove the core and wants a timer
    /// looked at) or a timer is due, until shutdown or until every handle is gone. It never
    /// waits for the core's lock: when an application thread holds it, that thread rings the
    /// doorbell as it leaves (see `shared`).
    pub(crate) async fn run(shared: Arc<impl Driver>) {
        let doorbell = shared.activity();
        let bell = Waker::from(doorbell.clone());
        let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(86_400);
        let mut timer = Box::pin(tokio::time::sleep_until(far()));
        let mut timer_at: Option<Instant> = None;
        std::future::poll_fn(|cx| {
            doorbell.register(cx.waker());
            for _ in 0..ROUNDS_BEFORE_YIELD {
                let Some(mut core) = shared.try_lock() else {
                    doorbell.busy();
                    return Poll::Pending;
                };
                let round = core.round(Some(&mut Context::from_waker(&bell)), None);
                if round.finished {
                    core.close_queues();
                    return Poll::Ready(());
                }
                if round.took {
                    continue;
                }
                if let Some(intake) = core.intake.as_mut() {
                    intake.armed = round.deadline;
                }
                drop(core);
                let Some(at) = round.deadline else {
                    return Poll::Pending;
                };
                if timer_at != Some(at) {
                    timer.as_mut().reset(tokio::time::Instant::from_std(at));
                    timer_at = Some(at);
                }
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                timer_at = None;
            }
            // Other tasks on this thread get their turn before the next rounds.
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
    }

    /// Closes the subscribers' queues (the task loop's last act).
    fn close_queues(&mut self) {
        self.closing = true;
        // Whatever comes later finds the intake closed: a second `shutdown`, or any question
        // asked after the first, gets `closed()` at once instead of waiting for an answer
        // nobody gives. Questions already queued get it as their reply senders drop.
        if let Some(intake) = self.intake.as_mut() {
            intake.cmds.close();
            intake.stores.close();
            while intake.cmds.try_recv().is_ok() {}
            while intake.stores.try_recv().is_ok() {}
        }
        for (_, (q, _)) in self.status_subs.drain() {
            q.close();
        }
        for (_, sub) in self.subs.drain() {
            sub.queue.close();
        }
    }

    /// One round of work on whatever the intake holds, by whoever holds the core's lock: the
    /// router's timer, publications (released into the router only as far as the peers have
    /// room, see `budget`, so that a publisher that outpaces the network blocks instead of
    /// growing memory or overflowing a healthy peer), commands, stores' output, the shutdown's
    /// progress. `cx` is the runtime thread's doorbell (it registers for more); an application
    /// thread passes none, takes everything queued and then `own`, its own work, which thus
    /// overtakes nothing queued before it.
    pub(crate) fn round(&mut self, mut cx: Option<&mut Context<'_>>, own: Option<Own>) -> Round {
        let took = self.take_in(cx.as_deref_mut(), own);
        self.finish_round(cx, took)
    }

    /// The first half of a [`round`](Self::round): takes what the intake holds, then `own`;
    /// returns whether it took anything. What is taken is in order from here on: the second
    /// half only moves its results out (a waiting subscriber runs it after letting go of the
    /// socket's inbox, see `shared`).
    pub(crate) fn take_in(&mut self, mut cx: Option<&mut Context<'_>>, own: Option<Own>) -> bool {
        let Some(mut intake) = self.intake.take() else {
            return false;
        };
        let app = cx.is_none();
        self.activity.take();
        let now = Instant::now();
        if self.router.poll_timeout().is_some_and(|t| t <= now) {
            self.router.handle_timeout(now);
        }
        let mut took = false;
        while intake.pubs_open && (app || self.pending.len() < MAX_PENDING) {
            match intake
                .pubs
                .take(cx.as_deref_mut(), &mut intake.pub_batch, PUBS_PER_ROUND)
            {
                Took::Some(_) => {
                    took = true;
                    self.pending.extend(intake.pub_batch.drain(..).flatten());
                    if !app {
                        break;
                    }
                }
                Took::Nothing => break,
                Took::Closed => intake.pubs_open = false,
            }
        }
        self.catch_up();
        let limit = if app { usize::MAX } else { CMDS_PER_ROUND };
        match intake.cmds.take(cx, &mut intake.cmd_batch, limit) {
            Took::Some(_) => took = true,
            Took::Nothing => {}
            Took::Closed => intake.finished = true,
        }
        let mut cmds = std::mem::take(&mut intake.cmd_batch);
        for cmd in cmds.drain(..) {
            self.take_cmd(&mut intake, cmd);
        }
        intake.cmd_batch = cmds;
        match own {
            Some(Own::Publish(batch)) => self.pending.extend(batch),
            Some(Own::Handle(cmd)) => self.accept(cmd),
            None => {}
        }
        self.intake = Some(intake);
        took
    }

    /// The second half of a [`round`](Self::round): moves what the router wants done into
    /// links and subscribers, takes store output, releases pending publications as far as the
    /// peers have room, and advances a shutdown.
    pub(crate) fn finish_round(&mut self, cx: Option<&mut Context<'_>>, mut took: bool) -> Round {
        let Some(mut intake) = self.intake.take() else {
            return Round::default();
        };
        let now = Instant::now();
        self.flush();
        if intake.store_waiting.is_none() && intake.stores_open {
            let mut one = Vec::new();
            match intake.stores.take(cx, &mut one, 1) {
                Took::Some(_) => {
                    took = true;
                    intake.store_waiting = one.pop();
                }
                Took::Nothing => {}
                Took::Closed => intake.stores_open = false,
            }
        }
        if let Some(out) = intake.store_waiting.take() {
            // Store commands share the peers' room with publications.
            let high_water = (self.router.config().peer_buffer_size / 2).max(1);
            if self.budget() >= out.commands.len().min(high_water) {
                self.apply_store_output(out);
                self.flush();
            } else {
                intake.store_waiting = Some(out);
            }
        }
        self.publish_pending();
        self.shutdown_progress(&mut intake);
        let deadline = self.deadline(&intake, now);
        let needs_runtime =
            intake.finished || deadline.is_some_and(|d| intake.armed.is_none_or(|armed| d < armed));
        let finished = intake.finished;
        self.intake = Some(intake);
        self.activity.touch();
        Round {
            took,
            deadline,
            finished,
            needs_runtime,
        }
    }

    /// A command from the intake.
    fn take_cmd(&mut self, intake: &mut Intake, cmd: Cmd) {
        if let Cmd::Shutdown(done) = cmd {
            match &mut intake.shutdown {
                Some((waiting, _)) => waiting.push(done),
                None => {
                    // No new publications; those handed over before still go out, as fast as
                    // the peers take them, for at most SHUTDOWN_GRACE.
                    intake.pubs.close();
                    self.closing = true;
                    intake.shutdown = Some((vec![done], Instant::now() + SHUTDOWN_GRACE));
                }
            }
            return;
        }
        // Publications handed over before an unpeering go out first: a caller that publishes
        // and then unpeers must not lose what it published.
        // They are released as the peers take them (see `budget`); the unpeering waits.
        if matches!(cmd, Cmd::Unpeer { .. } | Cmd::LocalUnpeer { .. }) {
            while let Ok(items) = intake.pubs.try_recv() {
                self.pending.extend(items);
            }
            self.publish_pending();
            if !self.pending.is_empty() || !self.unpeers.is_empty() {
                self.unpeers.push_back(cmd);
                return;
            }
        }
        self.accept(cmd);
    }

    /// Releases pending publications into the router as far as the peers have room, and then,
    /// once none is pending, the unpeerings that waited for them.
    fn publish_pending(&mut self) {
        loop {
            let n = self.budget().min(self.pending.len());
            if n == 0 {
                break;
            }
            let run: Vec<_> = self.pending.drain(..n).collect();
            self.publish_runs(Instant::now(), run);
            self.flush();
        }
        if self.pending.is_empty() {
            while let Some(cmd) = self.unpeers.pop_front() {
                self.accept(cmd);
            }
        }
    }

    /// The shutdown's next step, if one is under way.
    fn shutdown_progress(&mut self, intake: &mut Intake) {
        let Some((_, until)) = &mut intake.shutdown else {
            return;
        };
        let now = Instant::now();
        let sent = !intake.pubs_open
            && self.pending.is_empty()
            && intake.store_waiting.is_none()
            && self.conns.keys().all(|p| {
                self.router
                    .peer_stats(*p)
                    .is_none_or(|stats| stats.queued == 0)
            });
        // Then, as Broker does, a BYE to every peer over a socket, behind whatever is still
        // queued for it; the peers answer and we close, each when its pong arrives (or all
        // after Broker's unpeer timeout).
        if !self.saying_goodbye && (sent || now >= *until) {
            self.say_goodbye();
            self.flush();
            *until = now + UNPEER_TIMEOUT;
        }
        let gone = self.saying_goodbye && !self.has_socket_peers();
        if gone || now >= *until {
            self.shutdown();
            if let Some((waiting, _)) = intake.shutdown.take() {
                for done in waiting {
                    let _ = done.send(());
                }
            }
            intake.finished = true;
        }
    }

    /// When the runtime thread must look again by itself: the router's timer (the sans-IO
    /// contract: `poll_timeout` is always armed); while publications or a store wait, now and
    /// then (a peer may have been stuck long enough to count as slow); often while shutting
    /// down or while a store's inbox is full.
    fn deadline(&self, intake: &Intake, now: Instant) -> Option<Instant> {
        let mut deadline = self.router.poll_timeout();
        let mut sooner = |t: Instant| deadline = Some(deadline.map_or(t, |d| d.min(t)));
        if !self.pending.is_empty() || intake.store_waiting.is_some() {
            sooner(now + SLOW_PEER_AFTER / 4);
        }
        // Publications left in the channel while `pending` was full: their senders are done
        // and will not ring again, so the next round must come by itself, at once.
        if self.pending.len() < MAX_PENDING && intake.pubs_open && !intake.pubs.is_empty() {
            sooner(now);
        }
        if intake.shutdown.is_some() {
            sooner(now + std::time::Duration::from_millis(2));
        }
        if self.behind() {
            sooner(now + std::time::Duration::from_millis(1));
        }
        deadline
    }

    fn apply_store_output(&mut self, out: StoreOutput) {
        for (topic, to, command) in out.commands {
            if let Some(r) = &mut self.recorder {
                r.command(&topic, &command.content);
            }
            let receiver = to.unwrap_or(EndpointId::NIL);
            self.router
                .publish_to(receiver, topic, Content::Command(command));
        }
        for (topic, data) in out.events {
            self.router
                .publish_local(topic, Content::Data(SharedData::from(data)));
        }
        for e in out.failures {
            self.broadcast_status(StatusEvent::Error {
                code: e.code,
                context: EndpointInfo {
                    id: self.id,
                    address: None,
                },
                message: e.message,
            });
        }
    }

    /// How many publications the peers can take now: the least room below half of any peer's
    /// buffer, ignoring peers that have been over that for `SLOW_PEER_AFTER` without taking
    /// anything from it (they are stuck: their buffer fills and their overflow policy decides).
    /// A peer that takes its messages slowly, say because a lossless subscriber behind it
    /// reads slowly, paces the publishers instead.
    pub(crate) fn budget(&mut self) -> usize {
        if self.subs_waiting > 0 {
            // A lossless subscriber has no room: local publishers wait for it too.
            return 0;
        }
        let high_water = (self.router.config().peer_buffer_size / 2).max(1);
        let now = Instant::now();
        let mut budget = usize::MAX;
        for (peer, c) in self.conns.iter_mut() {
            let (queued, left) = self
                .router
                .peer_stats(*peer)
                .map_or((0, 0), |s| (s.queued, s.taken));
            if queued < high_water {
                c.high_since = None;
                budget = budget.min(high_water - queued);
                continue;
            }
            match c.high_since {
                Some((since, before)) if before == left => {
                    if now.duration_since(since) < SLOW_PEER_AFTER {
                        return 0;
                    }
                }
                _ => {
                    c.high_since = Some((now, left));
                    return 0;
                }
            }
        }
        budget
    }

    /// Hands `item` to store `id`, behind whatever waits for a store already.
    fn give_store(&mut self, id: u64, item: StoreInbound) {
        if self.store_overflow.is_empty() {
            let Some(sink) = self.stores.get(&id) else {
                return;
            };
            match sink.try_send(item) {
                Ok(()) => return,
                // The store is gone: nothing to deliver to.
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(item)) => {
                    self.store_overflow.push_back((id, item));
                    return;
                }
            }
        }
        self.store_overflow.push_back((id, item));
    }

    /// Moves what waits for the stores into their inboxes as far as they have room; returns
    /// whether nothing waits any more.
    fn drain_store_overflow(&mut self) -> bool {
        while let Some((id, _)) = self.store_overflow.front() {
            let id = *id;
            let Some(sink) = self.stores.get(&id) else {
                self.store_overflow.pop_front();
                continue;
            };
            let Ok(permit) = sink.try_reserve() else {
                if sink.is_closed() {
                    self.store_overflow.pop_front();
                    continue;
                }
                return false;
            };
            if let Some((_, item)) = self.store_overflow.pop_front() {
                permit.send(item);
            }
        }
        true
    }

    /// Whether some store's inbox or lossless subscriber's queue is full and things wait for
    /// it.
    pub(crate) fn behind(&self) -> bool {
        !self.store_overflow.is_empty() || !self.deferred.is_empty() || self.subs_waiting > 0
    }

    /// Takes a command from the intake: a batch from a peer (and a peering's start or end)
    /// waits while the stores or subscribers are behind (so its reader stops reading and TCP
    /// pushes back, as for a busy core); anything else is handled at once.
    pub(crate) fn accept(&mut self, cmd: Cmd) {
        // A peer's batches and the ends and starts of peerings keep their order among
        // themselves (a connection's last messages before its close, its close before a new
        // one's admission).
        let of_a_peer = matches!(
            cmd,
            Cmd::Incoming { .. }
                | Cmd::ClientPublish { .. }
                | Cmd::Closed { .. }
                | Cmd::Handshaken { .. }
                | Cmd::LocalHandshaken { .. }
        );
        if of_a_peer && self.behind() {
            self.deferred.push_back(cmd);
            return;
        }
        self.handle(cmd);
    }

    /// Hands the stores and subscribers what waits for them and then handles the batches that
    /// waited, in order, as far as they keep up.
    pub(crate) fn catch_up(&mut self) {
        loop {
            if !self.drain_store_overflow() {
                return;
            }
            if self.subs_waiting > 0 {
                self.deliver();
                if self.subs_waiting > 0 {
                    return;
                }
            }
            let Some(cmd) = self.deferred.pop_front() else {
                return;
            };
            self.handle(cmd);
            self.flush();
        }
    }

    /// Sends a BYE ping to every peer over a socket (see the shutdown sequence in `run`).
    fn say_goodbye(&mut self) {
        self.saying_goodbye = true;
        let peers: Vec<EndpointId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.link, Link::Socket(_)) && c.bye.is_none())
            .map(|(p, _)| *p)
            .collect();
        for p in peers {
            let token = bye_token(self.next_bye);
            self.next_bye += 1;
            if let Some(c) = self.conns.get_mut(&p) {
                c.bye = Some(token.clone());
            }
            self.router.send_ping(p, token);
        }
    }

    fn has_socket_peers(&self) -> bool {
        self.conns
            .values()
            .any(|c| matches!(c.link, Link::Socket(_)))
    }

    fn shutdown(&mut self) {
        // Dropping the writers closes every connection; in-process peers are told directly.
        let peers: Vec<EndpointId> = self.conns.keys().copied().collect();
        for p in peers {
            if let Some(Conn {
                link: Link::Local {
                    core, remote_conn, ..
                },
                ..
            }) = self.conns.remove(&p)
            {
                let reason = Some("the peer shut down".to_owned());
                let _ = core.send(Cmd::Closed {
                    peer: self.id,
                    conn: remote_conn,
                    reason,
                });
            }
            self.router
                .remove_peer(Instant::now(), p, PeerLoss::Removed);
        }
        self.flush();
        // The stores' inboxes close: each store thread writes what it holds, closes its
        // backend and ends (the endpoint's shutdown waits for them).
        self.stores.clear();
        // Writes what the recording holds and waits for the disk.
        self.recorder = None;
    }

    /// Where commands to this core go (none once it is gone).
    pub(crate) fn sender(&self) -> Option<mpsc::UnboundedSender<Cmd>> {
        self.me.as_ref().and_then(|me| me.upgrade())
    }

    pub(crate) fn handle(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Subscribe {
                id,
                topics,
                queue,
                overflow,
                client,
            } => {
                queue.on_room(Waker::from(self.activity.clone()));
                self.clients += usize::from(client.is_some());
                let old = self.subs.insert(
                    id,
                    Sub {
                        queue,
                        overflow,
                        client,
                        waiting: None,
                        stuck_at: None,
                    },
                );
                self.clients -= usize::from(old.is_some_and(|o| o.client.is_some()));
                for t in topics {
                    self.note_topic(&t);
                    self.record_subscription(&t);
                    self.router.subscribe(id, t);
                }
            }
            Cmd::AddTopic { id, topic } => {
                self.note_topic(&topic);
                self.record_subscription(&topic);
                self.router.subscribe(id, topic)
            }
            Cmd::RemoveTopic { id, topic } => self.router.unsubscribe(id, &topic),
            Cmd::ClientPublish {
                origin,
                items,
                reader,
                weight,
            } => {
                self.publish_from_client(now, origin, items);
                reader.handled(weight);
            }
            Cmd::Count { id, topics, tally } => {
                self.counters.insert(id, tally);
                for t in topics {
                    self.note_topic(&t);
                    self.record_subscription(&t);
                    self.router.subscribe(id, t);
                }
            }
            Cmd::DropSubscriber(id) => {
                self.counters.remove(&id);
                let old = self.subs.remove(&id);
                self.clients -= usize::from(old.is_some_and(|o| o.client.is_some()));
                self.deliveries.remove(&id);
                self.router.remove_subscriber(id);
            }
            Cmd::StatusSubscribe {
                id,
                queue,
                statuses,
            } => {
                self.status_subs.insert(id, (queue, statuses));
            }
            Cmd::DropStatusSubscriber(id) => {
                self.status_subs.remove(&id);
            }
            Cmd::Forward(topics) => {
                for t in topics {
                    self.record_subscription(&t);
                    self.router.forward(t);
                }
            }
            Cmd::AnnouncedFilter { peer, reply } => {
                // Everything reachable through us, for either kind of peer: a routed peer uses
                // it until our link states arrive, so that it can publish at once.
                let _ = reply.send(self.router.announced_filter(peer));
            }
            Cmd::Handshaken {
                peer,
                kind,
                filter,
                announced,
                addr,
                outbound,
                conn,
                outbox,
                reply,
            } => {
                let c = Conn::new(conn, kind, Some(addr), outbound, Link::Socket(outbox));
                if self.admit(now, peer, filter, c, reply) {
                    // What changed since the handshake's filter was computed follows now.
                    self.router.announced_in_handshake(peer, announced);
                }
            }
            Cmd::LocalHandshaken {
                peer,
                filter,
                core,
                conn,
                remote_conn,
                in_flight,
                reply,
            } => {
                let link = Link::Local {
                    core,
                    remote_conn,
                    in_flight,
                };
                self.admit(
                    now,
                    peer,
                    filter,
                    Conn::new(conn, PeerKind::Routed, None, true, link),
                    reply,
                );
            }
            Cmd::LocalUnpeer { peer, reply } => {
                let found = matches!(
                    self.conns.get(&peer),
                    Some(Conn {
                        link: Link::Local { .. },
                        ..
                    })
                );
                if found {
                    if let Some(Conn {
                        link:
                            Link::Local {
                                core, remote_conn, ..
                            },
                        ..
                    }) = self.conns.remove(&peer)
                    {
                        let _ = core.send(Cmd::Closed {
                            peer: self.id,
                            conn: remote_conn,
                            reason: Some("the peer ended the peering".to_owned()),
                        });
                    }
                    self.router.remove_peer(now, peer, PeerLoss::Removed);
                }
                let _ = reply.send(found);
            }
            Cmd::Incoming {
                peer,
                conn,
                msgs,
                ack,
                reader,
            } => {
                if let Some(reader) = reader {
                    reader.handled(crate::inflight::weight(&msgs));
                }
                if let Some(LocalAck { core, in_flight }) = ack {
                    in_flight.fetch_sub(msgs.iter().map(Message::count).sum(), Ordering::AcqRel);
                    if let Some(tx) = core.upgrade() {
                        let _ = tx.send(Cmd::Writable);
                    }
                }
                if self.conns.get(&peer).is_some_and(|c| c.id == conn) {
                    let conns = &mut self.conns;
                    // One batch: a burst of link states rebuilds the graph once.
                    self.router.handle_messages(
                        now,
                        peer,
                        msgs.into_iter().inspect(|m| {
                            if matches!(m, Message::Ping(b) if b.starts_with(b"BYE")) {
                                if let Some(c) = conns.get_mut(&peer) {
                                    c.leaving = true;
                                }
                            }
                        }),
                    );
                }
            }
            Cmd::Closed { peer, conn, reason } => {
                if let Some(c) = self.conns.get(&peer).filter(|c| c.id == conn) {
                    // Broker's rule: the side that ends a peering (our BYE) reports
                    // peer_removed, the other side peer_lost, even after the peer's BYE.
                    let loss = if c.bye.is_some() {
                        PeerLoss::Removed
                    } else if c.leaving {
                        PeerLoss::Lost("the peer ended the peering".into())
                    } else {
                        PeerLoss::Lost(reason.unwrap_or_else(|| "connection closed".into()))
                    };
                    self.conns.remove(&peer);
                    self.aliases.retain(|_, p| *p != peer);
                    self.router.remove_peer(now, peer, loss);
                }
            }
            Cmd::ConnectionError {
                code,
                addr,
                peer,
                message,
            } => {
                let address =
                    addr.or_else(|| peer.and_then(|p| self.conns.get(&p)).and_then(|c| c.addr));
                let context = EndpointInfo {
                    id: peer.unwrap_or(EndpointId::NIL),
                    address,
                };
                self.broadcast_status(StatusEvent::Error {
                    code,
                    context,
                    message,
                });
            }
            Cmd::Writable => {}
            Cmd::Alias { peer, addr } => {
                self.aliases.insert(addr, peer);
            }
            Cmd::Unpeer { addr, reply } => {
                let peer = self
                    .conns
                    .iter()
                    .find(|(_, c)| c.addr == Some(addr))
                    .map(|(p, _)| *p)
                    .or_else(|| {
                        self.aliases
                            .remove(&addr)
                            .filter(|p| self.conns.contains_key(p))
                    });
                match peer {
                    Some(p) => {
                        // Graceful: a BYE ping; the connection closes when its pong arrives.
                        let token = bye_token(self.next_bye);
                        self.next_bye += 1;
                        if let Some(c) = self.conns.get_mut(&p) {
                            c.bye = Some(token.clone());
                        }
                        // Through the router, so that it follows everything sent before.
                        self.router.send_ping(p, token);
                        let _ = reply.send(true);
                    }
                    None => {
                        let _ = reply.send(false);
                    }
                }
            }
            Cmd::PeerSubscriptions(reply) => {
                let _ = reply.send(self.router.peer_subscriptions());
            }
            Cmd::Peers(reply) => {
                let peers = self
                    .conns
                    .iter()
                    .map(|(id, c)| PeerInfo {
                        id: Some(*id),
                        address: c.addr,
                        outbound: c.outbound,
                        state: PeerState::Peered,
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Cmd::Metrics(reply) => {
                let peers = self
                    .conns
                    .iter()
                    .filter_map(|(id, c)| {
                        self.router.peer_stats(*id).map(|s| PeerMetrics {
                            id: *id,
                            address: c.addr,
                            received: s.received,
                            sent: s.sent,
                            dropped: s.dropped,
                            queued: s.queued,
                            buffer_size: self.router.config().peer_buffer_size,
                        })
                    })
                    .collect();
                let subscribers = self
                    .subs
                    .values()
                    .map(|s| (s.queue.len(), s.queue.dropped()))
                    .collect();
                let _ = reply.send(Metrics {
                    router: self.router.stats().clone(),
                    peers,
                    subscribers,
                    read_while_waiting: self.read_while_waiting,
                    subscriber_waits: self.sub_counts.waits,
                    stuck_subscribers: self.sub_counts.stuck,
                    spins_skipped: self.activity.governor.skipped()
                        + self
                            .subs
                            .values()
                            .map(|s| s.queue.spins_skipped())
                            .sum::<u64>(),
                    link_states: self.router.known_endpoints().len(),
                    refused_connections: 0,
                    web_socket_clients: self.clients,
                    web_socket_overflows: self.sub_counts.client_overflows,
                    recorded: self
                        .recorder
                        .as_ref()
                        .map_or(0, |r| r.stats().recorded.load(Ordering::Relaxed)),
                    recording_errors: self
                        .recorder
                        .as_ref()
                        .map_or(0, |r| r.stats().errors.load(Ordering::Relaxed)),
                });
            }
            Cmd::Topology(reply) => {
                let links = self.router.links();
                let mut nodes: std::collections::BTreeSet<EndpointId> =
                    self.router.known_endpoints().into_iter().collect();
                nodes.insert(self.id);
                nodes.extend(links.iter().flat_map(|(a, b)| [*a, *b]));
                let _ = reply.send(crate::cmd::TopologySnapshot {
                    nodes,
                    links,
                    local_topics: self.router.local_topics().into_iter().collect(),
                    peer_topics: self.router.peer_subscriptions(),
                });
            }
            Cmd::Shutdown(_) => {}
            Cmd::AttachStore {
                id,
                name,
                master,
                sink,
                reply,
            } => {
                let topic = if master {
                    broker_store::master_topic(&name)
                } else {
                    broker_store::clone_topic(&name)
                };
                if master {
                    let elsewhere = self.router.subscribed_exactly(&topic);
                    if self.masters.contains_key(&name) || !elsewhere.is_empty() {
                        let at = match elsewhere.first() {
                            Some(e) => format!("endpoint {e}"),
                            None => "this endpoint".to_owned(),
                        };
                        let _ = reply.send(Err(Error::new(
                            ErrorCode::MasterExists,
                            format!("a master for store {name:?} exists at {at}"),
                        )));
                        return;
                    }
                    self.masters.insert(name, id);
                }
                self.stores.insert(id, sink);
                self.record_subscription(&topic);
                self.router.subscribe(id, topic);
                let _ = reply.send(Ok(()));
            }
            Cmd::DetachStore { id, name } => {
                self.stores.remove(&id);
                if self.masters.get(&name) == Some(&id) {
                    self.masters.remove(&name);
                }
                self.router.remove_subscriber(id);
            }
        }
    }

    /// Moves what the router wants sent into the writers (as far as they have room; the rest
    /// waits in the router's per-peer buffers) and what it wants done into subscribers.
    pub(crate) fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(ev) = self.router.poll_event() {
                progressed = true;
                self.on_event(ev);
            }
            let mut peers = std::mem::take(&mut self.peer_ids);
            peers.extend(self.conns.keys().copied());
            for peer in peers.drain(..) {
                progressed |= self.flush_peer(peer);
            }
            self.peer_ids = peers;
            if !progressed {
                break;
            }
        }
        self.deliver();
    }

    /// Hands the collected deliveries to the subscribers' queues (as far as lossless ones have
    /// room) and counts the subscribers that wait for room.
    fn deliver(&mut self) {
        let mut now = None;
        let mut waiting = 0;
        for (id, batch) in self.deliveries.iter_mut() {
            if batch.is_empty() {
                continue;
            }
            match self.subs.get_mut(id) {
                Some(sub) => {
                    waiting += usize::from(sub.deliver(batch, &mut now, &mut self.sub_counts))
                }
                None => batch.clear(),
            }
        }
        self.subs_waiting = waiting;
    }

    /// Hands publications to the router, consecutive ones on the same topic as one batch
    /// (routed once, delivered and forwarded as one, encoded as one frame per value).
    pub(crate) fn publish_runs(&mut self, now: Instant, items: Vec<(Topic, SharedData)>) {
        let mut run: Option<(Topic, Vec<SharedData>)> = None;
        for (topic, data) in items {
            match &mut run {
                Some((t, values)) if *t == topic && values.len() < MAX_BATCH => values.push(data),
                _ => {
                    if let Some((t, values)) = run.take() {
                        self.publish_run(now, t, values);
                    }
                    run = Some((topic, vec![data]));
                }
            }
        }
        if let Some((t, values)) = run {
            self.publish_run(now, t, values);
        }
    }

    fn publish_run(&mut self, now: Instant, topic: Topic, mut values: Vec<SharedData>) {
        if let Some(r) = &mut self.recorder {
            r.data(&topic, values.iter().map(|v| &**v));
        }
        if self.clients > 0 {
            // WebSocket clients hear this endpoint's publications (its own subscribers do not).
            self.deliver_locally(&topic, &values, |_, sub| sub.client.is_some());
        }
        let content = match (values.len(), values.pop()) {
            (1, Some(one)) => Content::Data(one),
            (_, Some(last)) => {
                values.push(last);
                Content::Batch(Arc::new(values))
            }
            (_, None) => return,
        };
        self.router.publish(now, topic, content);
    }

    /// Routes a WebSocket client's publications: to the peers as this endpoint's own, and to
    /// every local subscriber but the client itself.
    fn publish_from_client(&mut self, now: Instant, origin: u64, items: Publications) {
        let mut run: Vec<SharedData> = Vec::new();
        let mut items = items.into_iter().peekable();
        while let Some((topic, data)) = items.next() {
            run.push(data);
            if items.peek().is_some_and(|(t, _)| *t == topic) && run.len() < MAX_BATCH {
                continue;
            }
            let values = std::mem::take(&mut run);
            if let Some(r) = &mut self.recorder {
                r.data(&topic, values.iter().map(|v| &**v));
            }
            self.deliver_locally(&topic, &values, |id, _| id != origin);
            let content = if values.len() == 1 {
                Content::Data(values.into_iter().next().unwrap_or_default())
            } else {
                Content::Batch(Arc::new(values))
            };
            self.router.publish(now, topic, content);
        }
    }

    /// Adds `values` on `topic` to the deliveries of the matching local subscribers that
    /// `wanted` picks.
    fn deliver_locally(
        &mut self,
        topic: &Topic,
        values: &[SharedData],
        wanted: impl Fn(u64, &Sub) -> bool,
    ) {
        let Some(subscribers) = self.router.local_subscribers(topic) else {
            return;
        };
        for s in subscribers.iter() {
            if self.subs.get(s).is_some_and(|sub| wanted(*s, sub)) {
                let batch = self.deliveries.entry(*s).or_default();
                batch.extend(values.iter().map(|data| DataMessage {
                    topic: topic.clone(),
                    data: data.clone(),
                }));
            }
        }
    }

    /// Moves what the router holds for `peer` onto its link, as far as the link has room.
    /// Returns whether anything moved.
    fn flush_peer(&mut self, peer: EndpointId) -> bool {
        let Some(c) = self.conns.get(&peer) else {
            return false;
        };
        let kind = c.kind;
        let mut progressed = false;
        match &c.link {
            Link::Socket(outbox) => {
                while outbox.has_room() {
                    let mut buf = BytesMut::with_capacity(1024);
                    let mut n = 0;
                    while n < CHUNK_MESSAGES {
                        let Some(m) = self.router.poll_transmit_for(peer) else {
                            break;
                        };
                        encode_message(&mut buf, self.id, peer, kind, &m);
                        n += m.count();
                    }
                    if n == 0 {
                        break;
                    }
                    progressed = true;
                    if !outbox.send(buf.freeze()) {
                        break;
                    }
                }
                // Ask the writer to report room; if it made some meanwhile, go on now.
                if !outbox.has_room() && outbox.want_room() {
                    progressed = true;
                }
            }
            Link::Local {
                core,
                remote_conn,
                in_flight,
            } => {
                let (core, remote_conn, in_flight) =
                    (core.clone(), *remote_conn, in_flight.clone());
                let capacity = LOCAL_IN_FLIGHT;
                loop {
                    let room = capacity
                        .saturating_sub(in_flight.load(Ordering::Acquire))
                        .min(CHUNK_MESSAGES);
                    // Messages (batches by their length) up to the room left.
                    let mut msgs: Vec<Message> = Vec::new();
                    let mut taken = 0;
                    while taken < room {
                        let Some(m) = self.router.poll_transmit_for(peer) else {
                            break;
                        };
                        taken += m.count();
                        msgs.push(m);
                    }
                    if msgs.is_empty() {
                        break;
                    }
                    progressed = true;
                    in_flight.fetch_add(taken, Ordering::AcqRel);
                    let ack = self.me.clone().map(|core| LocalAck {
                        core,
                        in_flight: in_flight.clone(),
                    });
                    if core
                        .send(Cmd::Incoming {
                            peer: self.id,
                            conn: remote_conn,
                            msgs,
                            ack,
                            reader: None,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        progressed
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Deliver {
                subscribers,
                publication,
            } => {
                if !self.counters.is_empty() {
                    let n = publication.count() as u64;
                    let commands = matches!(publication.content, Content::Command(_));
                    for s in subscribers.iter() {
                        if let Some(t) = self.counters.get(s) {
                            t.add(publication.sender, n, commands);
                        }
                    }
                }
                let Publication { topic, content, .. } = publication;
                let data = match content {
                    Content::Data(data) => data,
                    Content::Batch(values) => {
                        for s in subscribers.iter() {
                            if self.subs.contains_key(s) {
                                let batch = self.deliveries.entry(*s).or_default();
                                batch.reserve(values.len());
                                batch.extend(values.iter().map(|data| DataMessage {
                                    topic: topic.clone(),
                                    data: data.clone(),
                                }));
                            }
                        }
                        return;
                    }
                    Content::Command(c) => {
                        for s in subscribers.iter() {
                            if self.stores.contains_key(s) {
                                self.give_store(*s, StoreInbound::Command(c.clone()));
                            }
                        }
                        return;
                    }
                };
                for s in subscribers.iter() {
                    if self.subs.contains_key(s) {
                        self.deliveries.entry(*s).or_default().push(DataMessage {
                            topic: topic.clone(),
                            data: data.clone(),
                        });
                    }
                }
            }
            Event::Status {
                code,
                endpoint,
                message,
            } => {
                if code == StatusCode::PeerAdded {
                    if let Some(r) = &mut self.recorder {
                        r.peer(endpoint);
                    }
                }
                let note = match code {
                    StatusCode::PeerAdded | StatusCode::EndpointDiscovered => {
                        Some(StoreInbound::Poke)
                    }
                    StatusCode::PeerLost
                    | StatusCode::PeerRemoved
                    | StatusCode::EndpointUnreachable => Some(StoreInbound::Unreachable(endpoint)),
                    _ => None,
                };
                if let Some(note) = note {
                    let ids: Vec<u64> = self.stores.keys().copied().collect();
                    for id in ids {
                        self.give_store(
                            id,
                            match &note {
                                StoreInbound::Poke => StoreInbound::Poke,
                                StoreInbound::Unreachable(e) => StoreInbound::Unreachable(*e),
                                StoreInbound::Command(c) => StoreInbound::Command(c.clone()),
                            },
                        );
                    }
                }
                let address = self.conns.get(&endpoint).and_then(|c| c.addr);
                let context = EndpointInfo {
                    id: endpoint,
                    address,
                };
                self.broadcast_status(StatusEvent::Status {
                    code,
                    context,
                    message,
                });
            }
            Event::Error {
                code,
                endpoint,
                message,
            } => {
                let context = EndpointInfo {
                    id: endpoint,
                    address: None,
                };
                self.broadcast_status(StatusEvent::Error {
                    code,
                    context,
                    message,
                });
            }
            Event::SubscriptionsChanged { .. } => {
                // A master that appeared a moment ago may be what a clone's first request
                // missed: clones ask again now rather than at their next resync (10 s).
                let clones: Vec<u64> = self
                    .stores
                    .keys()
                    .filter(|id| !self.masters.values().any(|m| m == *id))
                    .copied()
                    .collect();
                for id in clones {
                    self.give_store(id, StoreInbound::Poke);
                }
            }
            Event::Disconnect { peer, reason } => {
                // The router already reported peer_removed with the reason; close the socket.
                self.conns.remove(&peer);
                tracing::warn!(%peer, %reason, "disconnecting peer");
            }
            Event::Pong { peer, payload } => {
                let done = self
                    .conns
                    .get(&peer)
                    .is_some_and(|c| c.bye.as_ref() == Some(&payload));
                if done {
                    self.conns.remove(&peer);
                    self.router
                        .remove_peer(Instant::now(), peer, PeerLoss::Removed);
                }
            }
            Event::Overflow { peer, dropped } => {
                let context = EndpointInfo {
                    id: peer,
                    address: self.conns.get(&peer).and_then(|c| c.addr),
                };
                self.broadcast_status(StatusEvent::Error {
                    code: ErrorCode::Unspecified,
                    context,
                    message: format!(
                        "backpressure overflow: {dropped} messages dropped for this peer"
                    ),
                });
            }
        }
    }

    fn broadcast_status(&self, ev: StatusEvent) {
        let is_status =
            matches!(ev, StatusEvent::Status { code, .. } if code != StatusCode::Unspecified);
        for (q, statuses) in self.status_subs.values() {
            if !is_status || *statuses {
                q.push_all([ev.clone()]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_data::Data;
    use broker_routing::Config as RouterConfig;
    use broker_wire::{Command, EntityId};

    /// Peers `core` with `peer` in process (connection 5), and flushes.
    fn peer_in_process(core: &mut Core, peer: EndpointId) {
        let (peer_core, _peer_rx) = mpsc::unbounded_channel();
        let (reply, _) = oneshot::channel();
        core.handle(Cmd::LocalHandshaken {
            peer,
            filter: vec![],
            core: peer_core,
            conn: 5,
            remote_conn: 6,
            in_flight: Arc::default(),
            reply,
        });
        core.flush();
    }

    #[test]
    fn batches_from_peers_wait_while_a_store_is_behind_and_nothing_is_lost() {
        let me = EndpointId::from_bytes([1; 16]);
        let peer = EndpointId::from_bytes([2; 16]);
        let mut core = Core::new(Router::new(me, 1, RouterConfig::default()));
        // A store whose inbox holds two commands.
        let (sink, mut store) = mpsc::channel(2);
        let (reply, _) = oneshot::channel();
        core.handle(Cmd::AttachStore {
            id: 7,
            name: "s".into(),
            master: true,
            sink,
            reply,
        });
        peer_in_process(&mut core, peer);
        // (The new peer's statuses reached the store first.)
        while let Ok(note) = store.try_recv() {
            assert!(matches!(note, StoreInbound::Poke));
        }
        let batch = |n: u64| Cmd::Incoming {
            peer,
            conn: 5,
            msgs: vec![Message::Publication(Publication {
                sender: peer,
                receiver: EndpointId::NIL,
                origin: peer,
                seq: n,
                ttl: 20,
                topic: broker_store::master_topic("s"),
                content: Content::Command(Arc::new(broker_wire::InternalCommand {
                    seq: n,
                    sender: EntityId {
                        endpoint: peer,
                        object: 1,
                    },
                    receiver: EntityId::NIL,
                    content: Command::Clear {
                        publisher: EntityId::NIL,
                    },
                })),
            })],
            ack: None,
            reader: None,
        };
        for n in 1..=5 {
            core.accept(batch(n));
            core.flush();
        }
        // Two in the inbox, one waiting for room, two batches not handled yet.
        assert_eq!(core.store_overflow.len(), 1);
        assert_eq!(core.deferred.len(), 2);
        assert!(core.behind());
        // The store catches up step by step; every command arrives once, in order.
        let mut got = Vec::new();
        while got.len() < 5 {
            while let Ok(StoreInbound::Command(c)) = store.try_recv() {
                got.push(c.seq);
            }
            core.catch_up();
        }
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert!(!core.behind());
    }

    /// A core with a peer `[2; 16]` (in process) and a lossless subscriber (id 9, topic
    /// `/t`) whose queue holds three messages; and a batch of two messages from the peer.
    fn core_with_a_small_lossless_subscriber(
    ) -> (Core, Arc<Queue<DataMessage>>, impl Fn(i64) -> Cmd) {
        let me = EndpointId::from_bytes([1; 16]);
        let peer = EndpointId::from_bytes([2; 16]);
        let mut core = Core::new(Router::new(me, 1, RouterConfig::default()));
        let queue = Arc::new(Queue::new(3, std::time::Duration::ZERO).unwrap());
        core.handle(Cmd::Subscribe {
            id: 9,
            topics: vec![Topic::new("/t").unwrap()],
            queue: queue.clone(),
            overflow: SubscriberOverflow::Block,
            client: None,
        });
        peer_in_process(&mut core, peer);
        let batch = move |n: i64| Cmd::Incoming {
            peer,
            conn: 5,
            msgs: vec![Message::Publication(Publication {
                sender: peer,
                receiver: EndpointId::NIL,
                origin: peer,
                seq: 2 * n as u64 + 1,
                ttl: 20,
                topic: Topic::new("/t").unwrap(),
                content: Content::Batch(Arc::new(vec![
                    SharedData::from(Data::Integer(2 * n)),
                    SharedData::from(Data::Integer(2 * n + 1)),
                ])),
            })],
            ack: None,
            reader: None,
        };
        (core, queue, batch)
    }

    fn ints(msgs: Vec<DataMessage>) -> Vec<i64> {
        msgs.iter()
            .map(|m| match *m.data {
                Data::Integer(i) => i,
                ref other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_full_lossless_subscriber_holds_back_peers_and_publishers_and_loses_nothing() {
        let (mut core, queue, batch) = core_with_a_small_lossless_subscriber();
        for n in 0..5 {
            core.accept(batch(n));
            core.flush();
        }
        // Three in the queue, one waiting for room, three batches not handled yet.
        assert_eq!(queue.len(), 3);
        assert_eq!(core.deliveries[&9].len(), 1);
        assert_eq!(core.deferred.len(), 3);
        assert!(core.behind());
        assert_eq!(core.budget(), 0, "local publishers wait too");
        let mut got = Vec::new();
        while got.len() < 10 {
            got.extend(ints(queue.take(2, None)));
            core.catch_up();
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(queue.dropped(), 0);
        assert!(!core.behind());
        assert!(core.budget() > 0);
        assert!(core.sub_counts.waits >= 1);
        assert_eq!(core.sub_counts.stuck, 0);
    }

    #[test]
    fn a_stuck_lossless_subscriber_drops_its_oldest_until_it_reads_again() {
        let (mut core, queue, batch) = core_with_a_small_lossless_subscriber();
        core.accept(batch(0));
        core.accept(batch(1));
        core.flush();
        assert!(core.behind());
        // Nothing taken for longer than the limit: the subscriber counts as stuck.
        let sub = core.subs.get_mut(&9).unwrap();
        let (_, taken) = sub.waiting.unwrap();
        sub.waiting = Some((Instant::now() - STUCK_SUBSCRIBER_AFTER, taken));
        core.catch_up();
        assert!(!core.behind(), "the rest went in, the oldest out");
        assert_eq!(queue.dropped(), 1);
        assert_eq!((core.sub_counts.waits, core.sub_counts.stuck), (1, 1));
        core.accept(batch(2));
        core.flush();
        assert!(!core.behind(), "still stuck: it keeps dropping");
        assert_eq!(queue.dropped(), 3);
        // It reads again: lossless again.
        assert_eq!(ints(queue.take_all()), [3, 4, 5]);
        core.accept(batch(3));
        core.accept(batch(4));
        core.flush();
        assert!(core.behind());
        assert_eq!(queue.dropped(), 3);
        assert_eq!(ints(queue.take_all()), [6, 7, 8]);
        core.catch_up();
        assert_eq!(ints(queue.take_all()), [9]);
    }
}
