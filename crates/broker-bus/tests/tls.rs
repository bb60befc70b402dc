//! TLS on a TCP or WebSocket listener: a client without a certificate from the CA cannot
//! connect, and with `name_from_certificate` a client registers only the name its certificate
//! carries.

use std::time::Duration;

use broker_bus::ipc::IpcClient;
use broker_bus::{Bus, BusConfig, Qos, ServerConfig, TlsConfig};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_proves_the_bus_name() {
    proves_the_name(false).await;
}

/// The same under WebSocket (`wss://`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_proves_the_bus_name_over_wss() {
    proves_the_name(true).await;
}

async fn proves_the_name(websocket: bool) {
    let dir = broker_e2e::temp_dir(if websocket { "bus-wss" } else { "bus-tls" });
    let (ca, ca_key, ca_path) = broker_e2e::ca(&dir, "bus-ca");
    let (server_cert, server_key) = broker_e2e::issue(&dir, "bus-server", &ca, &ca_key, None);
    let (alice_cert, alice_key) = broker_e2e::issue(&dir, "alice", &ca, &ca_key, None);
    let (other_ca, other_key, _) = broker_e2e::ca(&dir, "other-ca");
    let (mallory_cert, mallory_key) =
        broker_e2e::issue(&dir, "mallory", &other_ca, &other_key, None);
    let bus = Bus::new(BusConfig::default());
    let config = ServerConfig {
        tls: Some(TlsConfig {
            certificate: server_cert,
            key: server_key,
            ca_file: Some(ca_path.clone()),
            name_from_certificate: true,
        }),
        ..ServerConfig::default()
    };
    let (addr, plain) = if websocket {
        let (_, a) = bus
            .spawn_websocket_server("127.0.0.1:0", config)
            .await
            .unwrap();
        (format!("wss://{a}"), format!("ws://{a}"))
    } else {
        let (_, a) = bus.spawn_tcp_server("127.0.0.1:0", config).await.unwrap();
        (a.to_string(), a.to_string())
    };
    let alice = Some((alice_cert.as_path(), alice_key.as_path()));
    // Alice's certificate carries "alice": she may be alice (and alice%%1), nobody else.
    let mut a = IpcClient::connect_tls(&addr, "alice", WAIT, &ca_path, alice)
        .await
        .unwrap();
    let a1 = IpcClient::connect_tls(&addr, "alice%%1", WAIT, &ca_path, alice)
        .await
        .unwrap();
    assert_eq!(
        IpcClient::connect_tls(&addr, "bob", WAIT, &ca_path, alice)
            .await
            .err()
            .unwrap()
            .code,
        0x79
    );
    // No certificate, or one from another CA: no connection at all.
    assert!(IpcClient::connect_tls(&addr, "alice", WAIT, &ca_path, None)
        .await
        .is_err());
    let m = Some((mallory_cert.as_path(), mallory_key.as_path()));
    assert!(IpcClient::connect_tls(&addr, "mallory", WAIT, &ca_path, m)
        .await
        .is_err());
    // Plain TCP (or ws://) to a TLS listener: refused too; and our `connect` asks for a CA
    // before it speaks wss://.
    assert!(
        IpcClient::connect(&plain, "alice", Duration::from_millis(500))
            .await
            .is_err()
    );
    if websocket {
        assert!(IpcClient::connect(&addr, "alice", WAIT).await.is_err());
    }
    // And it works as a bus.
    a1.send("alice", b"over tls", Qos::Processed).await.unwrap();
    let d = tokio::time::timeout(WAIT, a.recv()).await.unwrap().unwrap();
    assert_eq!((d.sender(), d.payload()), ("alice%%1", &b"over tls"[..]));
    let _ = std::fs::remove_dir_all(dir);
}
