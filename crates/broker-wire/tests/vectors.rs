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
