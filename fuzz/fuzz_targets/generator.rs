//! Generator files (`messages.dat`): any bytes read to the end or to an error, never a panic,
//! never more made-up content than the limits allow; what was read writes back.
#![no_main]

use broker_wire::{GeneratorEntry, GeneratorLimits, GeneratorReader, GeneratorWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let limits = GeneratorLimits {
        max_entry_size: 1 << 16,
        max_depth: 32,
    };
    let Ok(reader) = GeneratorReader::with_limits(bytes, limits) else {
        return;
    };
    let mut w = GeneratorWriter::new(reader.version());
    for entry in reader.take(10_000) {
        match entry {
            Ok(GeneratorEntry::Data { topic, data }) => w.write_data(&topic, &data).unwrap(),
            Ok(GeneratorEntry::Command { topic, command }) => {
                // Version 1 cannot hold every command a version-1 file turns into.
                let _ = w.write_command(&topic, &command);
            }
            Err(_) => break,
        }
    }
});
