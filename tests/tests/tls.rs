//! TLS between endpoints: anonymous ECDH by default, mutual certificate verification when
//! configured (certificates made here with OpenSSL), and clear refusals instead of hangs.

use std::path::Path;
use std::time::Duration;

use broker::{Configuration, Endpoint, ErrorCode};
use broker_data::Data;
use broker_e2e::{cert, issue, key, temp_dir};

const WAIT: Duration = Duration::from_secs(10);

fn configured(ca: &Path, cert: &Path, key: &Path, passphrase: Option<&str>) -> Configuration {
    Configuration {
        ssl_cafile: Some(ca.to_owned()),
        ssl_certificate: Some(cert.to_owned()),
        ssl_key: Some(key.to_owned()),
        ssl_passphrase: passphrase.map(str::to_owned),
        ..Configuration::default()
    }
}

fn exchange(a: &Endpoint, b: &Endpoint) {
    let port = b.listen("127.0.0.1", 0).unwrap();
    let sub = b.make_subscriber(&["/tls"], None).unwrap();
    a.peer("127.0.0.1", port, None).unwrap();
    a.publish("/tls", Data::from("secret")).unwrap();
    assert_eq!(
        *sub.get_timeout(WAIT).expect("delivered over TLS").data,
        Data::from("secret")
    );
}

#[test]
fn anonymous_tls_is_the_default() {
    let (a, b) = (
        Endpoint::new(Configuration::default()).unwrap(),
        Endpoint::new(Configuration::default()).unwrap(),
    );
    exchange(&a, &b);
}

#[test]
fn certificates_verify_both_sides_and_refuse_strangers() {
    let dir = temp_dir("certs");
    let ca_key = key();
    let ca = cert("broker test CA", &ca_key, None, true);
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, ca.to_pem().unwrap()).unwrap();
    let (ac, ak) = issue(&dir, "alice", &ca, &ca_key, Some("open sesame"));
    let (bc, bk) = issue(&dir, "bob", &ca, &ca_key, None);
    let alice = Endpoint::new(configured(&ca_path, &ac, &ak, Some("open sesame"))).unwrap();
    let bob = Endpoint::new(configured(&ca_path, &bc, &bk, None)).unwrap();
    exchange(&alice, &bob);

    // A certificate from another CA is refused with a clear error.
    let other_key = key();
    let other = cert("some other CA", &other_key, None, true);
    let other_path = dir.join("other.crt");
    std::fs::write(&other_path, other.to_pem().unwrap()).unwrap();
    let (mc, mk) = issue(&dir, "mallory", &other, &other_key, None);
    let mallory = Endpoint::new(configured(&other_path, &mc, &mk, None)).unwrap();
    let port = bob.listen("127.0.0.1", 0).unwrap();
    let err = mallory.peer("127.0.0.1", port, None).unwrap_err();
    assert_eq!(err.code, ErrorCode::PeerInvalid, "{err}");
    assert!(err.message.contains("TLS handshake failed"), "{err}");

    // An anonymous endpoint cannot peer with one that requires certificates.
    let anon = Endpoint::new(Configuration::default()).unwrap();
    assert!(anon.peer("127.0.0.1", port, None).is_err());

    // A wrong passphrase is a clear configuration error.
    let err = Endpoint::new(configured(&ca_path, &ac, &ak, Some("wrong")))
        .err()
        .expect("refused");
    assert!(err.message.contains("passphrase"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_and_plain_tcp_do_not_hang_each_other() {
    let tls = Endpoint::new(Configuration::default()).unwrap();
    let plain = Endpoint::new(Configuration {
        disable_ssl: true,
        ..Configuration::default()
    })
    .unwrap();
    let tls_port = tls.listen("127.0.0.1", 0).unwrap();
    let plain_port = plain.listen("127.0.0.1", 0).unwrap();
    // Each side tells at once that the other speaks something else: the refusal is about the
    // bytes received, never a handshake timeout (Broker fails at once too).
    for (who, r) in [
        ("plain to TLS", plain.peer("127.0.0.1", tls_port, None)),
        ("TLS to plain", tls.peer("127.0.0.1", plain_port, None)),
    ] {
        let e = r.expect_err(who);
        assert_ne!(e.code, ErrorCode::PeerTimeout, "{who}: {e}");
    }
}
