//! Zeek message layouts, to and from `Data`.

use broker_data::zeek::{Event, IdentifierUpdate, LogCreate, LogWrite, Message};
use broker_data::{vector, Data, EnumValue, Timestamp};

#[track_caller]
fn check(m: Message, literal: &str) {
    let d = Data::from(m.clone());
    assert_eq!(d.literal().to_string(), literal);
    assert_eq!(Message::try_from(&d).unwrap(), m);
    let parsed: Data = literal.parse().unwrap();
    assert_eq!(Message::try_from(parsed).unwrap(), m);
}

#[track_caller]
fn reject(literal: &str, reason: &str) {
    let d: Data = literal.parse().unwrap();
    let err = Message::try_from(&d).unwrap_err().to_string();
    assert!(err.contains(reason), "{literal}: {err}");
}

fn event() -> Event {
    Event::new("ping", vec!["hi".into(), 1u64.into()])
}

#[test]
fn layouts() {
    check(event().into(), r#"(1, 1, ("ping", ("hi", 1)))"#);
    check(
        event()
            .with_timestamp(Timestamp::from_nanos(5))
            .with_metadata(200, "user")
            .into(),
        r#"(1, 1, ("ping", ("hi", 1), ((1, 1970-01-01T00:00:00.000000005Z), (200, "user"))))"#,
    );
    check(
        LogCreate {
            stream_id: EnumValue::new("Conn::LOG"),
            writer_id: EnumValue::new("Log::WRITER_ASCII"),
            writer_info: vector!["conn"],
            fields: vector![],
        }
        .into(),
        r#"(1, 2, (Conn::LOG, Log::WRITER_ASCII, ("conn"), ()))"#,
    );
    check(
        LogWrite {
            stream_id: EnumValue::new("Conn::LOG"),
            writer_id: EnumValue::new("Log::WRITER_ASCII"),
            path: "conn".into(),
            serial_data: vec![0u8, 0xff].into(),
        }
        .into(),
        r#"(1, 3, (Conn::LOG, Log::WRITER_ASCII, "conn", "\x00\xff"))"#,
    );
    check(
        IdentifierUpdate {
            name: "Site::local_nets".into(),
            value: 1u64.into(),
        }
        .into(),
        r#"(1, 4, ("Site::local_nets", 1))"#,
    );
    check(
        Message::Batch(vec![event().into(), Message::Batch(vec![])]),
        r#"(1, 5, ((1, 1, ("ping", ("hi", 1))), (1, 5, ())))"#,
    );
}

#[test]
fn accessors() {
    let ev = event()
        .with_timestamp(Timestamp::from_nanos(7))
        .with_timestamp(Timestamp::from_nanos(9));
    assert_eq!(ev.timestamp(), Some(Timestamp::from_nanos(9)));
    assert_eq!(ev.metadata.as_ref().unwrap().len(), 1);
    assert_eq!(event().timestamp(), None);
}

#[test]
fn malformed_layouts_are_rejected() {
    reject("1", "a message is a vector");
    reject("(1, 1)", "3 fields");
    reject(r#"(2, 1, ("e", ()))"#, "protocol version");
    reject(r#"(1, 9, ())"#, "unknown message type");
    reject(r#"(1, 1, "x")"#, "content must be a vector");
    reject(r#"(1, 1, (5, ()))"#, "must be a string");
    reject(r#"(1, 1, ("e"))"#, "missing field 1");
    reject(r#"(1, 1, ("e", 5))"#, "must be a vector");
    reject(r#"(1, 1, ("e", (), 5))"#, "metadata must be a vector");
    reject(r#"(1, 1, ("e", (), ((1, 5))))"#, "must be a timestamp");
    reject(r#"(1, 1, ("e", (), ((+1, 5))))"#, "(count, value) pairs");
    reject(r#"(1, 2, ("s", Log::W, (), ()))"#, "enum_value");
    reject(
        r#"(1, 3, (Conn::LOG, Log::W, "p", 5))"#,
        "serialized record",
    );
    reject(r#"(1, 4, (5, 1))"#, "identifier name");
    reject(r#"(1, 5, (1))"#, "a message is a vector");
}
