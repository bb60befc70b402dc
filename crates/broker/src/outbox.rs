//! A connection's outgoing side: one queue of encoded chunks in front of the socket's write
//! half, both behind one lock. Whoever holds that lock writes from the front of the queue:
//! the core (from whichever thread drives it) when the queue is empty, the connection's writer
//! task for the rest. Order follows from the one queue; nothing counts chunks on their way.
//! A leaf below the core and the connection.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::AsyncWrite;

use crate::order::{Ordered, Rank};

/// Chunks a connection's queue holds before the core keeps messages in the router's buffer.
pub(crate) const QUEUE_CHUNKS: usize = 8;

/// A connection's socket write half (plain TCP or TLS).
pub(crate) type Sink = Pin<Box<dyn AsyncWrite + Send>>;

/// What the pipe's lock protects.
#[derive(Default)]
pub(crate) struct Wire {
    /// The stream's write half (none until the handshake is over and the stream split).
    sink: Option<Sink>,
    /// Chunks not yet written, in order; the front one may be partly written already (it is
    /// then the unwritten rest).
    queue: VecDeque<Bytes>,
    /// The writer task, while it waits for chunks.
    writer: Option<Waker>,
    /// The core's end is gone: the writer writes what is queued and shuts the stream down.
    closed: bool,
    /// A write failed: nothing more is written, and the core learns it at its next send.
    failed: bool,
    /// The core found the queue full: the writer reports room (`Cmd::Writable`) once it has
    /// written a chunk.
    wants_room: bool,
}

/// A connection's outgoing side, shared by its writer task and whoever drives the core.
#[derive(Default)]
pub(crate) struct Pipe {
    wire: Mutex<Wire>,
}

/// What one turn of the writer task found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Wrote what it could; `room` says whether the core asked to hear about room.
    Wrote { room: bool },
    /// The core's end is gone and everything is written, or a write failed: the writer ends.
    Done,
}

impl Pipe {
    fn lock(&self) -> Ordered<MutexGuard<'_, Wire>> {
        // A panic while writing leaves at worst a partly written chunk: the peer sees a bad
        // frame and disconnects, which is what a failed write means anyway.
        Ordered::new(
            Rank::Wire,
            self.wire.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Puts the stream's write half in place (once the handshake is over); chunks queued
    /// before then are written first, by the writer task.
    pub(crate) fn attach(&self, sink: Sink) {
        let mut wire = self.lock();
        wire.sink = Some(sink);
        if let Some(w) = wire.writer.take() {
            w.wake();
        }
    }

    /// The writer task's turn: writes from the front of the queue until it is empty or the
    /// socket is full (then `cx` is woken when it has room).
    pub(crate) fn poll_write_queue(&self, cx: &mut Context<'_>) -> Poll<Turn> {
        let mut wire = self.lock();
        let wire = &mut *wire;
        if wire.failed {
            return Poll::Ready(Turn::Done);
        }
        let mut wrote = false;
        if let Some(sink) = wire.sink.as_mut() {
            while let Some(front) = wire.queue.front_mut() {
                match sink.as_mut().poll_write(cx, front) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        if n == front.len() {
                            wire.queue.pop_front();
                            wrote = true;
                            if wire.wants_room {
                                // Told at once, while the rest is still being written: the
                                // core refills the queue before the socket runs dry.
                                break;
                            }
                        } else {
                            *front = front.slice(n..);
                        }
                    }
                    Poll::Ready(_) => {
                        wire.failed = true;
                        wire.queue.clear();
                        return Poll::Ready(Turn::Done);
                    }
                    Poll::Pending => break,
                }
            }
        }
        if wire.queue.is_empty() && wire.closed {
            return Poll::Ready(Turn::Done);
        }
        // Woken by the core's next chunk (or the stream's arrival) as well as by the socket.
        if !wire
            .writer
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            wire.writer = Some(cx.waker().clone());
        }
        if wrote && wire.wants_room {
            wire.wants_room = false;
            return Poll::Ready(Turn::Wrote { room: true });
        }
        // (Nothing written or nothing asked: woken by the socket or the core.)
        Poll::Pending
    }

    /// Shuts the stream's write half down (the writer's last act).
    pub(crate) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.lock().sink.as_mut() {
            Some(sink) => sink.as_mut().poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Chunks waiting for the writer (tests look at it).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.lock().queue.len()
    }
}

/// The core's end of a connection's outgoing side.
///
/// A chunk goes straight onto the socket when the queue is empty, as far as the socket takes
/// it without waiting (no hand-over to the writer task and, from an application thread that
/// drives the core, no wake-up of the runtime); the rest, and every chunk while some are
/// queued, goes to the back of the queue for the writer task. Dropping it lets the writer
/// finish what is queued and close the stream.
pub(crate) struct Outbox {
    pipe: Arc<Pipe>,
    /// Whether a chunk may go straight onto the socket (`Configuration::fast_paths`); off,
    /// every chunk goes through the writer task.
    direct: bool,
}

impl Outbox {
    /// The core's end of `pipe`.
    pub(crate) fn new(pipe: Arc<Pipe>, direct: bool) -> Outbox {
        Outbox { pipe, direct }
    }

    /// Whether the outbox takes another chunk now.
    pub(crate) fn has_room(&self) -> bool {
        self.pipe.lock().queue.len() < QUEUE_CHUNKS
    }

    /// Sends a chunk (call only after [`has_room`](Self::has_room) said yes, from the core).
    /// Returns false when a write failed (the connection is going away).
    pub(crate) fn send(&self, chunk: Bytes) -> bool {
        let mut wire = self.pipe.lock();
        let wire = &mut *wire;
        if wire.failed {
            return false;
        }
        let mut written = 0;
        if self.direct && wire.queue.is_empty() {
            if let Some(sink) = wire.sink.as_mut() {
                written = write_now(sink, &chunk);
            }
        }
        if written < chunk.len() {
            wire.queue.push_back(chunk.slice(written..));
            if let Some(w) = wire.writer.take() {
                w.wake();
            }
        }
        true
    }

    /// Asks the writer to report room (`Cmd::Writable`) after its next write; returns whether
    /// it has made some meanwhile (then the flag stays set: at worst one report too many).
    pub(crate) fn want_room(&self) -> bool {
        let mut wire = self.pipe.lock();
        wire.wants_room = true;
        wire.queue.len() < QUEUE_CHUNKS
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut wire = self.pipe.lock();
        wire.closed = true;
        if let Some(w) = wire.writer.take() {
            w.wake();
        }
    }
}

/// Writes as much of `chunk` as the socket takes without waiting; returns how much. Only
/// while the queue is empty: the writer task is then not waiting for the socket, so the waker
/// left with the socket here (which wakes nobody) replaces none of its own, and the writer
/// registers its own when it takes the rest.
fn write_now(sink: &mut Sink, chunk: &[u8]) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A socket whose room the test sets: it takes at most `room` bytes, then waits.
    #[derive(Clone, Default)]
    struct Socket {
        got: Arc<Mutex<Vec<u8>>>,
        room: Arc<AtomicUsize>,
        broken: Arc<AtomicBool>,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            if self.broken.load(Ordering::SeqCst) {
                return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
            }
            let n = buf.len().min(self.room.load(Ordering::SeqCst));
            if n == 0 {
                return Poll::Pending;
            }
            self.room.fetch_sub(n, Ordering::SeqCst);
            self.got.lock().unwrap().extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn turn(pipe: &Pipe) -> Poll<Turn> {
        pipe.poll_write_queue(&mut Context::from_waker(Waker::noop()))
    }

    fn setup() -> (Arc<Pipe>, Outbox, Socket) {
        let pipe = Arc::new(Pipe::default());
        let outbox = Outbox::new(pipe.clone(), true);
        (pipe, outbox, Socket::default())
    }

    #[test]
    fn a_partial_write_queues_the_rest_and_what_follows_waits_behind_it() {
        let (pipe, outbox, socket) = setup();
        let got = || String::from_utf8(socket.got.lock().unwrap().clone()).unwrap();
        // Before the stream is there, everything waits for the writer.
        assert!(outbox.send(Bytes::from_static(b"early ")));
        assert_eq!(pipe.queued(), 1);
        socket.room.store(1000, Ordering::SeqCst);
        pipe.attach(Box::pin(socket.clone()));
        assert_eq!(turn(&pipe), Poll::Pending);
        assert_eq!(got(), "early ");
        // Nothing queued: straight onto the socket.
        assert!(outbox.send(Bytes::from_static(b"first ")));
        assert_eq!((pipe.queued(), got().as_str()), (0, "early first "));
        // The socket takes three bytes: the rest queues...
        socket.room.store(3, Ordering::SeqCst);
        assert!(outbox.send(Bytes::from_static(b"partial ")));
        assert_eq!((pipe.queued(), got().as_str()), (1, "early first par"));
        // ...and what follows waits behind it, although the socket has room again.
        socket.room.store(1000, Ordering::SeqCst);
        assert!(outbox.send(Bytes::from_static(b"last")));
        assert_eq!((pipe.queued(), got().as_str()), (2, "early first par"));
        assert_eq!(turn(&pipe), Poll::Pending);
        assert_eq!(
            (pipe.queued(), got().as_str()),
            (0, "early first partial last")
        );
        // Gone: the writer ends once everything is written.
        drop(outbox);
        assert_eq!(turn(&pipe), Poll::Ready(Turn::Done));
    }

    #[test]
    fn a_full_queue_reports_room_once_the_writer_wrote_and_a_failed_write_ends_it() {
        let (pipe, outbox, socket) = setup();
        pipe.attach(Box::pin(socket.clone()));
        while outbox.has_room() {
            assert!(outbox.send(Bytes::from_static(b"x")));
        }
        assert_eq!(pipe.queued(), QUEUE_CHUNKS);
        assert!(!outbox.want_room(), "no room yet");
        assert_eq!(turn(&pipe), Poll::Pending, "the socket takes nothing");
        socket.room.store(2, Ordering::SeqCst);
        assert_eq!(turn(&pipe), Poll::Ready(Turn::Wrote { room: true }));
        assert!(outbox.has_room());
        assert_eq!(turn(&pipe), Poll::Pending, "asked once, told once");
        socket.broken.store(true, Ordering::SeqCst);
        assert_eq!(turn(&pipe), Poll::Ready(Turn::Done));
        assert!(
            !outbox.send(Bytes::from_static(b"y")),
            "the core learns of the failure"
        );
    }
}
