//! Encode and decode of WebSocket data messages: a small Zeek event (what `broker bench`'s
//! WebSocket case sends) and a conn.log-like event of about 20 mixed fields.
#![allow(missing_docs)]

use std::hint::black_box;

use broker_data::zeek::Event;
use broker_data::Data;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn small_event() -> Data {
    Data::from(Event::new("ping", vec![Data::Count(42), Data::from("x")]))
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

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(1));
    for (name, value) in [("small_event", small_event()), ("conn_event", conn_event())] {
        let text = broker_json::data_message("/zeek/event", &value);
        g.bench_function(format!("encode_{name}"), |b| {
            let mut out = String::with_capacity(1024);
            b.iter(|| {
                out.clear();
                broker_json::write_data_message(
                    &mut out,
                    black_box("/zeek/event"),
                    black_box(&value),
                );
                black_box(out.len())
            })
        });
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| broker_json::parse_message(black_box(text.as_bytes())).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
