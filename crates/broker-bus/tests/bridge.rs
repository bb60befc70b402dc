//! The bridge with busrt's own client on the bus side and a Broker endpoint peered over TCP on
//! the other: values both ways, losslessly, and a payload that is not a value answered.

use std::time::Duration;

use broker::{Configuration, Endpoint};
use broker_bus::{msgpack, Bus, BusConfig, ServerConfig};
use broker_data::Data;
use busrt::client::AsyncClient;
use busrt::ipc::{Client, Config};
use busrt::{FrameKind, QoS};

fn endpoint() -> Endpoint {
    Endpoint::new(Configuration {
        disable_ssl: true,
        ..Configuration::default()
    })
    .unwrap()
}

#[test]
fn zeek_events_cross_between_a_busrt_client_and_a_broker_peer() {
    // Endpoints are made and peered outside the runtime (their blocking calls).
    let near = endpoint();
    let far = endpoint();
    let port = near.listen("127.0.0.1", 0).unwrap();
    far.peer("127.0.0.1", port, Some(Duration::from_millis(100)))
        .unwrap();
    let far_sub = far.make_subscriber(&["zeek/"], None).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("broker-bus-bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("bridge.sock").display().to_string();
    let event = Data::Vector(vec![
        Data::Count(1),
        Data::Count(1),
        Data::Vector(vec![
            Data::String("Conn::log_conn".into()),
            Data::Vector(vec![
                "10.0.0.1".parse().unwrap(),
                "443/tcp".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                Data::Timespan(broker_data::Timespan::from_nanos(1500)),
                Data::Timestamp(broker_data::Timestamp::from_nanos(
                    1_700_000_000_000_000_001,
                )),
                Data::EnumValue(broker_data::EnumValue::new("Conn::LOG")),
                Data::Integer(-3),
                Data::Set(["a".into(), "b".into()].into()),
            ]),
        ]),
    ]);
    let far2 = far.clone();
    rt.block_on(async {
        let bus = Bus::new(BusConfig::default());
        bus.spawn_unix_server(&sock, ServerConfig::default())
            .await
            .unwrap();
        let bridge = broker_bus::bridge::bridge(&bus, &near, "bridge", &["zeek/"])
            .await
            .unwrap();
        let mut client =
            Client::connect(&Config::new(&sock, "sensor").timeout(Duration::from_secs(5)))
                .await
                .unwrap();
        let rx = client.take_event_channel().unwrap();
        client
            .subscribe("zeek/#", QoS::Processed)
            .await
            .unwrap()
            .unwrap()
            .await
            .unwrap()
            .unwrap();
        // Bus → Broker: published until the far side has it (subscriptions propagate).
        let payload = msgpack::to_vec(&event);
        let got = tokio::task::spawn_blocking(move || far_sub.get_timeout(Duration::from_secs(10)));
        for _ in 0..50 {
            client
                .publish("zeek/event/conn", payload.as_slice().into(), QoS::Processed)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            if got.is_finished() {
                break;
            }
        }
        let m = got.await.unwrap().expect("the far endpoint got the event");
        assert_eq!(m.topic.as_str(), "zeek/event/conn");
        assert_eq!(*m.data, event);
        // The bus client never hears its own publication back from Broker: only what the
        // far endpoint publishes. Broker → bus:
        let reply = Data::Vector(vec![Data::String("pong".into()), Data::Count(7)]);
        far2.publish_async("zeek/reply", reply.clone())
            .await
            .unwrap();
        let f = loop {
            let f = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if f.topic() == Some("zeek/reply") {
                break f;
            }
            assert_eq!(
                f.sender(),
                "sensor",
                "only our own publications besides the reply"
            );
        };
        assert_eq!((f.kind(), f.sender()), (FrameKind::Publish, "bridge"));
        assert_eq!(msgpack::decode(f.payload()).unwrap(), reply);
        // A payload that is not a Broker value: the sender is told, and it is counted.
        client
            .publish("zeek/bad", b"\xc1\xc1".as_slice().into(), QoS::Processed)
            .await
            .unwrap();
        let f = loop {
            let f = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if f.kind() == FrameKind::Message {
                break f;
            }
        };
        assert_eq!(f.sender(), "bridge");
        let Data::Table(t) = msgpack::decode(f.payload()).unwrap() else {
            panic!("a map")
        };
        assert_eq!(
            t[&Data::String("topic".into())],
            Data::String("zeek/bad".into())
        );
        let stats = &bridge.stats;
        for (what, n) in [
            ("refused", &stats.refused),
            ("to_broker", &stats.to_broker),
            ("to_bus", &stats.to_bus),
        ] {
            assert!(n.load(std::sync::atomic::Ordering::Relaxed) >= 1, "{what}");
        }
    });
    drop(rt);
    near.shutdown();
    far.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
