//! The queue between the endpoint's core and one subscriber: bounded, blocking and async, with a
//! file descriptor that is readable exactly while items are pending.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::governor::Governor;

struct State<T> {
    items: VecDeque<T>,
    dropped: u64,
    /// Items taken by readers so far (the core compares it to see whether a reader is alive).
    taken: u64,
    /// The core holds items for this queue that did not fit (see `push_room`): the first take
    /// that leaves the queue at most half full rings `room`.
    core_waits: bool,
    /// What rings the core when room opens again.
    room: Option<Waker>,
    closed: bool,
    /// Whether a byte sits in the descriptor's pipe (it does exactly while items are pending,
    /// once somebody asked for the descriptor).
    signaled: bool,
    /// Whether somebody asked for the descriptor (before that, no system call per message).
    armed: bool,
    /// Readers watching the descriptor while they wait (see `take_watching`): the pipe is
    /// signaled while there are some, as when it is armed.
    watchers: usize,
    /// Threads blocked in `take` (a push wakes them only when there are some).
    sleepers: usize,
    waker: Option<Waker>,
}

/// A bounded queue of `T`. The core either pushes only as much as there is room for (see
/// [`push_room`](Self::push_room): the rest waits in the core, which stops taking more until a
/// reader makes room) or, with [`push_all`](Self::push_all), drops the oldest items (counted):
/// either way a slow subscriber cannot grow its memory.
pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
    /// Whether items are pending or the queue closed: what a spinning reader watches without
    /// taking the lock.
    wake: AtomicBool,
    /// How long a reader spins before it sleeps (see `Configuration::spin_wait`).
    spin: Duration,
    /// Whether spinning pays for this queue's readers.
    governor: Governor,
    /// Whether the last wait ended with at most [`SPARSE`] items: messages come one at a time
    /// (a round trip, a trickle), so the next wait may watch the sockets itself (see
    /// [`take_watching`](Self::take_watching)). A stream (waits that end with a batch) is
    /// left to the runtime's thread, which reads and routes on one processor while the reader
    /// takes on the other.
    sparse: AtomicBool,
    /// Readable end of the readiness pipe, handed out by `fd()`.
    reader: UnixStream,
    writer: UnixStream,
}

impl<T> Queue<T> {
    /// A queue of at most `capacity` items whose readers spin for `spin` before sleeping.
    pub(crate) fn new(capacity: usize, spin: Duration) -> std::io::Result<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                dropped: 0,
                taken: 0,
                core_waits: false,
                room: None,
                closed: false,
                signaled: false,
                armed: false,
                watchers: 0,
                sleepers: 0,
                waker: None,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            wake: AtomicBool::new(false),
            spin,
            governor: Governor::default(),
            sparse: AtomicBool::new(true),
            reader,
            writer,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the queue inconsistent (every update is a
        // single push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds items (from the core). Returns how many older items had to be dropped.
    pub(crate) fn push_all(&self, items: impl IntoIterator<Item = T>) -> u64 {
        let mut s = self.lock();
        let before = s.dropped;
        for item in items {
            if s.items.len() >= self.capacity {
                s.items.pop_front();
                s.dropped += 1;
            }
            s.items.push_back(item);
        }
        if !s.items.is_empty() {
            self.items_pending(&mut s);
        }
        s.dropped - before
    }

    /// Adds as many items from the front of `items` as there is room for (from the core), and
    /// leaves the rest in `items`. When some are left, the next take that leaves the queue at
    /// most half full rings the waker given to [`on_room`](Self::on_room).
    pub(crate) fn push_room(&self, items: &mut Vec<T>) {
        let mut s = self.lock();
        let room = self.capacity.saturating_sub(s.items.len());
        let n = room.min(items.len());
        s.items.extend(items.drain(..n));
        s.core_waits = !items.is_empty();
        if n > 0 {
            self.items_pending(&mut s);
        }
    }

    /// What to wake when room opens after [`push_room`](Self::push_room) left items behind.
    pub(crate) fn on_room(&self, waker: Waker) {
        self.lock().room = Some(waker);
    }

    /// How many items readers have taken so far.
    pub(crate) fn taken(&self) -> u64 {
        self.lock().taken
    }

    /// Tells every kind of reader that items are pending: spinners, the descriptor, an async
    /// reader's waker, sleepers.
    fn items_pending(&self, s: &mut State<T>) {
        self.wake.store(true, Ordering::Release);
        self.signal(s);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        if s.sleepers > 0 {
            self.ready.notify_all();
        }
    }

    /// Puts the byte in the readiness pipe, once the descriptor is in use and when the byte is
    /// not there yet.
    fn signal(&self, s: &mut State<T>) {
        if (s.armed || s.watchers > 0) && !s.signaled {
            // The pipe holds at most one byte, so this write cannot block or fail for space.
            let _ = (&self.writer).write(&[1]);
            s.signaled = true;
        }
    }

    /// Marks the queue closed (the endpoint shut down): waiting readers return.
    pub(crate) fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        self.wake.store(true, Ordering::Release);
        self.signal(&mut s);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        self.ready.notify_all();
    }

    fn after_pop(&self, s: &mut State<T>, n: usize) {
        s.taken += n as u64;
        if s.core_waits && s.items.len() <= self.capacity / 2 {
            s.core_waits = false;
            if let Some(room) = &s.room {
                room.wake_by_ref();
            }
        }
        if s.items.is_empty() {
            if !s.closed {
                self.wake.store(false, Ordering::Relaxed);
            }
            if s.signaled {
                let mut buf = [0u8; 8];
                while matches!((&self.reader).read(&mut buf), Ok(n) if n > 0) {}
                s.signaled = false;
            }
        }
    }

    /// Spins (yielding the processor between looks) until items are pending, the queue
    /// closes, the spin time is over or the deadline passes. A reader that spins briefly
    /// instead of sleeping at once answers in microseconds: waking a sleeping thread costs
    /// tens of microseconds on virtual machines. Between looks it calls `read`, which may
    /// fetch items itself (see `inbox`); it yields the processor only when that found nothing.
    /// It spins only while that pays (see `governor`).
    fn spin_for_items(&self, deadline: Option<Instant>, read: &dyn Fn() -> bool) {
        if self.spin.is_zero() || self.wake.load(Ordering::Acquire) {
            return;
        }
        if !self.governor.should_spin() {
            return;
        }
        let start = Instant::now();
        let mut end = start + self.spin;
        if let Some(d) = deadline {
            end = end.min(d);
        }
        while !self.wake.load(Ordering::Acquire) {
            if Instant::now() >= end {
                return;
            }
            if !read() {
                let before = Instant::now();
                std::thread::yield_now();
                if self.governor.yielded(before.elapsed(), self.spin) {
                    return;
                }
            }
        }
    }

    /// Spins as a reader in `take_reading` does, without taking anything (an async reader's
    /// first look after a message; it reports the wait's end with [`waited`](Self::waited)).
    pub(crate) fn spin_reading(&self, read: &dyn Fn() -> bool) {
        self.spin_for_items(None, read);
    }

    /// A reader's wait that began at `since` ended with an item (tells the governor).
    pub(crate) fn waited(&self, since: Instant) {
        if !self.spin.is_zero() {
            self.governor.waited(since.elapsed(), self.spin);
        }
    }

    /// How many waits slept at once because spinning did not pay.
    pub(crate) fn spins_skipped(&self) -> u64 {
        self.governor.skipped()
    }

    /// Takes up to `max` items, waiting until at least one is there, the deadline passes or
    /// the queue closes.
    pub(crate) fn take(&self, max: usize, deadline: Option<Instant>) -> Vec<T> {
        self.take_reading(max, deadline, &|| false)
    }

    /// [`take`](Self::take), calling `read` between looks while it spins (see
    /// [`spin_for_items`](Self::spin_for_items)).
    pub(crate) fn take_reading(
        &self,
        max: usize,
        deadline: Option<Instant>,
        read: &dyn Fn() -> bool,
    ) -> Vec<T> {
        self.take_watching(max, deadline, read, &|_, _| {})
    }

    /// [`take_reading`](Self::take_reading), which calls `watch` before it sleeps, when the
    /// spin found nothing: `watch` may wait itself until the deadline, in `poll(2)` on the
    /// queue's descriptor (see [`Watched`]) and on whatever else it watches. What is left of
    /// the wait sleeps as before.
    pub(crate) fn take_watching(
        &self,
        max: usize,
        deadline: Option<Instant>,
        read: &dyn Fn() -> bool,
        watch: &dyn Fn(&dyn Watched, Option<Instant>),
    ) -> Vec<T> {
        // A wait that finds items at once says nothing about spinning.
        let since = (!self.wake.load(Ordering::Acquire)).then(Instant::now);
        self.spin_for_items(deadline, read);
        if !self.wake.load(Ordering::Acquire) && self.sparse.load(Ordering::Relaxed) {
            watch(self, deadline);
        }
        let mut s = self.lock();
        loop {
            if !s.items.is_empty() || s.closed {
                break;
            }
            s.sleepers += 1;
            match deadline {
                None => s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        s.sleepers -= 1;
                        break;
                    }
                    s = self
                        .ready
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            s.sleepers -= 1;
        }
        let n = max.min(s.items.len());
        if since.is_some() && n > 0 {
            self.sparse
                .store(s.items.len() <= SPARSE, Ordering::Relaxed);
        }
        let out: Vec<T> = s.items.drain(..n).collect();
        self.after_pop(&mut s, n);
        drop(s);
        if let Some(since) = since {
            if out.is_empty() {
                if !self.spin.is_zero() {
                    self.governor.wasted();
                }
            } else {
                self.waited(since);
            }
        }
        out
    }

    /// Takes everything pending, without waiting.
    pub(crate) fn take_all(&self) -> Vec<T> {
        let mut s = self.lock();
        let out: Vec<T> = s.items.drain(..).collect();
        self.after_pop(&mut s, out.len());
        out
    }

    /// For async readers: the next item, or registers `waker` and returns `None`. `Err` when
    /// the queue is closed and empty.
    pub(crate) fn poll_one(&self, waker: &Waker) -> Result<Option<T>, ()> {
        let mut s = self.lock();
        if let Some(item) = s.items.pop_front() {
            self.after_pop(&mut s, 1);
            return Ok(Some(item));
        }
        if s.closed {
            return Err(());
        }
        s.waker = Some(waker.clone());
        Ok(None)
    }

    /// Whether the queue was closed (its endpoint shut down).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Counts `n` items the core dropped instead of pushing (a full queue under `drop_newest`).
    pub(crate) fn note_dropped(&self, n: usize) {
        self.lock().dropped += n as u64;
    }

    /// For async readers: up to `max` items, or registers `waker` and returns none. `Err` when
    /// the queue is closed and empty.
    pub(crate) fn poll_take(&self, max: usize, waker: &Waker) -> Result<Vec<T>, ()> {
        let mut s = self.lock();
        if !s.items.is_empty() {
            let n = max.min(s.items.len());
            let out: Vec<T> = s.items.drain(..n).collect();
            self.after_pop(&mut s, n);
            return Ok(out);
        }
        if s.closed {
            return Err(());
        }
        s.waker = Some(waker.clone());
        Ok(Vec::new())
    }

    /// The readiness descriptor: readable exactly while items are pending, from this call on
    /// (a queue nobody polls pays no system call per message).
    pub(crate) fn fd(&self) -> RawFd {
        let mut s = self.lock();
        if !s.armed {
            s.armed = true;
            if !s.items.is_empty() {
                self.signal(&mut s);
            }
        }
        self.reader.as_raw_fd()
    }
}

/// At most this many items at the end of a wait make the next wait watch the sockets (see
/// `Queue::sparse`).
const SPARSE: usize = 4;

/// What a reader that watches its queue among other descriptors sees of it (see
/// [`Queue::take_watching`]).
pub(crate) trait Watched {
    /// Whether items are pending or the queue closed.
    fn pending(&self) -> bool;
    /// Runs `sleep` (a `poll(2)` that includes [`fd`](Self::fd)) unless items are pending or
    /// the queue closed; returns whether it ran. While it runs, a push makes the descriptor
    /// readable (at no cost when nobody sleeps: a reader that found its item itself costs no
    /// system call for the descriptor).
    fn sleep(&self, sleep: &mut dyn FnMut(std::os::fd::BorrowedFd<'_>)) -> bool;
}

impl<T> Watched for Queue<T> {
    fn pending(&self) -> bool {
        self.wake.load(Ordering::Acquire)
    }

    fn sleep(&self, sleep: &mut dyn FnMut(std::os::fd::BorrowedFd<'_>)) -> bool {
        use std::os::fd::AsFd;
        {
            let mut s = self.lock();
            if !s.items.is_empty() || s.closed {
                return false;
            }
            s.watchers += 1;
        }
        sleep(self.reader.as_fd());
        self.lock().watchers -= 1;
        true
    }
}

/// Turns an optional timeout into a deadline.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_drops_oldest_and_counts() {
        let q = Queue::new(3, Duration::ZERO).unwrap();
        assert_eq!(q.push_all(0..5), 2);
        assert_eq!(q.take_all(), [2, 3, 4]);
        assert_eq!(q.dropped(), 2);
    }

    /// Counts the wakes it gets.
    struct Bell(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Bell {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn push_room_keeps_what_does_not_fit_and_rings_when_half_is_free() {
        let q = Queue::new(4, Duration::ZERO).unwrap();
        let bell = std::sync::Arc::new(Bell(Default::default()));
        q.on_room(Waker::from(bell.clone()));
        let mut items: Vec<u32> = (0..7).collect();
        q.push_room(&mut items);
        assert_eq!(items, [4, 5, 6], "what did not fit stays with the caller");
        assert_eq!(q.take(1, None), [0]);
        assert_eq!(bell.0.load(Ordering::SeqCst), 0, "3 of 4 still taken");
        assert_eq!(q.take(1, None), [1]);
        assert_eq!(bell.0.load(Ordering::SeqCst), 1, "half free: rung");
        assert_eq!(q.take(1, None), [2]);
        assert_eq!(bell.0.load(Ordering::SeqCst), 1, "rung once per wait");
        q.push_room(&mut items);
        assert!(items.is_empty());
        assert_eq!(q.take_all(), [3, 4, 5, 6]);
        assert_eq!(bell.0.load(Ordering::SeqCst), 1, "nothing waited");
        assert_eq!(q.dropped(), 0);
        assert_eq!(q.taken(), 7);
    }

    #[test]
    fn take_waits_with_deadline() {
        let q: Queue<u32> = Queue::new(3, Duration::from_micros(50)).unwrap();
        let start = Instant::now();
        assert!(q
            .take(1, deadline(Some(Duration::from_millis(30))))
            .is_empty());
        assert!(start.elapsed() >= Duration::from_millis(30));
        q.push_all([7]);
        assert_eq!(q.take(5, None), [7]);
    }

    /// Reads what the readiness pipe holds (consuming it).
    fn pipe_bytes<T>(q: &Queue<T>) -> usize {
        let mut buf = [0u8; 8];
        (&q.reader).read(&mut buf).unwrap_or(0)
    }

    #[test]
    fn the_descriptor_is_signaled_once_somebody_asked_for_it() {
        let q = Queue::new(8, Duration::ZERO).unwrap();
        q.push_all([1]);
        assert_eq!(pipe_bytes(&q), 0, "no system call per message before fd()");
        q.fd();
        assert_eq!(
            pipe_bytes(&q),
            1,
            "pending items signaled when fd() is asked for"
        );
        let q = Queue::new(8, Duration::ZERO).unwrap();
        q.fd();
        q.push_all([1, 2]);
        q.push_all([3]);
        assert_eq!(q.take_all(), [1, 2, 3]);
        assert_eq!(pipe_bytes(&q), 0, "drained when the queue empties");
        q.push_all([4]);
        assert_eq!(pipe_bytes(&q), 1, "one byte while items are pending");
    }

    #[test]
    fn a_reader_watches_while_items_come_one_at_a_time_and_not_during_a_stream() {
        use std::sync::atomic::AtomicUsize;
        let q = std::sync::Arc::new(Queue::<u32>::new(64, Duration::ZERO).unwrap());
        let watches = AtomicUsize::new(0);
        // A watch that sleeps in poll(2) on the queue's descriptor alone.
        let watch = |w: &dyn Watched, _: Option<Instant>| {
            watches.fetch_add(1, Ordering::SeqCst);
            w.sleep(&mut |fd| {
                let mut fds = [rustix::event::PollFd::from_borrowed_fd(
                    fd,
                    rustix::event::PollFlags::IN,
                )];
                rustix::event::poll(&mut fds, None).unwrap();
            });
        };
        let push_later = |items: Vec<u32>| {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                q.push_all(items);
            })
        };
        // One at a time: every wait watches, and the descriptor wakes the watcher.
        for i in 0..3 {
            let t = push_later(vec![i]);
            assert_eq!(q.take_watching(1, None, &|| false, &watch), [i]);
            t.join().unwrap();
        }
        assert_eq!(watches.load(Ordering::SeqCst), 3);
        // A batch ends a wait: the next wait sleeps without watching...
        let t = push_later((0..20).collect());
        assert_eq!(q.take_watching(1, None, &|| false, &watch), [0]);
        t.join().unwrap();
        assert_eq!(q.take_all().len(), 19);
        let t = push_later(vec![7]);
        assert_eq!(q.take_watching(1, None, &|| false, &watch), [7]);
        t.join().unwrap();
        assert_eq!(watches.load(Ordering::SeqCst), 4);
        // ...which ended with one item: the next one watches again.
        let t = push_later(vec![8]);
        assert_eq!(q.take_watching(1, None, &|| false, &watch), [8]);
        t.join().unwrap();
        assert_eq!(watches.load(Ordering::SeqCst), 5);
        // The descriptor holds no byte once the queue is empty.
        assert_eq!(pipe_bytes(&q), 0);
    }

    #[test]
    fn a_spinning_reader_sees_items_pushed_meanwhile() {
        let q = std::sync::Arc::new(Queue::new(8, Duration::from_secs(5)).unwrap());
        let pusher = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                q.push_all([9]);
            })
        };
        assert_eq!(q.take(4, None), [9]);
        pusher.join().unwrap();
        q.close();
        assert!(
            q.take(4, None).is_empty(),
            "a closed queue wakes a spinning reader"
        );
    }

    /// A reader that waits longer than its spin budget four times in a row sleeps at once
    /// from then on; one wait that ends within the budget turns spinning back on. (Generous
    /// times, so that a loaded machine does not look overloaded: a budget of 150 ms against
    /// gaps of 400 ms, 50 ms and 1 ms.)
    #[test]
    fn a_trickle_turns_a_readers_spinning_off_and_a_burst_back_on() {
        let budget = Duration::from_millis(150);
        let q = std::sync::Arc::new(Queue::new(8, budget).unwrap());
        let push_after = |gap: Duration, v: u32| {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(gap);
                q.push_all([v]);
            })
        };
        for i in 0..crate::governor::WASTED_BEFORE_SLEEPING {
            let t = push_after(Duration::from_millis(400), i);
            assert_eq!(q.take(1, None), [i]);
            t.join().unwrap();
        }
        assert_eq!(q.spins_skipped(), 0, "every one of those spun first");
        // 50 ms: long enough that the reader is waiting when it comes even on a loaded
        // machine (with 1 ms the value could be there before the reader looked, and nothing
        // was skipped), short enough to end within the budget and turn spinning back on.
        let t = push_after(Duration::from_millis(50), 100);
        assert_eq!(q.take(1, None), [100]);
        t.join().unwrap();
        assert_eq!(q.spins_skipped(), 1, "the trickle turned spinning off");
        let t = push_after(Duration::from_millis(1), 101);
        assert_eq!(q.take(1, None), [101]);
        t.join().unwrap();
        assert_eq!(q.spins_skipped(), 1, "a quick answer turned it back on");
    }
}
