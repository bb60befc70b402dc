//! Zeek's WebSocket API (Broker's JSON API v1) on the endpoint's HTTP server: each client is a
//! lightweight participant of the endpoint. Its subscriptions are the endpoint's (advertised to
//! peers like any local subscriber's); what it publishes reaches the peers, local subscribers
//! and other clients, never itself; it hears peers, other clients and the endpoint's own
//! publications.
//!
//! One client is two tasks on the endpoint's runtime: the reader decodes messages and hands
//! them to the core in batches (`Cmd::ClientPublish`, at most `MAX_IN_FLIGHT` messages in
//! flight: a client that publishes faster than the core routes is not read, and TCP pushes
//! back); the writer takes from the client's queue (bounded, with the overflow policy of
//! `web_socket_overflow_policy`), encodes and sends, pings, and sends the errors the reader
//! reports. Neither takes a lock of the core.
//!
//! The handshake follows Zeek 8 (see the specification's §3): the client sends its topic
//! prefixes first; the server answers with the ack only once the subscription is active, so a
//! message published right after the client has its ack reaches it; what the client sent
//! meanwhile is read after that, in order. A malformed subscription gets an error and close
//! 1008, without an ack; so does a wrong path (after the upgrade, as Zeek does).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use broker_data::{Data, SharedData};
use broker_wire::Topic;
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode as Http};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::cmd::{Client, Cmd, Publications};
use crate::config::SubscriberOverflow;
use crate::connection::LiveWriter;
use crate::inflight::InFlight;
use crate::queue::Queue;
use crate::types::DataMessage;
use crate::web::Web;

/// The one path of the API.
pub(crate) const PATH: &str = "/v1/messages/json";

/// Messages a reader hands the core at once, and the least a batch weighs in the reader's
/// in-flight count (so a client keeps at most 128 small batches in flight).
const BATCH: usize = 256;
const MIN_WEIGHT: usize = 64;

/// Messages the writer takes from the queue and sends per flush.
const WRITE_BATCH: usize = 256;

/// How long the client has for its subscription list, and a write for the socket.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server waits for the client's answer to its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Whether `req` asks for a WebSocket (whatever its path).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has = |name, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    has(UPGRADE, "websocket") && has(CONNECTION, "upgrade")
}

/// Answers a WebSocket request: 101 and a session task, or an HTTP error.
pub(crate) fn upgrade(web: Arc<Web>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let plain = |status: Http, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r
    };
    let version_ok = req
        .headers()
        .get("sec-websocket-version")
        .is_some_and(|v| v == "13");
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return plain(Http::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    if !version_ok {
        let mut r = plain(Http::UPGRADE_REQUIRED, "WebSocket version 13 only\n");
        r.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return r;
    }
    // The limit counts clients from their upgrade to their end.
    let admitted = web
        .clients
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < web.config.web_socket_max_connections).then_some(n + 1)
        })
        .is_ok();
    if !admitted {
        web.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            limit = web.config.web_socket_max_connections,
            "WebSocket client refused: too many clients"
        );
        return plain(Http::SERVICE_UNAVAILABLE, "too many WebSocket clients\n");
    }
    let path_ok = req.uri().path() == PATH;
    let app = req
        .headers()
        .get("x-application-name")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let slot = Slot(web.clone());
        match upgrade.await {
            Ok(upgraded) => {
                let mut config = WebSocketConfig::default();
                config.max_message_size = Some(web.config.web_socket_max_message_size);
                config.max_frame_size = Some(web.config.web_socket_max_message_size);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                session(&web, ws, path_ok, app).await;
            }
            Err(e) => tracing::info!(error = %e, "WebSocket upgrade failed"),
        }
        drop(slot);
    });
    let mut r = plain(Http::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    r
}

/// A client's place under the connection limit, given back when it ends.
struct Slot(Arc<Web>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Sends `first` (an error) and closes with 1008, as Zeek does for a handshake it refuses.
async fn refuse(mut ws: Ws, first: String) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        ws.send(Message::text(first)).await?;
        ws.send(close(CloseCode::Policy, "")).await?;
        // Let the client's close answer come back (or the socket end).
        while let Some(Ok(_)) = ws.next().await {}
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}

/// What the reader asks the writer to send.
enum Out {
    /// An error message for the client.
    Text(String),
    /// The end, with this close frame (e.g. 1009 for a message beyond the size limit).
    Close(Message),
}

async fn session(web: &Arc<Web>, mut ws: Ws, path_ok: bool, app: Option<String>) {
    if !path_ok {
        let e = broker_json::error("invalid_uri", "Invalid URI - use /v1/messages/json");
        return refuse(ws, e).await;
    }
    // The subscriptions come first.
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, next_data(&mut ws)).await {
        Ok(Some(text)) => text,
        Ok(None) => return,
        Err(_) => {
            tracing::info!("WebSocket client sent no subscriptions in time");
            let _ = ws.send(close(CloseCode::Policy, "no subscriptions")).await;
            return;
        }
    };
    let topics = match broker_json::parse_subscriptions(&first) {
        Ok(t) => t,
        Err(e) => {
            let e = broker_json::error("deserialization_failed", &e.to_string());
            return refuse(ws, e).await;
        }
    };
    let topics: Result<Vec<Topic>, _> =
        topics.iter().map(|t| Topic::try_from(t.as_str())).collect();
    let Ok(topics) = topics else {
        let e = broker_json::error(
            "deserialization_failed",
            "invalid subscription: topic too long",
        );
        return refuse(ws, e).await;
    };
    let Ok(queue) = Queue::new(web.config.web_socket_buffer_size, Duration::ZERO) else {
        let _ = ws.send(close(CloseCode::Error, "out of resources")).await;
        return;
    };
    let queue = Arc::new(queue);
    let id = web.next_client.fetch_add(1, Ordering::Relaxed);
    let overflowed = Arc::new(AtomicBool::new(false));
    let subscribed = web.core.send(Cmd::Subscribe {
        id,
        topics,
        queue: queue.clone(),
        overflow: SubscriberOverflow::DropOldest,
        client: Some(Client {
            overflow: web.config.web_socket_overflow_policy,
            overflowed: overflowed.clone(),
        }),
    });
    // The core handles commands in order: its answer to the next one means the subscription
    // is active.
    if subscribed.is_err() || web.ask(Cmd::Peers).await.is_none() {
        let _ = ws.send(close(CloseCode::Away, "Terminating")).await;
        return;
    }
    tracing::info!(
        client = id,
        app = app.as_deref().unwrap_or("-"),
        "WebSocket client connected"
    );
    let ack = broker_json::ack(&web.id.to_string(), env!("CARGO_PKG_VERSION"));
    if ws.send(Message::text(ack)).await.is_err() {
        let _ = web.core.send(Cmd::DropSubscriber(id));
        return;
    }
    let (sink, stream) = ws.split();
    let (out_tx, out_rx) = mpsc::channel::<Out>(64);
    let last_pong = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut writer = tokio::spawn(write_loop(
        sink,
        Outgoing {
            _live: LiveWriter::new(web.live.clone()),
            queue,
            out: out_rx,
            overflowed,
            ping_every: web.config.web_socket_ping_interval,
            last_pong: last_pong.clone(),
            started,
        },
    ));
    // The session ends with the reader (the client closed; the writer then closes too) or
    // with the writer (shutdown, overflow, ping timeout, a stalled socket: nothing more is
    // read).
    let reader = read_loop(web, id, stream, out_tx, &last_pong, started);
    tokio::pin!(reader);
    tokio::select! {
        _ = &mut reader => {
            let _ = web.core.send(Cmd::DropSubscriber(id));
            let _ = (&mut writer).await;
        }
        _ = &mut writer => {
            let _ = web.core.send(Cmd::DropSubscriber(id));
            // The writer sent a close frame: the client's answer ends the reader (a closing
            // handshake, so that the client reads the close frame before the socket ends).
            let _ = tokio::time::timeout(CLOSE_WAIT, reader).await;
        }
    }
    tracing::info!(client = id, "WebSocket client gone");
}

/// The next text or binary message's bytes (binary is taken as text, as Zeek does); none
/// when the connection ends.
async fn next_data(ws: &mut Ws) -> Option<Bytes> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(Bytes::from(t)),
            Ok(Message::Binary(b)) => return Some(b),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Reads the client's messages and hands them to the core in batches.
async fn read_loop(
    web: &Web,
    id: u64,
    mut stream: futures_util::stream::SplitStream<Ws>,
    out: mpsc::Sender<Out>,
    last_pong: &AtomicU64,
    started: Instant,
) {
    let reader = Arc::new(InFlight::default());
    // Counts the messages since the handshake, for Broker's `input #N` in errors.
    let mut n: u64 = 0;
    let mut items: Publications = Vec::new();
    'read: loop {
        // Wait while the core is behind on this client's earlier batches.
        poll_fn(|cx| {
            if reader.core_is_behind(cx) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let mut next = stream.next().await;
        loop {
            let decoded = match next {
                Some(Err(WsError::Capacity(e))) => {
                    tracing::info!(client = id, error = %e, "WebSocket message too large");
                    let _ = out
                        .send(Out::Close(close(CloseCode::Size, "message too big")))
                        .await;
                    break 'read;
                }
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break 'read,
                // Text frames are UTF-8 already (tungstenite checked): not validated again.
                Some(Ok(Message::Text(t))) => Some(decode(broker_json::parse_message_str(&t))),
                Some(Ok(Message::Binary(b))) => Some(decode(broker_json::parse_message(&b))),
                Some(Ok(Message::Pong(_))) => {
                    last_pong.store(started.elapsed().as_millis() as u64, Ordering::Release);
                    None
                }
                Some(Ok(_)) => None,
            };
            if let Some(decoded) = decoded {
                n += 1;
                match decoded {
                    Ok(item) => items.push(item),
                    Err(e) => {
                        let text = broker_json::error("deserialization_failed", &e.context(n));
                        // The writer may be slow: this reader waits (and stops reading) meanwhile.
                        if out.send(Out::Text(text)).await.is_err() {
                            break 'read;
                        }
                    }
                }
            }
            if items.len() >= BATCH {
                break;
            }
            // More that is already here joins the batch.
            match stream.next().now_or_never() {
                Some(m) => next = m,
                None => break,
            }
        }
        if !items.is_empty() && !hand_over(web, id, &reader, &mut items) {
            break;
        }
    }
    if !items.is_empty() {
        hand_over(web, id, &reader, &mut items);
    }
}

fn hand_over(web: &Web, origin: u64, reader: &Arc<InFlight>, items: &mut Publications) -> bool {
    let weight = items.len().max(MIN_WEIGHT);
    reader.sending(weight);
    let sent = web.core.send(Cmd::ClientPublish {
        origin,
        items: std::mem::take(items),
        reader: reader.clone(),
        weight,
    });
    if sent.is_err() {
        reader.not_sent(weight);
    }
    sent.is_ok()
}

/// A data message from the client: its topic and value.
fn decode(
    parsed: Result<(String, Data), broker_json::MessageError>,
) -> Result<(Topic, SharedData), broker_json::MessageError> {
    let (topic, value) = parsed?;
    let topic =
        Topic::try_from(topic.as_str()).map_err(|_| broker_json::MessageError::InvalidData)?;
    Ok((topic, SharedData::from(value)))
}

/// What a client's writer sends from, and what it watches.
struct Outgoing {
    /// Counts the writer among the endpoint's (a shutdown lets it send its close frame).
    _live: LiveWriter,
    /// The client's subscription.
    queue: Arc<Queue<DataMessage>>,
    /// The reader's errors for the client.
    out: mpsc::Receiver<Out>,
    /// Set by the core when the client's buffer overflowed under `disconnect`.
    overflowed: Arc<AtomicBool>,
    ping_every: Duration,
    /// When the last pong came (milliseconds after `started`).
    last_pong: Arc<AtomicU64>,
    started: Instant,
}

/// Sends what the client's queue holds, the reader's errors, and pings; closes the
/// connection when the queue closes (1001 "Terminating" at shutdown, 1011 after an overflow
/// under `disconnect`) or a ping goes unanswered (1011 "Ping timeout").
async fn write_loop(mut sink: futures_util::stream::SplitSink<Ws, Message>, o: Outgoing) {
    let Outgoing {
        _live,
        queue,
        mut out,
        overflowed,
        ping_every,
        last_pong,
        started,
    } = o;
    let pings = !ping_every.is_zero();
    let mut ping = tokio::time::interval(if pings {
        ping_every
    } else {
        Duration::from_secs(3600)
    });
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_ping: Option<u64> = None;
    let ending = loop {
        tokio::select! {
            biased;
            o = out.recv() => match o {
                Some(Out::Text(t)) => {
                    if timed(sink.send(Message::text(t))).await.is_err() {
                        break None;
                    }
                }
                Some(Out::Close(frame)) => break Some(frame),
                // The reader is done: the client closed or went away.
                None => break Some(close(CloseCode::Normal, "")),
            },
            batch = poll_fn(|cx| match queue.poll_take(WRITE_BATCH, cx.waker()) {
                Ok(v) if v.is_empty() => Poll::Pending,
                Ok(v) => Poll::Ready(Some(v)),
                Err(()) => Poll::Ready(None),
            }) => {
                let Some(batch) = batch else {
                    break Some(if overflowed.load(Ordering::Acquire) {
                        close(CloseCode::Error, "buffer overflow")
                    } else {
                        close(CloseCode::Away, "Terminating")
                    });
                };
                let sent = timed(async {
                    for m in batch {
                        // Each message's text moves into its frame: one allocation a message.
                        let mut text = String::with_capacity(128);
                        let topic = String::from_utf8_lossy(m.topic.as_bytes());
                        broker_json::write_data_message(&mut text, &topic, &m.data);
                        sink.feed(Message::text(text)).await?;
                    }
                    sink.flush().await
                })
                .await;
                if sent.is_err() {
                    break None;
                }
            },
            _ = ping.tick(), if pings => {
                let pong = last_pong.load(Ordering::Acquire);
                if let Some(sent_at) = last_ping {
                    // Two intervals without an answer to the ping before last.
                    if pong < sent_at && started.elapsed().as_millis() as u64 > sent_at + 2 * ping_every.as_millis() as u64 {
                        break Some(close(CloseCode::Error, "Ping timeout"));
                    }
                }
                if last_ping.is_none_or(|p| pong >= p) {
                    last_ping = Some(started.elapsed().as_millis() as u64);
                }
                if timed(sink.send(Message::Ping(Bytes::new()))).await.is_err() {
                    break None;
                }
            },
        }
    };
    if let Some(frame) = ending {
        // After the client's close frame this only flushes tungstenite's answer to it.
        let _ = timed(sink.send(frame)).await;
    }
    let _ = timed(sink.close()).await;
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, tokio_tungstenite::tungstenite::Error>>,
) -> Result<T, ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        _ => Err(()),
    }
}
