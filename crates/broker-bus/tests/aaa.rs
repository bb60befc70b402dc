//! Access rules with busrt's own client: names, hosts, UNIX credentials, every operation
//! allowed and denied, wildcards judged by what they reach, and a change made to bite with
//! `force_disconnect`.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use broker_bus::{AaaMap, Bus, BusConfig, ClientAaa, ServerConfig};
use busrt::client::AsyncClient;
use busrt::ipc::{Client, Config};
use busrt::{ErrorKind, QoS};

const WAIT: Duration = Duration::from_secs(10);

async fn connect(path: &str, name: &str) -> Result<Client, busrt::Error> {
    Client::connect(&Config::new(path, name).timeout(WAIT)).await
}

async fn ack(c: busrt::OpConfirm) -> Result<(), ErrorKind> {
    match c {
        Some(rx) => tokio::time::timeout(WAIT, rx)
            .await
            .expect("an ack")
            .expect("ack channel")
            .map_err(|e| e.kind()),
        None => Ok(()),
    }
}

async fn quiet(rx: &busrt::EventChannel) {
    if let Ok(Ok(f)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        panic!("unexpected frame on {:?} from {}", f.topic(), f.sender());
    }
}

fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_allows_and_denies_with_busrts_client() {
    let dir = std::env::temp_dir().join(format!("broker-bus-aaa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("aaa.sock").display().to_string();
    let map = AaaMap::new();
    map.insert(
        "alice",
        ClientAaa::new()
            .allow_p2p_to(&["bob"])
            .allow_publish_to(&["logs/+"])
            .allow_subscribe_to(&["logs/#"])
            .allow_broadcast_to(&["grp.?"]),
    );
    map.insert("bob", ClientAaa::new());
    map.insert("grp.x", ClientAaa::new());
    map.insert(
        "remote",
        ClientAaa::new().hosts_allow(vec!["10.0.0.0/8".parse().unwrap()]),
    );
    map.insert("me", ClientAaa::new().uids_allow(vec![my_uid()]));
    map.insert("notme", ClientAaa::new().uids_allow(vec![my_uid() + 1]));
    let bus = Bus::new(BusConfig::default());
    bus.init_default_core_rpc().unwrap();
    let config = ServerConfig {
        aaa_map: Some(map.clone()),
        ..ServerConfig::default()
    };
    bus.spawn_unix_server(&sock, config.clone()).await.unwrap();
    let (_, addr) = bus.spawn_tcp_server("127.0.0.1:0", config).await.unwrap();
    let tcp = addr.to_string();

    // Connecting: a name outside the map, a host outside the networks, credentials.
    assert_eq!(
        connect(&sock, "mallory").await.err().unwrap().kind(),
        ErrorKind::Access
    );
    assert_eq!(
        connect(&tcp, "remote").await.err().unwrap().kind(),
        ErrorKind::Access
    );
    assert!(
        connect(&sock, "remote").await.is_ok(),
        "hosts do not bind UNIX clients"
    );
    assert!(
        connect(&sock, "me").await.is_ok(),
        "the kernel says who we are"
    );
    assert_eq!(
        connect(&tcp, "me").await.err().unwrap().kind(),
        ErrorKind::Access
    );
    assert_eq!(
        connect(&sock, "notme").await.err().unwrap().kind(),
        ErrorKind::Access
    );
    assert_eq!(
        connect(&sock, ".dot").await.err().unwrap().kind(),
        ErrorKind::Data
    );

    let mut alice = connect(&sock, "alice").await.unwrap();
    let mut bob = connect(&tcp, "bob").await.unwrap();
    let mut grp = connect(&sock, "grp.x").await.unwrap();
    let rx_alice = alice.take_event_channel().unwrap();
    let rx_bob = bob.take_event_channel().unwrap();
    let rx_grp = grp.take_event_channel().unwrap();
    let p = |b: &'static [u8]| -> busrt::borrow::Cow<'static> { b.into() };

    // p2p.
    ack(alice.send("bob", p(b"1"), QoS::Processed).await.unwrap())
        .await
        .unwrap();
    assert_eq!(rx_bob.recv().await.unwrap().payload(), b"1");
    assert_eq!(
        ack(alice.send("grp.x", p(b"2"), QoS::Processed).await.unwrap()).await,
        Err(ErrorKind::Access)
    );
    ack(alice.send("grp.x", p(b"3"), QoS::No).await.unwrap())
        .await
        .unwrap();
    quiet(&rx_grp).await;
    // Publications.
    ack(bob.subscribe("#", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    ack(alice
        .publish("logs/conn", p(b"4"), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    assert_eq!(rx_bob.recv().await.unwrap().topic(), Some("logs/conn"));
    assert_eq!(
        ack(alice
            .publish("secret", p(b"5"), QoS::Processed)
            .await
            .unwrap())
        .await,
        Err(ErrorKind::Access)
    );
    assert_eq!(
        ack(alice
            .publish("logs/a/b", p(b"6"), QoS::Processed)
            .await
            .unwrap())
        .await,
        Err(ErrorKind::Access)
    );
    quiet(&rx_bob).await;
    // (Bob publishes next: he would hear himself.)
    ack(bob.unsubscribe("#", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    // Subscriptions: `logs/+` and `logs/#` are covered; `#` is not, and a frame with it
    // subscribes nothing at all.
    assert_eq!(
        ack(alice
            .subscribe_bulk(&["logs/x/y", "#"], QoS::Processed)
            .await
            .unwrap())
        .await,
        Err(ErrorKind::Access)
    );
    ack(bob
        .publish("logs/x/y", p(b"7"), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    quiet(&rx_alice).await;
    ack(alice.subscribe("logs/#", QoS::Processed).await.unwrap())
        .await
        .unwrap();
    ack(bob
        .publish("logs/x/y", p(b"8"), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    assert_eq!(rx_alice.recv().await.unwrap().payload(), b"8");
    // Broadcasts: `grp.?` is allowed; `grp.*` reaches more and is not.
    ack(alice
        .send_broadcast("grp.?", p(b"9"), QoS::Processed)
        .await
        .unwrap())
    .await
    .unwrap();
    assert_eq!(rx_grp.recv().await.unwrap().payload(), b"9");
    assert_eq!(
        ack(alice
            .send_broadcast("grp.*", p(b"10"), QoS::Processed)
            .await
            .unwrap())
        .await,
        Err(ErrorKind::Access)
    );
    quiet(&rx_grp).await;

    // A change to the map bites once the client reconnects.
    map.insert("alice", ClientAaa::new().deny_p2p());
    ack(alice.send("bob", p(b"11"), QoS::Processed).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        rx_bob.recv().await.unwrap().payload(),
        b"11",
        "the old rules until then"
    );
    bus.force_disconnect("alice").unwrap();
    let end = std::time::Instant::now() + WAIT;
    while alice.is_connected() && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alice.is_connected());
    let mut alice = connect(&sock, "alice").await.unwrap();
    assert_eq!(
        ack(alice.send("bob", p(b"12"), QoS::Processed).await.unwrap()).await,
        Err(ErrorKind::Access)
    );
    map.remove("alice");
    bus.force_disconnect("alice").unwrap();
    assert_eq!(
        connect(&sock, "alice").await.err().unwrap().kind(),
        ErrorKind::Access
    );
    assert_eq!(bus.force_disconnect(".broker").unwrap_err().code, 0x75);
    let _ = std::fs::remove_dir_all(dir);
}
