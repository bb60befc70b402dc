//! How much a connection's reader task handed the core that the core has not handled yet,
//! weighed by [`weight`]: the reader stops at [`MAX_IN_FLIGHT`] (so TCP pushes back on a peer
//! that sends faster than the core routes) and is woken when the core catches up. A leaf: the
//! core gets it with each batch (`Cmd::Incoming`) and calls [`handled`](InFlight::handled)
//! with the batch's weight, without knowing what a reader is. (It is flow control only: order
//! comes from the intake, see `shared`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Waker};

use broker_routing::Message;

/// The weight one reader may have in the core's intake before it stops reading: 8,192
/// messages, and at most 8 batches (a batch is what one read brought, at most about 64 KiB,
/// and weighs at least [`MIN_BATCH_WEIGHT`]). Counting messages matters since batch frames:
/// 64 KiB of them hold some 6,000 small values, ten times what they take on the wire.
pub(crate) const MAX_IN_FLIGHT: usize = 8_192;

/// The least a batch weighs (so that at most 8 are in flight, whatever their size).
pub(crate) const MIN_BATCH_WEIGHT: usize = MAX_IN_FLIGHT / 8;

/// What a batch read from a connection weighs: its messages (a batch publication counts its
/// values), at least [`MIN_BATCH_WEIGHT`].
pub(crate) fn weight(msgs: &[Message]) -> usize {
    msgs.iter()
        .map(Message::count)
        .sum::<usize>()
        .max(MIN_BATCH_WEIGHT)
}

/// See the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    /// The reader task, while it waits for the core to catch up.
    resume: Mutex<Option<Waker>>,
}

impl InFlight {
    /// A batch of this weight is about to be sent to the core.
    pub(crate) fn sending(&self, weight: usize) {
        self.count.fetch_add(weight, Ordering::SeqCst);
    }

    /// The batch counted by [`sending`](Self::sending) was never sent (the core is gone).
    pub(crate) fn not_sent(&self, weight: usize) {
        self.count.fetch_sub(weight, Ordering::SeqCst);
    }

    /// The core handled a batch of this weight; a reader that waited for room reads again.
    pub(crate) fn handled(&self, weight: usize) {
        let before = self.count.fetch_sub(weight, Ordering::SeqCst);
        if before >= MAX_IN_FLIGHT && before - weight < MAX_IN_FLIGHT {
            let waiting = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = waiting {
                w.wake();
            }
        }
    }

    /// The weight of the batches sent and not yet handled.
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
