//! One client connection after its handshake, driven by one task: it reads frames, handles
//! every frame of a read under the core's lock, and writes what is queued for the client
//! (deliveries and ACKs). Nothing waits for another task between a frame and its ACK.
//!
//! On a plain socket a connection whose client answers fast spins briefly instead of
//! sleeping ([`ServerConfig::spin`]): a request/response client (a `Processed` send, an RPC
//! call) is then answered without a sleep and a wake-up on the server's side. The spin
//! pays only while the client's next frame comes within the window; one connection of a
//! bus spins at a time, and one that is not answered fast, or idles, never spins.

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::ClientId;
use crate::frame::{self, FrameReader, Read};
use crate::queue::{Outbound, Queue};
use crate::server::{Bus, ServerConfig};

/// A second handle on a plain socket (its descriptor duplicated, non-blocking like the
/// first), read directly while the connection spins.
pub(crate) enum RawSocket {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
}

impl RawSocket {
    /// A handle on `socket`'s descriptor (none if it cannot be duplicated: no spinning).
    pub(crate) fn unix(socket: &tokio::net::UnixStream) -> Option<RawSocket> {
        use std::os::fd::AsFd;
        let fd = socket.as_fd().try_clone_to_owned().ok()?;
        Some(RawSocket::Unix(fd.into()))
    }

    /// Whether the client closed its end (or reset it) with nothing left unread: the
    /// connection's task will find out, but may not have yet.
    pub(crate) fn hung_up(&self) -> bool {
        let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let peeked = match self {
            RawSocket::Unix(s) => socket2::SockRef::from(s).peek(&mut b),
            RawSocket::Tcp(s) => socket2::SockRef::from(s).peek(&mut b),
        };
        match peeked {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// [`unix`](Self::unix) for TCP.
    pub(crate) fn tcp(socket: &tokio::net::TcpStream) -> Option<RawSocket> {
        use std::os::fd::AsFd;
        let fd = socket.as_fd().try_clone_to_owned().ok()?;
        Some(RawSocket::Tcp(fd.into()))
    }

    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RawSocket::Unix(s) => (&*s).read(buf),
            RawSocket::Tcp(s) => (&*s).read(buf),
        }
    }

    /// Writes what the socket takes now (0 when it takes nothing or fails: the
    /// connection's writer sees the failure).
    fn write_now(&self, buf: &[u8]) -> usize {
        let r = match self {
            RawSocket::Unix(s) => (&*s).write(buf),
            RawSocket::Tcp(s) => (&*s).write(buf),
        };
        r.unwrap_or(0)
    }
}

type Blocked = Vec<(Arc<Queue>, Bytes)>;
type Waiting = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the spin saw.
enum Spun {
    /// Bytes came from the client (now in the read buffer).
    Read,
    /// Something was queued for the client.
    Queued,
    /// The client closed the connection (or it failed).
    Closed,
    /// Nothing within the window (or no spin was due).
    Nothing,
}

/// The adaptive spin of one connection.
struct Spin {
    raw: Option<Arc<RawSocket>>,
    window: Duration,
    /// The client's last frame came within the window after the connection began waiting.
    hot: bool,
    /// When the connection last began waiting (everything handled and written).
    waiting_since: Instant,
}

impl Spin {
    fn new(raw: Option<Arc<RawSocket>>, window: Duration) -> Spin {
        let raw = raw.filter(|_| !window.is_zero());
        Spin {
            raw,
            window,
            hot: false,
            waiting_since: Instant::now(),
        }
    }

    /// The client spoke: whether it answered soon, and asked for an answer itself (an ACK),
    /// decides the next wait. After a sleep the gap includes the wake-up, so "soon" is a few
    /// windows. A client that streams (frames that want no ACK) never makes its connection
    /// spin: reads spinning on the socket it keeps writing to would only contend with its
    /// writes (measured: busrt's `send.qos.no` at 1 KiB, 0.60× busrtd with the spin).
    fn heard(&mut self, now: Instant, asked: bool) {
        self.hot = asked && now.saturating_duration_since(self.waiting_since) <= self.window * 4;
    }

    /// Watches the socket and the queue for up to the window, if the client has been fast
    /// and no other connection of the bus spins now.
    fn spin(&mut self, bus: &Bus, queue: &Queue, buf: &mut BytesMut) -> Spun {
        let Some(raw) = &self.raw else {
            return Spun::Nothing;
        };
        if !self.hot {
            return Spun::Nothing;
        }
        let spinners = &bus.shared.spinners;
        if spinners
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Spun::Nothing;
        }
        let until = self.waiting_since + self.window;
        // Reads go straight into the read buffer's room (zeroed once per spin, not per read:
        // a streaming client's bytes are not copied again, and a read takes what the
        // connection's own reads would).
        let start = buf.len();
        buf.resize(start + (buf.capacity() - start).max(4096), 0);
        let spun = loop {
            match raw.read(&mut buf[start..]) {
                Ok(0) => break Spun::Closed,
                Ok(n) => {
                    buf.truncate(start + n);
                    break Spun::Read;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break Spun::Closed,
            }
            if !queue.is_empty() {
                break Spun::Queued;
            }
            if Instant::now() >= until {
                self.hot = false;
                break Spun::Nothing;
            }
            std::hint::spin_loop();
        };
        if !matches!(spun, Spun::Read) {
            buf.truncate(start);
        }
        spinners.store(0, Ordering::Release);
        spun
    }
}

/// Runs a registered connection until it ends; returns why. What is queued for the client
/// when it ends is still written (within the timeout).
pub(crate) async fn run<R, W>(
    bus: &Bus,
    id: ClientId,
    queue: &Arc<Queue>,
    (mut rd, mut wr): (R, W),
    raw: Option<Arc<RawSocket>>,
    config: &ServerConfig,
) -> &'static str
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut c = Conn {
        bus,
        id,
        queue,
        config,
        spin: Spin::new(raw, config.spin),
        heard: Instant::now(),
        reader: FrameReader::new(config.max_frame_size),
        buf: BytesMut::with_capacity(64 * 1024),
        acks: Vec::new(),
        batch: Vec::with_capacity(256),
        out: Vec::with_capacity(64 * 1024),
        pos: 0,
    };
    let reason = c.drive(&mut rd, &mut wr).await;
    bus.shared.core().unregister(id);
    bus.shared.departed.notify_waiters();
    queue.close();
    // The rest: what was being written and what is still queued.
    let _ = tokio::time::timeout(config.timeout, async {
        loop {
            if c.pos < c.out.len() {
                wr.write_all(&c.out[c.pos..]).await?;
            }
            c.out.clear();
            c.pos = 0;
            queue.try_drain(&mut c.batch);
            if c.batch.is_empty() {
                return wr.shutdown().await;
            }
            c.encode();
        }
    })
    .await;
    reason
}

/// A connection: whose it is, and its buffers.
struct Conn<'a> {
    bus: &'a Bus,
    id: ClientId,
    queue: &'a Queue,
    config: &'a ServerConfig,
    spin: Spin,
    /// When the client's last bytes came.
    heard: Instant,
    reader: FrameReader,
    /// Bytes read and not yet handled.
    buf: BytesMut,
    acks: Vec<(u32, u8)>,
    /// Frames taken from the queue.
    batch: Vec<Outbound>,
    /// Bytes to write, written up to `pos`.
    out: Vec<u8>,
    pos: usize,
}

impl Conn<'_> {
    fn encode(&mut self) {
        for o in self.batch.drain(..) {
            self.out.extend_from_slice(o.as_bytes());
        }
    }

    /// Handles what was read (the client was heard now); a waiting push into a full
    /// in-process queue is returned (this connection reads nothing more until it is done:
    /// TCP pushes back on the client).
    fn on_read(&mut self) -> Result<Option<Waiting>, &'static str> {
        let now = Instant::now();
        self.heard = now;
        let (bus, id, queue) = (self.bus, self.id, self.queue);
        let (blocked, end, asked) =
            handle_read(bus, id, queue, &self.reader, &mut self.buf, &mut self.acks);
        self.spin.heard(now, asked);
        if let Some(reason) = end {
            return Err(reason);
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        if blocked.is_empty() {
            return Ok(None);
        }
        let shared = bus.shared.clone();
        Ok(Some(Box::pin(async move { shared.unblock(blocked).await })))
    }

    /// Reads, handles and writes until the connection ends; returns why.
    async fn drive<R, W>(&mut self, rd: &mut R, wr: &mut W) -> &'static str
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (bus, queue, c) = (self.bus, self.queue, self);
        let t = c.config.timeout;
        let idle = t * 10 / 8;
        let mut waiting: Option<Waiting> = None;
        let start = Instant::now();
        // The last write (or the start of the silence).
        let mut wrote = start;
        // Timeouts and keepalive are checked on a coarse tick (a quarter of T), not per frame.
        let mut tick = tokio::time::interval(t / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Writes to the plain socket and a queue that keeps refilling never make this
            // task wait: it still yields to the others once its share of work is used up.
            tokio::task::consume_budget().await;
            if c.pos == c.out.len() {
                c.out.clear();
                c.pos = 0;
                if c.out.capacity() > 1 << 20 {
                    c.out.shrink_to(64 * 1024);
                }
                queue.try_drain(&mut c.batch);
                c.encode();
                // An ACK goes out from here, not after another trip through the loop.
                if let (Some(raw), false) = (&c.spin.raw, c.out.is_empty()) {
                    c.pos += raw.write_now(&c.out);
                    if c.pos == c.out.len() {
                        wrote = Instant::now();
                        continue;
                    }
                }
                if c.out.is_empty() && waiting.is_none() {
                    c.spin.waiting_since = Instant::now();
                    match c.spin.spin(bus, queue, &mut c.buf) {
                        Spun::Read => {
                            waiting = match c.on_read() {
                                Ok(w) => w,
                                Err(reason) => return reason,
                            };
                            continue;
                        }
                        Spun::Queued => continue,
                        Spun::Closed => return "closed",
                        Spun::Nothing => {}
                    }
                }
            }
            tokio::select! {
                biased;
                _ = async { waiting.as_mut().expect("guarded").await }, if waiting.is_some() => {
                    waiting = None;
                }
                r = wr.write(&c.out[c.pos..]), if c.pos < c.out.len() => match r {
                    Ok(0) | Err(_) => return "write failed",
                    Ok(n) => {
                        c.pos += n;
                        wrote = Instant::now();
                    }
                },
                r = rd.read_buf(&mut c.buf), if waiting.is_none() => match r {
                    Ok(0) | Err(_) => return "closed",
                    Ok(_) => {
                        waiting = match c.on_read() {
                            Ok(w) => w,
                            Err(reason) => return reason,
                        };
                    }
                },
                more = queue.drain(&mut c.batch), if c.pos == c.out.len() => {
                    if !more {
                        return "disconnected by the bus";
                    }
                    c.encode();
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now.saturating_duration_since(c.heard) > idle {
                        return "idle timeout";
                    }
                    if c.pos < c.out.len() && now.saturating_duration_since(wrote) > t {
                        return "write timeout";
                    }
                    // A NOP after T/2 of silence keeps the client's idle detection quiet.
                    if c.pos == c.out.len() && now.saturating_duration_since(wrote) >= t / 2 {
                        c.out.extend_from_slice(&frame::NOP);
                        wrote = now;
                    }
                }
            }
        }
    }
}

/// Handles every complete frame in `buf` under one lock; returns what waits for room in
/// in-process queues, why the connection must end, if it must, and whether a frame asked for
/// an ACK.
fn handle_read(
    bus: &Bus,
    id: ClientId,
    queue: &Queue,
    reader: &FrameReader,
    buf: &mut BytesMut,
    acks: &mut Vec<(u32, u8)>,
) -> (Blocked, Option<&'static str>, bool) {
    let mut core = bus.shared.core();
    let mut end = None;
    {
        // A run of publications in the read goes out together, before the ACKs.
        let mut core = core.gathering();
        loop {
            match reader.next(buf) {
                Ok(Read::NeedMore) => break,
                Ok(Read::Ping) => {}
                Ok(Read::Frame(f)) => match core.handle(id, &f) {
                    Ok(Some(c)) => acks.push((f.op_id, c)),
                    Ok(None) => {}
                    Err(_) => {
                        end = Some("malformed frame");
                        break;
                    }
                },
                Err(_) => {
                    end = Some("bad frame header");
                    break;
                }
            }
        }
    }
    if end.is_none() && !core.is_registered(id) {
        end = Some("disconnected by the bus");
    }
    let asked = !acks.is_empty();
    for (op_id, c) in acks.drain(..) {
        if end.is_some() {
            break;
        }
        if queue.push(Outbound::Ack(frame::ack(op_id, c))) == crate::queue::Pushed::Refused {
            end = Some("own queue full");
            break;
        }
        core.count_ack(id);
    }
    acks.clear();
    (core.take_blocked(), end, asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::OverflowPolicy;
    use crate::BusConfig;

    fn pair() -> (RawSocket, std::os::unix::net::UnixStream) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (RawSocket::Unix(a), b)
    }

    /// A hot connection catches bytes that come within its window; a window that passes
    /// with nothing makes it cold, and a cold one does not spin at all.
    #[test]
    fn the_spin_catches_a_fast_client_and_gives_up_on_a_slow_one() {
        let bus = Bus::new(BusConfig::default());
        let queue = Queue::new(8, OverflowPolicy::Disconnect);
        let (raw, mut client) = pair();
        let mut spin = Spin::new(Some(Arc::new(raw)), Duration::from_secs(2));
        let mut buf = BytesMut::new();
        // Cold at first: returns at once.
        assert!(matches!(spin.spin(&bus, &queue, &mut buf), Spun::Nothing));
        spin.waiting_since = Instant::now();
        // Frames that asked for no answer (a stream) leave it cold however fast they come.
        spin.heard(Instant::now(), false);
        assert!(!spin.hot);
        spin.heard(Instant::now(), true);
        assert!(spin.hot);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            client.write_all(b"frame").unwrap();
            client
        });
        spin.waiting_since = Instant::now();
        assert!(matches!(spin.spin(&bus, &queue, &mut buf), Spun::Read));
        assert_eq!(&buf[..], b"frame");
        assert_eq!(
            bus.shared.spinners.load(Ordering::Relaxed),
            0,
            "the token is back"
        );
        // Something queued for the client ends the spin too.
        queue.push(Outbound::Ack([0xFE, 1, 0, 0, 0, 1]));
        spin.waiting_since = Instant::now();
        assert!(matches!(spin.spin(&bus, &queue, &mut buf), Spun::Queued));
        let mut taken = Vec::new();
        queue.try_drain(&mut taken);
        // Nothing within the window: cold.
        spin.window = Duration::from_millis(20);
        spin.waiting_since = Instant::now();
        assert!(matches!(spin.spin(&bus, &queue, &mut buf), Spun::Nothing));
        assert!(!spin.hot);
        // The client closing its end is seen.
        spin.hot = true;
        spin.waiting_since = Instant::now();
        drop(writer.join().unwrap());
        assert!(matches!(spin.spin(&bus, &queue, &mut buf), Spun::Closed));
    }

    /// One connection of a bus spins at a time; the others wait the normal way.
    #[test]
    fn one_connection_spins_at_a_time() {
        let bus = Bus::new(BusConfig::default());
        let queue = Queue::new(8, OverflowPolicy::Disconnect);
        let (raw, _client) = pair();
        let mut spin = Spin::new(Some(Arc::new(raw)), Duration::from_secs(2));
        spin.hot = true;
        bus.shared.spinners.store(1, Ordering::Relaxed);
        let begun = Instant::now();
        spin.waiting_since = begun;
        assert!(matches!(
            spin.spin(&bus, &queue, &mut BytesMut::new()),
            Spun::Nothing
        ));
        assert!(begun.elapsed() < Duration::from_secs(1), "it did not spin");
        assert!(spin.hot, "not spinning is not a miss");
    }

    /// A socket whose client closed with nothing unread has hung up; one still open, or with
    /// bytes the server has yet to read, has not.
    #[test]
    fn a_closed_client_is_seen_to_have_hung_up() {
        let (raw, mut client) = pair();
        assert!(!raw.hung_up(), "open and quiet");
        client.write_all(b"x").unwrap();
        drop(client);
        assert!(!raw.hung_up(), "a byte to read first");
        let mut b = [0u8; 1];
        assert_eq!(raw.read(&mut b).unwrap(), 1);
        assert!(raw.hung_up(), "closed, nothing left");
    }

    /// A zero window, or a TLS connection (no plain socket), never spins.
    #[test]
    fn no_window_or_no_plain_socket_no_spin() {
        let (raw, _client) = pair();
        assert!(Spin::new(Some(Arc::new(raw)), Duration::ZERO).raw.is_none());
        assert!(Spin::new(None, Duration::from_micros(50)).raw.is_none());
    }
}
