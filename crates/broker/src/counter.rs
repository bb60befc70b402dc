//! Message counters: a subscription that counts what arrives, by publishing endpoint, instead
//! of queueing it.
//!
//! The core adds to a counter's [`Tally`] where it would hand a subscriber its messages, data
//! and store commands alike, under the tally's own lock (taken by the core and by readers, never
//! together with another lock). A counter holds nothing back, so it never slows a publisher
//! down: it is for checking where traffic goes (the cluster benchmark's receivers, monitoring)
//! at no cost but a count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use broker_wire::EndpointId;

/// Messages counted from one publishing endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Data messages.
    pub data: u64,
    /// Store commands.
    pub commands: u64,
}

impl MessageCounts {
    /// Data messages and commands.
    pub fn total(&self) -> u64 {
        self.data + self.commands
    }
}

/// What the core adds to and a [`MessageCounter`](crate::MessageCounter) reads.
#[derive(Debug)]
pub(crate) struct Tally {
    counts: Mutex<(u64, BTreeMap<EndpointId, MessageCounts>)>,
    changed: Condvar,
    /// Threads in `wait_for` (changed under the mutex): without any, adding wakes nobody and
    /// makes no system call.
    waiting: AtomicUsize,
    /// The smallest total a waiter waits for: adding wakes the waiters only when the total
    /// reaches it (a waiter woken for another's total sets its own again).
    wake_at: AtomicU64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: Mutex::default(),
            changed: Condvar::new(),
            waiting: AtomicUsize::new(0),
            wake_at: AtomicU64::new(u64::MAX),
        }
    }
}

impl Tally {
    /// Counts `n` messages from `sender` (commands when `commands`).
    pub(crate) fn add(&self, sender: EndpointId, n: u64, commands: bool) {
        let mut g = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += n;
        let c = g.1.entry(sender).or_default();
        if commands {
            c.commands += n;
        } else {
            c.data += n;
        }
        let total = g.0;
        drop(g);
        if self.waiting.load(Ordering::Acquire) > 0 && total >= self.wake_at.load(Ordering::Acquire)
        {
            self.changed.notify_all();
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    pub(crate) fn by_sender(&self) -> BTreeMap<EndpointId, MessageCounts> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// Waits until at least `total` messages were counted or `timeout` passed; returns the
    /// count then.
    pub(crate) fn wait_for(&self, total: u64, timeout: Duration) -> u64 {
        let end = Instant::now() + timeout;
        let mut g = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_add(1, Ordering::AcqRel);
        while g.0 < total {
            self.wake_at.fetch_min(total, Ordering::AcqRel);
            let now = Instant::now();
            if now >= end {
                break;
            }
            g = self
                .changed
                .wait_timeout(g, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.wake_at.store(u64::MAX, Ordering::Release);
        }
        g.0
    }
}
