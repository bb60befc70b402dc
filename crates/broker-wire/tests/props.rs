//! Round-trip property tests for data, envelopes, handshake messages and store commands, plus
//! a table of hostile inputs and the error each must produce.

use broker_data::arbitrary::data;
use broker_data::{Data, DataType, Timespan};
use broker_wire::{
    decode_data, decode_data_shared, encode_data, encoded_data_len, Command, EndpointId, EntityId,
    Envelope, GeneratorEntry, GeneratorReader, GeneratorWriter, Handshake, InternalCommand, Limits,
    LinkState, Payload, RawEnvelope, Topic, WireError,
};
use bytes::Bytes;
use proptest::prelude::*;

fn endpoint() -> impl Strategy<Value = EndpointId> {
    prop_oneof![
        Just(EndpointId::NIL),
        any::<[u8; 16]>().prop_map(EndpointId::from_bytes)
    ]
}

fn entity() -> impl Strategy<Value = EntityId> {
    (endpoint(), any::<u64>()).prop_map(|(endpoint, object)| EntityId { endpoint, object })
}

fn topic() -> impl Strategy<Value = Topic> {
    "\\PC{0,24}".prop_map(|s| Topic::new(s).unwrap())
}

fn expiry() -> impl Strategy<Value = Option<Timespan>> {
    prop::option::of(any::<i64>().prop_map(Timespan::from_nanos))
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (data(), data(), expiry(), entity()).prop_map(|(key, value, expiry, publisher)| {
            Command::Put {
                key,
                value,
                expiry,
                publisher,
            }
        }),
        (data(), data(), expiry(), entity(), any::<u64>(), entity()).prop_map(
            |(key, value, expiry, who, req_id, publisher)| Command::PutUnique {
                key,
                value,
                expiry,
                who,
                req_id,
                publisher
            }
        ),
        (any::<bool>(), entity(), any::<u64>(), entity()).prop_map(
            |(inserted, who, req_id, publisher)| Command::PutUniqueResult {
                inserted,
                who,
                req_id,
                publisher
            }
        ),
        (data(), entity()).prop_map(|(key, publisher)| Command::Erase { key, publisher }),
        (data(), entity()).prop_map(|(key, publisher)| Command::Expire { key, publisher }),
        (data(), data(), 0u8..15, expiry(), entity()).prop_map(
            |(key, value, t, expiry, publisher)| Command::Add {
                key,
                value,
                init_type: DataType::from_tag(t).unwrap(),
                expiry,
                publisher
            }
        ),
        (data(), data(), expiry(), entity()).prop_map(|(key, value, expiry, publisher)| {
            Command::Subtract {
                key,
                value,
                expiry,
                publisher,
            }
        }),
        entity().prop_map(|publisher| Command::Clear { publisher }),
        (any::<u64>(), any::<u16>()).prop_map(|(offset, heartbeat_interval)| {
            Command::AttachWriter {
                offset,
                heartbeat_interval,
            }
        }),
        any::<u64>().prop_map(|seq| Command::Keepalive { seq }),
        any::<u64>().prop_map(|seq| Command::CumulativeAck { seq }),
        prop::collection::vec(any::<u64>(), 0..8).prop_map(|seqs| Command::Nack { seqs }),
        (
            any::<u64>(),
            any::<u16>(),
            prop::collection::btree_map(data(), data(), 0..4)
        )
            .prop_map(|(offset, heartbeat_interval, state)| Command::AckClone {
                offset,
                heartbeat_interval,
                state
            }),
        any::<u64>().prop_map(|seq| Command::RetransmitFailed { seq }),
    ]
}

fn internal_command() -> impl Strategy<Value = InternalCommand> {
    (any::<u64>(), entity(), entity(), command()).prop_map(|(seq, sender, receiver, content)| {
        InternalCommand {
            seq,
            sender,
            receiver,
            content,
        }
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        data().prop_map(Payload::Data),
        internal_command().prop_map(Payload::Command),
        prop::collection::vec(topic(), 0..5).prop_map(Payload::RoutingUpdate),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| Payload::Ping(b.into())),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| Payload::Pong(b.into())),
        (endpoint(), any::<u64>(), data()).prop_map(|(origin, seq, data)| Payload::RoutedData {
            origin,
            seq,
            data
        }),
        (endpoint(), any::<u64>(), internal_command()).prop_map(|(origin, seq, command)| {
            Payload::RoutedCommand {
                origin,
                seq,
                command,
            }
        }),
        link_state().prop_map(Payload::LinkState),
    ]
}

fn filter() -> impl Strategy<Value = Vec<Topic>> {
    prop::collection::vec(topic(), 0..4)
}

fn link_state() -> impl Strategy<Value = LinkState> {
    (
        endpoint(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        prop::collection::vec(endpoint(), 0..4),
        filter(),
        prop::collection::vec((endpoint(), filter()), 0..3),
    )
        .prop_map(
            |(origin, incarnation, version, forwarding, neighbors, filter, stubs)| LinkState {
                origin,
                incarnation,
                version,
                forwarding,
                neighbors,
                filter,
                stubs,
            },
        )
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (endpoint(), endpoint(), any::<u16>(), topic(), payload()).prop_map(
        |(sender, receiver, ttl, topic, payload)| Envelope {
            sender,
            receiver,
            ttl,
            topic,
            payload,
        },
    )
}

fn handshake() -> impl Strategy<Value = Handshake> {
    prop_oneof![
        (any::<u32>(), endpoint(), any::<u8>(), any::<u8>()).prop_map(
            |(magic, sender, min_version, max_version)| Handshake::Hello {
                magic,
                sender,
                min_version,
                max_version
            }
        ),
        any::<u32>().prop_map(|magic| Handshake::Probe { magic }),
        (any::<u32>(), endpoint(), any::<u8>()).prop_map(|(magic, sender, version)| {
            Handshake::VersionSelect {
                magic,
                sender,
                version,
            }
        }),
        (
            any::<u32>(),
            endpoint(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(magic, sender, code, d)| Handshake::DropConn {
                magic,
                sender,
                code,
                description: d.into()
            }),
        prop::collection::vec(topic(), 0..5).prop_map(|filter| Handshake::OriginatorSyn { filter }),
        prop::collection::vec(topic(), 0..5)
            .prop_map(|filter| Handshake::ResponderSynAck { filter }),
        Just(Handshake::OriginatorAck),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn data_round_trips(d in data()) {
        let mut buf = Vec::new();
        encode_data(&d, &mut buf);
        prop_assert_eq!(buf.len(), encoded_data_len(&d));
        let back = decode_data(&buf, &Limits::default()).unwrap();
        // Bit-exact, beyond `Eq` (which equates -0.0 and 0.0).
        prop_assert_eq!(back.literal().to_string(), d.literal().to_string());
        let shared = decode_data_shared(&Bytes::from(buf), &Limits::default()).unwrap();
        prop_assert_eq!(shared, d);
    }

    #[test]
    fn envelopes_round_trip(e in envelope()) {
        let bytes = e.to_bytes();
        prop_assert_eq!(&Envelope::decode(&bytes, &Limits::default()).unwrap(), &e);
        let raw = RawEnvelope::decode(&bytes).unwrap();
        let mut again = Vec::new();
        raw.encode(&mut again);
        prop_assert_eq!(&again[..], &bytes[..]);
    }

    #[test]
    fn handshakes_round_trip(h in handshake()) {
        let mut buf = Vec::new();
        h.encode(&mut buf);
        prop_assert_eq!(Handshake::decode(&buf).unwrap(), h);
    }

    #[test]
    fn commands_round_trip(c in internal_command()) {
        let mut buf = Vec::new();
        c.encode(&mut buf);
        prop_assert_eq!(InternalCommand::decode(&buf, &Limits::default()).unwrap(), c);
    }

    /// A generator file read back holds entries of exactly the recorded shapes (types,
    /// lengths, sizes; set and table members in any order), in both versions.
    #[test]
    fn generator_files_keep_every_shape(
        entries in prop::collection::vec((topic(), prop::option::of(command()), data()), 0..12),
        version in 1u8..=2,
    ) {
        let mut w = GeneratorWriter::new(version);
        let mut written = Vec::new();
        for (t, c, d) in &entries {
            match c {
                Some(c) => match w.write_command(t, c) {
                    Ok(()) => written.push((t.clone(), command_shape(c))),
                    // Version 1 holds only Broker 2.0's mutations.
                    Err(e) => prop_assert!(
                        version == 1
                            && (!c.is_action() || matches!(c, Command::PutUniqueResult { .. })),
                        "{}", e
                    ),
                },
                None => {
                    w.write_data(t, d).unwrap();
                    written.push((t.clone(), canonical_shape(d)));
                }
            }
        }
        let bytes = w.take();
        let mut read = Vec::new();
        for e in GeneratorReader::new(&bytes).unwrap() {
            read.push(match e.unwrap() {
                GeneratorEntry::Data { topic, data } => (topic, canonical_shape(&data)),
                GeneratorEntry::Command { topic, command } => (topic, command_shape(&command)),
            });
        }
        prop_assert_eq!(read, written);
    }
}

/// A value's shape as a generator file keeps it: types, lengths and sizes, with set and table
/// members sorted by their shapes (their order follows the values, which are made up).
fn canonical_shape(d: &Data) -> String {
    match d {
        Data::String(s) => format!("s{}", s.len()),
        Data::EnumValue(e) => format!("e{}", e.0.len()),
        Data::Vector(xs) => {
            let inner: Vec<String> = xs.iter().map(canonical_shape).collect();
            format!("v[{}]", inner.join(","))
        }
        Data::Set(xs) => {
            let mut inner: Vec<String> = xs.iter().map(canonical_shape).collect();
            inner.sort();
            format!("S[{}]", inner.join(","))
        }
        Data::Table(xs) => {
            let mut inner: Vec<String> = xs
                .iter()
                .map(|(k, v)| format!("{}:{}", canonical_shape(k), canonical_shape(v)))
                .collect();
            inner.sort();
            format!("T[{}]", inner.join(","))
        }
        other => format!("{:?}", other.data_type()),
    }
}

/// A command's kind and the shapes of its key and value, as a generator file keeps them.
fn command_shape(c: &Command) -> String {
    match c {
        Command::Put { key, value, .. }
        | Command::PutUnique { key, value, .. }
        | Command::Add { key, value, .. }
        | Command::Subtract { key, value, .. } => {
            format!(
                "{}({},{})",
                c.name(),
                canonical_shape(key),
                canonical_shape(value)
            )
        }
        Command::Erase { key, .. } | Command::Expire { key, .. } => {
            format!("{}({})", c.name(), canonical_shape(key))
        }
        Command::Nack { seqs } => format!("nack({})", seqs.len()),
        other => other.name().to_owned(),
    }
}

fn nested_vectors(depth: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..depth {
        v.extend_from_slice(&[0x0e, 0x01]);
    }
    v.push(0x00);
    v
}

/// A hostile input's name, its bytes, and a check of the error it must give.
type HostileCase = (&'static str, Vec<u8>, fn(&WireError) -> bool);

#[test]
fn hostile_data_gives_typed_errors() {
    let limits = Limits::default();
    let cases: Vec<HostileCase> = vec![
        ("empty", vec![], |e| {
            matches!(e, WireError::Truncated { .. })
        }),
        ("truncated count", vec![0x02, 0, 0], |e| {
            matches!(e, WireError::Truncated { .. })
        }),
        ("string longer than input", vec![0x05, 0x10, b'a'], |e| {
            matches!(e, WireError::LengthBeyondInput { .. })
        }),
        (
            "vector of 2^32-1 elements",
            vec![0x0e, 0xff, 0xff, 0xff, 0xff, 0x0f],
            |e| matches!(e, WireError::LengthBeyondInput { .. }),
        ),
        (
            "table of 3 pairs in 5 bytes",
            vec![0x0d, 0x03, 0, 0, 0, 0, 0],
            |e| matches!(e, WireError::LengthBeyondInput { .. }),
        ),
        (
            "varint of 11 bytes",
            [&[0x05u8][..], &[0x80; 10], &[0x00]].concat(),
            |e| matches!(e, WireError::VarintTooLong),
        ),
        (
            "varint beyond 64 bits",
            [&[0x05u8][..], &[0xff; 9], &[0x7f]].concat(),
            |e| matches!(e, WireError::VarintOverflow),
        ),
        ("nesting 65 deep", nested_vectors(65), |e| {
            matches!(e, WireError::TooDeep { max: 64 })
        }),
        ("unknown tag", vec![0x0f], |e| {
            matches!(e, WireError::UnknownDataTag(15))
        }),
        ("trailing bytes", vec![0x00, 0x00], |e| {
            matches!(e, WireError::TrailingBytes(1))
        }),
        (
            "address of 15 bytes",
            [&[0x06u8][..], &[0; 15]].concat(),
            |e| matches!(e, WireError::Truncated { .. }),
        ),
        (
            "subnet without length",
            [&[0x07u8][..], &[0; 16]].concat(),
            |e| matches!(e, WireError::Truncated { .. }),
        ),
        (
            "prefix length 129",
            [&[0x07u8][..], &[0; 16], &[129]].concat(),
            |e| matches!(e, WireError::InvalidPrefixLength(129)),
        ),
        ("port protocol 4", vec![0x08, 0, 80, 4], |e| {
            matches!(e, WireError::UnknownProtocol(4))
        }),
        ("duplicate set element", vec![0x0c, 0x02, 0x00, 0x00], |e| {
            matches!(e, WireError::Duplicate("element", "set"))
        }),
        (
            "duplicate table key",
            vec![0x0d, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01],
            |e| matches!(e, WireError::Duplicate("key", "table")),
        ),
    ];
    for (name, bytes, expected) in cases {
        let err = decode_data(&bytes, &limits).expect_err(name);
        assert!(expected(&err), "{name}: got {err:?}");
    }
    // 64 deep is fine; unsorted sets are accepted and sorted.
    assert_eq!(
        decode_data(&nested_vectors(64), &limits).unwrap().depth(),
        64
    );
    let unsorted = decode_data(&[0x0c, 0x02, 0x01, 0x01, 0x01, 0x00], &limits).unwrap();
    assert_eq!(unsorted.literal().to_string(), "{F, T}");
}

#[test]
fn hostile_frames_give_typed_errors() {
    let limits = Limits::default();
    let header = |ty: u8, topic: &[u8]| {
        let mut v = vec![0xaa; 32];
        v.push(ty);
        v.extend_from_slice(&[0, 20]);
        v.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        v.extend_from_slice(topic);
        v
    };
    let check = |name: &str, bytes: Vec<u8>, ok: fn(&WireError) -> bool| {
        let err = Envelope::decode(&Bytes::from(bytes), &limits).expect_err(name);
        assert!(ok(&err), "{name}: got {err:?}");
    };
    check("short header", vec![0; 20], |e| {
        matches!(e, WireError::Truncated { .. })
    });
    check("type 6 after handshake", header(6, b"t"), |e| {
        matches!(e, WireError::UnknownMessageType(6))
    });
    check("type 0", header(0, b"t"), |e| {
        matches!(e, WireError::UnknownMessageType(0))
    });
    check(
        "topic not UTF-8",
        [header(1, b"\xff\xfe"), vec![0]].concat(),
        |e| matches!(e, WireError::TopicNotUtf8),
    );
    let mut long_topic = header(1, b"");
    long_topic[35..37].copy_from_slice(&[0xff, 0xff]);
    check("topic beyond frame", long_topic, |e| {
        matches!(e, WireError::LengthBeyondInput { .. })
    });
    check("data payload missing", header(1, b"t"), |e| {
        matches!(e, WireError::Truncated { .. })
    });
    check(
        "data payload with trailing bytes",
        [header(1, b"t"), vec![0, 0]].concat(),
        |e| matches!(e, WireError::TrailingBytes(1)),
    );
    check(
        "unknown command",
        [header(2, b"t"), vec![0; 56], vec![14]].concat(),
        |e| matches!(e, WireError::UnknownCommand(14)),
    );
    check(
        "bad optional flag",
        [header(2, b"t"), vec![0; 56], vec![0, 0, 0, 2]].concat(),
        |e| matches!(e, WireError::InvalidFlag(2)),
    );
    check(
        "nack longer than input",
        [header(2, b"t"), vec![0; 56], vec![11, 0x05], vec![0; 16]].concat(),
        |e| matches!(e, WireError::LengthBeyondInput { .. }),
    );

    assert!(matches!(
        Handshake::decode(&[]),
        Err(WireError::Truncated { .. })
    ));
    assert!(matches!(
        Handshake::decode(&[1]),
        Err(WireError::UnknownMessageType(1))
    ));
    assert!(matches!(
        Handshake::decode(&[13]),
        Err(WireError::UnknownMessageType(13))
    ));
    assert!(matches!(
        Handshake::decode(&[7, 0x5a, 0x45, 0x45]),
        Err(WireError::Truncated { .. })
    ));
    assert!(matches!(
        Handshake::decode(&[12, 0]),
        Err(WireError::TrailingBytes(1))
    ));
    assert!(matches!(
        Handshake::decode(&[10, 1, 2, 0xc3, 0x28]),
        Err(WireError::TopicNotUtf8)
    ));
}

#[test]
fn data_payloads_share_the_frame_buffer() {
    let env = Envelope {
        sender: EndpointId::NIL,
        receiver: EndpointId::NIL,
        ttl: 1,
        topic: Topic::new("t").unwrap(),
        payload: Payload::Data(Data::from("a long enough string to notice")),
    };
    let frame = env.to_bytes();
    let decoded = Envelope::decode(&frame, &Limits::default()).unwrap();
    let Payload::Data(Data::String(s)) = decoded.payload else {
        panic!("not a string")
    };
    let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    assert!(
        range.contains(&(s.as_bytes().as_ptr() as usize)),
        "string was copied, not shared"
    );
}
