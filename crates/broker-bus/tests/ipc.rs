//! Our own socket client (`ipc::IpcClient`) with busrt's client on the other side.

use std::time::Duration;

use broker_bus::ipc::IpcClient;
use broker_bus::{Bus, BusConfig, Qos, ServerConfig};
use busrt::client::AsyncClient;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_and_busrts_exchange_everything() {
    let bus = Bus::new(BusConfig::default());
    bus.init_default_core_rpc().unwrap();
    let dir = std::env::temp_dir().join(format!("broker-bus-ipc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ipc.sock").display().to_string();
    bus.spawn_unix_server(&sock, ServerConfig::default())
        .await
        .unwrap();
    let (_, addr) = bus
        .spawn_tcp_server("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap();
    for path in [sock.clone(), addr.to_string()] {
        let mut ours = IpcClient::connect(&path, "ours", WAIT).await.unwrap();
        let mut theirs =
            busrt::ipc::Client::connect(&busrt::ipc::Config::new(&path, "theirs").timeout(WAIT))
                .await
                .unwrap();
        let rx = theirs.take_event_channel().unwrap();
        ours.subscribe(&["t/#"]).await.unwrap();
        theirs
            .publish("t/1", b"pub".as_slice().into(), busrt::QoS::Processed)
            .await
            .unwrap()
            .unwrap()
            .await
            .unwrap()
            .unwrap();
        let d = tokio::time::timeout(WAIT, ours.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.sender(), d.topic(), d.payload()),
            ("theirs", Some("t/1"), &b"pub"[..])
        );
        ours.send("theirs", b"p2p", Qos::Processed).await.unwrap();
        let f = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((f.sender(), f.payload()), ("ours", &b"p2p"[..]));
        assert_eq!(
            ours.send("ghost", b"", Qos::Processed)
                .await
                .unwrap_err()
                .code,
            0x71
        );
        ours.send_broadcast("th*", b"none", Qos::Processed)
            .await
            .unwrap();
        ours.publish("x", b"", Qos::No).await.unwrap();
        let r = ours.call(".broker", "test", b"").await.unwrap();
        assert_eq!(&r[..], [0x81, 0xA2, b'o', b'k', 0xC3]);
        assert_eq!(
            ours.call(".broker", "nope", b"").await.unwrap_err().code,
            -32601
        );
        assert_eq!(
            ours.call("ghost", "x", b"").await.unwrap_err().code,
            -32000 - 0x71
        );
        assert_eq!(
            IpcClient::connect(&path, "ours", WAIT)
                .await
                .err()
                .unwrap()
                .code,
            0x76,
            "a taken name"
        );
        drop(ours);
        drop(theirs);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
