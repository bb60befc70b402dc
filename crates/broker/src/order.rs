//! The facade's lock order, checked: every lock that may be held with another has a rank, and
//! a thread may take a lock only while every lock it holds ranks lower (core → inbox → wire;
//! see the lock table in `shared`). Debug builds (all tests) panic on a wrong order at the
//! moment it happens, whether or not that run would have deadlocked; release builds check
//! nothing and pay nothing.

use std::ops::{Deref, DerefMut};

/// The facade's locks, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    /// The core's state (`Shared::core`).
    Core = 1,
    /// A connection's incoming side (`Inbox`'s state).
    Inbox = 2,
    /// A connection's socket write half and the queue in front of it (`outbox::Pipe`).
    Wire = 3,
}

#[cfg(debug_assertions)]
thread_local! {
    static HELD: std::cell::RefCell<Vec<Rank>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A lock guard that records, while it lives, that this thread holds a lock of its rank.
pub(crate) struct Ordered<G> {
    guard: G,
    #[cfg(debug_assertions)]
    rank: Rank,
}

impl<G> Ordered<G> {
    /// Records `rank` as taken with `guard` (call right after taking the lock: a wrong order
    /// is reported before anything is done under it).
    pub(crate) fn new(rank: Rank, guard: G) -> Self {
        #[cfg(debug_assertions)]
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(top) = held.iter().max() {
                assert!(
                    *top < rank,
                    "lock order violated: taking {rank:?} while holding {top:?} (order: core → inbox → wire)"
                );
            }
            held.push(rank);
        });
        #[cfg(not(debug_assertions))]
        let _ = rank;
        Ordered {
            guard,
            #[cfg(debug_assertions)]
            rank,
        }
    }
}

#[cfg(debug_assertions)]
impl<G> Drop for Ordered<G> {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(i) = held.iter().rposition(|r| *r == self.rank) {
                held.remove(i);
            }
        });
    }
}

impl<G: Deref> Deref for Ordered<G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Ordered<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_order_core_inbox_wire_passes() {
        let (a, b, c) = (Mutex::new(1), Mutex::new(2), Mutex::new(3));
        let core = Ordered::new(Rank::Core, a.lock().unwrap());
        let inbox = Ordered::new(Rank::Inbox, b.lock().unwrap());
        let sink = Ordered::new(Rank::Wire, c.lock().unwrap());
        assert_eq!(*core + *inbox + *sink, 6);
        drop((sink, inbox, core));
        // Released: any lock may be taken again.
        let _sink = Ordered::new(Rank::Wire, c.lock().unwrap());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order violated: taking Core while holding Inbox")]
    fn taking_the_core_while_holding_an_inbox_panics() {
        let (a, b) = (Mutex::new(()), Mutex::new(()));
        let _inbox = Ordered::new(Rank::Inbox, b.lock().unwrap());
        let _core = Ordered::new(Rank::Core, a.lock().unwrap());
    }
}
