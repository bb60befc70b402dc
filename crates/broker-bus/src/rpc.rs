//! busrt's RPC layer as it travels in p2p messages (busrt-protocol.md §2), and the `.broker`
//! service every busrt server answers.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::frame::{Kind, Qos};
use crate::server::Client;

/// First byte of a notification: `00 · DATA`.
pub const NOTIFICATION: u8 = 0x00;
/// First byte of a request: `01 · id:u32 · METHOD · 00 · PARAMS` (id 0: no reply wanted).
pub const REQUEST: u8 = 0x01;
/// First byte of a reply: `11 · id:u32 · RESULT`.
pub const REPLY: u8 = 0x11;
/// First byte of an error: `12 · id:u32 · code:i16 · DATA`.
pub const ERROR: u8 = 0x12;

/// JSON-RPC style error codes busrt uses.
pub mod codes {
    /// Parse error.
    pub const PARSE: i16 = -32700;
    /// Invalid params.
    pub const INVALID_PARAMS: i16 = -32602;
    /// Method not found.
    pub const METHOD_NOT_FOUND: i16 = -32601;
    /// A method name that is not UTF-8 (busrt's `-32000 - Data`).
    pub const BAD_METHOD_NAME: i16 = -32114;
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// Its id (0: no reply).
    pub id: u32,
    /// The method's bytes.
    pub method: &'a [u8],
    /// The parameters (MessagePack by convention).
    pub params: &'a [u8],
}

/// Parses a request payload (none if it is not one).
pub fn parse_request(p: &[u8]) -> Option<Request<'_>> {
    if p.len() < 6 || p[0] != REQUEST {
        return None;
    }
    let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
    let rest = &p[5..];
    let end = rest.iter().position(|&b| b == 0)?;
    Some(Request {
        id,
        method: &rest[..end],
        params: &rest[end + 1..],
    })
}

/// A reply payload.
pub fn reply(id: u32, result: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + result.len());
    v.push(REPLY);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(result);
    v
}

/// An error payload.
pub fn error(id: u32, code: i16, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(7 + data.len());
    v.push(ERROR);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&code.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// `{"ok": true}`.
pub const RPC_OK: [u8; 5] = [0x81, 0xA2, b'o', b'k', 0xC3];

#[derive(Serialize)]
struct Info<'a> {
    author: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct Stats {
    uptime: u64,
    r_frames: u64,
    r_bytes: u64,
    w_frames: u64,
    w_bytes: u64,
}

#[derive(Serialize)]
struct ClientInfoOut<'a> {
    name: &'a str,
    kind: &'a str,
    source: Option<&'a str>,
    port: Option<&'a str>,
    r_frames: u64,
    r_bytes: u64,
    w_frames: u64,
    w_bytes: u64,
    queue: u64,
    instances: u64,
}

#[derive(Serialize)]
struct ClientList<'a> {
    clients: Vec<ClientInfoOut<'a>>,
}

#[derive(Deserialize, Default)]
struct ListParams {
    #[serde(default)]
    filter: Option<String>,
}

/// The answer of the `.broker` service to one request: Ok(result) or Err((code, data)).
pub(crate) fn broker_method(
    core: &crate::core::Core,
    method: &[u8],
    params: &[u8],
) -> Result<Vec<u8>, (i16, Vec<u8>)> {
    let Ok(method) = std::str::from_utf8(method) else {
        return Err((codes::BAD_METHOD_NAME, Vec::new()));
    };
    let empty = || {
        if params.is_empty() {
            Ok(())
        } else {
            Err((codes::INVALID_PARAMS, Vec::new()))
        }
    };
    let named = |v: &dyn erased::Ser| v.to_vec();
    match method {
        "test" => {
            empty()?;
            Ok(RPC_OK.to_vec())
        }
        "info" => {
            empty()?;
            Ok(named(&Info {
                author: "broker-rs bus (busrt 0.5 protocol)",
                version: env!("CARGO_PKG_VERSION"),
            }))
        }
        "stats" => {
            empty()?;
            let (uptime, c) = core.stats();
            Ok(named(&Stats {
                uptime,
                r_frames: c.r_frames,
                r_bytes: c.r_bytes,
                w_frames: c.w_frames,
                w_bytes: c.w_bytes,
            }))
        }
        "client.list" => {
            let p: ListParams = if params.is_empty() {
                ListParams::default()
            } else {
                rmp_serde::from_slice(params)
                    .map_err(|e| (codes::PARSE, e.to_string().into_bytes()))?
            };
            let filter = match p.filter {
                Some(f) => Some(
                    regex::Regex::new(&f)
                        .map_err(|e| (codes::PARSE, e.to_string().into_bytes()))?,
                ),
                None => None,
            };
            let list = core.client_list();
            let clients = list
                .iter()
                .filter(|c| filter.as_ref().is_none_or(|r| r.is_match(&c.name)))
                .map(|c| ClientInfoOut {
                    name: &c.name,
                    kind: c.kind.as_str(),
                    source: c.source.as_deref(),
                    port: c.port.as_deref(),
                    r_frames: c.counters.r_frames,
                    r_bytes: c.counters.r_bytes,
                    w_frames: c.counters.w_frames,
                    w_bytes: c.counters.w_bytes,
                    queue: c.queue as u64,
                    instances: c.instances as u64,
                })
                .collect();
            Ok(named(&ClientList { clients }))
        }
        "benchmark.test" => Ok(params.to_vec()),
        _ => Err((codes::METHOD_NOT_FOUND, Vec::new())),
    }
}

mod erased {
    /// Serialization to MessagePack maps keyed by field name, in declaration order.
    pub(crate) trait Ser {
        fn to_vec(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Ser for T {
        fn to_vec(&self) -> Vec<u8> {
            rmp_serde::to_vec_named(self).unwrap_or_default()
        }
    }
}

/// The `.broker` client's loop: answers requests (replies with the request's realtime flag:
/// RealtimeProcessed, else Processed), ignores everything else.
/// The `.broker` service, answering in the core ([`crate::core::Service`]).
pub(crate) fn answer_broker(core: &crate::core::Core, payload: &[u8]) -> crate::core::Answer {
    use crate::core::Answer;
    let Some(req) = parse_request(payload) else {
        return Answer::NotARequest;
    };
    let answer = match broker_method(core, req.method, req.params) {
        Ok(result) => reply(req.id, &result),
        Err((code, data)) => error(req.id, code, &data),
    };
    if req.id == 0 {
        Answer::NoReply
    } else {
        Answer::Reply(answer)
    }
}

/// The `.broker` client's own task: requests are answered in the core; what else comes
/// (notifications, broadcasts, `.broker/warn`) is taken and dropped.
pub(crate) async fn serve_broker(client: Client) {
    let mut batch = Vec::new();
    while client.recv_batch(&mut batch).await {
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_layouts() {
        let mut p = vec![REQUEST, 7, 0, 0, 0];
        p.extend_from_slice(b"test\0");
        let r = parse_request(&p).unwrap();
        assert_eq!((r.id, r.method, r.params), (7, &b"test"[..], &b""[..]));
        assert_eq!(
            reply(7, &RPC_OK),
            [0x11, 7, 0, 0, 0, 0x81, 0xA2, b'o', b'k', 0xC3]
        );
        assert_eq!(error(7, -32601, b""), [0x12, 7, 0, 0, 0, 0xA7, 0x80]);
        assert!(parse_request(&[REQUEST, 1, 0, 0, 0]).is_none());
    }
}

/// An RPC error: busrt's code and optional data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The code (JSON-RPC style, or `-32000 - busrt code` for a transport error).
    pub code: i16,
    /// Extra data (MessagePack or text, by convention).
    pub data: Option<Vec<u8>>,
}

impl RpcError {
    /// An error with a code and data.
    pub fn new(code: i16, data: Option<Vec<u8>>) -> RpcError {
        RpcError { code, data }
    }

    /// `-32601`, method not found.
    pub fn method_not_found() -> RpcError {
        RpcError::new(codes::METHOD_NOT_FOUND, None)
    }

    /// `-32602`, invalid params.
    pub fn invalid_params() -> RpcError {
        RpcError::new(codes::INVALID_PARAMS, None)
    }

    fn transport(code: u8) -> RpcError {
        RpcError::new(-32000 - code as i16, None)
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RPC error {}", self.code)?;
        if let Some(d) = &self.data {
            write!(f, ": {}", String::from_utf8_lossy(d))?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

/// A call or notification as a handler sees it.
#[derive(Debug, Clone)]
pub struct RpcEvent {
    /// Who sent it (full name; replies go there).
    pub sender: String,
    /// The method (empty for a notification).
    pub method: Vec<u8>,
    /// The parameters or the notification's data.
    pub payload: Bytes,
}

impl RpcEvent {
    /// The method as text.
    pub fn method_str(&self) -> Result<&str, RpcError> {
        std::str::from_utf8(&self.method).map_err(|_| RpcError::new(codes::BAD_METHOD_NAME, None))
    }

    /// The parameters decoded from MessagePack.
    pub fn params<'a, T: Deserialize<'a>>(&'a self) -> Result<T, RpcError> {
        rmp_serde::from_slice(&self.payload)
            .map_err(|e| RpcError::new(codes::INVALID_PARAMS, Some(e.to_string().into_bytes())))
    }
}

/// What an RPC server does with calls, notifications and other frames.
pub trait RpcHandlers: Send + Sync + 'static {
    /// Answers a call: the result's bytes (MessagePack by convention) or an error.
    fn handle_call(
        &self,
        event: RpcEvent,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, RpcError>> + Send {
        let _ = event;
        async { Err(RpcError::method_not_found()) }
    }

    /// Takes a notification.
    fn handle_notification(&self, event: RpcEvent) -> impl std::future::Future<Output = ()> + Send {
        let _ = event;
        async {}
    }

    /// Takes any other frame (publications, broadcasts, non-RPC messages).
    fn handle_frame(
        &self,
        delivery: crate::frame::Delivery,
    ) -> impl std::future::Future<Output = ()> + Send {
        let _ = delivery;
        async {}
    }
}

/// No handlers: calls get `-32601`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHandlers;

impl RpcHandlers for NoHandlers {}

type Pending = std::sync::Mutex<
    std::collections::HashMap<u32, tokio::sync::oneshot::Sender<Result<Bytes, RpcError>>>,
>;

/// busrt's RPC layer over an in-process client: calls out (with replies matched by id) and
/// calls in (to the handlers, each in its own task), in busrt's payload layouts.
pub struct Rpc {
    client: std::sync::Arc<Client>,
    pending: std::sync::Arc<Pending>,
    next: std::sync::atomic::AtomicU32,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Rpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Rpc {
    /// Serves `handlers` on `client` and lets this side call out.
    pub fn new<H: RpcHandlers>(client: Client, handlers: H) -> Rpc {
        let client = std::sync::Arc::new(client);
        let pending: std::sync::Arc<Pending> = Default::default();
        let handlers = std::sync::Arc::new(handlers);
        let task = {
            let (client, pending) = (client.clone(), pending.clone());
            tokio::spawn(async move {
                let mut batch = Vec::new();
                while client.recv_batch(&mut batch).await {
                    for d in batch.drain(..) {
                        dispatch(&client, &pending, &handlers, d).await;
                    }
                }
                // Disconnected: pending calls fail.
                for (_, tx) in pending.lock().unwrap_or_else(|e| e.into_inner()).drain() {
                    let _ = tx.send(Err(RpcError::transport(crate::frame::code::IO)));
                }
            })
        };
        Rpc {
            client,
            pending,
            next: std::sync::atomic::AtomicU32::new(1),
            task,
        }
    }

    /// The client underneath (to subscribe, publish, ...).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn next_id(&self) -> u32 {
        loop {
            let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Calls `method` at `target` and waits for the reply (no timeout of its own: wrap it).
    pub async fn call(
        &self,
        target: &str,
        method: &str,
        params: &[u8],
        qos: Qos,
    ) -> Result<Bytes, RpcError> {
        let id = self.next_id();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let payload = request(id, method, params);
        if let Err(e) = self.client.send(target, &payload, qos).await {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            return Err(RpcError::transport(e.code));
        }
        rx.await
            .unwrap_or(Err(RpcError::transport(crate::frame::code::IO)))
    }

    /// Calls without wanting a reply (id 0).
    pub async fn call0(
        &self,
        target: &str,
        method: &str,
        params: &[u8],
        qos: Qos,
    ) -> Result<(), RpcError> {
        self.client
            .send(target, &request(0, method, params), qos)
            .await
            .map_err(|e| RpcError::transport(e.code))
    }

    /// Sends a notification.
    pub async fn notify(&self, target: &str, data: &[u8], qos: Qos) -> Result<(), RpcError> {
        let mut p = Vec::with_capacity(1 + data.len());
        p.push(NOTIFICATION);
        p.extend_from_slice(data);
        self.client
            .send(target, &p, qos)
            .await
            .map_err(|e| RpcError::transport(e.code))
    }
}

/// A request payload.
pub fn request(id: u32, method: &str, params: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(6 + method.len() + params.len());
    p.push(REQUEST);
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(method.as_bytes());
    p.push(0);
    p.extend_from_slice(params);
    p
}

async fn dispatch<H: RpcHandlers>(
    client: &std::sync::Arc<Client>,
    pending: &Pending,
    handlers: &std::sync::Arc<H>,
    d: crate::frame::Delivery,
) {
    if d.kind() != Kind::Message || d.payload().is_empty() {
        handlers.handle_frame(d).await;
        return;
    }
    let p = d.payload_bytes();
    match p[0] {
        NOTIFICATION => {
            handlers
                .handle_notification(RpcEvent {
                    sender: d.sender().to_owned(),
                    method: Vec::new(),
                    payload: p.slice(1..),
                })
                .await
        }
        REQUEST => {
            let Some(req) = parse_request(&p) else {
                tracing::debug!(sender = d.sender(), "bus rpc: a malformed request");
                return;
            };
            let event = RpcEvent {
                sender: d.sender().to_owned(),
                method: req.method.to_vec(),
                payload: p.slice(p.len() - req.params.len()..),
            };
            let id = req.id;
            let qos = if d.realtime() {
                Qos::RealtimeProcessed
            } else {
                Qos::Processed
            };
            let (client, handlers) = (client.clone(), handlers.clone());
            tokio::spawn(async move {
                let sender = event.sender.clone();
                let answer = handlers.handle_call(event).await;
                if id != 0 {
                    let payload = match answer {
                        Ok(r) => reply(id, &r),
                        Err(e) => error(id, e.code, e.data.as_deref().unwrap_or_default()),
                    };
                    let _ = client.send(&sender, &payload, qos).await;
                }
            });
        }
        REPLY | ERROR if p.len() >= 5 => {
            let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
            let Some(tx) = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id)
            else {
                return;
            };
            let result = if p[0] == REPLY {
                Ok(p.slice(5..))
            } else if p.len() >= 7 {
                let code = i16::from_le_bytes([p[5], p[6]]);
                let data = (p.len() > 7).then(|| p[7..].to_vec());
                Err(RpcError::new(code, data))
            } else {
                Err(RpcError::new(codes::PARSE, None))
            };
            let _ = tx.send(result);
        }
        _ => handlers.handle_frame(d).await,
    }
}
