//! Interoperability with C++ Broker 1.4 (Debian's `python3-broker`): its SQLite store keeps
//! keys and values as serialized `data`, byte for byte the bin v1 format. Broker 1.4 wrote one
//! value of (nearly) every type; we decode each to the expected value and encode it back to
//! exactly Broker's bytes.
//!
//! Broker 1.4 also records (`BROKER_RECORDING_DIRECTORY`): its `messages.dat` for one value of
//! every type, each published on its own topic (`tests/data/broker14_messages.dat`, written by
//! `tests/support/broker14_record.py`), is exactly what our version-1 generator writer makes of
//! the same values, and our reader reads it back to the same shapes.
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

/// Runs `tests/support/SCRIPT ARG` under C++ Broker 1.4's Python bindings.
fn run_broker14(script: &str, arg: &std::path::Path) {
    let out = Command::new("/usr/bin/python3")
        .arg(format!(
            "{}/tests/support/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(arg)
        .output()
        .expect("/usr/bin/python3 runs (install python3-broker: cargo xtask install)");
    assert!(
        out.status.success(),
        "Broker 1.4 script {script} failed (is python3-broker installed? cargo xtask install): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rows as the installed Broker 1.4 writes them now.
fn live() -> String {
    let dir = std::env::temp_dir().join(format!("broker14-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store.sqlite");
    run_broker14("broker14_store.py", &db);
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

/// What our version-1 writer makes of the values Broker 1.4 recorded.
fn our_recording() -> Vec<u8> {
    let mut w = broker_wire::GeneratorWriter::new(1);
    for (name, literal) in EXPECTED {
        let topic = broker_wire::Topic::new(format!("/vec/{name}")).unwrap();
        w.write_data(&topic, &literal.parse().unwrap()).unwrap();
    }
    w.take()
}

fn check_recording(broker: &[u8]) {
    assert_eq!(
        our_recording(),
        broker,
        "our version-1 generator file differs from Broker 1.4's"
    );
    let stats = broker_wire::GeneratorStats::of(broker).unwrap();
    assert_eq!(
        (stats.version, stats.data_entries),
        (1, EXPECTED.len() as u64)
    );
    // Read back: the made-up values have the recorded types, in order.
    let read: Vec<broker_data::DataType> = broker_wire::GeneratorReader::new(broker)
        .unwrap()
        .map(|e| match e.unwrap() {
            broker_wire::GeneratorEntry::Data { data, .. } => data.data_type(),
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<broker_data::DataType> = EXPECTED
        .iter()
        .map(|(_, l)| l.parse::<Data>().unwrap().data_type())
        .collect();
    assert_eq!(read, want);
}

#[test]
fn broker_1_4_recordings_are_what_our_writer_writes() {
    check_recording(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/broker14_messages.dat"
        ))
        .unwrap(),
    );
}

#[test]
#[ignore = "needs C++ Broker 1.4 (python3-broker: cargo xtask install); cargo xtask ci runs it"]
fn broker_1_4_still_records_the_recorded_bytes() {
    let dir = std::env::temp_dir().join(format!("broker14-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run_broker14("broker14_record.py", &dir);
    let now = std::fs::read(dir.join("messages.dat")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    check_recording(&now);
}

/// Broker 1.4's own generator-file reader (`tests/support/broker14_read.cc`, built against
/// Debian's libbroker-dev) reads what our version-1 writer writes: every data type and every
/// store command Broker 1.4 knows, entry for entry — but `expire`, which Broker 1.4's writer
/// writes and its reader refuses (its data generator has no case for it: `invalid_tag`).
#[test]
#[ignore = "needs g++ and C++ Broker 1.4's headers (libbroker-dev, libcaf-dev: cargo xtask install); cargo xtask ci runs it"]
fn broker_1_4_reads_our_version_1_generator_files() {
    use broker_wire::{Command as StoreCommand, EntityId, GeneratorWriter, Topic};
    let dir = std::env::temp_dir().join(format!("broker14-read-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("broker14_read");
    let built = Command::new("g++")
        .args(["-std=c++17", "-O1", "-o"])
        .arg(&exe)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/broker14_read.cc"
        ))
        .args([
            "-lbroker",
            "-lcaf_openssl",
            "-lcaf_io",
            "-lcaf_core",
            "-lssl",
            "-lcrypto",
            "-lpthread",
        ])
        .output()
        .expect("g++ runs (cargo xtask install)");
    assert!(
        built.status.success(),
        "building the Broker 1.4 reader failed (libbroker-dev, libcaf-dev installed?): {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let mut w = GeneratorWriter::new(1);
    let mut want = Vec::new();
    for (name, literal) in EXPECTED {
        let topic = Topic::new(format!("/vec/{name}")).unwrap();
        let value: Data = literal.parse().unwrap();
        w.write_data(&topic, &value).unwrap();
        // Broker 1.4 numbers types alphabetically.
        let v1 = [5, 1, 2, 4, 7, 9, 0, 10, 6, 13, 12, 3, 8, 11, 14][value.data_type() as usize];
        want.push(format!("data /vec/{name} {v1}"));
    }
    let store = Topic::new("rec/<$>/data/clone").unwrap();
    let p = EntityId::NIL;
    let key = Data::from("key");
    let commands = [
        (
            StoreCommand::Put {
                key: key.clone(),
                value: Data::Count(1),
                expiry: None,
                publisher: p,
            },
            1,
        ),
        (
            StoreCommand::PutUnique {
                key: key.clone(),
                value: Data::Count(1),
                expiry: None,
                who: p,
                req_id: 0,
                publisher: p,
            },
            2,
        ),
        (
            StoreCommand::Erase {
                key: key.clone(),
                publisher: p,
            },
            3,
        ),
        (
            StoreCommand::Add {
                key: key.clone(),
                value: Data::Count(1),
                init_type: broker_data::DataType::Count,
                expiry: None,
                publisher: p,
            },
            5,
        ),
        (
            StoreCommand::Subtract {
                key: key.clone(),
                value: Data::Count(1),
                expiry: None,
                publisher: p,
            },
            6,
        ),
        (StoreCommand::Clear { publisher: p }, 10),
    ];
    for (c, index) in commands {
        w.write_command(&store, &c).unwrap();
        want.push(format!("command rec/<$>/data/clone {index}"));
    }
    let file = dir.join("ours.dat");
    std::fs::write(&file, w.take()).unwrap();
    let out = Command::new(&exe).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "Broker 1.4 could not read our file: {text}"
    );
    let got: Vec<String> = text
        .lines()
        .map(|l| l.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(got, want);
}
