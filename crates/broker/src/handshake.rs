//! Broker's peering handshake, as a pure async function over any byte stream.
//!
//! The messages and their order are C++ Broker's (`connector.cc` in zeek/broker 2.8), byte for
//! byte: our `hello` always offers versions 1..=1, every message we receive is checked as
//! Broker checks it and refused with Broker's `drop_conn` code and text, a second connection
//! to a peer we are peered (or peering) with is refused at once with `redundant_connection`.
//! The routing extension (version 3) is chosen only by an originator whose peer's id proves it
//! is broker-rs ([`EndpointId::is_broker_rs`]): no Broker, whatever range it offers, is ever
//! sent a version it does not know.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use broker_routing::PeerKind;
use broker_wire::{
    EndpointId, ErrorCode, FrameDecoder, Handshake, MessageType, Topic, WireError, MAGIC,
    PROTOCOL_VERSION, ROUTED_PROTOCOL_VERSION,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::Error;

/// The largest frame accepted before a peering is established: a handshake message is a few
/// dozen bytes plus a subscription filter, and nothing unauthenticated gets to make us hold
/// more.
pub(crate) const MAX_HANDSHAKE_FRAME: usize = 64 * 1024;

/// What a connection runs over: TCP, TLS over TCP, or an in-memory pipe in tests.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Which side of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// We accepted it (we send the probe).
    Acceptor,
    /// We dialed it (we send the first hello).
    Connector,
}

/// A stream with its read buffer and frame decoder, during the handshake.
pub(crate) struct Framed<S> {
    pub(crate) stream: S,
    pub(crate) buf: BytesMut,
    pub(crate) frames: FrameDecoder,
}

impl<S: Stream> Framed<S> {
    /// A fresh stream, with the handshake's frame limit.
    pub(crate) fn new(stream: S) -> Self {
        Framed {
            stream,
            buf: BytesMut::with_capacity(4096),
            frames: FrameDecoder::new(MAX_HANDSHAKE_FRAME),
        }
    }

    async fn send(&mut self, h: &Handshake) -> Result<(), Error> {
        let mut out = BytesMut::new();
        let _ = broker_wire::encode_frame(&mut out, |b| h.encode(b));
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| Error::new(ErrorCode::PeerUnavailable, e.to_string()).with_source(e))
    }

    /// The next message, checked as Broker checks it (`wire_format::check`); a message Broker
    /// would refuse is refused here too, with its code and text.
    async fn recv(&mut self, me: EndpointId) -> Result<Handshake, Error> {
        let frame = loop {
            match self.frames.decode(&mut self.buf) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::new(
                        ErrorCode::InvalidMessage,
                        format!("bad frame: {e}"),
                    ))
                }
            }
            let n =
                self.stream.read_buf(&mut self.buf).await.map_err(|e| {
                    Error::new(ErrorCode::PeerDisconnectDuringHandshake, e.to_string())
                })?;
            if n == 0 {
                return Err(Error::new(
                    ErrorCode::PeerDisconnectDuringHandshake,
                    "peer closed the connection during the handshake",
                ));
            }
        };
        let checked = Handshake::decode(&frame)
            .map_err(|e| undecodable(&frame, e))
            .and_then(|h| check(&h).map(|()| h));
        match checked {
            Ok(h) => Ok(h),
            Err(e) => Err(self.refuse(me, e).await),
        }
    }

    /// Sends `drop_conn` with the error's code and text; returns the error.
    async fn refuse(&mut self, me: EndpointId, err: Error) -> Error {
        let _ = self
            .send(&Handshake::DropConn {
                magic: MAGIC,
                sender: me,
                code: err.code as u8,
                description: Bytes::from(err.message.clone()),
            })
            .await;
        err
    }
}

/// Broker's text for a message it cannot read (`wire_format::decode`).
fn undecodable(frame: &[u8], e: WireError) -> Error {
    tracing::debug!(error = %e, "undecodable handshake message");
    let name = match frame.first().and_then(|t| MessageType::from_u8(*t)) {
        Some(MessageType::Hello) => "hello_msg",
        Some(MessageType::Probe) => "probe_msg",
        Some(MessageType::VersionSelect) => "version_select_msg",
        Some(MessageType::DropConn) => "drop_conn_msg",
        Some(MessageType::OriginatorSyn) => "originator_syn_msg",
        Some(MessageType::ResponderSynAck) => "responder_syn_ack_msg",
        Some(MessageType::OriginatorAck) => "originator_ack_msg",
        _ => return Error::new(ErrorCode::InvalidMessage, "invalid message type tag"),
    };
    Error::new(ErrorCode::InvalidMessage, format!("failed to parse {name}"))
}

/// Broker's checks of a received handshake message, with its codes and texts.
fn check(h: &Handshake) -> Result<(), Error> {
    let wrong_magic = || Error::new(ErrorCode::WrongMagicNumber, "wrong magic number");
    match h {
        Handshake::Hello {
            magic,
            min_version,
            max_version,
            ..
        } => {
            if *magic != MAGIC {
                return Err(wrong_magic());
            }
            if *min_version > PROTOCOL_VERSION || *max_version < PROTOCOL_VERSION {
                return Err(Error::new(
                    ErrorCode::PeerIncompatible,
                    "unsupported versions offered",
                ));
            }
        }
        Handshake::Probe { magic } if *magic != MAGIC => return Err(wrong_magic()),
        Handshake::VersionSelect {
            magic,
            sender,
            version,
        } => {
            if *magic != MAGIC {
                return Err(wrong_magic());
            }
            let ours = *version == PROTOCOL_VERSION
                || (*version == ROUTED_PROTOCOL_VERSION && sender.is_broker_rs());
            if !ours {
                return Err(Error::new(
                    ErrorCode::PeerIncompatible,
                    "unsupported version selected",
                ));
            }
        }
        Handshake::DropConn { magic, .. } if *magic != MAGIC => return Err(wrong_magic()),
        _ => {}
    }
    Ok(())
}

/// The version an originator selects for a peer: the routing extension only for a peer whose
/// id proves it is broker-rs, Broker's version 1 for everybody else.
pub(crate) fn select_version(peer: EndpointId) -> u8 {
    if peer.is_broker_rs() {
        ROUTED_PROTOCOL_VERSION
    } else {
        PROTOCOL_VERSION
    }
}

/// How a connection speaks after the handshake.
pub(crate) fn kind_of(version: u8) -> PeerKind {
    if version >= ROUTED_PROTOCOL_VERSION {
        PeerKind::Routed
    } else {
        PeerKind::Broker
    }
}

/// Which connection holds each peer: a connection claims its peer when the handshake commits
/// to it and keeps the claim until the connection ends, so a second connection to the same
/// peer (while peering or peered) is refused, as Broker refuses it.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    held: Mutex<HashMap<EndpointId, u64>>,
    released: Notify,
}

impl Claims {
    fn held(&self) -> MutexGuard<'_, HashMap<EndpointId, u64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `peer` for connection `conn`, unless another connection holds it.
    pub(crate) fn claim(self: &Arc<Self>, peer: EndpointId, conn: u64) -> Option<Claim> {
        let mut held = self.held();
        if held.contains_key(&peer) {
            return None;
        }
        held.insert(peer, conn);
        Some(Claim {
            claims: self.clone(),
            peer,
            conn,
        })
    }

    /// Whether some connection holds `peer`.
    pub(crate) fn is_held(&self, peer: EndpointId) -> bool {
        self.held().contains_key(&peer)
    }

    /// Waits until no connection holds `peer`.
    pub(crate) async fn released(&self, peer: EndpointId) {
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_held(peer) {
                return;
            }
            notified.await;
        }
    }
}

/// A connection's hold on its peer (see [`Claims`]); released when dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    claims: Arc<Claims>,
    peer: EndpointId,
    conn: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.claims.held();
        if held.get(&self.peer) == Some(&self.conn) {
            held.remove(&self.peer);
        }
        drop(held);
        self.claims.released.notify_waiters();
    }
}

/// The handshake's hooks into the core: the filter to announce, and the peer's installation.
///
/// **Peered means subscriptions in effect at both ends.** Each side installs the peer (with
/// its filter) in its core *before* it sends its last handshake message: the responder before
/// `responder_syn_ack`, the originator before `originator_ack`. So whichever side completes
/// last, the other side's core already routes to it: when a dialer's `peer()` returns, a
/// publication from either end reaches the other's subscribers. Nothing the core sends
/// overtakes the handshake: it queues in the connection's outbox, which reaches the socket
/// only once the handshake is over.
pub(crate) trait Announce {
    /// The subscription filter to send `peer`.
    fn filter_for(&self, peer: EndpointId) -> impl Future<Output = Vec<Topic>> + Send;

    /// Installs the peer in the core: from now on the core routes to it (by `filter`, which it
    /// received) and knows what we `announced`. An error ends the handshake with it (sent to
    /// the peer as drop_conn).
    fn install(
        &self,
        peer: EndpointId,
        kind: PeerKind,
        filter: Vec<Topic>,
        announced: Vec<Topic>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Installs the peer (see [`Announce`]); a refusal goes to the peer as drop_conn, and a
/// redundant connection found by the core is not a failure of the peering.
async fn install<S: Stream, A: Announce>(
    f: &mut Framed<S>,
    cx: &Context<'_, A>,
    peer: EndpointId,
    kind: PeerKind,
    filter: &[Topic],
    announced: &[Topic],
) -> Result<(), Refused> {
    match cx
        .announce
        .install(peer, kind, filter.to_vec(), announced.to_vec())
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => {
            let redundant = e.code == ErrorCode::RedundantConnection;
            let e = f.refuse(cx.me, e).await;
            Err(if redundant {
                Refused::Redundant(peer)
            } else {
                Refused::Failed(e)
            })
        }
    }
}

/// A completed handshake.
#[derive(Debug)]
pub(crate) struct Peered {
    pub(crate) peer: EndpointId,
    pub(crate) kind: PeerKind,
    /// This connection's hold on the peer, for as long as it lives.
    pub(crate) claim: Claim,
}

/// Why a handshake did not complete.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The peer (or we) dropped this connection because another one to the same peer exists:
    /// not a failure of the peering, which that other connection carries.
    Redundant(EndpointId),
    /// A newer incoming connection took this one's handshake place (see `Live::admit`).
    Evicted,
    /// Anything else, with Broker's code.
    Failed(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Failed(e)
    }
}

/// What a handshake needs to know.
pub(crate) struct Context<'a, A> {
    pub(crate) me: EndpointId,
    pub(crate) side: Side,
    /// This connection's number (for its claim).
    pub(crate) conn: u64,
    pub(crate) claims: &'a Arc<Claims>,
    pub(crate) announce: &'a A,
}

/// Runs Broker's handshake on `f` (see the module docs).
pub(crate) async fn handshake<S: Stream, A: Announce>(
    f: &mut Framed<S>,
    cx: &Context<'_, A>,
) -> Result<Peered, Refused> {
    let me = cx.me;
    let hello = Handshake::hello(me, PROTOCOL_VERSION, PROTOCOL_VERSION);
    match cx.side {
        Side::Acceptor => f.send(&Handshake::probe()).await?,
        Side::Connector => f.send(&hello).await?,
    }
    // Until a hello (or, for the connector, a version_select) decides who originates.
    loop {
        match f.recv(me).await? {
            Handshake::Probe { .. } => {}
            Handshake::Hello { sender, .. } => {
                if sender == me {
                    let e = Error::new(
                        ErrorCode::InvalidPeeringRequest,
                        "refusing to peer with myself",
                    );
                    return Err(f.refuse(me, e).await.into());
                }
                if me < sender {
                    return originate(f, cx, sender).await;
                }
                if cx.side == Side::Acceptor {
                    f.send(&hello).await?;
                }
                return await_version_select(f, cx).await;
            }
            Handshake::VersionSelect {
                sender, version, ..
            } if cx.side == Side::Connector => return respond(f, cx, sender, version).await,
            other => return Err(unexpected(f, me, other).await),
        }
    }
}

/// We have the smaller id: choose the version, send our filter, await theirs, acknowledge.
async fn originate<S: Stream, A: Announce>(
    f: &mut Framed<S>,
    cx: &Context<'_, A>,
    peer: EndpointId,
) -> Result<Peered, Refused> {
    let me = cx.me;
    let Some(claim) = cx.claims.claim(peer, cx.conn) else {
        let e = Error::new(ErrorCode::RedundantConnection, "redundant connection");
        f.refuse(me, e).await;
        return Err(Refused::Redundant(peer));
    };
    let version = select_version(peer);
    f.send(&Handshake::version_select(me, version)).await?;
    let announced = cx.announce.filter_for(peer).await;
    f.send(&Handshake::OriginatorSyn {
        filter: announced.clone(),
    })
    .await?;
    let theirs = match f.recv(me).await? {
        Handshake::ResponderSynAck { filter } => filter,
        other => return Err(unexpected(f, me, other).await),
    };
    let kind = kind_of(version);
    install(f, cx, peer, kind, &theirs, &announced).await?;
    f.send(&Handshake::OriginatorAck).await?;
    Ok(Peered { peer, kind, claim })
}

async fn await_version_select<S: Stream, A: Announce>(
    f: &mut Framed<S>,
    cx: &Context<'_, A>,
) -> Result<Peered, Refused> {
    loop {
        match f.recv(cx.me).await? {
            Handshake::Probe { .. } => {}
            Handshake::VersionSelect {
                sender, version, ..
            } => return respond(f, cx, sender, version).await,
            other => return Err(unexpected(f, cx.me, other).await),
        }
    }
}

/// The peer originates (it has the smaller id) and chose `version` (already checked).
async fn respond<S: Stream, A: Announce>(
    f: &mut Framed<S>,
    cx: &Context<'_, A>,
    peer: EndpointId,
    version: u8,
) -> Result<Peered, Refused> {
    let me = cx.me;
    let Some(claim) = cx.claims.claim(peer, cx.conn) else {
        let e = Error::new(
            ErrorCode::LogicError,
            "detected redundant connection at the responder",
        );
        return Err(f.refuse(me, e).await.into());
    };
    let theirs = match f.recv(me).await? {
        Handshake::OriginatorSyn { filter } => filter,
        other => return Err(unexpected(f, me, other).await),
    };
    let announced = cx.announce.filter_for(peer).await;
    let kind = kind_of(version);
    install(f, cx, peer, kind, &theirs, &announced).await?;
    f.send(&Handshake::ResponderSynAck {
        filter: announced.clone(),
    })
    .await?;
    match f.recv(me).await? {
        Handshake::OriginatorAck => {}
        other => return Err(unexpected(f, me, other).await),
    }
    Ok(Peered { peer, kind, claim })
}

/// A message out of turn: the peer's drop_conn becomes its error (a redundant connection is
/// not a failure); anything else is refused with `unexpected_handshake_message`.
async fn unexpected<S: Stream>(f: &mut Framed<S>, me: EndpointId, got: Handshake) -> Refused {
    match got {
        Handshake::DropConn {
            sender,
            code,
            description,
            ..
        } => {
            if code == ErrorCode::RedundantConnection as u8 {
                return Refused::Redundant(sender);
            }
            let code = ErrorCode::from_u8(code).unwrap_or(ErrorCode::Unspecified);
            Refused::Failed(Error::new(
                code,
                format!("peer refused: {}", String::from_utf8_lossy(&description)),
            ))
        }
        other => {
            let e = Error::new(
                ErrorCode::UnexpectedHandshakeMessage,
                format!("unexpected {:?} message", other.message_type()),
            );
            Refused::Failed(f.refuse(me, e).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Announces a fixed filter and records what happens, in order, in a log it may share
    /// with the other side's.
    struct Fixed(Vec<Topic>, Arc<Mutex<Vec<String>>>);

    impl Fixed {
        fn new(names: &[&str]) -> Self {
            Fixed(topics(names), Arc::default())
        }
        fn log(&self) -> Vec<String> {
            self.1.lock().unwrap().clone()
        }
    }

    impl Announce for Fixed {
        fn filter_for(&self, _: EndpointId) -> impl Future<Output = Vec<Topic>> + Send {
            std::future::ready(self.0.clone())
        }
        fn install(
            &self,
            peer: EndpointId,
            _: PeerKind,
            filter: Vec<Topic>,
            announced: Vec<Topic>,
        ) -> impl Future<Output = Result<(), Error>> + Send {
            let names = |t: &[Topic]| t.iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>();
            self.1.lock().unwrap().push(format!(
                "{} installs {peer} with {:?}",
                names(&announced).join(","),
                names(&filter)
            ));
            std::future::ready(Ok(()))
        }
    }

    fn topics(names: &[&str]) -> Vec<Topic> {
        names.iter().map(|t| Topic::new(*t).unwrap()).collect()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Runs both sides of a handshake over an in-memory pipe; `a` dials `b`, whose hooks
    /// announce `/a` and `/b` and share one log, where each side's completion is logged too.
    fn pair(
        a: EndpointId,
        b: EndpointId,
    ) -> (
        Result<Peered, Refused>,
        Result<Peered, Refused>,
        Vec<String>,
    ) {
        rt().block_on(async {
            let (x, y) = tokio::io::duplex(4096);
            let (ca, cb) = (Arc::new(Claims::default()), Arc::new(Claims::default()));
            let fa = Fixed::new(&["/a"]);
            let fb = Fixed(topics(&["/b"]), fa.1.clone());
            let (mut x, mut y) = (Framed::new(x), Framed::new(y));
            let cxa = Context {
                me: a,
                side: Side::Connector,
                conn: 1,
                claims: &ca,
                announce: &fa,
            };
            let cxb = Context {
                me: b,
                side: Side::Acceptor,
                conn: 2,
                claims: &cb,
                announce: &fb,
            };
            let done = |name: &str, r: &Result<Peered, Refused>| {
                fa.1.lock()
                    .unwrap()
                    .push(format!("{name} done: {}", r.is_ok()))
            };
            let (ra, rb) = tokio::join!(
                async {
                    let r = handshake(&mut x, &cxa).await;
                    done("/a", &r);
                    r
                },
                async {
                    let r = handshake(&mut y, &cxb).await;
                    done("/b", &r);
                    r
                }
            );
            (ra, rb, fa.log())
        })
    }

    fn rs(n: u8) -> EndpointId {
        EndpointId::broker_rs([n; 16])
    }

    fn plain(n: u8) -> EndpointId {
        let mut b = [n; 16];
        b[6] = (b[6] & 0x0f) | 0x40;
        EndpointId::from_bytes(b)
    }

    #[test]
    fn two_broker_rs_endpoints_agree_on_the_routing_extension_whoever_originates() {
        for (a, b) in [(rs(1), rs(2)), (rs(2), rs(1))] {
            let (x, y, log) = pair(a, b);
            let (x, y) = (x.unwrap(), y.unwrap());
            assert_eq!((x.kind, y.kind), (PeerKind::Routed, PeerKind::Routed));
            assert_eq!((x.peer, y.peer), (b, a));
            assert!(
                log.contains(&format!("/a installs {b} with [\"/b\"]")),
                "{log:?}"
            );
            assert!(
                log.contains(&format!("/b installs {a} with [\"/a\"]")),
                "{log:?}"
            );
        }
    }

    #[test]
    fn both_sides_install_the_peer_before_either_completes() {
        // Whoever dials and whoever originates: peered means subscriptions in effect at both
        // ends, so neither side's handshake may complete before the other side installed it.
        for (a, b) in [
            (rs(1), rs(2)),
            (rs(2), rs(1)),
            (rs(1), plain(2)),
            (plain(2), rs(1)),
        ] {
            let (x, y, log) = pair(a, b);
            assert!(x.is_ok() && y.is_ok(), "{log:?}");
            let first_done = log.iter().position(|l| l.contains("done")).unwrap();
            let installs = log.iter().filter(|l| l.contains("installs")).count();
            assert_eq!(installs, 2, "{log:?}");
            assert!(
                log[..first_done]
                    .iter()
                    .filter(|l| l.contains("installs"))
                    .count()
                    == 2,
                "a side completed before both had installed: {log:?}"
            );
        }
    }

    #[test]
    fn an_endpoint_without_the_broker_rs_mark_gets_version_one() {
        // (Whoever dials; the broker-rs side originates in both, having the smaller id.)
        for (a, b) in [(rs(1), plain(2)), (plain(2), rs(1))] {
            let (x, y, _) = pair(a, b);
            assert_eq!(x.unwrap().kind, PeerKind::Broker);
            assert_eq!(y.unwrap().kind, PeerKind::Broker);
        }
    }

    /// Sends raw handshake messages as a script (like Broker's btests) and returns what came
    /// back before the other side closed or went quiet.
    fn script(
        side_of_us: Side,
        me: EndpointId,
        claims: Arc<Claims>,
        send: Vec<Handshake>,
    ) -> Vec<Handshake> {
        rt().block_on(async move {
            let (x, y) = tokio::io::duplex(4096);
            let f = Fixed::new(&["/test"]);
            let ours = tokio::spawn(async move {
                let mut x = Framed::new(x);
                let cx = Context {
                    me,
                    side: side_of_us,
                    conn: 9,
                    claims: &claims,
                    announce: &f,
                };
                let _ = handshake(&mut x, &cx).await;
            });
            let mut y = Framed::new(y);
            for h in &send {
                y.send(h).await.unwrap();
            }
            let mut got = Vec::new();
            loop {
                let next = tokio::time::timeout(std::time::Duration::from_millis(200), async {
                    loop {
                        if let Ok(Some(frame)) = y.frames.decode(&mut y.buf) {
                            return Some(Handshake::decode(&frame).unwrap());
                        }
                        if y.stream.read_buf(&mut y.buf).await.unwrap_or(0) == 0 {
                            return None;
                        }
                    }
                })
                .await;
                match next {
                    Ok(Some(h)) => got.push(h),
                    _ => break,
                }
            }
            ours.abort();
            got
        })
    }

    fn drop_conn(h: &Handshake) -> (u8, String) {
        match h {
            Handshake::DropConn {
                code, description, ..
            } => (*code, String::from_utf8_lossy(description).into_owned()),
            other => panic!("expected drop_conn, got {other:?}"),
        }
    }

    #[test]
    fn a_range_beyond_one_gets_version_one_and_our_hello_is_brokers() {
        let them = EndpointId::from_bytes([0xff; 16]);
        let got = script(
            Side::Acceptor,
            rs(1),
            Arc::default(),
            vec![Handshake::hello(them, 1, 99)],
        );
        assert!(matches!(got[0], Handshake::Probe { magic: MAGIC }));
        assert!(matches!(
            got[1],
            Handshake::VersionSelect { version: 1, .. }
        ));
        assert_eq!(
            got[2],
            Handshake::OriginatorSyn {
                filter: topics(&["/test"])
            }
        );
        // As responder, our hello offers exactly 1..=1.
        let small = EndpointId::from_bytes([0; 16]);
        let got = script(
            Side::Acceptor,
            rs(1),
            Arc::default(),
            vec![Handshake::hello(small, 1, 99)],
        );
        assert_eq!(got[1], Handshake::hello(rs(1), 1, 1));
    }

    #[test]
    fn refusals_carry_brokers_codes_and_texts() {
        let them = EndpointId::from_bytes([0xff; 16]);
        let got = script(
            Side::Acceptor,
            rs(1),
            Arc::default(),
            vec![Handshake::hello(them, 200, 201)],
        );
        assert_eq!(
            drop_conn(&got[1]),
            (2, "unsupported versions offered".into())
        );
        let bad_magic = Handshake::Hello {
            magic: 1,
            sender: them,
            min_version: 1,
            max_version: 1,
        };
        let got = script(Side::Acceptor, rs(1), Arc::default(), vec![bad_magic]);
        assert_eq!(drop_conn(&got[1]), (38, "wrong magic number".into()));
        // A plain Broker peer selecting our extension's version.
        let small = EndpointId::from_bytes([0; 16]);
        let got = script(
            Side::Acceptor,
            rs(1),
            Arc::default(),
            vec![
                Handshake::hello(small, 1, 1),
                Handshake::version_select(small, 2),
            ],
        );
        assert_eq!(
            drop_conn(&got[2]),
            (2, "unsupported version selected".into())
        );
        // A broker-rs endpoint from before batch frames (version 2): refused as cleanly, so
        // that no `routed_batch` frame ever reaches it.
        let old = rs(0);
        let got = script(
            Side::Acceptor,
            rs(1),
            Arc::default(),
            vec![
                Handshake::hello(old, 1, 1),
                Handshake::version_select(old, 2),
            ],
        );
        assert_eq!(
            drop_conn(&got[2]),
            (2, "unsupported version selected".into())
        );
    }

    #[test]
    fn a_second_connection_to_a_held_peer_is_dropped_at_once() {
        let them = EndpointId::from_bytes([0xff; 16]);
        let claims: Arc<Claims> = Arc::default();
        let held = claims.claim(them, 1).unwrap();
        let got = script(
            Side::Acceptor,
            rs(1),
            claims.clone(),
            vec![Handshake::hello(them, 1, 99)],
        );
        assert_eq!(
            got.len(),
            2,
            "probe, then drop_conn and nothing else: {got:?}"
        );
        assert_eq!(drop_conn(&got[1]), (39, "redundant connection".into()));
        // At the responder (the peer originates): Broker's logic_error.
        let small = EndpointId::from_bytes([0; 16]);
        let _other = claims.claim(small, 1).unwrap();
        let got = script(
            Side::Acceptor,
            rs(1),
            claims.clone(),
            vec![
                Handshake::hello(small, 1, 1),
                Handshake::version_select(small, 1),
            ],
        );
        assert_eq!(
            drop_conn(&got[2]),
            (40, "detected redundant connection at the responder".into())
        );
        drop(held);
        assert!(!claims.is_held(them), "released with the claim");
    }
}
