//! The one rule for who drives the core, and the one module that takes more than one lock.
//!
//! **The rule: everything reaches the core through its intake, in order, and whoever holds the
//! core's lock drains it.** Nobody waits for that lock. The runtime thread's task loop
//! (`Core::run`) takes it whenever its doorbell rings; an application thread that brings work
//! (a publisher, a subscriber that waits and has read a socket) may take it with `try_lock`
//! and run the round itself: it first takes everything queued before its own work, so its own
//! work overtakes nothing, and it writes onto the sockets as the runtime thread would (see
//! `outbox`). Whoever finds the lock held leaves its work in the intake; the holder, as it
//! lets go, passes on any ring that came meanwhile, so nothing waits unseen. Order thus
//! follows from the queues alone: the fast paths decide *who* runs a round, never *what order*
//! things happen in, and with `Configuration::fast_paths` off only the runtime thread runs
//! rounds.
//!
//! Policy, not order: a waiting subscriber runs the round whenever the lock is free; a
//! publisher only when its publication follows a pause (`STREAM_GAP_NS` since the endpoint's
//! previous one). A lone publication then leaves from the publisher's thread without a
//! hand-over (a wake-up of tens of microseconds when the runtime thread sleeps); a stream goes
//! through the intake, where the runtime thread takes it in batches, one write for many: a
//! round per publication costs five times the throughput of `publish` called in a loop
//! (docs/performance.md). Time is the only sign that tells the two apart on one thread (the
//! runtime thread's being awake is not: ping-pong then costs a hand-over per message, measured
//! 32 µs against 22 µs). Getting it wrong costs speed, never order.
//!
//! # Lock table
//!
//! | lock | who takes it | what it protects | what may already be held |
//! |---|---|---|---|
//! | `Shared::core` (the core's mutex) | the runtime thread (`Core::run`); a publisher (`publish_now`); a waiting subscriber (`read_now`) — all with `try_lock` | the router, the intake, peers' outboxes, subscriber and store queues (`Core`) | nothing |
//! | an `Inbox`'s state | the connection's reader task; a waiting subscriber inside `read_now` | the socket's read half, its buffer and frame decoder | the core's mutex (subscriber), nothing (reader task) |
//! | a `Pipe`'s wire (`outbox`) | whoever holds the core's mutex (`Outbox::send`); the connection's writer task | the socket's write half and the queue of chunks in front of it | the core's mutex (and a waiting subscriber's inbox), nothing (writer task) |
//!
//! Leaf locks, each taken alone for a moment and never while taking another: a queue's state
//! (`queue`), the doorbell's waker slot (`spin::Activity`), a reader's resume slot
//! (`inflight`), the handshake's claims and the endpoint's dialers and local stores.
//!
//! Order: core → inbox → wire, checked in debug builds (`order`). The reader task takes an
//! inbox's lock without the core's and then only sends to the intake; the writer task takes
//! a wire alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::cmd::Publications;
use crate::core::{Core, Driver, Own, MAX_PENDING};
use crate::inbox::Inbox;
use crate::order::{Ordered, Rank};
use crate::spin::Activity;

/// The core's state behind its lock, and how an application thread drives it (see the
/// module's documentation).
pub(crate) struct Shared {
    core: Mutex<Core>,
    /// The core's doorbell.
    activity: Arc<Activity>,
    /// The endpoint's runtime: a round may start tasks (a dial, a store), also on an
    /// application thread.
    runtime: tokio::runtime::Handle,
    /// Whether application threads drive the core (`Configuration::fast_paths`).
    fast: bool,
    /// When the last publication came, in nanoseconds since `epoch` (offset by the gap, so
    /// that the first one counts as after a pause).
    last: AtomicU64,
    epoch: Instant,
    /// `STREAM_GAP_NS` (tests lengthen it, so that "right after" holds on a slow machine).
    gap: u64,
}

/// Publications closer together than this count as a stream, which the runtime thread takes
/// in batches (one write for many) instead of one round per publication.
const STREAM_GAP_NS: u64 = 10_000;

impl Shared {
    pub(crate) fn new(core: Core, fast: bool, runtime: tokio::runtime::Handle) -> Arc<Shared> {
        Arc::new(Shared {
            activity: core.activity(),
            core: Mutex::new(core),
            runtime,
            fast,
            last: AtomicU64::new(0),
            epoch: Instant::now(),
            gap: STREAM_GAP_NS,
        })
    }

    /// The core's state, waiting for its lock (tests, and nothing on a hot path).
    #[cfg(test)]
    fn lock(&self) -> Ordered<MutexGuard<'_, Core>> {
        Ordered::new(
            Rank::Core,
            self.core.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Whether this publication comes after a pause (`STREAM_GAP` since the previous one);
    /// records it.
    fn after_a_pause(&self) -> bool {
        let now = self.epoch.elapsed().as_nanos() as u64 + self.gap;
        let before = self.last.swap(now, Ordering::Relaxed);
        now.saturating_sub(before) >= self.gap
    }

    /// The core's lock if it is free at once (nobody waits for it).
    fn try_lock(&self) -> Option<Ordered<MutexGuard<'_, Core>>> {
        // The core's state stays consistent between commands; a panic in one (a bug) must not
        // stop the endpoint from shutting down cleanly.
        let guard = match self.core.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(Ordered::new(Rank::Core, guard))
    }

    /// Runs a round on this application thread with `own` work (see the module's
    /// documentation), with the core already locked.
    fn drive(&self, mut core: Ordered<MutexGuard<'_, Core>>, own: Own) {
        self.activity.drive_begin();
        let _runtime = self.runtime.enter();
        let round = core.round(None, Some(own));
        drop(core);
        self.activity.drive_end(round.needs_runtime);
    }

    /// Publishes `batch` on this thread, if the fast paths are on, the core's lock is free
    /// and the core holds room for it. Otherwise hands the batch
    /// back: the caller puts it into the intake.
    pub(crate) fn publish_now(&self, batch: Publications) -> Option<Publications> {
        if !self.fast || !self.after_a_pause() {
            return Some(batch);
        }
        let Some(core) = self.try_lock() else {
            return Some(batch);
        };
        if core.closing || core.pending.len() >= MAX_PENDING {
            return Some(batch);
        }
        self.drive(core, Own::Publish(batch));
        None
    }

    /// Whether the fast paths are on (application threads may run the core's round).
    pub(crate) fn fast(&self) -> bool {
        self.fast
    }

    /// From a subscriber's thread that waits for messages: reads what `inbox`'s socket holds
    /// and, if it found messages, runs a round with them (see `inbox`). Returns whether it
    /// found messages.
    pub(crate) fn read_now(&self, inbox: &Inbox) -> bool {
        if !self.fast {
            return false;
        }
        let Some(mut core) = self.try_lock() else {
            return false;
        };
        if core.closing {
            return false;
        }
        let _runtime = self.runtime.enter();
        let mut took = None;
        let found = inbox.read_now(&mut core, |core, batch| {
            self.activity.drive_begin();
            took = Some(core.take_in(None, Some(Own::Handle(batch))));
        });
        // The batch is in order now: the rest of the round runs without the inbox's lock, so
        // that the reader task does not wait for it.
        if let Some(took) = took {
            core.read_while_waiting += 1;
            let round = core.finish_round(None, took);
            drop(core);
            self.activity.drive_end(round.needs_runtime);
        }
        found
    }
}

impl Driver for Shared {
    fn try_lock(&self) -> Option<Ordered<MutexGuard<'_, Core>>> {
        Shared::try_lock(self)
    }

    fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{Cmd, StoreOutput};
    use crate::intake::Intake;
    use crate::outbox::{Outbox, Pipe};
    use crate::queue::Queue;
    use crate::types::DataMessage;
    use broker_data::{Data, SharedData};
    use broker_routing::{Config as RouterConfig, PeerKind, Router};
    use broker_wire::{encode_frame, Envelope, Limits, Payload};
    use broker_wire::{EndpointId, Topic};
    use bytes::BytesMut;
    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc;

    const PEER: EndpointId = EndpointId::from_bytes([2; 16]);

    fn one(i: u64) -> Publications {
        vec![(Topic::new("/t").unwrap(), SharedData::from(Data::Count(i)))]
    }

    /// An endpoint's core without its task loop: the test plays the runtime thread.
    struct Rig {
        rt: tokio::runtime::Runtime,
        shared: Arc<Shared>,
        cmds: mpsc::UnboundedSender<Cmd>,
        pubs: mpsc::Sender<Publications>,
        _stores: mpsc::Sender<StoreOutput>,
        /// A local subscriber to `/t`.
        sub: Arc<Queue<DataMessage>>,
    }

    impl Rig {
        fn new(fast: bool) -> Rig {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (cmds, rx) = mpsc::unbounded_channel();
            let (pubs, prx) = mpsc::channel(8);
            let (stores, srx) = mpsc::channel(8);
            let router = Router::new(EndpointId::from_bytes([1; 16]), 1, RouterConfig::default());
            let core = Core::new(router)
                .with_sender(&cmds)
                .with_intake(Intake::new(rx, prx, srx));
            let mut shared = Shared::new(core, fast, rt.handle().clone());
            Arc::get_mut(&mut shared).unwrap().gap = 60_000_000_000;
            let sub = Arc::new(Queue::new(100, std::time::Duration::ZERO).unwrap());
            shared.lock().handle(Cmd::Subscribe {
                id: 1,
                topics: vec![Topic::new("/t").unwrap()],
                queue: sub.clone(),
                overflow: crate::SubscriberOverflow::Block,
                client: None,
            });
            Rig {
                rt,
                shared,
                cmds,
                pubs,
                _stores: stores,
                sub,
            }
        }

        /// What the subscriber got, as counts.
        fn got(&self) -> Vec<u64> {
            self.sub
                .take_all()
                .iter()
                .map(|m| match *m.data {
                    Data::Count(n) => n,
                    ref other => panic!("unexpected {other:?}"),
                })
                .collect()
        }

        /// The command that makes `PEER` a peer over connection 1, subscribed to `/t`, with
        /// the far end of its outgoing side.
        fn handshaken(&self) -> (Cmd, tokio::io::DuplexStream) {
            let (reply, _) = tokio::sync::oneshot::channel();
            let (ours, theirs) = tokio::io::duplex(1 << 16);
            let pipe = Arc::new(Pipe::default());
            pipe.attach(Box::pin(ours));
            let cmd = Cmd::Handshaken {
                peer: PEER,
                kind: PeerKind::Broker,
                filter: vec![Topic::new("/t").unwrap()],
                announced: vec![],
                addr: "127.0.0.1:1".parse().unwrap(),
                outbound: true,
                conn: 1,
                outbox: Outbox::new(pipe, true),
                reply,
            };
            (cmd, theirs)
        }

        /// Makes `PEER` a peer (see [`handshaken`](Self::handshaken)).
        fn peer(&self) -> tokio::io::DuplexStream {
            let (cmd, theirs) = self.handshaken();
            let _rt = self.rt.enter();
            self.shared.lock().handle(cmd);
            theirs
        }

        /// The counts published to `PEER` so far, from the far end of its socket.
        fn sent(&self, theirs: &mut tokio::io::DuplexStream) -> Vec<u64> {
            use tokio::io::AsyncReadExt;
            let mut buf = BytesMut::new();
            let wait = std::time::Duration::from_millis(200);
            while let Ok(Ok(n)) = self
                .rt
                .block_on(async { tokio::time::timeout(wait, theirs.read_buf(&mut buf)).await })
            {
                if n == 0 {
                    break;
                }
            }
            let mut frames = broker_wire::FrameDecoder::new(1 << 20);
            let mut out = Vec::new();
            while let Some(frame) = frames.decode(&mut buf).unwrap() {
                let env = Envelope::decode(&frame, &Limits::default()).unwrap();
                if let Payload::Data(Data::Count(n)) = env.payload {
                    out.push(n);
                }
            }
            out
        }

        /// A batch from `PEER` as its reader task hands it over.
        fn incoming(&self, n: u64) -> Cmd {
            let msg = crate::translate::to_message(envelope(n), PeerKind::Broker).unwrap();
            Cmd::Incoming {
                peer: PEER,
                conn: 1,
                msgs: vec![msg],
                ack: None,
                reader: None,
            }
        }
    }

    fn envelope(n: u64) -> Envelope {
        Envelope {
            sender: PEER,
            receiver: EndpointId::NIL,
            ttl: 16,
            topic: Topic::new("/t").unwrap(),
            payload: Payload::Data(Data::Count(n)),
        }
    }

    #[test]
    fn with_the_fast_paths_off_nothing_goes_straight_out() {
        let rig = Rig::new(false);
        assert!(
            rig.shared.publish_now(one(0)).is_some(),
            "handed back, for the intake"
        );
        assert_eq!(rig.shared.lock().router.stats().published, 0);
    }

    /// A publication racing work already in the intake: the publisher that runs the round
    /// itself first takes what was queued before it (a peering, another publication), so its
    /// own publication overtakes nothing. Fails when `Core::round` handles `own` first.
    #[test]
    fn a_publication_run_on_its_own_thread_overtakes_nothing_queued_before_it() {
        let rig = Rig::new(true);
        let (peering, mut theirs) = rig.handshaken();
        rig.pubs.try_send(one(0)).unwrap();
        rig.cmds.send(peering).unwrap();
        rig.pubs.try_send(one(1)).unwrap();
        assert!(
            rig.shared.publish_now(one(2)).is_none(),
            "published on this thread"
        );
        assert_eq!(
            rig.sent(&mut theirs),
            [0, 1, 2],
            "to the peer queued before, in order"
        );
    }

    #[test]
    fn a_busy_core_or_a_stream_leaves_the_work_in_the_intake() {
        let rig = Rig::new(true);
        // A pause is made by forgetting when the last publication came.
        let pause = || rig.shared.last.store(0, Ordering::Relaxed);
        let published = || rig.shared.lock().router.stats().published;
        {
            let _busy = rig.shared.lock();
            let back = rig.shared.publish_now(one(1)).expect("the core is busy");
            rig.pubs.try_send(back).unwrap();
        }
        pause();
        assert!(
            rig.shared.publish_now(one(2)).is_none(),
            "after a pause, published here"
        );
        assert_eq!(published(), 2, "after the one left in the intake");
        assert!(
            rig.shared.publish_now(one(3)).is_some(),
            "right after another: a stream, for the intake"
        );
        pause();
        rig.shared.lock().closing = true;
        assert!(rig.shared.publish_now(one(4)).is_some(), "shutting down");
        assert_eq!(published(), 2);
    }

    /// A reader's batch racing a waiting subscriber: a batch the reader task read is still in
    /// the intake when a subscriber's thread reads the next bytes from the socket; the
    /// subscriber's round takes the reader's batch first. Fails when `Core::round` handles
    /// `own` before the queued commands.
    #[test]
    fn a_waiting_subscriber_never_overtakes_a_batch_the_reader_already_queued() {
        let rig = Rig::new(true);
        let _theirs = rig.peer();
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut bytes = BytesMut::new();
        let env = envelope(2);
        encode_frame(&mut bytes, |b| env.encode(b)).unwrap();
        rig.rt.block_on(theirs.write_all(&bytes)).unwrap();
        let (read, _write) = tokio::io::split(ours);
        let inbox = Inbox::new(
            Box::pin(read),
            BytesMut::new(),
            Arc::default(),
            PEER,
            1,
            PeerKind::Broker,
            Limits::default(),
        );
        rig.cmds.send(rig.incoming(1)).unwrap();
        let _rt = rig.rt.enter();
        assert!(rig.shared.read_now(&inbox), "read on this thread");
        assert_eq!(rig.got(), [1, 2], "the reader's batch first");
        assert!(!rig.shared.read_now(&inbox), "nothing more");
    }

    /// A ring that an application thread's round answered by taking the work: the core task
    /// must still be woken once, to register for the next item (a queue wakes a waiter only
    /// once per registration). Fails when `Activity::drive_begin` forgets a ring not yet
    /// answered.
    #[test]
    fn after_a_thread_drove_the_core_the_runtime_still_hears_of_the_next_item() {
        let rig = Rig::new(true);
        let task = rig.rt.spawn(Core::run(rig.shared.clone()));
        let settle = || {
            rig.rt
                .block_on(async { tokio::time::sleep(std::time::Duration::from_millis(20)).await })
        };
        settle();
        // The spinner spins: a ring waits for it.
        rig.shared.activity.set_spinning_for_tests(true);
        rig.cmds.send(Cmd::Forward(vec![])).unwrap();
        let core = rig.shared.try_lock().expect("the core task is idle");
        rig.shared.drive(core, Own::Publish(one(1)));
        rig.shared.activity.stop_spinning_for_tests();
        settle();
        let (done, shut) = tokio::sync::oneshot::channel();
        rig.cmds.send(Cmd::Shutdown(done)).unwrap();
        settle();
        assert!(
            rig.rt
                .block_on(async {
                    tokio::time::timeout(std::time::Duration::from_secs(1), shut).await
                })
                .is_ok(),
            "the core task never heard of the shutdown"
        );
        assert!(task.is_finished());
    }
}
