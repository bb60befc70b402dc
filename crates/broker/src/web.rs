//! The endpoint's one HTTP server (hyper): Zeek's WebSocket API at `/v1/messages/json` (see
//! `websocket`), Prometheus metrics at `/metrics`, a live status page at `/` and its data at
//! `/v1/status`. Plain HTTP, or TLS through OpenSSL when a certificate is configured.
//!
//! Limits: request heads must arrive within [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD`]; request
//! bodies are never read (every route is a GET); connections beyond [`MAX_HTTP_CONNECTIONS`]
//! are closed at once, WebSocket clients beyond `web_socket_max_connections` get HTTP 503;
//! a TLS handshake must finish within the endpoint's `handshake_timeout`.
//!
//! Threads and locks: everything here runs as tasks on the endpoint's runtime and talks to the
//! core only through its command channel (no lock of the core is taken). The tasks hold the
//! endpoint weakly, so that they never keep it alive.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode as Http};
use hyper_util::rt::{TokioIo, TokioTimer};
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_openssl::SslStream;

use crate::cmd::{Cmd, TopologySnapshot};
use crate::queue::Queue;
use crate::types::{Metrics, PeerInfo, StatusEvent};
use crate::{Configuration, EndpointId, Error, ErrorCode};

/// How long a client may take to send a request head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head accepted.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Most HTTP connections (WebSocket clients included) open at once.
pub(crate) const MAX_HTTP_CONNECTIONS: usize = 1024;
/// How long the server waits for the core's answer to a status or metrics request.
const CORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the status history samples the endpoint's counters, and how many samples it
/// keeps (five minutes).
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const SAMPLES: usize = 150;
/// How many recent status and error events the status page shows.
const EVENTS: usize = 50;

/// The status page: static HTML, CSS and JavaScript, no build step.
const STATUS_PAGE: &str = include_str!("../assets/status.html");

/// What the server's tasks share.
pub(crate) struct Web {
    pub(crate) id: EndpointId,
    pub(crate) config: Arc<Configuration>,
    /// The core's command channel.
    pub(crate) core: mpsc::UnboundedSender<Cmd>,
    /// The endpoint, for what only it knows (stores, listeners); never kept alive from here.
    pub(crate) endpoint: Weak<dyn StatusSource>,
    /// Where WebSocket writers count themselves, so that a shutdown lets them send their
    /// close frames.
    pub(crate) live: Arc<crate::connection::Live>,
    tls: Option<SslAcceptor>,
    /// Open HTTP connections and WebSocket clients.
    pub(crate) connections: AtomicUsize,
    pub(crate) clients: AtomicUsize,
    /// WebSocket clients refused for the connection limit.
    pub(crate) refused: AtomicU64,
    /// Numbers the WebSocket clients' subscriber ids (far above the endpoint's own).
    pub(crate) next_client: AtomicU64,
    history: Mutex<History>,
}

/// A store as the status page lists it: name, whether master, number of keys (if the store
/// answered in time).
pub(crate) type StoreInfo = (String, bool, Option<u64>);

/// The stores of an endpoint, once they answered.
pub(crate) type StoresFuture<'a> =
    Pin<Box<dyn std::future::Future<Output = Vec<StoreInfo>> + Send + 'a>>;

/// What the status page needs from the endpoint beyond the core's state.
pub(crate) trait StatusSource: Send + Sync {
    /// The stores attached here.
    fn stores(&self) -> StoresFuture<'_>;
    /// The addresses this endpoint listens on, by purpose (`peers`, `http`).
    fn listeners(&self) -> Vec<(String, SocketAddr)>;
    /// Connections refused by the peer listener's limits.
    fn refused_connections(&self) -> u64;
}

/// Counter samples and recent events, for the page's chart and event list.
#[derive(Default)]
struct History {
    /// (unix ms, published, received, delivered, sent).
    samples: VecDeque<(u64, u64, u64, u64, u64)>,
    events: VecDeque<(u64, StatusEvent)>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Web {
    /// The server's shared state; TLS when the configuration names a certificate and key.
    pub(crate) fn new(
        id: EndpointId,
        config: Arc<Configuration>,
        core: mpsc::UnboundedSender<Cmd>,
        endpoint: Weak<dyn StatusSource>,
        live: Arc<crate::connection::Live>,
    ) -> Result<Web, Error> {
        Ok(Web {
            tls: tls_acceptor(&config)?,
            id,
            config,
            core,
            endpoint,
            live,
            connections: AtomicUsize::new(0),
            clients: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            next_client: AtomicU64::new(1 << 62),
            history: Mutex::default(),
        })
    }

    /// Asks the core and waits (for at most [`CORE_TIMEOUT`]).
    pub(crate) async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.core.send(make(tx)).ok()?;
        tokio::time::timeout(CORE_TIMEOUT, rx).await.ok()?.ok()
    }
}

fn tls_acceptor(config: &Configuration) -> Result<Option<SslAcceptor>, Error> {
    let (Some(cert), Some(key)) = (&config.web_socket_certificate, &config.web_socket_key) else {
        if config.web_socket_certificate.is_some() || config.web_socket_key.is_some() {
            return Err(Error::new(
                ErrorCode::InvalidData,
                "web_socket_certificate and web_socket_key go together",
            ));
        }
        return Ok(None);
    };
    let fail = |what: &str, e: openssl::error::ErrorStack| {
        Error::new(
            ErrorCode::CannotOpenFile,
            format!("WebSocket TLS: {what}: {e}"),
        )
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| fail("context", e))?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| fail("TLS version", e))?;
    b.set_certificate_chain_file(cert)
        .map_err(|e| fail(&cert.display().to_string(), e))?;
    b.set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| fail(&key.display().to_string(), e))?;
    b.check_private_key().map_err(|e| fail("key", e))?;
    if let Some(ca) = &config.web_socket_cafile {
        b.set_ca_file(ca)
            .map_err(|e| fail(&ca.display().to_string(), e))?;
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    Ok(Some(b.build()))
}

/// Accepts connections until the runtime ends, and samples the endpoint's counters.
pub(crate) fn start(web: Arc<Web>, listener: TcpListener) {
    tokio::spawn(sample(Arc::downgrade(&web)));
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => {
                    if web.connections.load(Ordering::Acquire) >= MAX_HTTP_CONNECTIONS {
                        web.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%addr, "HTTP connection refused: {MAX_HTTP_CONNECTIONS} open");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    web.connections.fetch_add(1, Ordering::AcqRel);
                    let web = web.clone();
                    tokio::spawn(async move {
                        serve_connection(&web, stream, addr).await;
                        web.connections.fetch_sub(1, Ordering::AcqRel);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
}

async fn serve_connection(web: &Arc<Web>, stream: tokio::net::TcpStream, addr: SocketAddr) {
    let io: Box<dyn Io> = match &web.tls {
        None => Box::new(stream),
        Some(acceptor) => {
            let handshake = async {
                let ssl = Ssl::new(acceptor.context()).map_err(|e| e.to_string())?;
                let mut s = SslStream::new(ssl, stream).map_err(|e| e.to_string())?;
                Pin::new(&mut s).accept().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(s)
            };
            match tokio::time::timeout(web.config.handshake_timeout, handshake).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => {
                    tracing::info!(%addr, error = %e, "WebSocket TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%addr, "WebSocket TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let service = hyper::service::service_fn(|req| {
        let web = web.clone();
        async move { Ok::<_, Infallible>(route(web, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(%addr, error = %e, "HTTP connection ended");
    }
}

fn reply(
    status: Http,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn route(web: Arc<Web>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if crate::websocket::is_upgrade(&req) {
        return crate::websocket::upgrade(web, req);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(Http::METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
    }
    match req.uri().path() {
        "/" | "/index.html" => reply(Http::OK, "text/html; charset=utf-8", STATUS_PAGE),
        "/metrics" => match metrics(&web).await {
            Some(m) => reply(Http::OK, "text/plain; version=0.0.4", m.to_prometheus()),
            None => reply(
                Http::SERVICE_UNAVAILABLE,
                "text/plain",
                "endpoint shut down\n",
            ),
        },
        "/v1/status" => match status(&web).await {
            Some(s) => reply(Http::OK, "application/json", s.to_string()),
            None => reply(
                Http::SERVICE_UNAVAILABLE,
                "text/plain",
                "endpoint shut down\n",
            ),
        },
        crate::websocket::PATH => reply(
            Http::BAD_REQUEST,
            "text/plain",
            "this is a WebSocket endpoint: connect with a WebSocket client\n",
        ),
        _ => reply(
            Http::NOT_FOUND,
            "text/plain",
            "not found; try / or /metrics\n",
        ),
    }
}

async fn metrics(web: &Web) -> Option<Metrics> {
    let mut m = web.ask(Cmd::Metrics).await?;
    if let Some(ep) = web.endpoint.upgrade() {
        m.refused_connections = ep.refused_connections();
    }
    Some(m)
}

fn id_text(id: &EndpointId) -> String {
    id.to_string()
}

/// The status page's data: this endpoint, its listeners, peers with traffic, the topology,
/// subscriptions, stores, the counters' history and recent events.
async fn status(web: &Web) -> Option<serde_json::Value> {
    let metrics = metrics(web).await?;
    let peers: Vec<PeerInfo> = web.ask(Cmd::Peers).await?;
    let topo: TopologySnapshot = web.ask(Cmd::Topology).await?;
    let (stores, listeners) = match web.endpoint.upgrade() {
        Some(ep) => (ep.stores().await, ep.listeners()),
        None => (Vec::new(), Vec::new()),
    };
    let peers: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            let m =
                p.id.and_then(|id| metrics.peers.iter().find(|m| m.id == id));
            json!({
                "id": p.id.as_ref().map(id_text),
                "address": p.address.map(|a| a.to_string()),
                "outbound": p.outbound,
                "state": format!("{:?}", p.state).to_lowercase(),
                "sent": m.map(|m| m.sent),
                "received": m.map(|m| m.received),
                "dropped": m.map(|m| m.dropped),
                "queued": m.map(|m| m.queued),
            })
        })
        .collect();
    let history = web.history.lock().unwrap_or_else(|e| e.into_inner());
    let samples: Vec<_> = history
        .samples
        .iter()
        .map(|(t, p, r, d, s)| json!([t, p, r, d, s]))
        .collect();
    let events: Vec<_> = history
        .events
        .iter()
        .rev()
        .map(|(t, e)| match e {
            StatusEvent::Status {
                code,
                context,
                message,
            } => json!({
                "time": t, "kind": "status", "code": code.to_string(),
                "endpoint": id_text(&context.id), "message": message,
            }),
            StatusEvent::Error {
                code,
                context,
                message,
            } => json!({
                "time": t, "kind": "error", "code": code.to_string(),
                "endpoint": id_text(&context.id), "message": message,
            }),
        })
        .collect();
    let r = &metrics.router;
    Some(json!({
        "id": id_text(&web.id),
        "version": env!("CARGO_PKG_VERSION"),
        "time": unix_ms(),
        "listeners": listeners.iter().map(|(what, a)| json!({"purpose": what, "address": a.to_string()})).collect::<Vec<_>>(),
        "peers": peers,
        "topology": {
            "nodes": topo.nodes.iter().map(id_text).collect::<Vec<_>>(),
            "links": topo.links.iter().map(|(a, b)| json!([id_text(a), id_text(b)])).collect::<Vec<_>>(),
        },
        "subscriptions": {
            "local": topo.local_topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "peers": topo.peer_topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        },
        "stores": stores.iter().map(|(name, master, size)| json!({"name": name, "role": if *master {"master"} else {"clone"}, "size": size})).collect::<Vec<_>>(),
        "counters": {
            "published": r.published, "received": r.received, "delivered": r.delivered,
            "sent": r.sent, "dropped": r.overflow_dropped,
            "web_socket_clients": metrics.web_socket_clients,
            "web_socket_refused": web.refused.load(Ordering::Relaxed),
        },
        "history": samples,
        "events": events,
    }))
}

/// Samples the counters every [`SAMPLE_EVERY`] and keeps the recent status events, while the
/// server lives.
async fn sample(web: Weak<Web>) {
    let Some(events) = web.upgrade().and_then(|w| status_queue(&w)) else {
        return;
    };
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(web) = web.upgrade() else { return };
        let Some(m) = web.ask(Cmd::Metrics).await else {
            return;
        };
        let now = unix_ms();
        let r = &m.router;
        let mut h = web.history.lock().unwrap_or_else(|e| e.into_inner());
        h.samples
            .push_back((now, r.published, r.received, r.delivered, r.sent));
        if h.samples.len() > SAMPLES {
            h.samples.pop_front();
        }
        for e in events.take_all() {
            h.events.push_back((now, e));
            if h.events.len() > EVENTS {
                h.events.pop_front();
            }
        }
    }
}

/// A status subscription for the event list (a bounded queue that drops its oldest).
fn status_queue(web: &Web) -> Option<Arc<Queue<StatusEvent>>> {
    let queue = Arc::new(Queue::new(EVENTS, Duration::ZERO).ok()?);
    let id = web.next_client.fetch_add(1, Ordering::Relaxed);
    web.core
        .send(Cmd::StatusSubscribe {
            id,
            queue: queue.clone(),
            statuses: true,
        })
        .ok()?;
    Some(queue)
}
