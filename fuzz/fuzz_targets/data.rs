//! Fuzzes the bin v1 data decoder: it must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same value.
#![no_main]

use broker_wire::{decode_data, encode_data, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let limits = Limits::default();
    if let Ok(d) = decode_data(input, &limits) {
        let mut again = Vec::new();
        encode_data(&d, &mut again);
        assert_eq!(decode_data(&again, &limits).expect("re-encoding decodes"), d);
    }
});
