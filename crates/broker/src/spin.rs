//! Spinning before sleeping: after a burst of traffic, the endpoint's runtime keeps polling its
//! sockets and queues for a short while (`Configuration::spin_wait`) instead of parking at once.
//!
//! Waking a parked thread costs tens of microseconds (on virtual machines whose idle processors
//! halt, most of a loopback round trip); a thread that is still looking picks the next message
//! up in about a microsecond. The spin is bounded: an idle endpoint sleeps and costs nothing, a
//! busy one never spins (its workers always have tasks to run), and a spinner yields the
//! processor between looks so that threads with real work run first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// What the core reports after each round of work; the spinner watches it.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    rounds: AtomicU64,
    spinning: AtomicBool,
    wake: Notify,
}

impl Activity {
    /// Records a round of work and starts the spinner if it sleeps.
    pub(crate) fn touch(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        if !self.spinning.load(Ordering::Relaxed) {
            self.wake.notify_one();
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
    loop {
        activity.wake.notified().await;
        activity.spinning.store(true, Ordering::Relaxed);
        let mut seen = activity.rounds.load(Ordering::Relaxed);
        let mut end = Instant::now() + budget;
        loop {
            // Yielding defers this task until the runtime has polled its I/O driver (without
            // blocking) and run whatever became ready.
            tokio::task::yield_now().await;
            let rounds = activity.rounds.load(Ordering::Relaxed);
            let now = Instant::now();
            if rounds != seen {
                seen = rounds;
                end = now + budget;
            } else if now >= end {
                break;
            }
            // Let other threads on this processor (a subscriber, the peer process) run first.
            std::thread::yield_now();
        }
        activity.spinning.store(false, Ordering::Relaxed);
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
}
