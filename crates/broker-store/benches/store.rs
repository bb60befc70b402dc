//! The store engine with the memory backend, no I/O: master puts and gets, and a put applied at
//! a clone (master → clone command path, no network).
#![allow(missing_docs)]

use broker_backend_memory::MemoryBackend;
use broker_data::{Data, Timestamp};
use broker_store::{Clone, CloneConfig, Master, Output, Query, StoreConfig};
use broker_wire::{Command, EndpointId, EntityId};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn id(n: u8) -> EntityId {
    EntityId {
        endpoint: EndpointId::from_bytes([n; 16]),
        object: u64::from(n),
    }
}

fn put(i: u64) -> Command {
    Command::Put {
        key: Data::Count(i % 100_000),
        value: Data::Count(i),
        expiry: None,
        publisher: id(1),
    }
}

fn bench(c: &mut Criterion) {
    let now = Timestamp::from_nanos(0);
    let mut g = c.benchmark_group("master");
    g.throughput(Throughput::Elements(1));
    let mut m = Master::new(
        "b",
        id(1),
        MemoryBackend::new(),
        StoreConfig::default(),
        now,
    )
    .unwrap();
    m.set_emit_events(false);
    let mut i = 0u64;
    g.bench_function("put", |b| {
        b.iter(|| {
            i += 1;
            m.mutate(now, put(i));
        })
    });
    g.bench_function("get", |b| {
        b.iter(|| {
            i += 1;
            m.query(now, i, Query::Get(Data::Count(i % 100_000)));
            m.poll_output()
        })
    });
    // With one clone attached: every put is also broadcast and kept until acknowledged.
    let mut m = Master::new(
        "b",
        id(1),
        MemoryBackend::new(),
        StoreConfig::default(),
        now,
    )
    .unwrap();
    m.set_emit_events(false);
    let mut cl = Clone::new("b", id(2), CloneConfig::default(), now);
    cl.set_emit_events(false);
    let pump = |m: &mut Master<MemoryBackend>, cl: &mut Clone| {
        let mut moved = true;
        while moved {
            moved = false;
            while let Some(o) = m.poll_output() {
                if let Output::Command { command, topic, .. } = o {
                    if topic.as_str().ends_with("clone") {
                        cl.handle_command(now, (*command).clone());
                        moved = true;
                    }
                }
            }
            while let Some(o) = cl.poll_output() {
                if let Output::Command { command, .. } = o {
                    m.handle_command(now, (*command).clone());
                    moved = true;
                }
            }
        }
    };
    pump(&mut m, &mut cl);
    assert!(cl.synced());
    g.throughput(Throughput::Elements(64));
    g.bench_function("put_replicated_to_clone", |b| {
        b.iter_batched(
            || (),
            |_| {
                for _ in 0..64 {
                    i += 1;
                    m.mutate(now, put(i));
                }
                pump(&mut m, &mut cl);
                m.handle_command(
                    now,
                    broker_wire::InternalCommand {
                        seq: 0,
                        sender: id(2),
                        receiver: id(1),
                        content: Command::CumulativeAck { seq: u64::MAX },
                    },
                );
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
