//! A connection's outgoing side as the core sees it: chunks go straight onto the socket when
//! nothing is queued before them (and the fast paths are on), or through the connection's
//! writer task, in order. A leaf below the core and the connection.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use crate::order::{Ordered, Rank};

/// A connection's outgoing side, shared by its writer task and whoever runs the core.
#[derive(Default)]
pub(crate) struct Pipe {
    /// The stream's write half (none until the core took the peer and the stream split).
    pub(crate) sink: Mutex<Option<Sink>>,
    /// Chunks handed to the writer task that it has not finished writing.
    pub(crate) queued: AtomicUsize,
    /// Set by the core when the writer's channel is full: the writer then says `Writable`
    /// after its next write (and only then).
    pub(crate) wants_room: AtomicBool,
}

/// A connection's socket write half (plain TCP or TLS).
pub(crate) type Sink = Pin<Box<dyn AsyncWrite + Send>>;

impl Pipe {
    pub(crate) fn sink(&self) -> Ordered<MutexGuard<'_, Option<Sink>>> {
        // A panic while writing leaves at worst a partly written chunk: the peer sees a bad
        // frame and disconnects, which is what a failed write means anyway.
        Ordered::new(
            Rank::Sink,
            self.sink.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }
}

/// The core's end of a connection's outgoing side.
///
/// A chunk goes straight onto the socket when nothing is queued before it, as far as the
/// socket takes it without waiting: no hand-over to the writer task, and from a publisher's
/// thread no wake-up of the runtime. The rest, and every chunk while some are queued, goes
/// through the writer task's bounded channel, in order.
pub(crate) struct Outbox {
    pub(crate) pipe: Arc<Pipe>,
    pub(crate) writer: mpsc::Sender<Bytes>,
    /// Whether the core may write onto the socket itself (`Configuration::fast_paths`); off,
    /// every chunk goes through the writer task.
    pub(crate) direct: bool,
}

impl Outbox {
    /// Whether the outbox takes another chunk now.
    pub(crate) fn has_room(&self) -> bool {
        self.writer.capacity() > 0
    }

    /// Sends a chunk (call only after [`has_room`](Self::has_room) said yes, from the core,
    /// which is the only sender). Returns false when the connection's writer is gone.
    pub(crate) fn send(&self, chunk: Bytes) -> bool {
        let written = if self.direct && self.pipe.queued.load(Ordering::SeqCst) == 0 {
            self.write_now(&chunk)
        } else {
            0
        };
        if written == chunk.len() {
            return true;
        }
        self.pipe.queued.fetch_add(1, Ordering::SeqCst);
        if self.writer.try_send(chunk.slice(written..)).is_err() {
            self.pipe.queued.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Writes as much of `chunk` as the socket takes without waiting; returns how much.
    /// Only while the writer task has nothing queued: it is then not waiting for the socket,
    /// so the waker left with the socket here (which wakes nobody) replaces none of its own,
    /// and the writer registers its own when it takes the rest.
    fn write_now(&self, chunk: &[u8]) -> usize {
        let mut sink = self.pipe.sink();
        let Some(sink) = sink.as_mut() else {
            return 0;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut off = 0;
        while off < chunk.len() {
            match sink.as_mut().poll_write(&mut cx, &chunk[off..]) {
                Poll::Ready(Ok(n)) if n > 0 => off += n,
                // Waiting, closed or failed: the writer takes the rest and finds out.
                _ => break,
            }
        }
        off
    }

    /// Asks the writer to report room (`Cmd::Writable`) after its next write; returns whether
    /// it has made some meanwhile (then the flag stays set: at worst one report too many).
    pub(crate) fn want_room(&self) -> bool {
        self.pipe.wants_room.store(true, Ordering::SeqCst);
        self.has_room()
    }
}
