//! Interoperability with C++ Broker 1.4 (Debian's `python3-broker`): its SQLite store keeps
//! keys and values as serialized `data`, byte for byte the bin v1 format. Broker 1.4 wrote one
//! value of (nearly) every type; we decode each to the expected value and encode it back to
//! exactly Broker's bytes.
//!
//! By default the test reads Broker's bytes from `tests/data/broker14_store.rows` (the `hex(key)
//! | hex(value)` rows of a store Broker 1.4 wrote with `tests/support/broker14_store.py`), so
//! plain `cargo test` needs nothing installed. The ignored test (run by `cargo xtask ci`, or
//! `cargo test -- --include-ignored`) has the real Broker 1.4 write the store again and checks
//! that its bytes are still those: that needs `/usr/bin/python3` with `python3-broker`, and
//! `sqlite3`.

use std::process::Command;

use broker_data::Data;
use broker_wire::{decode_data, encode_data, Limits};

const EXPECTED: &[(&str, &str)] = &[
    ("a", "nil"),
    ("b", "T"),
    ("c", "1234567890"),
    ("d", "-1234567890"),
    ("e", "-1.0"),
    ("f", "\"hello world\""),
    ("g", "192.168.9.8"),
    ("h", "192.168.9.0/24"),
    ("i", "8080/tcp"),
    ("j", "1234567us"),
    ("k", "foobar"),
    ("l", "{F, +7, \"hello world\"}"),
    ("m", "{+1 -> \"hello\", +2 -> \"world\"}"),
    ("n", "(F, 1, \"hello world\")"),
    ("o", "2001:db8::/32"),
    ("p", "2009-02-13T23:31:30Z"),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The rows recorded from Broker 1.4.
fn golden() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/broker14_store.rows"
    ))
    .expect("the recorded rows")
}

/// The rows as the installed Broker 1.4 writes them now.
fn live() -> String {
    let dir = std::env::temp_dir().join(format!("broker14-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store.sqlite");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/broker14_store.py"
    );
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(&db)
        .output()
        .expect("/usr/bin/python3 runs (install python3-broker: cargo xtask install)");
    assert!(
        out.status.success(),
        "Broker 1.4 script failed (is python3-broker installed? cargo xtask install): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = Command::new("sqlite3")
        .arg(&db)
        .arg("select hex(key), hex(value) from store order by key;")
        .output()
        .expect("sqlite3 runs (cargo xtask install)");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(dump.stdout).unwrap()
}

fn check(text: &str) {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), EXPECTED.len(), "rows: {text}");
    let limits = Limits::default();
    for (row, (name, literal)) in rows.iter().zip(EXPECTED) {
        for (hex, expected) in [(row[0], format!("{name:?}")), (row[1], literal.to_string())] {
            let bytes = unhex(hex);
            let expected: Data = expected.parse().unwrap();
            let decoded = decode_data(&bytes, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                decoded.literal().to_string(),
                expected.literal().to_string(),
                "{name}"
            );
            let mut ours = Vec::new();
            encode_data(&expected, &mut ours);
            assert_eq!(
                ours, bytes,
                "our encoding of {name} differs from Broker 1.4's"
            );
        }
    }
}

#[test]
fn broker_1_4_store_values_decode_and_reencode_identically() {
    check(&golden());
}

#[test]
#[ignore = "needs C++ Broker 1.4 (python3-broker, sqlite3: cargo xtask install); cargo xtask ci runs it"]
fn broker_1_4_still_writes_the_recorded_bytes() {
    let now = live();
    check(&now);
    assert_eq!(now, golden(), "Broker 1.4 wrote other bytes than recorded");
}
