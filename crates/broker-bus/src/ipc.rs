//! A client of a bus over a UNIX socket or TCP (busrt's protocol): what `broker bus` commands
//! use, and what a Rust program that is not the bus's host can use to talk to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::frame::{self, code, ClientFrame, Delivery, Op, Qos};
use crate::server::Error;

type Writer = Box<dyn AsyncWrite + Send + Unpin>;
type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<u8>>>>;

/// A connected, registered client.
pub struct IpcClient {
    name: String,
    writer: Arc<tokio::sync::Mutex<Writer>>,
    pending: Pending,
    next_op: AtomicU32,
    events: mpsc::Receiver<Delivery>,
    timeout: Duration,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for IpcClient {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn io(e: std::io::Error) -> Error {
    Error {
        code: code::IO,
        message: e.to_string(),
    }
}

/// Whether `path` names a UNIX socket by busrt's rule (else `HOST:PORT`).
pub fn is_unix_path(path: &str) -> bool {
    path.starts_with('/')
        || path.ends_with(".sock")
        || path.ends_with(".socket")
        || path.ends_with(".ipc")
}

impl IpcClient {
    /// Connects to `path` (busrt's rule: a UNIX socket path, or `HOST:PORT`) and registers
    /// `name`, all within `timeout` (also each later write's and ACK's limit; pings go every
    /// half of it).
    ///
    /// `ws://HOST:PORT[/PATH]` connects over WebSocket, as busrt's client does (for
    /// `wss://`, see [`IpcClient::connect_tls`]).
    pub async fn connect(path: &str, name: &str, timeout: Duration) -> Result<IpcClient, Error> {
        let connect = async {
            if path.starts_with("wss://") {
                Err(Error {
                    code: code::NOT_SUPPORTED,
                    message: "wss:// needs a CA to check the server with (connect_tls)".into(),
                })
            } else if let Some(addr) = crate::ws::authority(path) {
                let s = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
                let _ = s.set_nodelay(true);
                let pipe = crate::ws::connect(path, s, timeout).await?;
                Self::register(pipe, name, timeout).await
            } else if is_unix_path(path) {
                let s = tokio::net::UnixStream::connect(path).await.map_err(io)?;
                Self::register(s, name, timeout).await
            } else {
                let s = tokio::net::TcpStream::connect(path).await.map_err(io)?;
                let _ = s.set_nodelay(true);
                Self::register(s, name, timeout).await
            }
        };
        tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| Error {
                code: code::TIMEOUT,
                message: format!("no answer from {path} within {timeout:?}"),
            })?
    }

    /// Connects over TLS to `addr` (`HOST:PORT`, or `wss://HOST:PORT[/PATH]` for TLS under
    /// WebSocket): the server's certificate must chain to
    /// `ca_file`; `identity` (certificate and key, PEM) is presented to a server that asks
    /// for one (and may bind the bus name to it).
    pub async fn connect_tls(
        addr: &str,
        name: &str,
        timeout: Duration,
        ca_file: &std::path::Path,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<IpcClient, Error> {
        use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
        let tls = |e: openssl::error::ErrorStack| Error {
            code: code::IO,
            message: format!("TLS: {e}"),
        };
        let mut b = SslConnector::builder(SslMethod::tls()).map_err(tls)?;
        b.set_ca_file(ca_file).map_err(tls)?;
        if let Some((cert, key)) = identity {
            b.set_certificate_chain_file(cert).map_err(tls)?;
            b.set_private_key_file(key, SslFiletype::PEM).map_err(tls)?;
        }
        let connector = b.build();
        let url = addr.starts_with("wss://").then_some(addr);
        let addr = url.and_then(crate::ws::authority).unwrap_or(addr);
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
            let _ = tcp.set_nodelay(true);
            // The chain is checked against the CA; the host name is not (bus servers are
            // addressed by IP as often as by name).
            let mut config = connector.configure().map_err(tls)?;
            config.set_verify_hostname(false);
            let ssl = config.into_ssl("bus").map_err(tls)?;
            let mut s = tokio_openssl::SslStream::new(ssl, tcp).map_err(tls)?;
            std::pin::Pin::new(&mut s)
                .connect()
                .await
                .map_err(|e| Error {
                    code: code::IO,
                    message: format!("TLS handshake: {e}"),
                })?;
            match url {
                Some(url) => {
                    let pipe = crate::ws::connect(url, s, timeout).await?;
                    Self::register(pipe, name, timeout).await
                }
                None => Self::register(s, name, timeout).await,
            }
        };
        tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| Error {
                code: code::TIMEOUT,
                message: format!("no answer from {addr} within {timeout:?}"),
            })?
    }

    async fn register<S>(stream: S, name: &str, timeout: Duration) -> Result<IpcClient, Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut hello = [0u8; 3];
        rd.read_exact(&mut hello).await.map_err(io)?;
        if hello != frame::HELLO {
            return Err(Error {
                code: code::NOT_SUPPORTED,
                message: format!("not a busrt 0.5 server (greeting {hello:02x?})"),
            });
        }
        wr.write_all(&hello).await.map_err(io)?;
        let mut b = [0u8; 1];
        rd.read_exact(&mut b).await.map_err(io)?;
        if b[0] != code::OK {
            return Err(Error {
                code: b[0],
                message: "the server refused the protocol version".into(),
            });
        }
        let len = u16::try_from(name.len()).map_err(|_| Error {
            code: code::DATA,
            message: "a name longer than 65,535 bytes".into(),
        })?;
        wr.write_all(&len.to_le_bytes()).await.map_err(io)?;
        wr.write_all(name.as_bytes()).await.map_err(io)?;
        rd.read_exact(&mut b).await.map_err(io)?;
        if b[0] != code::OK {
            return Err(Error {
                code: b[0],
                message: format!("the server refused the name {name:?}"),
            });
        }
        let writer: Arc<tokio::sync::Mutex<Writer>> =
            Arc::new(tokio::sync::Mutex::new(Box::new(wr)));
        let pending: Pending = Arc::default();
        let (tx, events) = mpsc::channel(8192);
        let reader = tokio::spawn(read_frames(rd, pending.clone(), tx));
        let pinger = {
            let writer = writer.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(timeout / 2).await;
                    let mut w = writer.lock().await;
                    if w.write_all(&frame::PING).await.is_err() {
                        break;
                    }
                }
            })
        };
        Ok(IpcClient {
            name: name.to_owned(),
            writer,
            pending,
            next_op: AtomicU32::new(1),
            events,
            timeout,
            tasks: vec![reader, pinger],
        })
    }

    /// Its registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn op(&self, op: Op, qos: Qos, body: Vec<u8>) -> Result<(), Error> {
        let op_id = loop {
            let id = self.next_op.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                break id;
            }
        };
        let ack = qos.needs_ack().then(|| {
            let (tx, rx) = oneshot::channel();
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(op_id, tx);
            rx
        });
        let mut out = BytesMut::with_capacity(9 + body.len());
        ClientFrame {
            op_id,
            op,
            qos,
            body: Bytes::from(body),
        }
        .encode(&mut out);
        {
            let mut w = self.writer.lock().await;
            tokio::time::timeout(self.timeout, w.write_all(&out))
                .await
                .map_err(|_| Error {
                    code: code::TIMEOUT,
                    message: "a write timed out".into(),
                })?
                .map_err(io)?;
        }
        let Some(rx) = ack else { return Ok(()) };
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(code::OK)) => Ok(()),
            Ok(Ok(c)) => Err(Error {
                code: c,
                message: format!("{op:?} refused"),
            }),
            Ok(Err(_)) => Err(Error {
                code: code::IO,
                message: "disconnected".into(),
            }),
            Err(_) => Err(Error {
                code: code::TIMEOUT,
                message: "no ACK in time".into(),
            }),
        }
    }

    /// A direct message to one client.
    pub async fn send(&self, target: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.op(Op::Message, qos, frame::body(&[target.as_bytes(), payload]))
            .await
    }

    /// A broadcast to the clients `mask` matches.
    pub async fn send_broadcast(&self, mask: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.op(Op::Broadcast, qos, frame::body(&[mask.as_bytes(), payload]))
            .await
    }

    /// A publication.
    pub async fn publish(&self, topic: &str, payload: &[u8], qos: Qos) -> Result<(), Error> {
        self.op(Op::Publish, qos, frame::body(&[topic.as_bytes(), payload]))
            .await
    }

    /// Subscribes (acknowledged).
    pub async fn subscribe(&self, topics: &[&str]) -> Result<(), Error> {
        let parts: Vec<&[u8]> = topics.iter().map(|t| t.as_bytes()).collect();
        self.op(Op::Subscribe, Qos::Processed, frame::body(&parts))
            .await
    }

    /// The next delivery (none once disconnected).
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.events.recv().await
    }

    /// Calls `method` at `target` over busrt's RPC layer and waits (within the timeout) for
    /// its reply; other deliveries meanwhile are dropped (this is for one-shot callers).
    pub async fn call(
        &mut self,
        target: &str,
        method: &str,
        params: &[u8],
    ) -> Result<Bytes, crate::rpc::RpcError> {
        use crate::rpc::{RpcError, ERROR, REPLY};
        let id = self.next_op.fetch_add(1, Ordering::Relaxed).max(1);
        let request = crate::rpc::request(id, method, params);
        self.send(target, &request, Qos::Processed)
            .await
            .map_err(|e| RpcError::new(-32000 - e.code as i16, Some(e.message.into_bytes())))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let d = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| RpcError::new(-32000 - code::TIMEOUT as i16, None))?
                .ok_or_else(|| RpcError::new(-32000 - code::IO as i16, None))?;
            let p = d.payload_bytes();
            if p.len() < 5 || u32::from_le_bytes([p[1], p[2], p[3], p[4]]) != id {
                continue;
            }
            if p[0] == REPLY {
                return Ok(p.slice(5..));
            }
            if p[0] == ERROR && p.len() >= 7 {
                let data = (p.len() > 7).then(|| p[7..].to_vec());
                return Err(RpcError::new(i16::from_le_bytes([p[5], p[6]]), data));
            }
        }
    }
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut rd: R,
    pending: Pending,
    events: mpsc::Sender<Delivery>,
) {
    let mut header = [0u8; 6];
    loop {
        if rd.read_exact(&mut header).await.is_err() {
            break;
        }
        match header[0] {
            0x00 => continue,
            0xFE => {
                let id = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
                if let Some(tx) = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
                {
                    let _ = tx.send(header[5]);
                }
            }
            _ => {
                let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
                // Grown as bytes arrive, never reserved up front from the declared length.
                let mut frame = BytesMut::with_capacity(6 + len.min(1 << 16));
                frame.extend_from_slice(&header);
                let mut body = (&mut rd).take(len as u64);
                match tokio::io::copy_buf(
                    &mut tokio::io::BufReader::new(&mut body),
                    &mut VecWriter(&mut frame),
                )
                .await
                {
                    Ok(n) if n as usize == len => {}
                    _ => break,
                }
                let Some(d) = Delivery::parse(frame.freeze()) else {
                    break;
                };
                if events.send(d).await.is_err() {
                    break;
                }
            }
        }
    }
    // Disconnected: waiting operations learn it.
    pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

struct VecWriter<'a>(&'a mut BytesMut);

impl AsyncWrite for VecWriter<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.get_mut().0.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
