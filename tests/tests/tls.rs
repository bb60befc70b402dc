//! TLS between endpoints: anonymous ECDH by default, mutual certificate verification when
//! configured (certificates made here with OpenSSL), and clear refusals instead of hangs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use broker::{Configuration, Endpoint, ErrorCode};
use broker_data::Data;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509NameBuilder, X509};

const WAIT: Duration = Duration::from_secs(10);

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn cert(
    name: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    ca: bool,
) -> X509 {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", name).unwrap();
    let n = n.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(
        &BigNum::from_u32(rand_serial())
            .unwrap()
            .to_asn1_integer()
            .unwrap(),
    )
    .unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(issuer.map_or(&n, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
            .unwrap();
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    b.build()
}

fn rand_serial() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A CA and a certificate it signed for `name`, written as PEM files under `dir`; the key is
/// encrypted with `passphrase` when one is given.
fn issue(
    dir: &Path,
    name: &str,
    ca: &X509,
    ca_key: &PKey<Private>,
    passphrase: Option<&str>,
) -> (PathBuf, PathBuf) {
    let k = key();
    let c = cert(name, &k, Some((ca, ca_key)), false);
    let (cp, kp) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cp, c.to_pem().unwrap()).unwrap();
    let pem = match passphrase {
        Some(p) => k
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), p.as_bytes())
            .unwrap(),
        None => k.private_key_to_pem_pkcs8().unwrap(),
    };
    std::fs::write(&kp, pem).unwrap();
    (cp, kp)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("broker-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

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
    let start = std::time::Instant::now();
    assert!(plain.peer("127.0.0.1", tls_port, None).is_err());
    assert!(tls.peer("127.0.0.1", plain_port, None).is_err());
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "refusals must not wait for long timeouts"
    );
}
