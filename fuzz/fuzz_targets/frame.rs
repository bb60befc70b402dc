//! Fuzzes the frame splitter and every message decoder on the frames it yields.
#![no_main]

use broker_wire::{Envelope, FrameDecoder, Handshake, InternalCommand, Limits};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let limits = Limits::default();
    let mut buf = BytesMut::from(input);
    let mut frames = FrameDecoder::new(1 << 16);
    while let Ok(Some(frame)) = frames.decode(&mut buf) {
        if let Ok(env) = Envelope::decode(&frame, &limits) {
            assert_eq!(Envelope::decode(&env.to_bytes(), &limits).expect("re-encoding decodes"), env);
        }
        if let Ok(h) = Handshake::decode(&frame) {
            // Compare values, not bytes: non-minimal varints are accepted (as Broker does) and
            // re-encode in their minimal form.
            let mut again = Vec::new();
            h.encode(&mut again);
            assert_eq!(Handshake::decode(&again).expect("re-encoding decodes"), h);
        }
        let _ = InternalCommand::decode(&frame, &limits);
    }
});
