use broker_data::arbitrary;
use broker_data::{vector, Address, ByteString, Data, EnumValue, Port, Protocol, Subnet};
use broker_data::{Timespan, Timestamp};
use proptest::prelude::*;
use serde_json::Value;

use crate::*;

/// What a value becomes on its way through JSON: itself, with non-UTF-8 strings made valid.
fn lossy(d: &Data) -> Data {
    let s = |b: &ByteString| ByteString::from(b.to_string_lossy().into_owned());
    match d {
        Data::String(b) => Data::String(s(b)),
        Data::EnumValue(e) => Data::EnumValue(EnumValue(s(&e.0))),
        Data::Vector(v) => Data::Vector(v.iter().map(lossy).collect()),
        Data::Set(v) => Data::Set(v.iter().map(lossy).collect()),
        Data::Table(t) => Data::Table(t.iter().map(|(k, v)| (lossy(k), lossy(v))).collect()),
        other => other.clone(),
    }
}

fn json(v: &Data) -> String {
    to_string(v)
}

#[test]
fn broker_bytes_for_every_type_where_they_are_valid_json() {
    let cases: Vec<(Data, &str)> = vec![
        (Data::None, r#"{"@data-type":"none","data":{}}"#),
        (true.into(), r#"{"@data-type":"boolean","data":true}"#),
        (
            Data::Count(u64::MAX),
            r#"{"@data-type":"count","data":18446744073709551615}"#,
        ),
        (
            Data::Integer(i64::MIN),
            r#"{"@data-type":"integer","data":-9223372036854775808}"#,
        ),
        (Data::Real(-7.5), r#"{"@data-type":"real","data":-7.5}"#),
        (Data::Real(5.0), r#"{"@data-type":"real","data":5.0}"#),
        (Data::Real(1e-7), r#"{"@data-type":"real","data":1e-7}"#),
        (
            Data::Real(f64::NAN),
            r#"{"@data-type":"real","data":"NaN"}"#,
        ),
        (
            Data::Real(f64::NEG_INFINITY),
            r#"{"@data-type":"real","data":"-Infinity"}"#,
        ),
        (
            "a\"b\\c\n\x0b\x01\x7f".into(),
            r#"{"@data-type":"string","data":"a\"b\\c\n\u000b\u0001\u007f"}"#,
        ),
        (
            Data::EnumValue(EnumValue::new("Log::WRITER_ASCII")),
            r#"{"@data-type":"enum-value","data":"Log::WRITER_ASCII"}"#,
        ),
        (
            Data::Address("10.0.0.1".parse().unwrap()),
            r#"{"@data-type":"address","data":"10.0.0.1"}"#,
        ),
        (
            Data::Address("::ffff:10.0.0.1".parse().unwrap()),
            r#"{"@data-type":"address","data":"10.0.0.1"}"#,
        ),
        (
            Data::Address("2001:db8::1".parse().unwrap()),
            r#"{"@data-type":"address","data":"2001:db8::1"}"#,
        ),
        (
            Data::Address(Address::from_octets([0; 16])),
            r#"{"@data-type":"address","data":"::"}"#,
        ),
        (
            Data::Subnet(Subnet::new("10.1.2.3".parse().unwrap(), 8).unwrap()),
            r#"{"@data-type":"subnet","data":"10.0.0.0/8"}"#,
        ),
        (
            Data::Port(Port::new(80, Protocol::Tcp)),
            r#"{"@data-type":"port","data":"80/tcp"}"#,
        ),
        (
            Data::Port(Port::new(0, Protocol::Unknown)),
            r#"{"@data-type":"port","data":"0/?"}"#,
        ),
        (
            Data::Timespan(Timespan::from_nanos(1_500_000_000)),
            r#"{"@data-type":"timespan","data":"1500ms"}"#,
        ),
        (
            Data::Timespan(Timespan::from_nanos(15_000)),
            r#"{"@data-type":"timespan","data":"15us"}"#,
        ),
        (
            Data::Timespan(Timespan::from_nanos(-2_000_000_000)),
            r#"{"@data-type":"timespan","data":"-2s"}"#,
        ),
        (
            Data::Timespan(Timespan::ZERO),
            r#"{"@data-type":"timespan","data":"0s"}"#,
        ),
        (
            Data::Timestamp(Timestamp::from_nanos(1_649_574_000_123_000_000)),
            r#"{"@data-type":"timestamp","data":"2022-04-10T07:00:00.123"}"#,
        ),
        (
            Data::Timestamp(Timestamp::from_nanos(1_649_574_000_123_456_000)),
            r#"{"@data-type":"timestamp","data":"2022-04-10T07:00:00.123456"}"#,
        ),
        (
            Data::Timestamp(Timestamp::from_nanos(-1)),
            r#"{"@data-type":"timestamp","data":"1969-12-31T23:59:59.999999999"}"#,
        ),
        (Data::Vector(vec![]), r#"{"@data-type":"vector","data":[]}"#),
        (
            Data::Set([Data::Count(2), Data::Count(1)].into_iter().collect()),
            r#"{"@data-type":"set","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":2}]}"#,
        ),
        (
            Data::Table([(Data::from("k"), Data::Count(1))].into_iter().collect()),
            r#"{"@data-type":"table","data":[{"key":{"@data-type":"string","data":"k"},"value":{"@data-type":"count","data":1}}]}"#,
        ),
    ];
    for (value, text) in cases {
        assert_eq!(json(&value), text);
        assert_eq!(from_str(text).unwrap(), value, "{text}");
    }
}

#[test]
fn the_zeek_event_of_brokers_manual() {
    let event = vector![1u64, 1u64, vector!["event_1", vector![42i64, "test"]]];
    assert_eq!(
        data_message("/foo/bar", &event),
        r#"{"type":"data-message","topic":"/foo/bar","@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1},{"@data-type":"vector","data":[{"@data-type":"string","data":"event_1"},{"@data-type":"vector","data":[{"@data-type":"integer","data":42},{"@data-type":"string","data":"test"}]}]}]}"#
    );
}

#[test]
fn what_clients_send_is_read() {
    // zeek-client: sorted keys with spaces.
    let (t, v) = parse_message(
        br#"{"@data-type": "count", "data": 1, "topic": "/t", "type": "data-message"}"#,
    )
    .unwrap();
    assert_eq!((t.as_str(), v), ("/t", Data::Count(1)));
    // zeekpy: `{}` for none, floats for reals, fractional nanoseconds, ISO times with a zone.
    for (text, want) in [
        (r#"{"@data-type":"none","data":{}}"#, Data::None),
        // Any key order: data before its type.
        (
            r#"{"data":[{"data":1,"@data-type":"count"}],"@data-type":"vector"}"#,
            vector![1u64],
        ),
        (
            r#"{"data":[{"value":{"@data-type":"none"},"key":{"data":"k","@data-type":"string"}}],"@data-type":"table"}"#,
            Data::Table([(Data::from("k"), Data::None)].into_iter().collect()),
        ),
        (r#"{"@data-type":"none"}"#, Data::None),
        (r#"{"@data-type":"real","data":5}"#, Data::Real(5.0)),
        (r#"{"@data-type":"real","data":null}"#, Data::Real(f64::NAN)),
        (
            r#"{"@data-type":"timespan","data":"1500000000.0ns"}"#,
            Data::Timespan(Timespan::from_nanos(1_500_000_000)),
        ),
        (
            r#"{"@data-type":"timestamp","data":"2022-04-10T07:00:00+00:00"}"#,
            Data::Timestamp(Timestamp::from_nanos(1_649_574_000_000_000_000)),
        ),
        (
            r#"{"@data-type":"port","data":"80"}"#,
            Data::Port(Port::new(80, Protocol::Tcp)),
        ),
        (
            r#"{"@data-type":"string","data":"\u00e9\ud83d\ude00"}"#,
            Data::from("é😀"),
        ),
    ] {
        assert_eq!(from_str(text).unwrap(), want, "{text}");
    }
}

#[test]
fn bad_values_are_invalid_data_with_brokers_texts() {
    for text in [
        r#"{"@data-type":"count","data":1.0}"#,
        r#"{"@data-type":"count","data":-1}"#,
        r#"{"@data-type":"count","data":18446744073709551616}"#,
        r#"{"@data-type":"integer","data":9223372036854775808}"#,
        r#"{"@data-type":"integer","data":1e3}"#,
        r#"{"@data-type":"boolean","data":1}"#,
        r#"{"@data-type":"phone","data":"555"}"#,
        r#"{"@data-type":"address","data":"1.2.3.256"}"#,
        r#"{"@data-type":"subnet","data":"10.0.0.0/33"}"#,
        r#"{"@data-type":"port","data":"70000/tcp"}"#,
        r#"{"@data-type":"timespan","data":"5"}"#,
        r#"{"@data-type":"vector","data":[1]}"#,
        r#"{"@data-type":"table","data":[{"key":{"@data-type":"none"}}]}"#,
        r#"{"data":1}"#,
        r#"{"@data-type":"count"}"#,
    ] {
        let err = from_str(text).unwrap_err();
        assert_eq!(err, MessageError::InvalidData, "{text}");
    }
    let e = parse_message(br#"{"topic":"/t","@data-type":"phone","data":"555"}"#).unwrap_err();
    assert_eq!(e.context(1), "input #1 contained invalid data");
    let e = parse_message(b"[1]").unwrap_err();
    assert_eq!(e.context(2), "input #2 expected a JSON object");
    let e = parse_message(b"{").unwrap_err();
    assert!(
        e.context(3)
            .starts_with("input #3 contained malformed JSON -> "),
        "{e:?}"
    );
    assert_eq!(
        parse_subscriptions(br#"["broken", "brrr"#),
        Err(SubscriptionError::NotAnArray)
    );
    assert_eq!(
        parse_subscriptions(br#"{"a":1}"#),
        Err(SubscriptionError::NotAnArray)
    );
    assert_eq!(
        parse_subscriptions(b"[1, 2]"),
        Err(SubscriptionError::NotAString)
    );
    assert_eq!(parse_subscriptions(b"[]").unwrap(), Vec::<String>::new());
}

#[test]
fn strings_that_are_not_utf8_become_valid_json() {
    let v = Data::String(ByteString::from(vec![b'a', 0xff, b'b']));
    let text = json(&v);
    assert!(serde_json::from_str::<Value>(&text).is_ok());
    assert_eq!(from_str(&text).unwrap(), Data::from("a\u{fffd}b"));
}

/// Arbitrary JSON, biased towards what the decoder looks for.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
        prop_oneof![
            Just("none"),
            Just("count"),
            Just("real"),
            Just("timespan"),
            Just("timestamp"),
            Just("subnet"),
            Just("port"),
            Just("address"),
            Just("table"),
            Just("set"),
            Just("vector"),
            Just("1e3s"),
            Just("10.0.0.0/8"),
            Just("2022-01-01T00:00:00")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("@data-type".to_owned()),
                        Just("data".to_owned()),
                        Just("key".to_owned()),
                        Just("value".to_owned()),
                        Just("topic".to_owned()),
                        "[a-z]{1,3}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_value_round_trips(v in arbitrary::data()) {
        let text = json(&v);
        prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "invalid JSON: {}", text);
        prop_assert_eq!(from_str(&text).unwrap(), lossy(&v), "{}", text);
        let msg = data_message("/t", &v);
        let (topic, back) = parse_message(msg.as_bytes()).unwrap();
        prop_assert_eq!(topic, "/t");
        prop_assert_eq!(back, lossy(&v));
        prop_assert_eq!(parse_message_str(&msg).unwrap().1, lossy(&v));
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        let text = v.to_string();
        // The streaming decoder and the tree decoder agree.
        prop_assert_eq!(from_str(&text).ok(), decode(&v).ok(), "{}", text);
        prop_assert_eq!(parse_message(text.as_bytes()), parse_message_str(&text));
        let _ = parse_subscriptions(text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_message(&b);
        let _ = parse_subscriptions(&b);
    }

    #[test]
    fn arbitrary_timespans_and_timestamps_never_panic(s in "[-+0-9.eE]{0,30}(ns|us|ms|s|min|h|d)?", t in "[0-9T:.+Z-]{0,40}") {
        let _ = text::parse_timespan(&s);
        let _ = text::parse_timestamp(&t);
    }
}
