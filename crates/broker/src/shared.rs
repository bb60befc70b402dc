//! The one module that takes more than one lock: the core's state behind its mutex, and the
//! fast paths that let an application thread do the runtime thread's work while it holds that
//! lock (a publisher routing and writing its publication, a waiting subscriber reading a
//! socket). Everything else reaches the core through its channel (`cmd::Cmd`).
//!
//! # Lock table
//!
//! | lock | who takes it | what it protects | what may already be held |
//! |---|---|---|---|
//! | `Shared::core` (the core's mutex) | the runtime thread (`Core::run`, each round); a publisher (`publish_now`, `try_lock` only); a waiting subscriber (`read_now`, `try_lock` only) | the router, peers' outboxes, subscriber and store queues (`Core`) | nothing |
//! | an `Inbox`'s state | the connection's reader task; a waiting subscriber inside `read_now` | the socket's read half, its buffer and frame decoder | the core's mutex (subscriber), nothing (reader task) |
//! | an outbox's `Pipe::sink` | whoever holds the core's mutex (`Outbox::send`, a direct write); the connection's writer task | the socket's write half | the core's mutex (direct write), nothing (writer task) |
//!
//! Leaf locks, each taken alone for a moment and never while taking another: a queue's state
//! (`queue`), the doorbell's waker slot (`spin::Activity`), a reader's resume slot
//! (`inflight`), the handshake's claims and the endpoint's dialers and local stores.
//!
//! Order: core → inbox → sink, checked in debug builds (`order`). The reader task takes an inbox's lock without the core's and
//! then only sends to the core's channel; the writer task takes a sink alone. Application
//! threads never block on the core's mutex: they `try_lock` and, when it is busy, hand their
//! work to the channel. With `Configuration::fast_paths` off they never take it at all.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::cmd::Publications;
use crate::core::{Core, Driver};
use crate::inbox::Inbox;
use crate::order::{Ordered, Rank};

/// Publications closer together than this count as a stream: they go through the core's
/// channel, where the core joins them into batches (one write for many).
const STREAM_GAP: std::time::Duration = std::time::Duration::from_micros(10);

/// The core's state, shared by the core task and publishers.
///
/// The core task locks it for each round of work. A publisher locks it only to publish
/// straight away (see [`publish_now`](Self::publish_now)): on its own thread it routes the
/// publication, writes it onto the sockets and delivers it, without handing it to the
/// runtime's thread first.
pub(crate) struct Shared {
    core: Mutex<Core>,
    /// Publication batches sent into the channel that the core has not yet taken into its
    /// `pending` list (incremented before sending, so that nothing published later overtakes
    /// them).
    in_channel: AtomicUsize,
    /// When the last publication came, in nanoseconds since `epoch`.
    last: AtomicU64,
    epoch: Instant,
    /// Publications closer together than this count as a stream (`STREAM_GAP`).
    gap: u64,
    /// Whether the fast paths are on (`Configuration::fast_paths`): off, nothing publishes
    /// or reads on an application thread.
    fast: bool,
}

impl Shared {
    pub(crate) fn new(core: Core, fast: bool) -> Arc<Shared> {
        Self::with_gap(core, STREAM_GAP, fast)
    }

    fn with_gap(core: Core, gap: std::time::Duration, fast: bool) -> Arc<Shared> {
        Arc::new(Shared {
            core: Mutex::new(core),
            in_channel: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            epoch: Instant::now(),
            gap: gap.as_nanos() as u64,
            fast,
        })
    }

    fn lock(&self) -> Ordered<MutexGuard<'_, Core>> {
        // The core's state stays consistent between commands; a panic in one (a bug) must not
        // stop the endpoint from shutting down cleanly.
        Ordered::new(
            Rank::Core,
            self.core.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// The core's lock if it is free at once (application threads never wait for it).
    fn try_lock(&self) -> Option<Ordered<MutexGuard<'_, Core>>> {
        self.core
            .try_lock()
            .ok()
            .map(|g| Ordered::new(Rank::Core, g))
    }

    /// Publishes `batch` at once on this thread, if it came after a pause (a stream goes
    /// through the channel and is batched), nothing published earlier is still on its way, the
    /// core is not busy and the peers have room. Otherwise hands the batch back: the caller
    /// sends it through the channel, inside [`in_channel`](Self::in_channel).
    pub(crate) fn publish_now(&self, batch: Publications) -> Option<Publications> {
        if !self.fast {
            return Some(batch);
        }
        let now = Instant::now();
        // (Offset by a gap: the first publication counts as one after a pause.)
        let at = now.duration_since(self.epoch).as_nanos() as u64 + self.gap;
        let before = self.last.swap(at, Ordering::Relaxed);
        if at.saturating_sub(before) < self.gap || self.in_channel.load(Ordering::SeqCst) > 0 {
            return Some(batch);
        }
        let Some(mut core) = self.try_lock() else {
            return Some(batch);
        };
        if core.closing
            || !core.pending.is_empty()
            || self.in_channel.load(Ordering::SeqCst) > 0
            || core.budget() < batch.len()
        {
            return Some(batch);
        }
        core.publish_runs(now, batch);
        core.flush();
        core.activity.touch();
        None
    }

    /// From a subscriber's thread that waits for messages: reads what `inbox`'s socket holds
    /// and routes it at once, if the core is not busy (see `inbox`). Returns whether it found
    /// messages.
    pub(crate) fn read_now(&self, inbox: &Inbox) -> bool {
        if !self.fast {
            return false;
        }
        let Some(mut core) = self.try_lock() else {
            return false;
        };
        if core.closing || !core.pending.is_empty() || core.stores_behind() {
            return false;
        }
        if !inbox.read_now(&mut core) {
            return false;
        }
        core.read_while_waiting += 1;
        core.flush();
        core.activity.touch();
        true
    }

    /// Counts a batch on its way through the channel until the guard is told it arrived or,
    /// dropped first, that it was never sent.
    pub(crate) fn in_channel(&self) -> InChannel<'_> {
        self.in_channel.fetch_add(1, Ordering::SeqCst);
        InChannel(Some(&self.in_channel))
    }
}

/// See [`Shared::in_channel`].
pub(crate) struct InChannel<'a>(Option<&'a AtomicUsize>);

impl InChannel<'_> {
    /// The batch is in the channel: the core counts it out when it takes it.
    pub(crate) fn sent(mut self) {
        self.0 = None;
    }
}

impl Drop for InChannel<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            n.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Driver for Shared {
    fn lock(&self) -> Ordered<MutexGuard<'_, Core>> {
        Shared::lock(self)
    }

    fn taken(&self, n: usize) {
        self.in_channel.fetch_sub(n, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_data::Data;
    use broker_routing::{Config as RouterConfig, Router};
    use broker_wire::{EndpointId, Topic};

    fn one(i: u64) -> Publications {
        vec![(Topic::new("/t").unwrap(), Arc::new(Data::Count(i)))]
    }

    #[test]
    fn with_the_fast_paths_off_nothing_goes_straight_out() {
        let router = Router::new(EndpointId::from_bytes([1; 16]), 1, RouterConfig::default());
        let shared = Shared::with_gap(Core::new(router), std::time::Duration::from_secs(60), false);
        assert!(
            shared.publish_now(one(0)).is_some(),
            "handed back, for the channel"
        );
        assert_eq!(shared.lock().router.stats().published, 0);
    }

    #[test]
    fn a_publication_after_a_pause_goes_straight_out_and_others_through_the_channel() {
        let router = Router::new(EndpointId::from_bytes([1; 16]), 1, RouterConfig::default());
        // A long gap, so that "right after" holds on a slow machine; a pause is made by
        // forgetting when the last one came.
        let shared = Shared::with_gap(Core::new(router), std::time::Duration::from_secs(60), true);
        let pause = || shared.last.store(0, Ordering::Relaxed);
        let published = || shared.lock().router.stats().published;
        let straight = |i| shared.publish_now(one(i)).is_none();

        assert!(straight(0), "the first one, with nothing before it");
        assert_eq!(published(), 1, "routed on this thread");
        assert!(!straight(1), "right after another: a stream");
        pause();
        {
            let _on_its_way = shared.in_channel();
            assert!(!straight(2), "an earlier one is still in the channel");
        }
        pause();
        assert!(straight(3), "counted out when never sent");
        pause();
        {
            let _busy = shared.lock();
            assert!(!straight(4), "the core is busy");
        }
        pause();
        shared.lock().pending.push_back(one(5).remove(0));
        assert!(!straight(6), "the core holds earlier ones");
        shared.lock().pending.clear();
        pause();
        shared.lock().closing = true;
        assert!(!straight(7), "shutting down");
        assert_eq!(published(), 2, "only the two that went straight out");
    }

    /// A reader's batch racing a waiting subscriber, aimed at deterministically: while a batch
    /// the reader task read is still in the core's channel, a subscriber's thread must not read
    /// the socket (what it read would overtake that batch); once the core handled the batch, it
    /// reads. Fails when the in-flight check is removed from `Inbox::read_now`.
    #[test]
    fn a_waiting_subscriber_never_reads_past_a_batch_still_in_flight() {
        use broker_routing::PeerKind;
        use broker_wire::{encode_frame, Envelope, Limits, Payload};
        use bytes::BytesMut;
        use tokio::io::AsyncWriteExt;

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut bytes = BytesMut::new();
        let env = Envelope {
            sender: EndpointId::from_bytes([2; 16]),
            receiver: EndpointId::NIL,
            ttl: 16,
            topic: Topic::new("/t").unwrap(),
            payload: Payload::Data(Data::Count(7)),
        };
        encode_frame(&mut bytes, |b| env.encode(b)).unwrap();
        rt.block_on(theirs.write_all(&bytes)).unwrap();
        let (read, _write) = tokio::io::split(ours);
        let inbox = Inbox::new(
            Box::pin(read),
            BytesMut::new(),
            Arc::default(),
            EndpointId::from_bytes([2; 16]),
            1,
            PeerKind::Broker,
            Limits::default(),
        );
        let router = Router::new(EndpointId::from_bytes([1; 16]), 1, RouterConfig::default());
        let shared = Shared::new(Core::new(router), true);
        let _rt = rt.enter();

        inbox.in_flight_for_tests().sending();
        assert!(
            !shared.read_now(&inbox),
            "read past a batch the core has not handled"
        );
        inbox.in_flight_for_tests().handled();
        assert!(shared.read_now(&inbox), "the data is still there, in order");
    }
}
