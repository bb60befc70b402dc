//! The hex test vectors of `docs/protocol.md`, checked in both directions.
//!
//! The document is the source of truth: this test reads its ```` ```vectors ```` blocks, where
//! each line is `name => hex`. Data vectors are named by a `broker-data` literal; message
//! vectors by a name that `message` (in `support/vector_table.rs`) builds. `cargo xtask vectors`
//! prints the blocks as the implementation encodes them (for writing the document, never for
//! checking it).

#[path = "support/vector_table.rs"]
#[allow(dead_code)] // DATA_LITERALS: for the printer only
mod vector_table;

use broker_data::Data;
use broker_wire::{decode_data, encode_data, Envelope, Handshake, InternalCommand, Limits};
use bytes::Bytes;
use vector_table::{encode_msg, hex, message, Msg, MESSAGE_NAMES};

fn unhex(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex: {s}");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn vectors() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/protocol.md"
    ))
    .expect("docs/protocol.md is readable");
    let mut out = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        if line.trim() == "```vectors" {
            inside = true;
        } else if inside && line.trim() == "```" {
            inside = false;
        } else if inside && !line.trim().is_empty() {
            let (name, hex) = line
                .split_once("=>")
                .unwrap_or_else(|| panic!("bad vector line {line:?}"));
            out.push((name.trim().to_owned(), hex.trim().to_owned()));
        }
    }
    out
}

#[test]
fn document_vectors_hold_both_ways() {
    let vectors = vectors();
    let limits = Limits::default();
    let mut seen_types = std::collections::BTreeSet::new();
    let mut seen_messages = std::collections::BTreeSet::new();
    for (name, hexstr) in &vectors {
        let bytes = unhex(hexstr);
        if let Some(m) = message(name) {
            assert_eq!(hex(&encode_msg(&m)), hex(&bytes), "encoding of {name}");
            match m {
                Msg::Handshake(h) => {
                    assert_eq!(Handshake::decode(&bytes).unwrap(), h, "decoding of {name}")
                }
                Msg::Envelope(e) => assert_eq!(
                    Envelope::decode(&Bytes::from(bytes), &limits).unwrap(),
                    e,
                    "decoding of {name}"
                ),
                Msg::Command(c) => assert_eq!(
                    InternalCommand::decode(&bytes, &limits).unwrap(),
                    c,
                    "decoding of {name}"
                ),
            }
            seen_messages.insert(name.clone());
        } else {
            let d: Data = name.parse().unwrap_or_else(|e| {
                panic!("vector {name:?} is neither a message nor a literal: {e}")
            });
            let mut out = Vec::new();
            encode_data(&d, &mut out);
            assert_eq!(hex(&out), hex(&bytes), "encoding of {name}");
            let back = decode_data(&bytes, &limits).unwrap();
            assert_eq!(
                back.literal().to_string(),
                d.literal().to_string(),
                "decoding of {name}"
            );
            seen_types.insert(d.data_type());
        }
    }
    assert_eq!(
        seen_types.len(),
        15,
        "every data type has a vector: {seen_types:?}"
    );
    for name in MESSAGE_NAMES {
        assert!(
            seen_messages.contains(*name),
            "docs/protocol.md has no vector for {name}"
        );
    }
}

/// The command a generator vector names, with the document's key and value.
fn generator_command(name: &str) -> broker_wire::Command {
    use broker_wire::{Command, EntityId};
    let key = Data::from("foo");
    let value = Data::Count(1);
    let p = EntityId::NIL;
    match name {
        "put" => Command::Put {
            key,
            value,
            expiry: None,
            publisher: p,
        },
        "add" => Command::Add {
            key,
            value,
            init_type: broker_data::DataType::Count,
            expiry: None,
            publisher: p,
        },
        "erase" => Command::Erase { key, publisher: p },
        "clear" => Command::Clear { publisher: p },
        "nack" => Command::Nack {
            seqs: vec![1, 2, 3],
        },
        "ack_clone" => Command::AckClone {
            offset: 7,
            heartbeat_interval: 1,
            state: [(key, value)].into_iter().collect(),
        },
        other => panic!("no generator command {other:?}"),
    }
}

#[test]
fn generator_file_vectors_hold_both_ways() {
    use broker_wire::{GeneratorEntry, GeneratorReader, GeneratorWriter, Topic};
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/protocol.md"
    ))
    .expect("docs/protocol.md is readable");
    let block = doc
        .split("```generator\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/protocol.md has a generator block");
    let t = Topic::new("t").unwrap();
    let mut seen = 0;
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (name, hexstr) = line.split_once("=>").expect("name => hex");
        let (head, arg) = name.trim().split_once(": ").expect("vN kind: arg");
        let (version, kind) = head.split_once(' ').expect("vN kind");
        let version: u8 = version.trim_start_matches('v').parse().unwrap();
        let bytes = unhex(hexstr);
        let mut w = GeneratorWriter::new(version);
        match kind {
            "data" => w.write_data(&t, &arg.parse().unwrap()).unwrap(),
            "command" => w.write_command(&t, &generator_command(arg)).unwrap(),
            other => panic!("bad kind {other}"),
        }
        assert_eq!(hex(&w.take()), hex(&bytes), "writing {name}");
        // Reading makes up content of the same shape: writing it again gives the vector back.
        let entries: Vec<GeneratorEntry> = GeneratorReader::new(&bytes)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("reading {name}: {e}"));
        assert_eq!(entries.len(), 1, "{name}");
        let mut again = GeneratorWriter::new(version);
        match &entries[0] {
            GeneratorEntry::Data { topic, data } => again.write_data(topic, data).unwrap(),
            GeneratorEntry::Command { topic, command } => {
                assert_eq!(command.name(), arg, "{name}");
                again.write_command(topic, command).unwrap()
            }
        }
        assert_eq!(hex(&again.take()), hex(&bytes), "reading {name}");
        seen += 1;
    }
    assert!(seen >= 18, "the document's generator vectors: {seen}");
}
