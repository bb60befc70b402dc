//! A client's bounded queue of outbound frames, shared by the core (which pushes) and the
//! client's writer or in-process reader (which drains it in batches).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

/// What a queue does when it is full and another frame comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// busrt's rule: the client is disconnected (a p2p sender gets `NOT_DELIVERED`).
    #[default]
    Disconnect,
    /// The oldest queued frame makes room (counted as dropped).
    DropOldest,
    /// The new frame is dropped (counted).
    DropNewest,
}

/// A frame waiting for its client.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A delivery (shared by every receiver) or an ACK.
    Frame(Bytes),
    /// An ACK: `FE op_id code`.
    Ack([u8; 6]),
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Queued or not, something was dropped by the policy (counted).
    Dropped,
    /// Full under [`OverflowPolicy::Disconnect`], or closed: not queued.
    Refused,
}

/// A bounded queue with an overflow policy.
#[derive(Debug)]
pub struct Queue {
    frames: Mutex<VecDeque<Outbound>>,
    capacity: usize,
    policy: OverflowPolicy,
    ready: Notify,
    room: Notify,
    closed: AtomicBool,
    dropped: AtomicU64,
}

impl Queue {
    /// A queue for `capacity` frames.
    pub fn new(capacity: usize, policy: OverflowPolicy) -> Queue {
        Queue {
            frames: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            policy,
            ready: Notify::new(),
            room: Notify::new(),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Outbound>> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame under the policy.
    pub fn push(&self, frame: Outbound) -> Pushed {
        self.try_push(frame).unwrap_or(Pushed::Refused)
    }

    /// [`push`](Self::push), handing a refused frame back.
    pub fn try_push(&self, frame: Outbound) -> Result<Pushed, Outbound> {
        if self.closed.load(Ordering::Acquire) {
            return Err(frame);
        }
        let mut q = self.lock();
        let result = if q.len() < self.capacity {
            q.push_back(frame);
            Pushed::Queued
        } else {
            match self.policy {
                OverflowPolicy::Disconnect => return Err(frame),
                OverflowPolicy::DropOldest => {
                    q.pop_front();
                    q.push_back(frame);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    Pushed::Dropped
                }
                OverflowPolicy::DropNewest => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    Pushed::Dropped
                }
            }
        };
        let was_empty = q.len() == 1;
        drop(q);
        if was_empty || result == Pushed::Dropped {
            self.ready.notify_one();
        }
        Ok(result)
    }

    /// Moves every queued frame into `out`; waits while there is none. Returns false once
    /// the queue is closed and empty.
    pub async fn drain(&self, out: &mut Vec<Outbound>) -> bool {
        loop {
            {
                let mut q = self.lock();
                if !q.is_empty() {
                    out.extend(q.drain(..));
                    drop(q);
                    self.room.notify_waiters();
                    return true;
                }
                if self.closed.load(Ordering::Acquire) {
                    return false;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Moves what is queued into `out` without waiting.
    pub fn try_drain(&self, out: &mut Vec<Outbound>) {
        out.extend(self.lock().drain(..));
        self.room.notify_waiters();
    }

    /// Queues a frame, waiting (until `deadline`) while the queue is full, whatever the
    /// policy: how an in-process receiver paces its senders. False if it timed out or the
    /// queue closed.
    pub async fn push_wait(&self, frame: Outbound, deadline: tokio::time::Instant) -> bool {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                if self.closed.load(Ordering::Acquire) {
                    return false;
                }
                let mut q = self.lock();
                if q.len() < self.capacity {
                    q.push_back(frame);
                    let was_empty = q.len() == 1;
                    drop(q);
                    if was_empty {
                        self.ready.notify_one();
                    }
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
    }

    /// Closes the queue: nothing more is queued, and the drainer ends once it took the rest.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Frames waiting now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frames the policy dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Queue {
    /// Moves the oldest queued frame into `out`; waits while there is none. Returns false
    /// once the queue is closed and empty.
    pub async fn drain_one(&self, out: &mut Vec<Outbound>) -> bool {
        loop {
            {
                let mut q = self.lock();
                if let Some(f) = q.pop_front() {
                    out.push(f);
                    drop(q);
                    self.room.notify_waiters();
                    return true;
                }
                if self.closed.load(Ordering::Acquire) {
                    return false;
                }
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: u8) -> Outbound {
        Outbound::Frame(Bytes::from(vec![n]))
    }

    fn firsts(v: &[Outbound]) -> Vec<u8> {
        v.iter()
            .map(|o| match o {
                Outbound::Frame(b) => b[0],
                Outbound::Ack(a) => a[5],
            })
            .collect()
    }

    #[test]
    fn each_policy_at_the_limit() {
        let q = Queue::new(2, OverflowPolicy::Disconnect);
        assert_eq!(q.push(f(1)), Pushed::Queued);
        assert_eq!(q.push(f(2)), Pushed::Queued);
        assert_eq!(q.push(f(3)), Pushed::Refused);
        let q = Queue::new(2, OverflowPolicy::DropOldest);
        for i in 1..=4 {
            q.push(f(i));
        }
        let mut out = Vec::new();
        q.try_drain(&mut out);
        assert_eq!(firsts(&out), [3, 4]);
        assert_eq!(q.dropped(), 2);
        let q = Queue::new(2, OverflowPolicy::DropNewest);
        for i in 1..=4 {
            q.push(f(i));
        }
        let mut out = Vec::new();
        q.try_drain(&mut out);
        assert_eq!(firsts(&out), [1, 2]);
        assert_eq!(q.dropped(), 2);
        q.close();
        assert_eq!(q.push(f(9)), Pushed::Refused);
    }

    #[tokio::test]
    async fn drain_waits_for_frames_and_ends_after_close() {
        let q = std::sync::Arc::new(Queue::new(8, OverflowPolicy::Disconnect));
        let q2 = q.clone();
        let t = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut n = 0;
            while q2.drain(&mut out).await {
                n += out.len();
                out.clear();
            }
            n
        });
        for i in 0..5 {
            q.push(f(i));
            tokio::task::yield_now().await;
        }
        q.close();
        assert_eq!(t.await.unwrap(), 5);
    }
}
