//! Prints the vector blocks of `docs/protocol.md` as this implementation encodes them: a tool
//! for writing the document (`cargo xtask vectors`), never for checking it (the test
//! `tests/vectors.rs` checks the document against the code).

#[path = "../tests/support/vector_table.rs"]
#[allow(dead_code)]
mod vector_table;

use broker_data::Data;
use broker_wire::encode_data;
use vector_table::{encode_msg, hex, message, DATA_LITERALS, MESSAGE_NAMES};

fn main() {
    for lit in DATA_LITERALS {
        let d: Data = lit.parse().expect("the table's literals parse");
        let mut out = Vec::new();
        encode_data(&d, &mut out);
        println!("{lit} => {}", hex(&out));
    }
    for name in MESSAGE_NAMES {
        if let Some(m) = message(name) {
            println!("{name} => {}", hex(&encode_msg(&m)));
        }
    }
}
