//! busrt 0.5.6's own client over `wss://` (rustls, the system's trust store, which
//! `SSL_CERT_FILE` replaces): a binary of its own, because the variable is process-wide.

use std::time::Duration;

use broker_bus::{Bus, BusConfig, Qos, ServerConfig, TlsConfig};
use busrt::client::AsyncClient;
use busrt::ipc::{Client, Config};
use busrt::QoS;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busrts_client_speaks_wss() {
    let dir = broker_e2e::temp_dir("busrt-wss");
    let (ca, ca_key, ca_path) = broker_e2e::ca(&dir, "bus-ca");
    let (cert, key) = broker_e2e::issue_host(&dir, "localhost", &ca, &ca_key);
    std::env::set_var("SSL_CERT_FILE", &ca_path);
    let bus = Bus::new(BusConfig::default());
    let (_, addr) = bus
        .spawn_websocket_server(
            "127.0.0.1:0",
            ServerConfig {
                tls: Some(TlsConfig {
                    certificate: cert,
                    key,
                    ca_file: None,
                    name_from_certificate: false,
                }),
                ..ServerConfig::default()
            },
        )
        .await
        .unwrap();
    let inside = bus.register_client("inside").unwrap();
    let url = format!("wss://localhost:{}", addr.port());
    let mut c = Client::connect(&Config::new(&url, "remote").timeout(WAIT))
        .await
        .unwrap_or_else(|e| panic!("busrt's client over {url}: {e:?}"));
    let rx = c.take_event_channel().unwrap();
    let confirm = c
        .send("inside", b"over wss".as_slice().into(), QoS::Processed)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, confirm.unwrap())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let d = tokio::time::timeout(WAIT, inside.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.sender(), d.payload()), ("remote", &b"over wss"[..]));
    inside
        .send("remote", b"and back", Qos::Processed)
        .await
        .unwrap();
    let f = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f.sender(), f.payload()), ("inside", &b"and back"[..]));
    let _ = std::fs::remove_dir_all(dir);
}
