//! The SQLite backend alone: puts in batches of 1,000 per commit (as the store engine groups
//! them), and gets.
#![allow(missing_docs)]

use broker_backend::Backend;
use broker_backend_sqlite::{SqliteBackend, SqliteOptions};
use broker_data::Data;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sqlite-bench-{}", std::process::id()));
    let mut b = SqliteBackend::open(&SqliteOptions::new(dir.join("b.sqlite"))).unwrap();
    let mut g = c.benchmark_group("sqlite");
    g.throughput(Throughput::Elements(1_000));
    let mut i = 0u64;
    g.bench_function("put_1000_then_commit", |bench| {
        bench.iter(|| {
            for _ in 0..1_000 {
                i += 1;
                b.put(&Data::Count(i % 100_000), &Data::Count(i), None)
                    .unwrap();
            }
            b.flush().unwrap();
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("get", |bench| {
        bench.iter(|| {
            i += 1;
            b.get(&Data::Count(i % 100_000)).unwrap()
        })
    });
    g.finish();
    drop(b);
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
