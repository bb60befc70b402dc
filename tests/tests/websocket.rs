//! Zeek's WebSocket API against a Rust client (tokio-tungstenite): the handshake and its ack,
//! every type both ways, no echo, raw prefix matching, errors and their texts, a wrong path,
//! malformed subscriptions, fragmented input, overflow policies, the connection limit, pings,
//! TLS, and the HTTP server's other pages.

use std::time::Duration;

use broker::{Configuration, Endpoint, OverflowPolicy};
use broker_data::{vector, Data};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn node(config: Configuration) -> (Endpoint, u16) {
    let ep = Endpoint::new(config).unwrap();
    let port = ep.listen_websocket("127.0.0.1", 0).unwrap();
    (ep, port)
}

async fn connect(port: u16, path: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    ws
}

/// The next text message (pings and pongs skipped); none when the connection closes.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")?
        {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The close frame that ends the connection (skipping anything before it).
async fn close_code(ws: &mut Ws) -> Option<(CloseCode, String)> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return Some((f.code, f.reason.to_string())),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn client(port: u16, topics: &str) -> (Ws, serde_json::Value) {
    let mut ws = connect(port, "/v1/messages/json").await;
    ws.send(Message::text(topics)).await.unwrap();
    let ack: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await.unwrap()).unwrap();
    (ws, ack)
}

fn msg(topic: &str, value: &Data) -> Message {
    Message::text(broker_json::data_message(topic, value))
}

fn parse(text: &str) -> (String, Data) {
    broker_json::parse_message(text.as_bytes()).unwrap()
}

#[test]
fn the_ack_comes_with_the_endpoint_id_and_version_in_brokers_key_order() {
    let (ep, port) = node(Configuration::default());
    runtime().block_on(async {
        let mut ws = connect(port, "/v1/messages/json").await;
        ws.send(Message::text(r#"["/test"]"#)).await.unwrap();
        let ack = next_text(&mut ws).await.unwrap();
        let want = format!(
            r#"{{"type":"ack","endpoint":"{}","version":"{}"}}"#,
            ep.node_id(),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(ack, want);
    });
}

#[test]
fn every_type_both_ways_between_a_client_and_the_endpoint() {
    let (ep, port) = node(Configuration::default());
    let sub = ep.make_subscriber(&["/from-ws"], None).unwrap();
    let values: Vec<Data> = [
        "nil",
        "T",
        "42",
        "-7",
        "-7.5",
        "\"a\\tb\"",
        "10.0.0.1",
        "2001:db8::/32",
        "80/tcp",
        "2022-04-10T07:00:00.123456Z",
        "1500ms",
        "{1, 2}",
        "{1 -> \"a\"}",
        "(1, (2, \"x\"))",
    ]
    .iter()
    .map(|t| t.parse().unwrap())
    .chain([Data::EnumValue(broker_data::EnumValue::new(
        "Log::WRITER_ASCII",
    ))])
    .collect();
    let rt = runtime();
    let mut ws = rt.block_on(async {
        let (mut ws, _) = client(port, r#"["/to-ws"]"#).await;
        for v in &values {
            ws.send(msg("/from-ws", v)).await.unwrap();
        }
        ws
    });
    for v in &values {
        let m = sub.get_timeout(WAIT).expect("the client's message");
        assert_eq!(
            (m.topic.to_string(), (*m.data).clone()),
            ("/from-ws".into(), v.clone())
        );
    }
    for v in &values {
        ep.publish("/to-ws/x", v.clone()).unwrap();
    }
    rt.block_on(async {
        for v in &values {
            let (topic, got) = parse(&next_text(&mut ws).await.unwrap());
            assert_eq!((topic.as_str(), &got), ("/to-ws/x", v));
        }
    });
}

#[test]
fn zeek_events_with_metadata_pass_through_unchanged() {
    let (a, port) = node(Configuration::default());
    let b = Endpoint::new(Configuration::default()).unwrap();
    let sub = b.make_subscriber(&["/zeek/event"], None).unwrap();
    a.peer_local(&b).unwrap();
    let event = Data::from(
        broker_data::zeek::Event::new("ping", vec![Data::from("hi"), Data::Count(1)])
            .with_timestamp(broker_data::Timestamp::from_nanos(
                1_700_000_000_500_000_000,
            ))
            .with_metadata(200, "user"),
    );
    runtime().block_on(async {
        let (mut ws, _) = client(port, "[]").await;
        ws.send(msg("/zeek/event/ping", &event)).await.unwrap();
    });
    let m = sub.get_timeout(WAIT).expect("the event at the peer");
    assert_eq!(*m.data, event);
    let broker_data::zeek::Message::Event(ev) =
        broker_data::zeek::Message::try_from(&*m.data).unwrap()
    else {
        panic!("not an event");
    };
    assert_eq!(ev.metadata_value(200), Some(&Data::from("user")));
    assert!(ev.timestamp().is_some());
}

#[test]
fn clients_hear_each_other_by_raw_prefix_and_never_themselves() {
    let (_ep, port) = node(Configuration::default());
    runtime().block_on(async {
        let (mut a, _) = client(port, r#"["/foo", "/fo", ""]"#).await;
        let (mut b, _) = client(port, r#"["/foo"]"#).await;
        let (mut c, _) = client(port, r#"["/bar"]"#).await;
        // A raw prefix: /foo matches /foobar. A's three prefixes match: one copy.
        a.send(msg("/foobar", &Data::Count(1))).await.unwrap();
        b.send(msg("/foobar", &Data::Count(2))).await.unwrap();
        c.send(msg("/foobar", &Data::Count(3))).await.unwrap();
        let got_b: Vec<_> = vec![
            parse(&next_text(&mut b).await.unwrap()).1,
            parse(&next_text(&mut b).await.unwrap()).1,
        ];
        assert_eq!(got_b, [Data::Count(1), Data::Count(3)]);
        let got_a: Vec<_> = vec![
            parse(&next_text(&mut a).await.unwrap()).1,
            parse(&next_text(&mut a).await.unwrap()).1,
        ];
        assert_eq!(got_a, [Data::Count(2), Data::Count(3)]);
        // Nothing else for anybody: a marker from B shows what A has after it.
        b.send(msg("/foo/end", &Data::from("end"))).await.unwrap();
        assert_eq!(
            parse(&next_text(&mut a).await.unwrap()).1,
            Data::from("end")
        );
        c.send(msg("/bar", &Data::from("end"))).await.unwrap();
        assert_eq!(
            parse(&next_text(&mut a).await.unwrap()).1,
            Data::from("end")
        );
    });
}

#[test]
fn per_publisher_order_holds_for_many_messages() {
    let (ep, port) = node(Configuration::default());
    let sub = ep.make_subscriber(&["/seq"], Some(100_000)).unwrap();
    const N: u64 = 20_000;
    runtime().block_on(async {
        let (mut ws, _) = client(port, "[]").await;
        for i in 0..N {
            ws.feed(msg("/seq", &Data::Count(i))).await.unwrap();
        }
        ws.flush().await.unwrap();
        let got = tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            while got.len() < N as usize {
                let batch = sub.get_n(4096, Some(WAIT));
                assert!(!batch.is_empty(), "stalled after {}", got.len());
                got.extend(batch.into_iter().map(|m| (*m.data).clone()));
            }
            got
        })
        .await
        .unwrap();
        assert!(got.iter().zip(0..).all(|(d, i)| *d == Data::Count(i)));
    });
}

#[test]
fn messages_sent_before_the_ack_are_processed_after_it_in_order() {
    let (_ep, port) = node(Configuration::default());
    runtime().block_on(async {
        let (mut listener, _) = client(port, r#"["/pipe"]"#).await;
        let mut ws = connect(port, "/v1/messages/json").await;
        // Subscriptions and data in one go, without waiting for the ack.
        ws.feed(Message::text("[]")).await.unwrap();
        for i in 0..10u64 {
            ws.feed(msg("/pipe", &Data::Count(i))).await.unwrap();
        }
        ws.flush().await.unwrap();
        assert!(next_text(&mut ws)
            .await
            .unwrap()
            .starts_with(r#"{"type":"ack""#));
        for i in 0..10u64 {
            assert_eq!(
                parse(&next_text(&mut listener).await.unwrap()).1,
                Data::Count(i)
            );
        }
    });
}

#[test]
fn a_subscription_is_active_when_the_ack_arrives() {
    let (ep, port) = node(Configuration::default());
    runtime().block_on(async {
        for i in 0..20u64 {
            let (mut ws, _) = client(port, r#"["/now"]"#).await;
            ep.publish_async("/now", Data::Count(i)).await.unwrap();
            assert_eq!(parse(&next_text(&mut ws).await.unwrap()).1, Data::Count(i));
        }
    });
}

#[test]
fn bad_input_gets_brokers_errors_and_the_connection_stays_open() {
    let (ep, port) = node(Configuration::default());
    let sub = ep.make_subscriber(&["/ok"], None).unwrap();
    runtime().block_on(async {
        let (mut ws, _) = client(port, "[]").await;
        let cases = [
            (r#"{"type":"data-message","topic":"/x","@data-type":"phone","data":"555"}"#, "input #1 contained invalid data"),
            ("[1, 2]", "input #2 expected a JSON object"),
            (r#"{"@data-type":"count","data":1}"#, "no topic in top-level JSON object"),
            (r#"{"topic":"/x","@data-type":"subnet","data":"10.0.0.0/33"}"#, "input #4 contained invalid data"),
        ];
        for (input, _) in &cases {
            ws.send(Message::text(*input)).await.unwrap();
        }
        for (_, context) in &cases {
            let e: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await.unwrap()).unwrap();
            assert_eq!(e["type"], "error");
            assert_eq!(e["code"], "deserialization_failed");
            assert_eq!(e["context"], *context);
        }
        ws.send(Message::text("{not json")).await.unwrap();
        let e = next_text(&mut ws).await.unwrap();
        assert!(e.starts_with(r#"{"type":"error","code":"deserialization_failed","context":"input #5 contained malformed JSON -> "#), "{e}");
        // Still open: a good message goes through.
        ws.send(msg("/ok", &Data::Count(1))).await.unwrap();
    });
    assert_eq!(*sub.get_timeout(WAIT).unwrap().data, Data::Count(1));
}

#[test]
fn a_wrong_path_and_malformed_subscriptions_are_refused_without_an_ack() {
    let (_ep, port) = node(Configuration::default());
    runtime().block_on(async {
        let mut ws = connect(port, "/v1/messages/xml").await;
        assert_eq!(
            next_text(&mut ws).await.unwrap(),
            r#"{"type":"error","code":"invalid_uri","context":"Invalid URI - use /v1/messages/json"}"#
        );
        assert_eq!(close_code(&mut ws).await.unwrap().0, CloseCode::Policy);
        for (subs, context) in [
            (r#"["broken", "brrr"#, "subscriptions not an array"),
            ("[1, 2]", "individual subscription not a string"),
            (r#"[1, "/x"]"#, "individual subscription not a string"),
        ] {
            let mut ws = connect(port, "/v1/messages/json").await;
            ws.send(Message::text(subs)).await.unwrap();
            let want = format!(r#"{{"type":"error","code":"deserialization_failed","context":"{context}"}}"#);
            assert_eq!(next_text(&mut ws).await.unwrap(), want);
            assert_eq!(close_code(&mut ws).await.unwrap().0, CloseCode::Policy);
        }
    });
}

#[test]
fn fragmented_and_binary_messages_are_reassembled_and_read_as_text() {
    let (ep, port) = node(Configuration::default());
    let sub = ep.make_subscriber(&["/frag"], None).unwrap();
    let big = Data::from("x".repeat(10_000));
    runtime().block_on(async {
        let (mut ws, _) = client(port, "[]").await;
        let text = broker_json::data_message("/frag", &big).into_bytes();
        let chunks: Vec<&[u8]> = text.chunks(4096).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 {
                OpCode::Data(OpData::Text)
            } else {
                OpCode::Data(OpData::Continue)
            };
            let frame = Frame::message(chunk.to_vec(), opcode, i + 1 == chunks.len());
            ws.send(Message::Frame(frame)).await.unwrap();
        }
        ws.send(Message::binary(
            broker_json::data_message("/frag", &Data::Count(2)).into_bytes(),
        ))
        .await
        .unwrap();
    });
    assert_eq!(*sub.get_timeout(WAIT).unwrap().data, big);
    assert_eq!(*sub.get_timeout(WAIT).unwrap().data, Data::Count(2));
}

/// A client subscribed to `/flood` that reads nothing while the endpoint publishes 50
/// messages into a buffer of 10; then it reads what it has.
fn overflow(policy: OverflowPolicy) -> (Vec<Data>, Option<(CloseCode, String)>, broker::Metrics) {
    let (ep, port) = node(Configuration {
        web_socket_buffer_size: 10,
        web_socket_overflow_policy: policy,
        ..Configuration::default()
    });
    let rt = runtime();
    let mut ws = rt.block_on(async { client(port, r#"["/flood"]"#).await.0 });
    // Hold the client's writer up: a message too large for the socket buffers first.
    ep.publish("/flood", Data::from("y".repeat(8 << 20)))
        .unwrap();
    for i in 0..50u64 {
        ep.publish("/flood", Data::Count(i)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let metrics = ep.metrics().unwrap();
    let (got, closed) = rt.block_on(async {
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => got.push(parse(&t).1),
                Ok(Some(Ok(Message::Close(f)))) => {
                    return (got, f.map(|f| (f.code, f.reason.to_string())))
                }
                Ok(Some(Ok(_))) => {}
                _ => return (got, None),
            }
        }
    });
    let counts = got
        .into_iter()
        .filter(|d| matches!(d, Data::Count(_)))
        .collect();
    (counts, closed, metrics)
}

#[test]
fn a_client_that_stops_reading_loses_its_oldest_under_drop_oldest() {
    let (got, closed, _) = overflow(OverflowPolicy::DropOldest);
    // The writer held at most one batch when it stalled; the buffer kept the last ten.
    assert!(
        got.ends_with(&(40..50u64).map(Data::Count).collect::<Vec<_>>()),
        "{got:?}"
    );
    assert!(got.len() < 50, "{got:?}");
    assert!(closed.is_none());
}

#[test]
fn a_client_that_stops_reading_loses_the_newest_under_drop_newest() {
    let (got, closed, _) = overflow(OverflowPolicy::DropNewest);
    // The first ones stay (nine or ten, as the large message still sat in the buffer or
    // not); the rest is dropped.
    let first: Vec<Data> = (0..got.len() as u64).map(Data::Count).collect();
    assert_eq!(got, first);
    assert!((9..50).contains(&got.len()), "{got:?}");
    assert!(closed.is_none());
}

#[test]
fn a_client_that_stops_reading_is_disconnected_under_disconnect() {
    let (got, closed, metrics) = overflow(OverflowPolicy::Disconnect);
    assert!(got.len() < 50, "{got:?}");
    assert_eq!(closed.map(|c| c.0), Some(CloseCode::Error));
    assert_eq!(metrics.web_socket_overflows, 1);
}

#[test]
fn a_message_beyond_the_size_limit_closes_with_1009() {
    let (ep, port) = node(Configuration {
        web_socket_max_message_size: 1024,
        ..Configuration::default()
    });
    let sub = ep.make_subscriber(&["/size"], None).unwrap();
    runtime().block_on(async {
        let (mut ws, _) = client(port, "[]").await;
        ws.send(msg("/size", &Data::from("small"))).await.unwrap();
        let _ = ws.send(msg("/size", &Data::from("x".repeat(2000)))).await;
        assert_eq!(
            close_code(&mut ws).await.map(|c| c.0),
            Some(CloseCode::Size)
        );
    });
    assert_eq!(*sub.get_timeout(WAIT).unwrap().data, Data::from("small"));
}

#[test]
fn clients_beyond_the_limit_get_http_503() {
    let (_ep, port) = node(Configuration {
        web_socket_max_connections: 2,
        ..Configuration::default()
    });
    runtime().block_on(async {
        let _a = client(port, "[]").await;
        let _b = client(port, "[]").await;
        let err =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/v1/messages/json"))
                .await
                .unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 503),
            e => panic!("expected HTTP 503, got {e}"),
        }
    });
}

#[test]
fn the_server_pings_and_closes_a_client_that_never_answers() {
    let (_ep, port) = node(Configuration {
        web_socket_ping_interval: Duration::from_millis(100),
        ..Configuration::default()
    });
    runtime().block_on(async {
        // A reading client answers pings (tungstenite does) and stays.
        let (mut alive, _) = client(port, "[]").await;
        let mut pinged = false;
        let end = tokio::time::Instant::now() + Duration::from_millis(600);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, alive.next()).await {
            pinged |= matches!(m, Message::Ping(_));
        }
        assert!(pinged, "no ping from the server");
        // One that reads nothing answers nothing.
        let (mut silent, _) = client(port, "[]").await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            close_code(&mut silent).await,
            Some((CloseCode::Error, "Ping timeout".to_owned()))
        );
        alive.send(msg("/still", &Data::Count(1))).await.unwrap();
    });
}

#[test]
fn shutdown_closes_clients_with_1001() {
    let (ep, port) = node(Configuration::default());
    let rt = runtime();
    let mut ws = rt.block_on(async { client(port, "[]").await.0 });
    ep.shutdown();
    rt.block_on(async {
        assert_eq!(
            close_code(&mut ws).await,
            Some((CloseCode::Away, "Terminating".to_owned()))
        );
    });
}

#[test]
fn wss_with_a_certificate_and_client_verification() {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let dir = broker_e2e::temp_dir("ws");
    let (_, ca_key, ca_path) = broker_e2e::ca(&dir, "wsca");
    let ca_cert = openssl::x509::X509::from_pem(&std::fs::read(&ca_path).unwrap()).unwrap();
    let (cert, key) = broker_e2e::issue(&dir, "server", &ca_cert, &ca_key, None);
    let (ccert, ckey) = broker_e2e::issue(&dir, "client", &ca_cert, &ca_key, None);
    let (ep, port) = node(Configuration {
        web_socket_certificate: Some(cert),
        web_socket_key: Some(key),
        web_socket_cafile: Some(ca_path.clone()),
        ..Configuration::default()
    });
    let sub = ep.make_subscriber(&["/tls"], None).unwrap();
    runtime().block_on(async {
        let connect = |with_cert: bool| {
            let (ca_path, ccert, ckey) = (ca_path.clone(), ccert.clone(), ckey.clone());
            async move {
                let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
                b.set_ca_file(&ca_path).unwrap();
                b.set_verify(SslVerifyMode::NONE);
                if with_cert {
                    b.set_certificate_file(&ccert, openssl::ssl::SslFiletype::PEM)
                        .unwrap();
                    b.set_private_key_file(&ckey, openssl::ssl::SslFiletype::PEM)
                        .unwrap();
                }
                let ssl = b
                    .build()
                    .configure()
                    .unwrap()
                    .into_ssl("localhost")
                    .unwrap();
                let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                std::pin::Pin::new(&mut tls)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                let (ws, _) = tokio_tungstenite::client_async(
                    format!("wss://127.0.0.1:{port}/v1/messages/json"),
                    tls,
                )
                .await
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(ws)
            }
        };
        let mut ws = connect(true)
            .await
            .expect("a client with a certificate gets in");
        ws.send(Message::text("[]")).await.unwrap();
        let ack = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(ack.to_text().unwrap().starts_with(r#"{"type":"ack""#));
        ws.send(msg("/tls", &Data::from("secret"))).await.unwrap();
        assert!(
            connect(false).await.is_err(),
            "a client without a certificate is refused"
        );
    });
    assert_eq!(*sub.get_timeout(WAIT).unwrap().data, Data::from("secret"));
}

async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn one_server_serves_metrics_the_status_page_and_its_data() {
    let (ep, port) = node(Configuration::default());
    let b = Endpoint::new(Configuration::default()).unwrap();
    ep.peer_local(&b).unwrap();
    let _store = ep
        .attach_master("users", broker::BackendType::Memory, Default::default())
        .unwrap();
    runtime().block_on(async {
        let (_ws, _) = client(port, r#"["/a"]"#).await;
        let (status, body) = http_get(port, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("broker_web_socket_clients 1"), "{body}");
        let (status, page) = http_get(port, "/").await;
        assert_eq!(status, 200);
        assert!(page.contains("<title>broker-rs endpoint</title>"));
        let (status, json) = http_get(port, "/v1/status").await;
        assert_eq!(status, 200);
        let s: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(s["id"], ep.node_id().to_string());
        assert_eq!(s["peers"][0]["id"], b.node_id().to_string());
        assert_eq!(s["stores"][0]["name"], "users");
        assert_eq!(s["stores"][0]["role"], "master");
        assert!(s["subscriptions"]["local"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "/a"));
        assert_eq!(http_get(port, "/nope").await.0, 404);
        // A request head that never ends is cut off by the head timeout, not held forever:
        // covered by hyper's header_read_timeout; a huge head is refused at once.
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(64 * 1024));
        let _ = s.write_all(huge.as_bytes()).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
            .await
            .unwrap();
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1.1 431"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    });
}

#[test]
fn a_client_and_a_native_peer_exchange_through_the_node() {
    let (hub, port) = node(Configuration::default());
    let native = Endpoint::new(Configuration::default()).unwrap();
    let peer_port = hub.listen("127.0.0.1", 0).unwrap();
    let from_ws = native.make_subscriber(&["/ws"], None).unwrap();
    native.peer("127.0.0.1", peer_port, None).unwrap();
    let rt = runtime();
    let mut ws = rt.block_on(async { client(port, r#"["/native"]"#).await.0 });
    // The client's subscription reaches the native peer (the hub advertises it).
    let end = std::time::Instant::now() + WAIT;
    while !native
        .peer_subscriptions()
        .unwrap()
        .iter()
        .any(|t| t.to_string() == "/native")
    {
        assert!(
            std::time::Instant::now() < end,
            "the client's subscription did not propagate"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    native.publish("/native/x", vector![1u64, "hi"]).unwrap();
    rt.block_on(async {
        let (topic, value) = parse(&next_text(&mut ws).await.unwrap());
        assert_eq!((topic.as_str(), value), ("/native/x", vector![1u64, "hi"]));
        ws.send(msg("/ws/y", &Data::Count(7))).await.unwrap();
    });
    assert_eq!(*from_ws.get_timeout(WAIT).unwrap().data, Data::Count(7));
}

/// A client that closes while messages flow to it gets the answer to its close frame at once
/// (it reads on meanwhile, as a client must during a closing handshake).
#[test]
fn a_client_that_closes_while_messages_flow_gets_the_closing_handshake() {
    let (ep, port) = node(Configuration::default());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (stop, ep) = (stop.clone(), ep.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ep.publish("/flow", Data::Count(i)).unwrap();
                i += 1;
                if i.is_multiple_of(20) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })
    };
    runtime().block_on(async {
        let (mut ws, _) = client(port, r#"["/flow"]"#).await;
        next_text(&mut ws).await.unwrap();
        ws.close(None).await.unwrap();
        let answer = loop {
            match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => break f,
                Ok(Some(Ok(_))) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        };
        assert!(
            answer.as_ref().is_none_or(|f| f.code == CloseCode::Normal),
            "{answer:?}"
        );
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
}
