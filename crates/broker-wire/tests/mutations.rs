//! Feeds a few hundred thousand random and mutated inputs, from a fixed seed, to every decoder.
//!
//! Each decoder must return (never panic), a successful decode must re-encode to something that
//! decodes to the same value, and the memory a decode allocates must stay proportional to its
//! input: this binary counts allocations with a wrapping global allocator, which is why it is
//! the one place in the workspace that allows `unsafe`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use broker_data::arbitrary::data;
use broker_data::{DataType, Timespan};
use broker_wire::{
    bye_token, decode_data, encode_data, encode_frame, Command, EndpointId, EntityId, Envelope,
    FrameDecoder, Handshake, InternalCommand, Limits, Payload, Topic, MAGIC,
};
use bytes::{Bytes, BytesMut};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// xorshift64*: a small deterministic generator, so a failure reproduces from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEED: u64 = 0x5a45_454b_b10c_c0de;
const ROUNDS: usize = 300_000;

/// Valid encodings for each decoder: 0 data, 1 envelope, 2 store command, 3 handshake,
/// 4 a stream of length-prefixed frames.
fn corpus() -> Vec<(usize, Vec<u8>)> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = data();
    let mut value = move || {
        strategy
            .new_tree(&mut runner)
            .expect("strategy generates")
            .current()
    };
    let id = EndpointId::from_bytes([0xaa; 16]);
    let entity = EntityId {
        endpoint: id,
        object: 3,
    };
    let mut out = Vec::new();
    for i in 0..200u64 {
        let mut d = Vec::new();
        encode_data(&value(), &mut d);
        out.push((0, d));
        let payload = match i % 3 {
            0 => Payload::Data(value()),
            1 => Payload::RoutingUpdate(vec![
                Topic::new("a/b").unwrap(),
                Topic::new("zeek").unwrap(),
            ]),
            _ => Payload::Ping(bye_token(i)),
        };
        let env = Envelope {
            sender: id,
            receiver: EndpointId::NIL,
            ttl: 20,
            topic: Topic::new("topic/x").unwrap(),
            payload,
        };
        out.push((1, env.to_bytes().to_vec()));
        let content = match i % 4 {
            0 => Command::Put {
                key: value(),
                value: value(),
                expiry: Some(Timespan::from_nanos(5)),
                publisher: entity,
            },
            1 => Command::Add {
                key: value(),
                value: value(),
                init_type: DataType::Set,
                expiry: None,
                publisher: entity,
            },
            2 => Command::Nack {
                seqs: vec![1, 2, i],
            },
            _ => Command::AckClone {
                offset: i,
                heartbeat_interval: 5,
                state: [(value(), value())].into_iter().collect(),
            },
        };
        let mut c = Vec::new();
        InternalCommand {
            seq: i,
            sender: entity,
            receiver: entity,
            content,
        }
        .encode(&mut c);
        out.push((2, c));
        let h = match i % 3 {
            0 => Handshake::hello(id, 1, 1),
            1 => Handshake::OriginatorSyn {
                filter: vec![Topic::new("zeek/").unwrap()],
            },
            _ => Handshake::DropConn {
                magic: MAGIC,
                sender: id,
                code: 8,
                description: Bytes::from_static(b"bye"),
            },
        };
        let mut hb = Vec::new();
        h.encode(&mut hb);
        out.push((3, hb));
        let mut frames = BytesMut::new();
        for _ in 0..3 {
            encode_frame(&mut frames, |b| b.extend_from_slice(&env.to_bytes())).unwrap();
        }
        out.push((4, frames.to_vec()));
    }
    out
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0e, 0x0c, 0x0d][rng.below(8)];
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            4 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(16)).min(v.len());
                let chunk = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            5 if !v.is_empty() => {
                // Smash a would-be length field.
                let i = rng.below(v.len());
                for b in v.iter_mut().skip(i).take(5) {
                    *b = 0xff;
                }
            }
            6 => v = (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            _ => v.extend((0..rng.below(8)).map(|_| rng.next() as u8)),
        }
    }
    v
}

/// Runs `f` and returns how many bytes it allocated at its peak beyond what was live before.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

#[test]
fn decoders_survive_random_and_mutated_input() {
    let corpus = corpus();
    let limits = Limits::default();
    let mut rng = Rng(SEED);
    let mut decoded = [0usize; 5];
    let mut worst_ratio = 0.0f64;
    for round in 0..ROUNDS {
        let (kind, seed) = &corpus[rng.below(corpus.len())];
        let (kind, input) = (*kind, mutate(&mut rng, seed));
        let mut ok = false;
        let peak = peak_during(|| match kind {
            0 => {
                if let Ok(d) = decode_data(&input, &limits) {
                    let mut again = Vec::new();
                    encode_data(&d, &mut again);
                    let back = decode_data(&again, &limits).expect("re-encoded data decodes");
                    assert_eq!(back, d, "round {round}");
                    ok = true;
                }
            }
            1 => {
                if let Ok(env) = Envelope::decode(&Bytes::from(input.clone()), &limits) {
                    assert_eq!(
                        Envelope::decode(&env.to_bytes(), &limits).unwrap(),
                        env,
                        "round {round}"
                    );
                    ok = true;
                }
            }
            2 => {
                if let Ok(c) = InternalCommand::decode(&input, &limits) {
                    let mut again = Vec::new();
                    c.encode(&mut again);
                    assert_eq!(
                        InternalCommand::decode(&again, &limits).unwrap(),
                        c,
                        "round {round}"
                    );
                    ok = true;
                }
            }
            3 => {
                if let Ok(h) = Handshake::decode(&input) {
                    let mut again = Vec::new();
                    h.encode(&mut again);
                    assert_eq!(Handshake::decode(&again).unwrap(), h, "round {round}");
                    ok = true;
                }
            }
            _ => {
                let mut buf = BytesMut::from(&input[..]);
                let mut dec = FrameDecoder::new(1024);
                while let Ok(Some(frame)) = dec.decode(&mut buf) {
                    ok |= Envelope::decode(&frame, &limits).is_ok();
                }
            }
        });
        decoded[kind] += usize::from(ok);
        // A decoded value costs at most ~100 bytes of memory per input byte (40-byte values in a
        // vector plus a B-tree for sets), never anything an input's length fields claim.
        let budget = 128 * input.len() + 4096;
        assert!(
            peak <= budget,
            "round {round}: {peak} bytes allocated for a {}-byte input (seed {SEED:#x})",
            input.len()
        );
        worst_ratio = worst_ratio.max(peak as f64 / (input.len() + 1) as f64);
    }
    println!("decoded successfully per decoder: {decoded:?}; worst allocation {worst_ratio:.1} bytes per input byte");
    // The mutations must leave enough inputs valid to exercise the success paths too.
    assert!(
        decoded.iter().all(|&n| n > 1000),
        "too few successful decodes: {decoded:?}"
    );
}
