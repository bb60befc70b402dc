//! Encode and decode of a one-count message, a conn.log-like Zeek event (about 20 mixed fields)
//! and a 1 MB table, each as a complete envelope (frame body); and of a stream of 64 counts
//! between broker-rs endpoints, as 64 `routed_data` frames and as one `routed_batch` frame
//! (per-value figures: criterion's element throughput).
#![allow(missing_docs)]

use std::hint::black_box;

use broker_data::zeek::Event;
use broker_data::{Data, SharedData, Table};
use broker_wire::{
    encode_envelope, encode_frame, encode_routed_batch, EndpointId, Envelope, FrameDecoder, Limits,
    Payload, PayloadRef, Topic,
};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn envelope(topic: &str, d: Data) -> Envelope {
    Envelope {
        sender: EndpointId::from_bytes([7; 16]),
        receiver: EndpointId::NIL,
        ttl: 20,
        topic: Topic::new(topic).unwrap(),
        payload: Payload::Data(d),
    }
}

fn conn_event() -> Data {
    let args: Data = r#"((2023-11-14T22:13:20.5Z, "CHhAvVGS1DHFjwGM9", (10.0.0.1, 49152/tcp, 192.168.1.1, 443/tcp),
        tcp, "ssl", 1.5ms, 4321, 5230, "SF", T, F, 0, "ShADadFf", 12, 1240, 10, 5230, {"tun1"}, "3c:22:fb:00:00:01", nil))"#
        .parse()
        .unwrap();
    let Data::Vector(args) = args else {
        unreachable!()
    };
    Data::from(Event::new("Conn::log_conn", args).with_timestamp(
        broker_data::Timestamp::from_nanos(1_700_000_000_500_000_000),
    ))
}

fn megabyte_table() -> Data {
    let t: Table = (0..20_000u64)
        .map(|i| {
            (
                Data::from(format!("host-{i:06}")),
                Data::from(vec![
                    Data::from(i),
                    Data::from(i as f64 * 0.5),
                    Data::from("value-0123456789"),
                ]),
            )
        })
        .collect();
    Data::Table(t)
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let cases = [
        ("one_count", envelope("/test", Data::Count(42))),
        ("conn_event", envelope("zeek/logs/conn", conn_event())),
        ("table_1mb", envelope("/table", megabyte_table())),
    ];
    for (name, env) in cases {
        let bytes = env.to_bytes();
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        if bytes.len() > 100_000 {
            g.sample_size(20);
        }
        println!("{name}: {} bytes per frame", bytes.len());
        let mut buf = BytesMut::with_capacity(bytes.len() * 2);
        g.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                black_box(&env).encode(&mut buf);
            })
        });
        // `iter_with_large_drop` keeps freeing the decoded value out of the measurement;
        // `decode_and_drop` is the whole cost of a message that is decoded and discarded.
        g.bench_function("decode", |b| {
            b.iter_with_large_drop(|| Envelope::decode(black_box(&bytes), &limits).unwrap())
        });
        g.bench_function("decode_and_drop", |b| {
            b.iter(|| Envelope::decode(black_box(&bytes), &limits).unwrap())
        });
        let copy: Bytes = bytes.clone();
        g.bench_function("decode_header_only", |b| {
            b.iter(|| broker_wire::RawEnvelope::decode(black_box(&copy)).unwrap())
        });
        g.finish();
    }
}

/// 64 counts on one topic from one origin, framed both ways: encode, and split and decode.
fn stream(c: &mut Criterion) {
    const N: usize = 64;
    let limits = Limits::default();
    let id = EndpointId::from_bytes([7; 16]);
    let topic = Topic::new("/bench/data").unwrap();
    let values: Vec<SharedData> = (0..N as u64).map(|i| Data::Count(i).into()).collect();
    let singles = |out: &mut BytesMut| {
        for (i, v) in values.iter().enumerate() {
            let payload = PayloadRef::RoutedData {
                origin: id,
                seq: i as u64,
                data: v,
            };
            encode_frame(out, |b| {
                encode_envelope(b, id, EndpointId::NIL, 20, &topic, payload)
            })
            .unwrap();
        }
    };
    let batch = |out: &mut BytesMut| {
        encode_routed_batch(
            out,
            id,
            EndpointId::NIL,
            20,
            &topic,
            id,
            0,
            &values,
            1 << 16,
        )
        .unwrap();
    };
    let mut g = c.benchmark_group("stream_64_counts");
    g.throughput(Throughput::Elements(N as u64));
    for (name, encode) in [
        ("routed_data", &singles as &dyn Fn(&mut BytesMut)),
        ("routed_batch", &batch),
    ] {
        let mut wire = BytesMut::new();
        encode(&mut wire);
        println!(
            "{name}: {:.1} bytes per value",
            wire.len() as f64 / N as f64
        );
        let wire = wire.freeze();
        let mut buf = BytesMut::with_capacity(wire.len() * 2);
        g.bench_function(format!("{name}/encode"), |b| {
            b.iter(|| {
                buf.clear();
                encode(black_box(&mut buf));
            })
        });
        g.bench_function(format!("{name}/decode_and_drop"), |b| {
            b.iter(|| {
                let mut input = BytesMut::from(&wire[..]);
                let mut frames = FrameDecoder::new(limits.max_frame_len);
                while let Some(frame) = frames.decode(&mut input).unwrap() {
                    black_box(Envelope::decode(&frame, &limits).unwrap());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, stream);
criterion_main!(benches);
