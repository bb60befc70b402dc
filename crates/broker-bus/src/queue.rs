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
    /// Delivery frames back to back (a run published together, one allocation and one queue
    /// entry for all of them), `frames` of them: counted as that many frames by the queue.
    Run {
        /// The frames, each a whole delivery frame as [`crate::frame::delivery`] makes it.
        bytes: Bytes,
        /// How many.
        frames: usize,
    },
}

impl Outbound {
    /// How many frames this is.
    pub fn frames(&self) -> usize {
        match self {
            Outbound::Run { frames, .. } => *frames,
            _ => 1,
        }
    }

    /// The bytes to write to a socket.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Outbound::Frame(b) | Outbound::Run { bytes: b, .. } => b,
            Outbound::Ack(a) => a,
        }
    }

    /// The delivery frames in it, one by one (none for an ACK; a run's frames share its
    /// buffer, nothing is copied).
    pub fn into_frames(self) -> impl Iterator<Item = Bytes> {
        let (mut rest, single) = match self {
            Outbound::Frame(b) => (Bytes::new(), Some(b)),
            Outbound::Ack(_) => (Bytes::new(), None),
            Outbound::Run { bytes, .. } => (bytes, None),
        };
        single.into_iter().chain(std::iter::from_fn(move || {
            let n = crate::frame::first_frame_len(&rest)?;
            Some(rest.split_to(n))
        }))
    }

    /// Takes the first frame off a run of several (leaving the rest, one fewer); `None` for
    /// anything else.
    fn split_first(&mut self) -> Option<Bytes> {
        match self {
            Outbound::Run { bytes, frames } if *frames > 1 => {
                let n = crate::frame::first_frame_len(bytes)?;
                *frames -= 1;
                Some(bytes.split_to(n))
            }
            _ => None,
        }
    }
}

/// The queued entries and how many frames they hold.
#[derive(Debug, Default)]
struct Entries {
    q: VecDeque<Outbound>,
    frames: usize,
}

impl Entries {
    fn push_back(&mut self, o: Outbound) {
        self.frames += o.frames();
        self.q.push_back(o);
    }

    /// Drops the oldest frame (one frame of a run).
    fn drop_oldest(&mut self) {
        if let Some(front) = self.q.front_mut() {
            if front.split_first().is_none() {
                self.q.pop_front();
            }
            self.frames -= 1;
        }
    }

    /// The oldest frame (one frame of a run).
    fn pop_front(&mut self) -> Option<Outbound> {
        let front = self.q.front_mut()?;
        self.frames -= 1;
        match front.split_first() {
            Some(b) => Some(Outbound::Frame(b)),
            // The last frame of a run is a frame.
            None => self.q.pop_front().map(|o| match o {
                Outbound::Run { bytes, .. } => Outbound::Frame(bytes),
                o => o,
            }),
        }
    }

    fn drain_into(&mut self, out: &mut Vec<Outbound>) {
        out.extend(self.q.drain(..));
        self.frames = 0;
    }
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
    frames: Mutex<Entries>,
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
            frames: Mutex::new(Entries::default()),
            capacity: capacity.max(1),
            policy,
            ready: Notify::new(),
            room: Notify::new(),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame under the policy.
    pub fn push(&self, frame: Outbound) -> Pushed {
        self.try_push(frame).unwrap_or(Pushed::Refused)
    }

    /// [`push`](Self::push), handing a refused frame back. A run is queued whole when it
    /// fits and handed back otherwise, whatever the policy (the caller queues its frames one
    /// by one, so that the policy applies to each).
    pub fn try_push(&self, frame: Outbound) -> Result<Pushed, Outbound> {
        if self.closed.load(Ordering::Acquire) {
            return Err(frame);
        }
        let mut q = self.lock();
        let n = frame.frames();
        let result = if q.frames + n <= self.capacity {
            q.push_back(frame);
            Pushed::Queued
        } else if n > 1 {
            return Err(frame);
        } else {
            match self.policy {
                OverflowPolicy::Disconnect => return Err(frame),
                OverflowPolicy::DropOldest => {
                    q.drop_oldest();
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
        let was_empty = q.q.len() == 1;
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
                if !q.q.is_empty() {
                    q.drain_into(out);
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
        self.lock().drain_into(out);
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
                if q.frames < self.capacity {
                    q.push_back(frame);
                    let was_empty = q.q.len() == 1;
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
        self.lock().frames
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
    /// Moves the oldest queued frame into `out` (the first frame of a run, the rest staying
    /// queued); waits while there is none. Returns false once the queue is closed and empty.
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
                Outbound::Run { bytes, .. } => bytes[6],
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

    /// A run of `n` delivery frames whose payloads are `first`, `first + 1`, ….
    fn run(first: u8, n: u8) -> Outbound {
        let mut bytes = bytes::BytesMut::new();
        for i in 0..n {
            let kind = crate::frame::Kind::Publish;
            crate::frame::delivery_into(&mut bytes, kind, false, "p", Some("t"), &[first + i]);
        }
        Outbound::Run {
            bytes: bytes.freeze(),
            frames: n.into(),
        }
    }

    fn payloads(v: Vec<Outbound>) -> Vec<u8> {
        v.into_iter()
            .flat_map(Outbound::into_frames)
            .map(|b| crate::frame::Delivery::parse(b).unwrap().payload()[0])
            .collect()
    }

    #[tokio::test]
    async fn a_run_counts_as_its_frames() {
        // Queued whole when it fits; refused whole otherwise, whatever the policy.
        for policy in [
            OverflowPolicy::Disconnect,
            OverflowPolicy::DropOldest,
            OverflowPolicy::DropNewest,
        ] {
            let q = Queue::new(4, policy);
            assert_eq!(q.push(run(1, 3)), Pushed::Queued);
            assert_eq!(q.len(), 3);
            assert!(q.try_push(run(4, 2)).is_err(), "{policy:?}");
            assert_eq!(q.len(), 3);
        }
        // Dropping the oldest frame takes one frame off a run.
        let q = Queue::new(3, OverflowPolicy::DropOldest);
        q.push(run(1, 3));
        let nine = crate::frame::delivery(crate::frame::Kind::Publish, false, "p", Some("t"), &[9]);
        assert_eq!(q.push(Outbound::Frame(nine)), Pushed::Dropped);
        assert_eq!(q.len(), 3);
        let mut out = Vec::new();
        q.try_drain(&mut out);
        assert_eq!(out.len(), 2, "the rest of the run and the frame");
        let mut out = payloads(out);
        assert_eq!(out.pop(), Some(9));
        assert_eq!(out, [2, 3]);
        // One at a time: a run gives its frames in order, one per call.
        let q = Queue::new(8, OverflowPolicy::Disconnect);
        q.push(run(1, 3));
        q.push(run(4, 2));
        let mut got = Vec::new();
        for left in (0..5).rev() {
            let mut one = Vec::new();
            assert!(q.drain_one(&mut one).await);
            assert_eq!(one.len(), 1);
            assert!(matches!(one[0], Outbound::Frame(_)));
            got.extend(payloads(one));
            assert_eq!(q.len(), left);
        }
        assert_eq!(got, [1, 2, 3, 4, 5]);
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
