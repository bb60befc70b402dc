//! Fuzzes bus mode's input decoders: busrt frames from clients (with a size limit) and the
//! bridge's MessagePack → Broker value mapping (a decoded value re-encodes to bytes that
//! decode to the same value).
#![no_main]

use broker_bus::frame::{FrameReader, Read};
use broker_bus::msgpack;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let reader = FrameReader::new(1 << 16);
    let mut buf = BytesMut::from(input);
    while let Ok(Read::Frame(_) | Read::Ping) = reader.next(&mut buf) {}
    if let Ok(v) = msgpack::decode(input) {
        let again = msgpack::to_vec(&v);
        assert_eq!(msgpack::decode(&again).expect("re-encoding decodes"), v);
    }
});
