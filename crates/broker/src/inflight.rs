//! How many batches a connection's reader task handed the core that the core has not handled
//! yet: the reader stops at [`MAX_IN_FLIGHT`] (so TCP pushes back on a peer that sends faster
//! than the core routes) and is woken when the core catches up. A leaf: the core gets it with
//! each batch (`Cmd::Incoming`) and calls [`handled`](InFlight::handled), without knowing what
//! a reader is. (It is flow control only: order comes from the intake, see `shared`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Waker};

/// Batches one reader may have in the core's intake before it stops reading. A batch is what
/// one read brought, at most about 64 KiB.
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// See the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    /// The reader task, while it waits for the core to catch up.
    resume: Mutex<Option<Waker>>,
}

impl InFlight {
    /// A batch is about to be sent to the core.
    pub(crate) fn sending(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// The batch counted by [`sending`](Self::sending) was never sent (the core is gone).
    pub(crate) fn not_sent(&self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }

    /// The core handled a batch; a reader that waited for room reads again.
    pub(crate) fn handled(&self) {
        let before = self.count.fetch_sub(1, Ordering::SeqCst);
        if before == MAX_IN_FLIGHT {
            let waiting = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = waiting {
                w.wake();
            }
        }
    }

    /// Batches sent and not yet handled.
    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Whether the reader must wait for the core before reading more; if so, it is woken by
    /// [`handled`](Self::handled). (The waker is in place before the count is looked at again,
    /// so no wake is lost between the two.)
    pub(crate) fn core_is_behind(&self, cx: &Context<'_>) -> bool {
        if self.get() < MAX_IN_FLIGHT {
            return false;
        }
        *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        self.get() >= MAX_IN_FLIGHT
    }
}
