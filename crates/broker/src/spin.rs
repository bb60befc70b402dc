//! Spinning before sleeping: after a burst of traffic, the endpoint's runtime keeps polling its
//! sockets and queues for a short while (`Configuration::spin_wait`) instead of parking at once.
//!
//! Waking a parked thread costs tens of microseconds (on virtual machines whose idle processors
//! halt, most of a loopback round trip); a thread that is still looking picks the next message
//! up in about a microsecond. The spin is bounded: an idle endpoint sleeps and costs nothing, a
//! busy one never spins (its workers always have tasks to run). A spinner gives the processor
//! to other threads (a subscriber, the peer process) only when its runtime has nothing to do:
//! while work is under way (the core or a reader just ran, a publication rang, a task woken
//! from another thread waits) it keeps it, since a yielded processor comes back only after
//! another thread's turn.
//!
//! While it spins, the spinner also answers the core's doorbell (see [`Activity`]): a
//! publisher on another thread then hands its publication over without a system call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::governor::Governor;

/// What the core and the readers report after each round of work; the spinner watches it.
///
/// It is also the doorbell of the core's intake (its [`Wake`]: every queue of the intake wakes
/// the core task through it). A wake-up, which from another thread would cost the runtime's
/// event descriptor a write and a poll, only rings here while a watcher watches — the spinner,
/// which passes it on from the runtime's own thread at its next turn, or an application
/// thread that drives the core (see `shared`), which passes it on as it lets go.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    rounds: AtomicU64,
    /// Batches handed to the core by readers on this runtime (only compared, never counted).
    handed: AtomicU64,
    /// The value of `handed` when the core last took its commands: work waits for the core
    /// while the two differ.
    taken: AtomicU64,
    spinning: AtomicBool,
    /// An application thread holds the core's lock and drives it (see `shared`): it answers
    /// rings as it leaves.
    driving: AtomicBool,
    wake: Notify,
    /// A wake-up for the core is waiting.
    rung: AtomicBool,
    /// The core task's own waker, as last seen.
    core: Mutex<Option<Waker>>,
    /// Whether the spinner's spinning pays (see `governor`).
    pub(crate) governor: Governor,
}

impl Activity {
    /// Records a round of work and starts the spinner if it sleeps.
    pub(crate) fn touch(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        if !self.spinning.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Consumes a wake-up that `touch` stored for the spinner while nobody waited, if any.
    fn forget_stored_wake(&self) {
        let stored = std::pin::pin!(self.wake.notified());
        let _ =
            std::future::Future::poll(stored, &mut std::task::Context::from_waker(Waker::noop()));
    }

    /// Records that a reader on this runtime handed the core a batch: the core runs next, so
    /// the spinner keeps the processor for it.
    pub(crate) fn hand_over(&self) {
        self.handed.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// Records that the core took its commands: what readers had handed over is in its hands.
    /// (A hand-over racing with this only costs the spinner a yield; the intake still wakes
    /// the core.)
    pub(crate) fn take(&self) {
        self.taken
            .store(self.handed.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Whether a reader handed the core a batch that it has not taken yet.
    fn waiting(&self) -> bool {
        self.handed.load(Ordering::Relaxed) != self.taken.load(Ordering::Relaxed)
    }

    /// Sets the spinner's flag as the spinner does (tests aim at interleavings with it).
    #[cfg(test)]
    pub(crate) fn set_spinning_for_tests(&self, on: bool) {
        self.spinning.store(on, Ordering::SeqCst);
    }

    /// Clears the spinner's flag as the spinner does when it stops (tests).
    #[cfg(test)]
    pub(crate) fn stop_spinning_for_tests(&self) {
        drop(Spinning(self));
    }

    /// An application thread took the core's lock to drive it: rings meanwhile wait for
    /// [`drive_end`](Self::drive_end). (A ring not yet answered stays: besides the work it
    /// announced, which the driving thread takes, it means that the core task must poll its
    /// queues again to hear of the next item.)
    pub(crate) fn drive_begin(&self) {
        self.driving.store(true, Ordering::SeqCst);
    }

    /// The driving thread let go of the core's lock: it passes on the rings that came
    /// meanwhile and, with `wanted`, one of its own (the core needs its timer looked at).
    pub(crate) fn drive_end(&self, wanted: bool) {
        if wanted {
            self.rung.store(true, Ordering::SeqCst);
        }
        self.driving.store(false, Ordering::SeqCst);
        if !self.spinning.load(Ordering::SeqCst) {
            self.answer();
        }
    }

    /// The runtime's core task found the core's lock held: whoever holds it answers the ring
    /// as it leaves, or, if it has already left, the ring wakes the task at once.
    pub(crate) fn busy(&self) {
        self.ring();
    }

    /// Rings: the core task is woken now, unless the spinner or a driving thread will pass the
    /// ring on.
    fn ring(&self) {
        self.rung.store(true, Ordering::SeqCst);
        // Either a watcher is still watching and will see the ring, or it has stopped and this
        // sees that (both sides store, then load, sequentially consistent).
        if !self.spinning.load(Ordering::SeqCst) && !self.driving.load(Ordering::SeqCst) {
            self.answer();
        }
    }

    /// Remembers the waker of the task that waits behind this doorbell.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut core = self.core.lock().unwrap_or_else(|e| e.into_inner());
        if !core.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *core = Some(waker.clone());
        }
    }

    /// Passes a waiting ring on to the core; returns whether there was one.
    fn answer(&self) -> bool {
        if !self.rung.load(Ordering::SeqCst) || !self.rung.swap(false, Ordering::SeqCst) {
            return false;
        }
        let waker = self.core.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = waker {
            w.wake();
        }
        true
    }
}

impl Wake for Activity {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ring();
    }
}

/// Marks the spinner as spinning while it lives; on the way out (stopped or dropped with the
/// runtime) it passes on a ring that came too late for the last turn.
struct Spinning<'a>(&'a Activity);

impl<'a> Spinning<'a> {
    fn start(activity: &'a Activity) -> Self {
        activity.spinning.store(true, Ordering::SeqCst);
        Spinning(activity)
    }
}

impl Drop for Spinning<'_> {
    fn drop(&mut self) {
        self.0.spinning.store(false, Ordering::SeqCst);
        if !self.0.driving.load(Ordering::SeqCst) {
            self.0.answer();
        }
    }
}

/// The spinner task: after activity, yields to the runtime (which polls its sockets without
/// blocking whenever a task yields and nothing else is runnable) until `budget` has passed
/// without activity, then sleeps until the next. Runs until the runtime stops.
pub(crate) async fn spinner(activity: Arc<Activity>, budget: Duration) {
    if budget.is_zero() {
        return;
    }
    // When the last activity before the spinner went to sleep was (see `governor`).
    let mut idle_since: Option<Instant> = None;
    loop {
        activity.wake.notified().await;
        if let Some(since) = idle_since.take() {
            activity.governor.waited(since.elapsed(), budget);
        }
        if !activity.governor.should_spin() {
            // Spinning has not paid lately: sleep until the next activity. (Rounds of the
            // burst that woke us may have stored a wake-up meanwhile: it is not the next
            // activity, and would make spinning look as if it paid.)
            activity.forget_stored_wake();
            idle_since = Some(Instant::now());
            continue;
        }
        let spinning = Spinning::start(&activity);
        let mut seen = activity.rounds.load(Ordering::Relaxed);
        let mut end = Instant::now() + budget;
        let metrics = tokio::runtime::Handle::current().metrics();
        loop {
            // Yielding defers this task until the runtime has polled its I/O driver (without
            // blocking) and run whatever became ready.
            tokio::task::yield_now().await;
            let rounds = activity.rounds.load(Ordering::Relaxed);
            let now = Instant::now();
            if rounds != seen {
                seen = rounds;
                end = now + budget;
            }
            let rang = activity.answer();
            if rang || activity.waiting() || metrics.global_queue_depth() > 0 {
                // Work waits for the core (a publication rang, a reader handed it a batch it
                // has not taken, a task was woken from another thread): keep the processor.
                continue;
            }
            if now >= end {
                break;
            }
            // Nothing to do here: let other threads on this processor (a subscriber, the
            // peer process) run first.
            let before = Instant::now();
            std::thread::yield_now();
            // A publication that rang meanwhile goes to the core before the sockets are
            // looked at again.
            activity.answer();
            if activity.governor.yielded(before.elapsed(), budget) {
                // The processor is wanted elsewhere: spinning costs others more than it saves.
                break;
            }
        }
        drop(spinning);
        idle_since = Some(end - budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_for_the_budget_after_activity_then_sleeps() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let activity = Arc::new(Activity::default());
            let task = tokio::spawn(spinner(activity.clone(), Duration::from_millis(20)));
            tokio::task::yield_now().await;
            assert!(!activity.spinning.load(Ordering::Relaxed));
            activity.touch();
            // The spinner runs now (it shares this thread, so give it turns).
            let start = Instant::now();
            let mut seen_spinning = false;
            while start.elapsed() < Duration::from_millis(500) {
                tokio::task::yield_now().await;
                if activity.spinning.load(Ordering::Relaxed) {
                    seen_spinning = true;
                } else if seen_spinning {
                    break;
                }
            }
            assert!(seen_spinning, "the spinner never started");
            assert!(
                !activity.spinning.load(Ordering::Relaxed),
                "it never stopped"
            );
            assert!(start.elapsed() >= Duration::from_millis(20));
            task.abort();
        });
    }

    /// A trickle (bursts of two rounds, further apart than the budget) turns the spinner's
    /// spinning off; quick activity turns it back on.
    #[test]
    fn a_trickle_of_bursts_turns_the_spinner_off_and_quick_activity_back_on() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // Generous times, so that a loaded machine does not look overloaded.
            let budget = Duration::from_millis(50);
            let activity = Arc::new(Activity::default());
            let task = tokio::spawn(spinner(activity.clone(), budget));
            tokio::task::yield_now().await;
            let burst = || {
                activity.touch();
                activity.touch();
            };
            for _ in 0..10 {
                burst();
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            let skipped = activity.governor.skipped();
            assert!(
                skipped >= 4,
                "only {skipped} of 10 slow bursts slept at once"
            );
            // Quick activity: spinning pays again.
            for _ in 0..5 {
                burst();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let before = activity.governor.skipped();
            for _ in 0..5 {
                burst();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(activity.governor.skipped(), before, "quick activity spins");
            task.abort();
        });
    }

    #[test]
    fn rings_reach_the_core_whether_the_spinner_spins_or_sleeps() {
        use std::sync::mpsc as std_mpsc;
        use std::task::Poll;

        let (runtime, handle) = crate::runtime::Runtime::start(1).unwrap();
        let activity = Arc::new(Activity::default());
        handle.spawn(spinner(activity.clone(), Duration::from_micros(300)));
        let waiting = Arc::new(AtomicU64::new(0));
        let (seen_tx, seen) = std_mpsc::channel();
        // A stand-in for the core: waits behind the doorbell until something is waiting, and
        // reports work as the core does (which starts the spinner).
        handle.spawn({
            let (activity, waiting) = (activity.clone(), waiting.clone());
            async move {
                loop {
                    std::future::poll_fn(|cx| {
                        activity.register(cx.waker());
                        if waiting.swap(0, Ordering::SeqCst) > 0 {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    })
                    .await;
                    activity.touch();
                    if seen_tx.send(()).is_err() {
                        break;
                    }
                }
            }
        });
        let bell = Waker::from(activity.clone());
        let mut rung_while_spinning = 0;
        for i in 0..600 {
            // Sometimes right away (the spinner spins), sometimes after it has gone to sleep.
            if i % 3 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            if activity.spinning.load(Ordering::SeqCst) {
                rung_while_spinning += 1;
            }
            waiting.fetch_add(1, Ordering::SeqCst);
            bell.wake_by_ref();
            seen.recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("ring {i} never reached the core"));
        }
        assert!(rung_while_spinning > 0, "the spinner never spun");
        runtime.stop();
    }

    #[derive(Default)]
    struct Count(AtomicU64);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_ring_goes_straight_to_the_core_unless_the_spinner_spins_and_then_it_passes_it_on() {
        let activity = Arc::new(Activity::default());
        let core = Arc::new(Count::default());
        activity.register(&Waker::from(core.clone()));
        let bell = Waker::from(activity.clone());
        let woken = || core.0.load(Ordering::SeqCst);

        // Nobody spins: the core is woken at once.
        bell.wake_by_ref();
        assert_eq!(woken(), 1);
        assert!(!activity.answer(), "nothing left to pass on");

        // The spinner spins: the ring waits for its next turn.
        let spinning = Spinning::start(&activity);
        bell.wake_by_ref();
        assert_eq!(woken(), 1);
        assert!(activity.answer());
        assert_eq!(woken(), 2);
        assert!(!activity.answer());

        // A ring the spinner's last turn missed is passed on when it stops.
        bell.wake_by_ref();
        assert_eq!(woken(), 2);
        drop(spinning);
        assert_eq!(woken(), 3);
    }
}
