//! The WebSocket listener (busrt's `ws://`, `wss://`): message boundaries mean nothing, a
//! browser's origin must be admitted, and bad input ends only its own connection. busrt's own
//! client over `ws://` is in `busrt_clients.rs`, over `wss://` in `busrt_wss.rs`; `wss://`
//! proving names in `tls.rs`.

use std::time::Duration;

use broker_bus::ipc::IpcClient;
use broker_bus::{Bus, BusConfig, Qos, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<TcpStream>;

async fn ws_bus(server: ServerConfig) -> (Bus, String) {
    let bus = Bus::new(BusConfig::default());
    bus.init_default_core_rpc().unwrap();
    let (_, addr) = bus
        .spawn_websocket_server("127.0.0.1:0", server)
        .await
        .unwrap();
    (bus, format!("ws://{addr}"))
}

/// A raw WebSocket to the bus, with an `Origin` header when given.
async fn open(url: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    let tcp = TcpStream::connect(url.strip_prefix("ws://").unwrap())
        .await
        .unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

/// The bytes of the stream the server sent, until at least `n` arrived.
async fn read_bytes(ws: &mut Ws, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("bytes") {
            Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
            Some(Ok(_)) => {}
            other => panic!("the stream ended after {got:?}: {other:?}"),
        }
    }
    got
}

/// The server ends the WebSocket within the wait.
async fn ended(ws: &mut Ws) {
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the connection is still open"),
        }
    }
}

fn frame(op_id: u32, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut v = op_id.to_le_bytes().to_vec();
    v.push(flags);
    v.extend_from_slice(&(body.len() as u32).to_le_bytes());
    v.extend_from_slice(body);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_boundaries_mean_nothing() {
    let (bus, url) = ws_bus(ServerConfig::default()).await;
    let inside = bus.register_client("inside").unwrap();
    let mut ws = open(&url, None).await.unwrap();
    assert_eq!(read_bytes(&mut ws, 3).await, [0xEB, 1, 0]);
    // The echo, the name and a p2p frame with QoS processed, one byte per message.
    let mut stream = vec![0xEB, 1, 0, 3, 0];
    stream.extend_from_slice(b"web");
    for b in stream {
        ws.send(Message::binary(vec![b])).await.unwrap();
    }
    assert_eq!(read_bytes(&mut ws, 2).await, [1, 1]);
    let mut body = b"inside\0".to_vec();
    body.extend_from_slice(b"bytes");
    for b in frame(7, 0x52, &body) {
        ws.send(Message::binary(vec![b])).await.unwrap();
    }
    // The ACK: flags 0xFE, op id 7, OK.
    assert_eq!(read_bytes(&mut ws, 6).await, [0xFE, 7, 0, 0, 0, 1]);
    let d = tokio::time::timeout(WAIT, inside.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.sender(), d.payload()), ("web", &b"bytes"[..]));
    // And the other way, to our own client over ws://.
    let mut client = IpcClient::connect(&url, "ours", WAIT).await.unwrap();
    inside.send("ours", b"back", Qos::Processed).await.unwrap();
    let d = tokio::time::timeout(WAIT, client.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.sender(), d.payload()), ("inside", &b"back"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_origin_is_refused_unless_admitted() {
    let (_bus, url) = ws_bus(ServerConfig {
        web_origins: vec!["https://ops.example".into()],
        ..ServerConfig::default()
    })
    .await;
    match open(&url, Some("https://evil.example")).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 403),
        Err(e) => panic!("refused, but not by status: {e}"),
        Ok(_) => panic!("a page of another origin reached the bus"),
    }
    let mut admitted = open(&url, Some("https://ops.example")).await.unwrap();
    assert_eq!(read_bytes(&mut admitted, 3).await, [0xEB, 1, 0]);
    // No origin (busrt's clients, ours): admitted.
    let mut native = open(&url, None).await.unwrap();
    assert_eq!(read_bytes(&mut native, 3).await, [0xEB, 1, 0]);
    // With no origins configured, every page is refused.
    let (_bus, url) = ws_bus(ServerConfig::default()).await;
    assert!(open(&url, Some("https://ops.example")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_ends_only_its_connection() {
    let (bus, url) = ws_bus(ServerConfig {
        max_frame_size: 1024,
        ..ServerConfig::default()
    })
    .await;
    let inside = bus.register_client("inside").unwrap();
    let registered = |name: &'static str| {
        let url = url.clone();
        async move {
            let mut ws = open(&url, None).await.unwrap();
            read_bytes(&mut ws, 3).await;
            let mut hello = vec![0xEB, 1, 0, name.len() as u8, 0];
            hello.extend_from_slice(name.as_bytes());
            ws.send(Message::binary(hello)).await.unwrap();
            assert_eq!(read_bytes(&mut ws, 2).await, [1, 1], "{name} registered");
            ws
        }
    };
    // A text message: the stream is binary.
    let mut text = registered("text").await;
    text.send(Message::text("hello")).await.unwrap();
    ended(&mut text).await;
    // A WebSocket message beyond what one frame may be.
    let mut big = registered("big").await;
    let _ = big.send(Message::binary(vec![0u8; 200 * 1024])).await;
    ended(&mut big).await;
    // A bus frame beyond the frame limit, declared and never sent.
    let mut declared = registered("declared").await;
    let mut huge = 1u32.to_le_bytes().to_vec();
    huge.push(0x52);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    declared.send(Message::binary(huge)).await.unwrap();
    ended(&mut declared).await;
    // Garbage instead of the greeting's echo.
    let mut garbage = open(&url, None).await.unwrap();
    read_bytes(&mut garbage, 3).await;
    garbage
        .send(Message::binary(b"GET / HTTP/1.1\r\n".to_vec()))
        .await
        .unwrap();
    assert_eq!(read_bytes(&mut garbage, 1).await, [0x75]);
    ended(&mut garbage).await;
    // The bus serves the next client, and has forgotten the ended ones.
    let c = IpcClient::connect(&url, "after", WAIT).await.unwrap();
    c.send("inside", b"still here", Qos::Processed)
        .await
        .unwrap();
    let d = tokio::time::timeout(WAIT, inside.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.payload(), b"still here");
    for name in ["text", "big", "declared"] {
        let again = IpcClient::connect(&url, name, WAIT).await;
        assert!(again.is_ok(), "{name} is free again: {:?}", again.err());
    }
}
