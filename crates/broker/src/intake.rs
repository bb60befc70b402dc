//! The core's intake: the three queues through which everything reaches the core, in order
//! (commands, including the batches connections read; publications; what stores publish), with
//! what a round of work remembers between rounds. It lives inside the core's state, so that
//! whoever holds the core's lock drains it (see `shared` for the rule). A leaf: it knows the
//! command vocabulary, not the core.
//!
//! The runtime thread takes from the queues with its doorbell's waker (a later item rings the
//! doorbell); an application thread that drives the core takes with `try_recv` and leaves the
//! registered waker alone.

use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::cmd::{Cmd, Publications, StoreOutput};

/// Commands one round takes at most from the runtime thread (an application thread takes all
/// there are, so that nothing it handles after them overtakes them).
pub(crate) const CMDS_PER_ROUND: usize = 256;

/// Publication batches one round takes at most.
pub(crate) const PUBS_PER_ROUND: usize = 16;

/// See the module's documentation.
pub(crate) struct Intake {
    pub(crate) cmds: mpsc::UnboundedReceiver<Cmd>,
    pub(crate) pubs: mpsc::Receiver<Publications>,
    pub(crate) stores: mpsc::Receiver<StoreOutput>,
    pub(crate) pubs_open: bool,
    pub(crate) stores_open: bool,
    /// A store batch that waits for room at the peers (stores block meanwhile).
    pub(crate) store_waiting: Option<StoreOutput>,
    /// A shutdown under way: who waits for it and until when the peers get to take what was
    /// published before it.
    pub(crate) shutdown: Option<(Vec<oneshot::Sender<()>>, Instant)>,
    /// Every command sender is gone, or the shutdown completed: the task loop ends.
    pub(crate) finished: bool,
    /// When the runtime thread last went to sleep, the time it set its timer for (an
    /// application thread that drives the core rings it when it needs it sooner).
    pub(crate) armed: Option<Instant>,
    /// Scratch space for one round's commands and publication batches.
    pub(crate) cmd_batch: Vec<Cmd>,
    pub(crate) pub_batch: Vec<Publications>,
}

impl Intake {
    /// The intake of the three queues' receiving ends.
    pub(crate) fn new(
        cmds: mpsc::UnboundedReceiver<Cmd>,
        pubs: mpsc::Receiver<Publications>,
        stores: mpsc::Receiver<StoreOutput>,
    ) -> Intake {
        Intake {
            cmds,
            pubs,
            stores,
            pubs_open: true,
            stores_open: true,
            store_waiting: None,
            shutdown: None,
            finished: false,
            armed: None,
            cmd_batch: Vec::with_capacity(CMDS_PER_ROUND),
            pub_batch: Vec::with_capacity(PUBS_PER_ROUND),
        }
    }
}

/// What taking from a queue found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Took {
    /// This many items.
    Some(usize),
    /// Nothing (with a waker: it is registered).
    Nothing,
    /// The queue is closed and empty.
    Closed,
}

/// A queue's receiving end, bounded or not.
pub(crate) trait Receive<T> {
    /// Takes up to `limit` items into `into`: with `cx`, registering its waker when there are
    /// none; without, leaving the registered waker alone.
    fn take(&mut self, cx: Option<&mut Context<'_>>, into: &mut Vec<T>, limit: usize) -> Took;
}

macro_rules! receive {
    ($rx:ty, $empty:path, $gone:path) => {
        impl<T> Receive<T> for $rx {
            fn take(
                &mut self,
                cx: Option<&mut Context<'_>>,
                into: &mut Vec<T>,
                limit: usize,
            ) -> Took {
                match cx {
                    Some(cx) => match self.poll_recv_many(cx, into, limit) {
                        Poll::Ready(0) => Took::Closed,
                        Poll::Ready(n) => Took::Some(n),
                        Poll::Pending => Took::Nothing,
                    },
                    None => {
                        let mut n = 0;
                        while n < limit {
                            match self.try_recv() {
                                Ok(item) => {
                                    into.push(item);
                                    n += 1;
                                }
                                Err($empty) => break,
                                Err($gone) if n == 0 => return Took::Closed,
                                Err($gone) => break,
                            }
                        }
                        if n == 0 {
                            Took::Nothing
                        } else {
                            Took::Some(n)
                        }
                    }
                }
            }
        }
    };
}

receive!(
    mpsc::UnboundedReceiver<T>,
    mpsc::error::TryRecvError::Empty,
    mpsc::error::TryRecvError::Disconnected
);
receive!(
    mpsc::Receiver<T>,
    mpsc::error::TryRecvError::Empty,
    mpsc::error::TryRecvError::Disconnected
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn taking_without_a_waker_takes_what_is_there_and_sees_the_end() {
        let (tx, mut rx) = mpsc::channel::<u32>(8);
        let mut got = Vec::new();
        assert_eq!(rx.take(None, &mut got, 4), Took::Nothing);
        for i in 0..6 {
            tx.try_send(i).unwrap();
        }
        assert_eq!(rx.take(None, &mut got, 4), Took::Some(4));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(rx.take(Some(&mut cx), &mut got, 4), Took::Some(2));
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
        assert_eq!(rx.take(Some(&mut cx), &mut got, 4), Took::Nothing);
        drop(tx);
        assert_eq!(rx.take(None, &mut got, 4), Took::Closed);
        assert_eq!(rx.take(Some(&mut cx), &mut got, 4), Took::Closed);
    }
}
