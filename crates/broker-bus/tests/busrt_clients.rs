//! busrt 0.5.6's own, unmodified clients (`busrt::ipc::Client`, `busrt::rpc::RpcClient`)
//! against our bus over UNIX sockets, TCP and WebSocket.

use std::time::Duration;

use broker_bus::{Bus, BusConfig, Qos as OurQos, ServerConfig};
use busrt::client::AsyncClient;
use busrt::ipc::{Client, Config};
use busrt::rpc::{Rpc, RpcClient, RpcError, RpcEvent, RpcHandlers, RpcResult};
use busrt::{FrameKind, QoS};

const WAIT: Duration = Duration::from_secs(10);

struct Server {
    bus: Bus,
    unix: String,
    tcp: String,
    /// `ws://HOST:PORT`.
    ws: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn server_with(config: BusConfig, server: ServerConfig) -> Server {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "broker-bus-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let bus = Bus::new(config);
    bus.init_default_core_rpc().unwrap();
    let path = dir.join("bus.sock");
    bus.spawn_unix_server(&path, server.clone()).await.unwrap();
    let (_, addr) = bus
        .spawn_tcp_server("127.0.0.1:0", server.clone())
        .await
        .unwrap();
    let (_, ws) = bus
        .spawn_websocket_server("127.0.0.1:0", server)
        .await
        .unwrap();
    Server {
        bus,
        unix: path.display().to_string(),
        tcp: addr.to_string(),
        ws: format!("ws://{ws}"),
        _dir: TempDir(dir),
    }
}

async fn server() -> Server {
    server_with(BusConfig::default(), ServerConfig::default()).await
}

async fn connect(path: &str, name: &str) -> Client {
    Client::connect(&Config::new(path, name).timeout(WAIT))
        .await
        .unwrap_or_else(|e| panic!("{name} cannot connect to {path}: {e:?}"))
}

async fn ack(c: busrt::OpConfirm) -> Result<(), busrt::Error> {
    match c {
        Some(rx) => tokio::time::timeout(WAIT, rx)
            .await
            .expect("an ack")
            .expect("ack channel"),
        None => Ok(()),
    }
}

async fn next(rx: &busrt::EventChannel) -> busrt::Frame {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a frame")
        .expect("channel open")
}

/// Nothing arrives within a short while.
async fn nothing(rx: &busrt::EventChannel) {
    if let Ok(Ok(f)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        panic!(
            "unexpected {:?} from {} on {:?}",
            f.kind(),
            f.sender(),
            f.topic()
        );
    }
}

async fn every_op_over(path: &str) {
    let mut a = connect(path, "a").await;
    let mut b = connect(path, "b").await;
    let rx_a = a.take_event_channel().unwrap();
    let rx_b = b.take_event_channel().unwrap();
    // p2p with each QoS; the realtime flag reaches the receiver.
    for (qos, rt) in [
        (QoS::No, false),
        (QoS::Processed, false),
        (QoS::Realtime, true),
        (QoS::RealtimeProcessed, true),
    ] {
        ack(a.send("b", b"hi".as_slice().into(), qos).await.unwrap())
            .await
            .unwrap();
        let f = next(&rx_b).await;
        assert_eq!(
            (f.kind(), f.sender(), f.payload(), f.is_realtime()),
            (FrameKind::Message, "a", &b"hi"[..], rt)
        );
    }
    // An error ACK for a missing target.
    let err = ack(a
        .send("nobody", b"x".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap_err();
    assert_eq!(err.kind(), busrt::ErrorKind::NotRegistered);
    // Sending to yourself works.
    ack(a
        .send("a", b"me".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    assert_eq!(next(&rx_a).await.payload(), b"me");
    // Topics with wildcards, once each, exclusions.
    ack(b
        .subscribe_bulk(&["t/+", "t/#", "u"], QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    ack(a
        .publish("t/x", b"1".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    let f = next(&rx_b).await;
    assert_eq!(
        (f.kind(), f.topic(), f.sender()),
        (FrameKind::Publish, Some("t/x"), "a")
    );
    ack(a
        .publish("t", b"2".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    ack(b.exclude("t/secret/#", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    ack(a
        .publish("t/secret/k", b"3".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    nothing(&rx_b).await;
    ack(b.unexclude("t/secret/#", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    ack(a
        .publish("t/secret/k", b"4".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    assert_eq!(next(&rx_b).await.payload(), b"4");
    ack(b
        .unsubscribe_bulk(&["t/+", "t/#"], QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    ack(a
        .publish("t/x", b"5".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    nothing(&rx_b).await;
    // Empty subscribe and exclude bodies are acked (busrt's CLI `listen` needs it).
    ack(b.subscribe_bulk(&[], QoS::Processed).await.unwrap())
        .await
        .unwrap();
    ack(b.exclude_bulk(&[], QoS::Processed).await.unwrap())
        .await
        .unwrap();
    // Broadcasts by mask; the sender is included by `*`.
    let mut g1 = connect(path, "grp.one").await;
    let mut g2 = connect(path, "grp.two.deep").await;
    let rx_g1 = g1.take_event_channel().unwrap();
    let rx_g2 = g2.take_event_channel().unwrap();
    ack(a
        .send_broadcast("grp.?", b"q".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    assert_eq!(next(&rx_g1).await.kind(), FrameKind::Broadcast);
    nothing(&rx_g2).await;
    ack(a
        .send_broadcast("grp.*", b"s".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    assert_eq!(next(&rx_g1).await.payload(), b"s");
    assert_eq!(next(&rx_g2).await.payload(), b"s");
    ack(a
        .send_broadcast("*", b"all".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    for rx in [&rx_a, &rx_b, &rx_g1, &rx_g2] {
        assert_eq!(next(rx).await.payload(), b"all");
    }
    // Secondaries: publish_for reaches the primary's instances that subscribed.
    let mut b1 = b.register_secondary().await.unwrap();
    assert_eq!(b1.get_name(), "b%%0");
    let rx_b1 = b1.take_event_channel().unwrap();
    ack(b1.subscribe("pf", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    ack(b.subscribe("pf", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    ack(g1.subscribe("pf", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    ack(a
        .publish_for("pf", "b", b"for-b".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    assert_eq!(next(&rx_b).await.payload(), b"for-b");
    assert_eq!(next(&rx_b1).await.payload(), b"for-b");
    nothing(&rx_g1).await;
    // Keepalive: the client's own ping is accepted.
    a.ping().await.unwrap();
    assert!(a.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_over_a_unix_socket() {
    let s = server().await;
    every_op_over(&s.unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_over_tcp() {
    let s = server().await;
    every_op_over(&s.tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_over_websocket() {
    let s = server().await;
    every_op_over(&s.ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_errors_are_busrts() {
    let s = server().await;
    let _a = connect(&s.unix, "taken").await;
    let e = Client::connect(&Config::new(&s.unix, "taken").timeout(WAIT))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), busrt::ErrorKind::Busy);
    let e = Client::connect(&Config::new(&s.tcp, ".hidden").timeout(WAIT))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), busrt::ErrorKind::Data);
    let e = Client::connect(&Config::new(&s.unix, "orphan%%3").timeout(WAIT))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), busrt::ErrorKind::NotRegistered);
    // force_register: a new primary takes the name, the old one is disconnected.
    let s2 = server_with(
        BusConfig {
            force_register: true,
            ..BusConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    let old = connect(&s2.unix, "same").await;
    let _new = connect(&s2.unix, "same").await;
    let end = std::time::Instant::now() + WAIT;
    while old.is_connected() && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!old.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_departures_are_announced() {
    let s = server().await;
    let mut watcher = connect(&s.unix, "watcher").await;
    let rx = watcher.take_event_channel().unwrap();
    ack(watcher
        .subscribe(".broker/info", QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    let c = connect(&s.tcp, "comer").await;
    let f = next(&rx).await;
    assert_eq!((f.sender(), f.topic()), (".broker", Some(".broker/info")));
    let v: std::collections::BTreeMap<String, rmpv_like::Value> =
        rmp_serde::from_slice(f.payload()).unwrap();
    assert_eq!(v["s"], rmpv_like::Value::S("reg".into()));
    assert_eq!(v["d"], rmpv_like::Value::S("comer".into()));
    drop(c);
    let f = next(&rx).await;
    let v: std::collections::BTreeMap<String, rmpv_like::Value> =
        rmp_serde::from_slice(f.payload()).unwrap();
    assert_eq!(v["s"], rmpv_like::Value::S("unreg".into()));
    // force_disconnect from the embedding application.
    let _k = connect(&s.unix, "kicked").await;
    let _ = next(&rx).await;
    s.bus.force_disconnect("kicked").unwrap();
    let f = next(&rx).await;
    let v: std::collections::BTreeMap<String, rmpv_like::Value> =
        rmp_serde::from_slice(f.payload()).unwrap();
    assert_eq!(v["d"], rmpv_like::Value::S("kicked".into()));
    assert_eq!(s.bus.force_disconnect("kicked").unwrap_err().code, 0x71);
}

/// A small MessagePack value for the events' fields.
mod rmpv_like {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(untagged)]
    pub(crate) enum Value {
        S(String),
        U(u64),
    }
}

#[derive(serde::Deserialize)]
struct Info {
    author: String,
    version: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_service_answers_busrts_rpc_client() {
    let s = server().await;
    let c = connect(&s.unix, "caller").await;
    let rpc = RpcClient::new0(c);
    let call = |m: &'static str, p: Vec<u8>| {
        let rpc = &rpc;
        async move {
            tokio::time::timeout(WAIT, rpc.call(".broker", m, p.into(), QoS::Processed))
                .await
                .expect("a reply")
        }
    };
    let r = call("test", vec![]).await.unwrap();
    assert_eq!(r.payload(), [0x81, 0xA2, b'o', b'k', 0xC3]);
    let e = call("test", vec![0x80]).await.unwrap_err();
    assert_eq!(e.code(), -32602);
    let r = call("info", vec![]).await.unwrap();
    let info: Info = rmp_serde::from_slice(r.payload()).unwrap();
    assert!(!info.author.is_empty() && !info.version.is_empty());
    let r = call("stats", vec![]).await.unwrap();
    let stats: busrt::common::BrokerStats = rmp_serde::from_slice(r.payload()).unwrap();
    assert!(stats.r_frames >= 2 && stats.w_frames >= 2);
    let _other = connect(&s.tcp, "other").await;
    let _web = connect(&s.ws, "web").await;
    let r = call("client.list", vec![]).await.unwrap();
    let list: busrt::common::ClientList<'_> = rmp_serde::from_slice(r.payload()).unwrap();
    let names: Vec<&str> = list.clients.iter().map(|c| c.name).collect();
    assert_eq!(names, [".broker", "caller", "other", "web"]);
    let other = &list.clients[2];
    assert_eq!((other.kind, other.port), ("tcp", Some(s.tcp.as_str())));
    assert!(other.source.is_some_and(|s| s.starts_with("127.0.0.1:")));
    let web = &list.clients[3];
    let ws_port = s.ws.strip_prefix("ws://");
    assert_eq!((web.kind, web.port), ("websocket", ws_port));
    assert!(web.source.is_some_and(|s| s.starts_with("127.0.0.1:")));
    assert_eq!(list.clients[0].kind, "internal");
    let filter =
        rmp_serde::to_vec_named(&std::collections::BTreeMap::from([("filter", "^c")])).unwrap();
    let r = call("client.list", filter).await.unwrap();
    let list: busrt::common::ClientList<'_> = rmp_serde::from_slice(r.payload()).unwrap();
    assert_eq!(list.clients.len(), 1);
    let r = call("benchmark.test", b"\x01\x02echo".to_vec())
        .await
        .unwrap();
    assert_eq!(r.payload(), b"\x01\x02echo");
    let e = call("no.such.method", vec![]).await.unwrap_err();
    assert_eq!(e.code(), -32601);
    // A call to a missing client: the ACK says so, as a transport error.
    let e = tokio::time::timeout(WAIT, rpc.call("nobody", "x", vec![].into(), QoS::Processed))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), -32000 - 0x71);
}

struct Doubler;

#[busrt::async_trait]
impl RpcHandlers for Doubler {
    async fn handle_call(&self, event: RpcEvent) -> RpcResult {
        match event.parse_method()? {
            "double" => {
                let n: u64 =
                    rmp_serde::from_slice(event.payload()).map_err(|_| RpcError::params(None))?;
                Ok(Some(rmp_serde::to_vec(&(n * 2)).unwrap()))
            }
            _ => Err(RpcError::method(None)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busrt_rpc_between_two_clients_through_the_bus() {
    let s = server().await;
    let _server = RpcClient::new(connect(&s.unix, "svc").await, Doubler);
    let caller = RpcClient::new0(connect(&s.tcp, "user").await);
    for qos in [QoS::Processed, QoS::RealtimeProcessed] {
        let r = tokio::time::timeout(
            WAIT,
            caller.call(
                "svc",
                "double",
                rmp_serde::to_vec(&21u64).unwrap().into(),
                qos,
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(rmp_serde::from_slice::<u64>(r.payload()).unwrap(), 42);
    }
    let e = tokio::time::timeout(
        WAIT,
        caller.call("svc", "nope", vec![].into(), QoS::Processed),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.code(), -32601);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_and_external_clients_meet() {
    let s = server().await;
    let inner = s.bus.register_client("inner").unwrap();
    inner.subscribe(&["ext/#"]).await.unwrap();
    let mut ext = connect(&s.unix, "ext").await;
    let rx = ext.take_event_channel().unwrap();
    ack(ext
        .publish("ext/a", b"from-ext".as_slice().into(), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    let d = tokio::time::timeout(WAIT, inner.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.sender(), d.topic(), d.payload()),
        ("ext", Some("ext/a"), &b"from-ext"[..])
    );
    inner
        .send("ext", b"from-inner", OurQos::RealtimeProcessed)
        .await
        .unwrap();
    let f = next(&rx).await;
    assert_eq!(
        (f.sender(), f.payload(), f.is_realtime()),
        ("inner", &b"from-inner"[..], true)
    );
    assert_eq!(
        inner
            .send("ghost", b"x", OurQos::Processed)
            .await
            .unwrap_err()
            .code,
        0x71
    );
    // A run published together reaches busrt's client as that many publications.
    ack(ext.subscribe("run/#", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    let run: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1 + usize::from(i)]).collect();
    inner
        .publish_many("run/x", run.iter().map(|v| &v[..]), OurQos::No)
        .await
        .unwrap();
    for v in &run {
        let f = next(&rx).await;
        assert_eq!(
            (f.sender(), f.topic(), f.payload()),
            ("inner", Some("run/x"), &v[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_idle_timeout_and_a_pinging_one_is_not() {
    let s = server_with(
        BusConfig::default(),
        ServerConfig {
            timeout: Duration::from_millis(400),
            ..ServerConfig::default()
        },
    )
    .await;
    let mut watcher = connect(&s.unix, "w").await;
    let rx = watcher.take_event_channel().unwrap();
    ack(watcher
        .subscribe(".broker/info", QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    let silent = connect(&s.unix, "silent").await;
    let _ = next(&rx).await; // reg
                             // The watcher pings; the silent client never does.
    let pinger = tokio::spawn(async move {
        for _ in 0..20 {
            watcher.ping().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        watcher
    });
    let f = next(&rx).await;
    let v: std::collections::BTreeMap<String, rmpv_like::Value> =
        rmp_serde::from_slice(f.payload()).unwrap();
    assert_eq!(v["s"], rmpv_like::Value::S("unreg".into()));
    assert_eq!(v["d"], rmpv_like::Value::S("silent".into()));
    let watcher = pinger.await.unwrap();
    assert!(watcher.is_connected());
    drop(silent);
}

struct OurDoubler;

impl broker_bus::rpc::RpcHandlers for OurDoubler {
    async fn handle_call(
        &self,
        event: broker_bus::rpc::RpcEvent,
    ) -> Result<Vec<u8>, broker_bus::rpc::RpcError> {
        match event.method_str()? {
            "double" => {
                let n: u64 = event.params()?;
                Ok(rmp_serde::to_vec(&(n * 2)).unwrap())
            }
            _ => Err(broker_bus::rpc::RpcError::method_not_found()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_rpc_layer_and_busrts_call_each_other() {
    let s = server().await;
    // Ours serves, busrt's RpcClient calls.
    let ours = broker_bus::rpc::Rpc::new(s.bus.register_client("ours").unwrap(), OurDoubler);
    let theirs = RpcClient::new(connect(&s.unix, "theirs").await, Doubler);
    let r = tokio::time::timeout(
        WAIT,
        theirs.call(
            "ours",
            "double",
            rmp_serde::to_vec(&4u64).unwrap().into(),
            QoS::Processed,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rmp_serde::from_slice::<u64>(r.payload()).unwrap(), 8);
    let e = tokio::time::timeout(
        WAIT,
        theirs.call("ours", "x", vec![].into(), QoS::Processed),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.code(), -32601);
    // Ours calls busrt's handler, `.broker`, and nobody.
    let r = tokio::time::timeout(
        WAIT,
        ours.call(
            "theirs",
            "double",
            &rmp_serde::to_vec(&50u64).unwrap(),
            OurQos::RealtimeProcessed,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rmp_serde::from_slice::<u64>(&r).unwrap(), 100);
    let r = tokio::time::timeout(WAIT, ours.call(".broker", "test", b"", OurQos::Processed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&r[..], [0x81, 0xA2, b'o', b'k', 0xC3]);
    let e = tokio::time::timeout(WAIT, ours.call("theirs", "nope", b"", OurQos::Processed))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, -32601);
    assert_eq!(
        ours.call("nobody", "x", b"", OurQos::Processed)
            .await
            .unwrap_err()
            .code,
        -32000 - 0x71
    );
    ours.call0("theirs", "double", b"\x01", OurQos::Processed)
        .await
        .unwrap();
    ours.notify("theirs", b"note", OurQos::Processed)
        .await
        .unwrap();
}
