//! A connection's incoming side, shared by its reader task and by subscribers' threads that
//! wait for messages.
//!
//! A subscriber that spins in `get` (see `Configuration::spin_wait`), or an async `Stream`
//! that looks again, reads the sockets of its endpoint itself, one connection per turn, and
//! runs a round of the core with what it finds (see `shared`): a message then goes from the
//! socket to the subscriber on one thread, without waiting for the runtime's thread to notice
//! it and hand it over, which on a busy machine costs the processor's next turn. The reader
//! task still does everything else (waits for data, takes bulk traffic, finds errors and the
//! end of the stream).
//!
//! Order: both read the same buffer under the inbox's lock; the reader task hands its batches
//! to the core's intake under that lock, and a subscriber's thread runs its round under it
//! too, so the round takes the reader's earlier batches before the subscriber's.

use std::future::Future;
use std::io::{ErrorKind, Read};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use broker_routing::{Message, PeerKind};
use broker_wire::{EndpointId, Envelope, FrameDecoder, Limits};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::cmd::Cmd;
use crate::core::Core;
use crate::error::ConnError;
use crate::inflight::{weight, InFlight};
use crate::order::{Ordered, Rank};
use crate::spin::Activity;
use crate::translate::{coalesce, to_message};

/// How much a subscriber's thread reads from one connection in one turn; a stream larger
/// than that is the reader task's.
const DIRECT_READ_MAX: usize = 64 * 1024;

/// How a connection's socket is read at the moment, shared by its [`Tcp`] and its [`Inbox`].
#[derive(Debug, Default)]
pub(crate) struct Modes {
    /// Reads go straight to the socket (a subscriber's thread reads).
    straight: AtomicBool,
    /// A waiting subscriber's thread watches the socket (see [`Inbox::lend`]): the reader
    /// task leaves it alone.
    lent: AtomicBool,
    /// A second handle of the socket, for a watching thread's `poll(2)` (none: not watchable).
    watch: Option<socket2::Socket>,
    /// The inbox reads the socket itself (no TLS between): a read shorter than asked means the
    /// socket had no more, so a subscriber's thread stops without a read that finds nothing.
    plain: bool,
}

/// A TCP stream whose reads wait through tokio's readiness (the reader task) or, while its
/// inbox reads straight, go to the socket at once (a subscriber's thread, which learns of
/// data by looking, or by watching the socket itself, not by being woken).
pub(crate) struct Tcp {
    io: TcpStream,
    modes: Arc<Modes>,
}

impl Tcp {
    /// Wraps `io`; reads go straight while its modes say so. A `watchable` socket gets a
    /// second handle (a descriptor), for a waiting subscriber's `poll(2)` (see
    /// [`Inbox::lend`]); `plain`: the inbox will read it without TLS between.
    pub(crate) fn new(io: TcpStream, watchable: bool, plain: bool) -> Tcp {
        let watch = watchable
            .then(|| socket2::SockRef::from(&io).try_clone().ok())
            .flatten();
        Tcp {
            io,
            modes: Arc::new(Modes {
                watch,
                plain,
                ..Modes::default()
            }),
        }
    }

    /// Its modes (see [`Inbox::new`]).
    pub(crate) fn modes(&self) -> Arc<Modes> {
        self.modes.clone()
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.modes.straight.load(Ordering::Relaxed) {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        // A system call whatever tokio believes about the socket's readiness: its cached
        // readiness only changes when the runtime's thread polls. Tokio finds out at its next
        // read (nothing there: it waits for the next edge). The buffers read into here are
        // initialized (see `Inbox::read_now`), so this zeroes nothing.
        let sock = socket2::SockRef::from(&this.io);
        match (&*sock).read(buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// What the reader task and a subscriber's thread share (under the inbox's lock).
struct State {
    read: Pin<Box<dyn AsyncRead + Send>>,
    buf: BytesMut,
    frames: FrameDecoder,
    /// The reader task's waker: woken when a subscriber's thread met the end of the stream or
    /// an error, or left data behind.
    waker: Option<Waker>,
    /// How the connection ended, when a subscriber's thread found out: the reader task
    /// returns it.
    ended: Option<Option<ConnError>>,
    /// The reader task returned: nobody reads any more.
    done: bool,
}

impl State {
    /// One read through tokio's readiness (which registers `cx`'s waker when there is
    /// nothing), appended to the buffer, which keeps room for it.
    fn read_through_tokio(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        // A read future holds nothing between polls: one made per poll loses nothing.
        pin!(self.read.read_buf(&mut self.buf)).poll(cx)
    }
}

/// A connection's incoming side (see the module's documentation).
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Batches the reader task sent the core that it has not handled yet.
    in_flight: Arc<InFlight>,
    modes: Arc<Modes>,
    peer: EndpointId,
    conn: u64,
    kind: PeerKind,
    limits: Limits,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("peer", &self.peer)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

/// What one look at the buffer and the stream found.
enum Turn {
    /// Read until the socket had nothing more.
    Drained,
    /// Stopped with data possibly left (a subscriber's thread reads a bounded amount).
    Stopped,
    /// The stream ended (cleanly: `None`) or failed.
    Ended(Option<ConnError>),
}

impl Inbox {
    /// The incoming side of connection `conn` to `peer`, reading from `read` after what
    /// `buf` already holds (frames up to `limits.max_frame_len`); `modes` are those of the
    /// connection's [`Tcp`].
    pub(crate) fn new(
        read: Pin<Box<dyn AsyncRead + Send>>,
        buf: BytesMut,
        modes: Arc<Modes>,
        peer: EndpointId,
        conn: u64,
        kind: PeerKind,
        limits: Limits,
    ) -> Arc<Inbox> {
        Arc::new(Inbox {
            state: Mutex::new(State {
                read,
                buf,
                frames: FrameDecoder::new(limits.max_frame_len),
                waker: None,
                ended: None,
                done: false,
            }),
            in_flight: Arc::default(),
            modes,
            peer,
            conn,
            kind,
            limits,
        })
    }

    fn lock(&self) -> Ordered<MutexGuard<'_, State>> {
        // Every update under the lock leaves the buffer consistent (frames are taken whole).
        Ordered::new(
            Rank::Inbox,
            self.state.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Takes every complete frame out of the buffer.
    fn decode(&self, st: &mut State, msgs: &mut Vec<Message>) -> Result<(), ConnError> {
        loop {
            match st.frames.decode(&mut st.buf) {
                Ok(Some(frame)) => {
                    let env = Envelope::decode(&frame, &self.limits).map_err(ConnError::Decode)?;
                    msgs.push(to_message(env, self.kind)?);
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(ConnError::Decode(e)),
            }
        }
    }

    /// The reader task: reads and hands the core what arrives until the connection ends;
    /// returns why, when it was not a clean close.
    pub(crate) async fn read_loop(
        self: &Arc<Self>,
        core: &mpsc::UnboundedSender<Cmd>,
        activity: &Activity,
    ) -> Option<ConnError> {
        std::future::poll_fn(|cx| self.poll_reader(cx, core, activity)).await
    }

    fn poll_reader(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        core: &mpsc::UnboundedSender<Cmd>,
        activity: &Activity,
    ) -> Poll<Option<ConnError>> {
        // Lent to a watching thread that holds the inbox now: nothing to do here, and no
        // waiting for the lock (the watcher wakes this task when it gives the socket back
        // with something left, see `unlend`).
        let mut st = if self.modes.lent.load(Ordering::Acquire) {
            match self.state.try_lock() {
                Ok(g) => Ordered::new(Rank::Inbox, g),
                Err(std::sync::TryLockError::Poisoned(e)) => {
                    Ordered::new(Rank::Inbox, e.into_inner())
                }
                Err(std::sync::TryLockError::WouldBlock) => return Poll::Pending,
            }
        } else {
            self.lock()
        };
        let end = self.poll_locked(&mut st, cx, core, activity);
        if end.is_ready() {
            // What is left in the buffer (after a bad frame) is nobody's to read.
            st.done = true;
        }
        end
    }

    fn poll_locked(
        self: &Arc<Self>,
        st: &mut State,
        cx: &mut Context<'_>,
        core: &mpsc::UnboundedSender<Cmd>,
        activity: &Activity,
    ) -> Poll<Option<ConnError>> {
        if let Some(end) = st.ended.take() {
            return Poll::Ready(end);
        }
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        loop {
            let mut msgs = Vec::new();
            if let Err(e) = self.decode(st, &mut msgs) {
                return Poll::Ready(Some(protocol_error(core, self.peer, msgs, self.conn, e)));
            }
            if !msgs.is_empty() {
                // Counted before it is sent, under the lock: a subscriber's thread that finds
                // the count at zero knows the core has everything read before.
                let msgs = coalesce(msgs);
                let weight = weight(&msgs);
                self.in_flight.sending(weight);
                if core
                    .send(Cmd::Incoming {
                        peer: self.peer,
                        conn: self.conn,
                        msgs,
                        ack: None,
                        reader: Some(self.in_flight.clone()),
                    })
                    .is_err()
                {
                    self.in_flight.not_sent(weight);
                }
                activity.hand_over();
            }
            if self.in_flight.core_is_behind(cx) {
                return Poll::Pending;
            }
            // A waiting subscriber's thread watches the socket: it reads, and hands the socket
            // back (see `unlend`) with this task's waker registered again.
            if self.modes.lent.load(Ordering::Acquire) {
                return Poll::Pending;
            }
            match st.read_through_tokio(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(ConnError::Io(e))),
            }
        }
    }

    /// From a subscriber's thread, with the core locked: reads what the socket holds (up to
    /// [`DIRECT_READ_MAX`]) and gives the batch to `deliver`, still under the inbox's lock (so
    /// that nothing the reader task reads later can overtake it: `deliver` takes what the
    /// reader handed the core before, then this). Returns whether it found messages. Does
    /// nothing while the reader task holds the inbox.
    pub(crate) fn read_now(&self, core: &mut Core, deliver: impl FnOnce(&mut Core, Cmd)) -> bool {
        let Ok(guard) = self.state.try_lock() else {
            return false;
        };
        let mut guard = Ordered::new(Rank::Inbox, guard);
        let st = &mut *guard;
        if st.done || st.ended.is_some() {
            return false;
        }
        let turn = self.read_straight(st);
        let mut msgs = Vec::new();
        let decoded = self.decode(st, &mut msgs);
        let found = !msgs.is_empty();
        match decoded {
            Ok(()) => {
                if found {
                    let batch = Cmd::Incoming {
                        peer: self.peer,
                        conn: self.conn,
                        msgs: coalesce(msgs),
                        ack: None,
                        reader: None,
                    };
                    deliver(core, batch);
                }
                match turn {
                    Turn::Drained => return found,
                    Turn::Stopped => {}
                    Turn::Ended(end) => st.ended = Some(end),
                }
            }
            Err(e) => {
                // Reported as the reader task reports its own (the messages before the bad
                // frame first, through the intake, then the error); the reader task
                // then closes the connection with this reason.
                let sender = core.sender();
                st.ended = Some(Some(match sender {
                    Some(tx) => protocol_error(&tx, self.peer, msgs, self.conn, e),
                    None => e,
                }));
            }
        }
        // Something for the reader task: the end of the stream, or data left behind (the
        // socket's readiness wakes it too, but a wake costs little and depends on nothing).
        if let Some(w) = &st.waker {
            w.wake_by_ref();
        }
        found
    }

    /// Reads straight from the socket into the buffer.
    fn read_straight(&self, st: &mut State) -> Turn {
        let mut scratch = [0u8; 8192];
        let mut cx = Context::from_waker(Waker::noop());
        let mut total = 0;
        self.modes.straight.store(true, Ordering::Relaxed);
        let turn = loop {
            if total >= DIRECT_READ_MAX {
                break Turn::Stopped;
            }
            let mut rb = ReadBuf::new(&mut scratch);
            match st.read.as_mut().poll_read(&mut cx, &mut rb) {
                Poll::Pending => break Turn::Drained,
                Poll::Ready(Ok(())) if rb.filled().is_empty() => break Turn::Ended(None),
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    total += n;
                    st.buf.extend_from_slice(rb.filled());
                    // The socket had less than asked: it is empty (a system call saved).
                    if n < scratch.len() && self.modes.plain {
                        break Turn::Drained;
                    }
                }
                Poll::Ready(Err(e)) => break Turn::Ended(Some(ConnError::Io(e))),
            }
        };
        self.modes.straight.store(false, Ordering::Relaxed);
        turn
    }

    /// For a subscriber's thread about to wait: the reader task stops reading the socket until
    /// [`unlend`](Self::unlend), and the thread watches it (with `poll(2)` on
    /// [`watch_fd`](Self::watch_fd)) and reads what comes itself
    /// ([`read_now`](Self::read_now)). A message then costs one wake-up (the watching
    /// thread's) instead of two (the runtime's thread's, then the subscriber's). `false`
    /// (nothing lent): the socket is not watchable (no second handle) or the connection is
    /// ending.
    pub(crate) fn lend(&self) -> bool {
        if self.modes.watch.is_none() {
            return false;
        }
        let st = self.lock();
        if st.done || st.ended.is_some() {
            return false;
        }
        // One watcher at a time.
        !self.modes.lent.swap(true, Ordering::AcqRel)
    }

    /// The socket's second handle, for `poll(2)` (see [`lend`](Self::lend)).
    pub(crate) fn watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.modes.watch.as_ref().map(|w| w.as_fd())
    }

    /// Gives the socket back to the reader task after [`lend`](Self::lend): reads what tokio
    /// believes is there with the reader task's waker, which registers that waker for the
    /// socket's next data without waking the task. The task is woken only when it has
    /// something to do: bytes read here, the end of the stream, an error.
    pub(crate) fn unlend(&self) {
        let mut guard = self.lock();
        let st = &mut *guard;
        self.modes.lent.store(false, Ordering::Release);
        let Some(waker) = st.waker.clone() else {
            // The reader task has not run yet: it reads when it does.
            return;
        };
        if st.done || st.ended.is_some() {
            waker.wake();
            return;
        }
        let mut cx = Context::from_waker(&waker);
        let before = st.buf.len();
        loop {
            match st.read_through_tokio(&mut cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    st.ended = Some(None);
                    break;
                }
                Poll::Ready(Ok(_)) => {
                    if st.buf.len() - before >= DIRECT_READ_MAX {
                        break;
                    }
                }
                Poll::Ready(Err(e)) => {
                    st.ended = Some(Some(ConnError::Io(e)));
                    break;
                }
            }
        }
        if st.buf.len() > before || st.ended.is_some() {
            waker.wake();
        }
    }
}

/// Hands the core what was decoded before a bad frame, reports the error to status
/// subscribers and returns the reason the connection closes.
pub(crate) fn protocol_error(
    core: &mpsc::UnboundedSender<Cmd>,
    peer: EndpointId,
    msgs: Vec<Message>,
    conn: u64,
    e: ConnError,
) -> ConnError {
    if !msgs.is_empty() {
        let _ = core.send(Cmd::Incoming {
            peer,
            conn,
            msgs,
            ack: None,
            reader: None,
        });
    }
    let _ = core.send(Cmd::ConnectionError {
        code: e.code(),
        addr: None,
        peer: Some(peer),
        message: format!("disconnecting a peer that sent an invalid message: {e}"),
    });
    e
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::inflight::{MAX_IN_FLIGHT, MIN_BATCH_WEIGHT};
    use broker_data::Data;
    use broker_wire::{encode_frame, Payload, Topic};
    use tokio::io::AsyncWriteExt;

    /// A reader whose core is behind stops reading after 8 batches (of small messages here),
    /// leaving
    /// the rest in the socket (so TCP pushes back on the sender), and reads on when the core
    /// catches up.
    #[test]
    fn a_reader_waits_for_the_core_instead_of_queueing_without_bound() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A small pipe: every read brings a few frames, and a writer that has more waits.
            let (ours, mut theirs) = tokio::io::duplex(1024);
            let mut bytes = bytes::BytesMut::new();
            for i in 0..2000u64 {
                let env = Envelope {
                    sender: EndpointId::from_bytes([2; 16]),
                    receiver: EndpointId::NIL,
                    ttl: 16,
                    topic: Topic::new("/flood").unwrap(),
                    payload: Payload::Data(Data::Count(i)),
                };
                encode_frame(&mut bytes, |b| env.encode(b)).unwrap();
            }
            let total = bytes.len();
            let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let w = written.clone();
            tokio::spawn(async move {
                for chunk in bytes.chunks(512) {
                    if theirs.write_all(chunk).await.is_err() {
                        return;
                    }
                    w.fetch_add(chunk.len(), Ordering::SeqCst);
                }
                // Keep the pipe open.
                std::future::pending::<()>().await;
            });
            let (read, _write) = tokio::io::split(ours);
            let inbox = Inbox::new(
                Box::pin(read),
                BytesMut::new(),
                Arc::default(),
                EndpointId::from_bytes([2; 16]),
                1,
                PeerKind::Broker,
                Limits::default(),
            );
            let (core, mut commands) = mpsc::unbounded_channel();
            let reader = inbox.clone();
            tokio::spawn(async move {
                let activity = Activity::default();
                reader.read_loop(&core, &activity).await;
            });
            let settle = || async {
                for _ in 0..200 {
                    tokio::task::yield_now().await;
                }
            };
            settle().await;
            // The core (this test) handled nothing: the reader stopped at the bound.
            assert_eq!(inbox.in_flight.get(), MAX_IN_FLIGHT);
            let mut batches = Vec::new();
            while let Ok(c) = commands.try_recv() {
                batches.push(c);
            }
            assert_eq!(batches.len(), MAX_IN_FLIGHT / MIN_BATCH_WEIGHT);
            assert!(
                written.load(Ordering::SeqCst) < total,
                "the sender was held back"
            );
            // The core catches up: the reader goes on, batch by batch, to the end.
            let mut values = 0u64;
            let count = |c: &Cmd| match c {
                Cmd::Incoming { msgs, .. } => msgs.iter().map(Message::count).sum::<usize>() as u64,
                _ => 0,
            };
            loop {
                for c in batches.drain(..) {
                    values += count(&c);
                    if let Cmd::Incoming { msgs, .. } = &c {
                        inbox.in_flight.handled(weight(msgs));
                    }
                }
                settle().await;
                while let Ok(c) = commands.try_recv() {
                    batches.push(c);
                }
                if batches.is_empty() {
                    break;
                }
                assert!(inbox.in_flight.get() <= MAX_IN_FLIGHT);
            }
            assert_eq!(values, 2000);
            assert_eq!(written.load(Ordering::SeqCst), total);
        });
    }
}
