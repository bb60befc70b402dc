//! Whether spinning pays: the adaptive half of spin-then-sleep (see `spin` and `queue`).
//!
//! A waiter that spins for `budget` before it sleeps answers in a microsecond when the next
//! message comes within the budget (a ping-pong, a stream), and burns the budget for nothing
//! when it does not (a trickle of one message every few hundred microseconds, an idle node).
//! The governor remembers how recent waits ended and lets a waiter spin only while that pays:
//!
//! - a wait that ended within the budget (by spinning or, had it spun, would have) proves that
//!   spinning pays: the next waits spin;
//! - [`WASTED_BEFORE_SLEEPING`] waits in a row that outlasted the budget stop the spinning:
//!   from then on the waiter sleeps at once, and the first wait that ends within the budget
//!   again (measured while sleeping) turns spinning back on;
//! - a yield that took longer than the whole budget means the processor is wanted by others
//!   (an overloaded machine): the spin stops at once and counts as wasted.
//!
//! It holds two numbers in atomics, so waiters on several threads may share one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Waits in a row that outlast the budget before the waiter stops spinning.
pub(crate) const WASTED_BEFORE_SLEEPING: u32 = 4;

/// See the module's documentation.
#[derive(Debug)]
pub(crate) struct Governor {
    /// Wasted waits still allowed before spinning stops (0: sleep at once).
    credit: AtomicU32,
    /// Spins skipped because they did not pay (for the metrics).
    skipped: AtomicU32,
}

impl Default for Governor {
    fn default() -> Self {
        Governor {
            credit: AtomicU32::new(WASTED_BEFORE_SLEEPING),
            skipped: AtomicU32::new(0),
        }
    }
}

impl Governor {
    /// Whether the next wait should spin (counts the waits it tells to sleep at once).
    pub(crate) fn should_spin(&self) -> bool {
        if self.credit.load(Ordering::Relaxed) > 0 {
            return true;
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// A wait ended after `waited` (spinning, sleeping or both); `budget` is the spin budget.
    pub(crate) fn waited(&self, waited: Duration, budget: Duration) {
        if waited <= budget {
            self.credit.store(WASTED_BEFORE_SLEEPING, Ordering::Relaxed);
        } else {
            self.wasted();
        }
    }

    /// A wait outlasted the budget (or found nothing before its deadline).
    pub(crate) fn wasted(&self) {
        // Saturating: several waiters may count down at once.
        let _ = self
            .credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
    }

    /// A yield while spinning took `took`: longer than the whole budget means that others want
    /// the processor, so spinning stops until a wait proves it pays again. Returns whether
    /// the spin should stop.
    pub(crate) fn yielded(&self, took: Duration, budget: Duration) -> bool {
        if took > budget {
            self.credit.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// How many waits slept at once because spinning did not pay.
    pub(crate) fn skipped(&self) -> u64 {
        u64::from(self.skipped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_micros(100);

    #[test]
    fn a_trickle_stops_the_spinning_and_a_quick_answer_turns_it_back_on() {
        let g = Governor::default();
        for _ in 0..WASTED_BEFORE_SLEEPING {
            assert!(g.should_spin());
            g.waited(Duration::from_micros(500), BUDGET);
        }
        assert!(!g.should_spin(), "four slow waits in a row: sleep at once");
        assert!(!g.should_spin());
        assert_eq!(g.skipped(), 2);
        // Measured while sleeping: this one would have paid.
        g.waited(Duration::from_micros(40), BUDGET);
        assert!(g.should_spin());
    }

    #[test]
    fn one_quick_answer_among_slow_ones_keeps_the_spinning() {
        let g = Governor::default();
        for round in 0..20 {
            assert!(g.should_spin(), "round {round}");
            let waited = if round % 3 == 0 { 20 } else { 300 };
            g.waited(Duration::from_micros(waited), BUDGET);
        }
    }

    #[test]
    fn a_yield_longer_than_the_budget_stops_the_spinning_at_once() {
        let g = Governor::default();
        assert!(!g.yielded(Duration::from_micros(5), BUDGET));
        assert!(g.should_spin());
        assert!(g.yielded(Duration::from_millis(4), BUDGET));
        assert!(!g.should_spin(), "the machine is busy");
        g.waited(Duration::from_micros(10), BUDGET);
        assert!(g.should_spin());
    }

    #[test]
    fn waiters_counting_down_together_never_wrap_around() {
        let g = Governor::default();
        for _ in 0..3 * WASTED_BEFORE_SLEEPING {
            g.wasted();
        }
        assert!(!g.should_spin());
    }
}
