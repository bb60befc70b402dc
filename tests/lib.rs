//! End-to-end tests across crates live in `tests/*.rs`: endpoints peering over real loopback
//! sockets, hostile peers, status sequences, TLS. This library holds what they (and the CLI's
//! process tests) share: test certificates.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509NameBuilder, X509};

/// A fresh P-256 key.
pub fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A certificate for `name`, self-signed or signed by `issuer`, a CA certificate when `ca`.
pub fn cert(
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

/// A certificate signed by `ca` for `name`, written as PEM files under `dir`; the key is
/// encrypted with `passphrase` when one is given.
pub fn issue(
    dir: &Path,
    name: &str,
    ca: &X509,
    ca_key: &PKey<Private>,
    passphrase: Option<&str>,
) -> (PathBuf, PathBuf) {
    let k = key();
    let c = cert(name, &k, Some((ca, ca_key)), false);
    write_pair(dir, name, &c, &k, passphrase)
}

/// A server certificate signed by `ca` whose subject alternative name is the DNS name
/// `host` (what clients that check host names, such as rustls', need), written as PEM files
/// under `dir`.
pub fn issue_host(dir: &Path, host: &str, ca: &X509, ca_key: &PKey<Private>) -> (PathBuf, PathBuf) {
    use openssl::x509::extension::SubjectAlternativeName;
    let k = key();
    let plain = cert(host, &k, Some((ca, ca_key)), false);
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(plain.serial_number()).unwrap();
    b.set_subject_name(plain.subject_name()).unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    b.set_pubkey(&k).unwrap();
    b.set_not_before(plain.not_before()).unwrap();
    b.set_not_after(plain.not_after()).unwrap();
    let san = SubjectAlternativeName::new()
        .dns(host)
        .build(&b.x509v3_context(Some(ca), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(ca_key, MessageDigest::sha256()).unwrap();
    write_pair(dir, host, &b.build(), &k, None)
}

fn write_pair(
    dir: &Path,
    name: &str,
    c: &X509,
    k: &PKey<Private>,
    passphrase: Option<&str>,
) -> (PathBuf, PathBuf) {
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

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("broker-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A CA written to `dir/ca.crt`, with its key.
pub fn ca(dir: &Path, name: &str) -> (X509, PKey<Private>, PathBuf) {
    let k = key();
    let c = cert(name, &k, None, true);
    let path = dir.join(format!("{name}.ca.crt"));
    std::fs::write(&path, c.to_pem().unwrap()).unwrap();
    (c, k, path)
}
