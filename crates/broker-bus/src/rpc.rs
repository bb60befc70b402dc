//! busrt's RPC layer as it travels in p2p messages (busrt-protocol.md §2), and the `.broker`
//! service every busrt server answers.

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
    client: &Client,
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
            let (uptime, c) = client.shared().core().stats();
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
            let list = client.shared().core().client_list();
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
pub(crate) async fn serve_broker(client: Client) {
    let mut batch = Vec::new();
    while client.recv_batch(&mut batch).await {
        for d in batch.drain(..) {
            if d.kind() != Kind::Message {
                continue;
            }
            let Some(req) = parse_request(d.payload()) else {
                continue;
            };
            let answer = match broker_method(&client, req.method, req.params) {
                Ok(result) => reply(req.id, &result),
                Err((code, data)) => error(req.id, code, &data),
            };
            if req.id != 0 {
                let qos = if d.realtime() {
                    Qos::RealtimeProcessed
                } else {
                    Qos::Processed
                };
                client.send_reply(d.sender(), &answer, qos).await;
            }
        }
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
