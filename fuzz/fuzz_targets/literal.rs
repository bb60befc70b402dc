//! Fuzzes the literal parser (`broker publish` values, files): it must never panic, and
//! whatever it accepts must print as a literal that parses back to the same value.
#![no_main]

use broker_data::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(d) = text.parse::<Data>() {
        let lit = d.literal().to_string();
        let back: Data = lit.parse().expect("a printed literal parses");
        assert_eq!(back, d);
    }
});
