//! busrt's WebSocket transport (`ws://`, `wss://`): the bus's byte stream carried inside
//! WebSocket binary messages, whose boundaries mean nothing (busrt-protocol.md §1). busrt
//! serves it only from its library; here it is a listener like the others
//! ([`Bus::spawn_websocket_server`], `broker bus serve -B ws://HOST:PORT`) and a transport of
//! [`IpcClient`](crate::ipc::IpcClient).
//!
//! A connection's WebSocket is pumped to and from one end of a bounded in-memory pipe whose
//! other end the bus (or the client) reads and writes like a socket: the pipe's size bounds
//! what is buffered, and the reader pushes back on the WebSocket when the bus is slow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::core::ClientKind;
use crate::server::{
    accept_tcp, accept_tls, serve, tls_acceptor, Bus, Origin, ServerConfig, ServerHandle,
};

/// Bytes the pipe between a WebSocket and the bus holds in each direction.
const PIPE: usize = 64 * 1024;

/// The WebSocket limits for a bus whose frames are at most `max_frame_size` bytes: a message
/// holds at most one frame and its header (busrt's writers send a frame in one message or
/// less), so nothing larger is ever buffered.
pub(crate) fn limits(max_frame_size: u32) -> WebSocketConfig {
    let max = usize::try_from(max_frame_size)
        .unwrap_or(usize::MAX)
        .saturating_add(PIPE);
    let mut c = WebSocketConfig::default();
    c.max_message_size = Some(max);
    c.max_frame_size = Some(max);
    c
}

/// Carries a byte stream over `ws` (a task pumps both ways until either side ends, then
/// gives the other `linger` to finish); returns the end the bus or client uses.
pub(crate) fn carry<S>(ws: WebSocketStream<S>, linger: Duration) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (ours, theirs) = tokio::io::duplex(PIPE);
    tokio::spawn(pump(ws, theirs, linger));
    ours
}

async fn pump<S>(ws: WebSocketStream<S>, pipe: DuplexStream, linger: Duration)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (mut from_pipe, mut to_pipe) = tokio::io::split(pipe);
    let inbound = async move {
        while let Some(m) = stream.next().await {
            match m {
                Ok(Message::Binary(b)) => {
                    if to_pipe.write_all(&b).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by the WebSocket itself; pongs and raw frames carry no
                // bytes of the stream.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => break,
                Ok(Message::Text(_)) => {
                    tracing::debug!("bus: a WebSocket text message (the stream is binary)");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "bus: WebSocket read failed");
                    break;
                }
            }
        }
        // The reader sees the end of the stream.
        let _ = to_pipe.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; PIPE];
        loop {
            match from_pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let m = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::pin!(inbound, outbound);
    tokio::select! {
        _ = &mut inbound => {
            let _ = tokio::time::timeout(linger, outbound).await;
        }
        _ = &mut outbound => {
            let _ = tokio::time::timeout(linger, inbound).await;
        }
    }
}

/// `HOST:PORT` of a `ws://` or `wss://` URL (none for anything else).
pub(crate) fn authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// A client's WebSocket handshake for `url` on `stream`; the end of the pipe to speak busrt's
/// protocol on.
pub(crate) async fn connect<S>(
    url: &str,
    stream: S,
    timeout: Duration,
) -> Result<DuplexStream, crate::server::Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let limits = limits(ServerConfig::default().max_frame_size);
    match tokio_tungstenite::client_async_with_config(url, stream, Some(limits)).await {
        Ok((ws, _)) => Ok(carry(ws, timeout)),
        Err(e) => Err(crate::server::Error {
            code: crate::frame::code::IO,
            message: format!("WebSocket handshake with {url}: {e}"),
        }),
    }
}

/// The server's WebSocket handshake on `stream` (within the timeout, with the origin check);
/// the end of the pipe the bus serves.
async fn handshake<S>(stream: S, config: &ServerConfig) -> Option<DuplexStream>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let origins = config.web_origins.clone();
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let check = move |req: &Request, res: Response| check_origin(&origins, req, res);
    let limits = Some(limits(config.max_frame_size));
    let accepted = tokio_tungstenite::accept_hdr_async_with_config(stream, check, limits);
    match tokio::time::timeout(config.timeout, accepted).await {
        Ok(Ok(ws)) => Some(carry(ws, config.timeout)),
        _ => None,
    }
}

/// Refuses a handshake from a web page whose origin is not admitted.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
fn check_origin(
    origins: &[String],
    req: &Request,
    res: Response,
) -> Result<Response, ErrorResponse> {
    let Some(origin) = req.headers().get("origin") else {
        return Ok(res);
    };
    if origins
        .iter()
        .any(|o| o.as_bytes() == origin.as_bytes() || o == "*")
    {
        return Ok(res);
    }
    let mut refused = ErrorResponse::new(Some("this origin may not use the bus".into()));
    *refused.status_mut() = StatusCode::FORBIDDEN;
    Err(refused)
}

impl Bus {
    /// Listens for busrt's WebSocket clients (`ws://HOST:PORT`; `wss://` when `config.tls`
    /// is set, with the same certificate rules as TCP) on `addr`; returns the handle and the
    /// bound address. Clients are listed as kind `websocket`; the host rules of the AAA map
    /// apply to their address.
    ///
    /// busrt sends a bearer token and never checks it; neither does this listener. What it
    /// adds is a browser check: a handshake that carries an `Origin` header (every browser
    /// sends one, busrt's clients none) is refused unless `config.web_origins` lists it, so
    /// that a web page cannot reach a bus on the local host through its visitor's browser.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use broker_bus::{ipc::IpcClient, Bus, Qos};
    /// let bus = Bus::new(Default::default());
    /// let (_server, addr) = bus
    ///     .spawn_websocket_server("127.0.0.1:0", Default::default())
    ///     .await
    ///     .unwrap();
    /// let worker = bus.register_client("worker").unwrap();
    /// let url = format!("ws://{addr}");
    /// let remote = IpcClient::connect(&url, "remote", std::time::Duration::from_secs(5))
    ///     .await
    ///     .unwrap();
    /// remote.send("worker", b"hello", Qos::Processed).await.unwrap();
    /// assert_eq!(worker.recv().await.unwrap().payload(), b"hello");
    /// # });
    /// ```
    pub async fn spawn_websocket_server(
        &self,
        addr: &str,
        config: ServerConfig,
    ) -> std::io::Result<(ServerHandle, SocketAddr)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let bus = self.clone();
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(tls_acceptor(t)?)),
            None => None,
        };
        // busrt reports the bind address, without the scheme.
        let port = local.to_string();
        let slots = config.max_connections;
        let task = accept_tcp(listener, slots, move |stream, peer| {
            let bus = bus.clone();
            let (config, port, tls) = (config.clone(), port.clone(), tls.clone());
            async move {
                let (pipe, cert_names) = match tls {
                    None => (handshake(stream, &config).await, None),
                    Some(acceptor) => {
                        let Some((s, names)) = accept_tls(&acceptor, stream, &config).await else {
                            tracing::debug!(%peer, "bus: a TLS handshake failed");
                            return;
                        };
                        (handshake(s, &config).await, names)
                    }
                };
                let Some(pipe) = pipe else {
                    tracing::debug!(%peer, "bus: a WebSocket handshake failed");
                    return;
                };
                let origin = Origin {
                    kind: ClientKind::WebSocket,
                    source: Some(peer.to_string()),
                    peer: crate::aaa::Peer::Tcp(peer.ip()),
                    cert_names,
                    port,
                    raw: None,
                };
                serve(bus, pipe, origin, config).await;
            }
        });
        Ok((ServerHandle { task, path: None }, local))
    }
}
