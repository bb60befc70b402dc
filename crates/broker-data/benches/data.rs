//! Clone, compare, hash and display of a conn.log-like record and of a 10,000-entry table.
#![allow(missing_docs)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::hint::black_box;

use broker_data::{Data, Table};
use criterion::{criterion_group, criterion_main, Criterion};

/// A vector shaped like a conn.log record: about 20 mixed fields.
fn conn_record(i: u64) -> Data {
    format!(
        r#"(@{i}s, "C{i:016x}", 10.0.{}.{}, 49152/tcp, 192.168.1.1, 443/tcp, enum("tcp"), "ssl",
            1.5ms, {}, 4321, "SF", T, F, 0, "ShADadFf", 12, 1240, 10, 5230, {{"tun1", "tun2"}})"#,
        i % 256,
        (i / 256) % 256,
        100 + i,
    )
    .parse()
    .expect("benchmark record parses")
}

fn big_table() -> Data {
    let t: Table = (0..10_000u64)
        .map(|i| (Data::from(format!("key-{i:05}")), conn_record(i)))
        .collect();
    Data::Table(t)
}

fn hash(d: &Data) -> u64 {
    let mut h = DefaultHasher::new();
    d.hash(&mut h);
    h.finish()
}

fn bench(c: &mut Criterion) {
    let rec = conn_record(42);
    let rec2 = conn_record(42);
    let table = big_table();
    let table2 = table.clone();

    let mut g = c.benchmark_group("conn_record");
    g.bench_function("clone", |b| b.iter(|| black_box(&rec).clone()));
    g.bench_function("compare", |b| {
        b.iter(|| black_box(&rec).cmp(black_box(&rec2)))
    });
    g.bench_function("hash", |b| b.iter(|| hash(black_box(&rec))));
    g.bench_function("display", |b| b.iter(|| black_box(&rec).to_string()));
    g.bench_function("literal", |b| {
        b.iter(|| black_box(&rec).literal().to_string())
    });
    let lit = rec.literal().to_string();
    g.bench_function("parse", |b| {
        b.iter(|| black_box(&lit).parse::<Data>().unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("table_10k");
    g.sample_size(20);
    g.bench_function("clone", |b| b.iter(|| black_box(&table).clone()));
    g.bench_function("compare", |b| {
        b.iter(|| black_box(&table).cmp(black_box(&table2)))
    });
    g.bench_function("hash", |b| b.iter(|| hash(black_box(&table))));
    g.bench_function("display", |b| b.iter(|| black_box(&table).to_string()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
