//! Golden tests of Broker's text format and of the literal syntax, one `check` per case.

use std::collections::{BTreeMap, BTreeSet};

use broker_data::{
    set, table, vector, Address, ByteString, Data, EnumValue, Port, Protocol, Subnet, Timespan,
    Timestamp,
};

/// Checks that `d` displays as Broker's `text`, prints as `literal`, and that the literal
/// parses back to `d`.
#[track_caller]
fn check(d: Data, text: &str, literal: &str) {
    assert_eq!(d.to_string(), text, "Broker text of {d:?}");
    assert_eq!(d.literal().to_string(), literal, "literal of {d:?}");
    let back: Data = literal
        .parse()
        .unwrap_or_else(|e| panic!("parse {literal:?}: {e}"));
    assert_eq!(back, d, "round trip of {literal:?}");
    assert_eq!(back.data_type(), d.data_type());
}

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

#[test]
fn scalars() {
    check(Data::None, "nil", "nil");
    check(true.into(), "T", "T");
    check(false.into(), "F", "F");
    check(42u64.into(), "42", "42");
    check(0u64.into(), "0", "0");
    check(
        u64::MAX.into(),
        "18446744073709551615",
        "18446744073709551615",
    );
    check(42i64.into(), "42", "+42");
    check((-42i64).into(), "-42", "-42");
    check(0i64.into(), "0", "+0");
    check(
        i64::MIN.into(),
        "-9223372036854775808",
        "-9223372036854775808",
    );
    check(4.2.into(), "4.200000", "4.2");
    check((-0.0).into(), "-0.000000", "-0.0");
    check(1.0.into(), "1.000000", "1.0");
    check(1e300.into(), &format!("{:.6}", 1e300), "1e300");
    check(1e-7.into(), "0.000000", "1e-7");
    check(f64::INFINITY.into(), "inf", "inf");
    check(f64::NEG_INFINITY.into(), "-inf", "-inf");
    check(f64::NAN.into(), "nan", "nan");
}

#[test]
fn strings_and_enums() {
    check("a b".into(), "a b", r#""a b""#);
    check("".into(), "", r#""""#);
    check("1.2.3.4".into(), "1.2.3.4", r#""1.2.3.4""#);
    check(
        "say \"hi\"\\\n".into(),
        "say \"hi\"\\\n",
        r#""say \"hi\"\\\n""#,
    );
    check("grüße €".into(), "grüße €", "\"grüße €\"");
    check(
        Data::String(ByteString::from_bytes(vec![0xff, b'a', 0x00, 0x7f])),
        "\u{fffd}a\u{0}\u{7f}",
        r#""\xffa\x00\x7f""#,
    );
    check(EnumValue::new("Conn::LOG").into(), "Conn::LOG", "Conn::LOG");
    check(EnumValue::new("tcp").into(), "tcp", "tcp");
    check(EnumValue::new("T").into(), "T", r#"enum("T")"#);
    check(EnumValue::new("nil").into(), "nil", r#"enum("nil")"#);
    check(
        EnumValue::new("dead::beef").into(),
        "dead::beef",
        r#"enum("dead::beef")"#,
    );
    check(
        EnumValue::new("has space").into(),
        "has space",
        r#"enum("has space")"#,
    );
    check(EnumValue::new("").into(), "", r#"enum("")"#);
}

#[test]
fn network_types() {
    check(addr("1.2.3.4").into(), "1.2.3.4", "1.2.3.4");
    check(addr("::ffff:1.2.3.4").into(), "1.2.3.4", "1.2.3.4");
    check(addr("2001:db8::1").into(), "2001:db8::1", "2001:db8::1");
    check(addr("::").into(), "::", "::");
    check(addr("::1").into(), "::1", "::1");
    check(
        Subnet::new(addr("10.1.2.3"), 8).unwrap().into(),
        "10.0.0.0/8",
        "10.0.0.0/8",
    );
    check(
        Subnet::new(addr("10.1.2.3"), 0).unwrap().into(),
        "0.0.0.0/0",
        "0.0.0.0/0",
    );
    check(
        Subnet::new(addr("10.1.2.3"), 32).unwrap().into(),
        "10.1.2.3/32",
        "10.1.2.3/32",
    );
    check(
        Subnet::new(addr("2001:db8::1"), 32).unwrap().into(),
        "2001:db8::/32",
        "2001:db8::/32",
    );
    check(
        Subnet::new(addr("2001:db8::1"), 128).unwrap().into(),
        "2001:db8::1/128",
        "2001:db8::1/128",
    );
    check(
        Subnet::new(addr("2001:db8::1"), 0).unwrap().into(),
        "::/0",
        "::/0",
    );
    check(Port::new(80, Protocol::Tcp).into(), "80/tcp", "80/tcp");
    check(Port::new(53, Protocol::Udp).into(), "53/udp", "53/udp");
    check(Port::new(8, Protocol::Icmp).into(), "8/icmp", "8/icmp");
    check(Port::new(0, Protocol::Unknown).into(), "0/?", "0/?");
    check(
        Port::new(65535, Protocol::Tcp).into(),
        "65535/tcp",
        "65535/tcp",
    );
}

#[test]
fn time_types() {
    check(Timespan::from_nanos(42).into(), "42ns", "42ns");
    check(Timespan::from_nanos(0).into(), "0ns", "0s");
    check(
        Timespan::from_nanos(5_000_000_000).into(),
        "5000000000ns",
        "5s",
    );
    check(
        Timespan::from_nanos(-250_000_000).into(),
        "-250000000ns",
        "-250ms",
    );
    check(Timespan::from_nanos(1_500).into(), "1500ns", "1500ns");
    check(
        Timespan::from_nanos(90_000_000_000).into(),
        "90000000000ns",
        "90s",
    );
    check(
        Timespan::from_nanos(3_600_000_000_000).into(),
        "3600000000000ns",
        "1h",
    );
    check(
        Timespan::from_nanos(i64::MIN).into(),
        "-9223372036854775808ns",
        "-9223372036854775808ns",
    );
    check(
        Timestamp::from_nanos(42).into(),
        "42ns",
        "1970-01-01T00:00:00.000000042Z",
    );
    check(
        Timestamp::from_nanos(0).into(),
        "0ns",
        "1970-01-01T00:00:00Z",
    );
    check(
        Timestamp::from_nanos(1_700_000_000_500_000_000).into(),
        "1700000000500000000ns",
        "2023-11-14T22:13:20.5Z",
    );
    check(
        Timestamp::from_nanos(-1).into(),
        "-1ns",
        "1969-12-31T23:59:59.999999999Z",
    );
    check(
        Timestamp::from_nanos(i64::MIN).into(),
        "-9223372036854775808ns",
        "1677-09-21T00:12:43.145224192Z",
    );
    check(
        Timestamp::from_nanos(i64::MAX).into(),
        "9223372036854775807ns",
        "2262-04-11T23:47:16.854775807Z",
    );
}

#[test]
fn containers() {
    check(vector![], "()", "()");
    check(Data::Set(BTreeSet::new()), "{}", "{}");
    check(Data::Table(BTreeMap::new()), "{}", "{->}");
    check(vector![1u64, 2u64], "(1, 2)", "(1, 2)");
    check(set![3u64, 1u64, 2u64], "{1, 2, 3}", "{1, 2, 3}");
    check(
        table! {"a" => 1u64, "b" => 2u64},
        "{a -> 1, b -> 2}",
        r#"{"a" -> 1, "b" -> 2}"#,
    );
    check(
        vector![
            addr("1.2.3.4"),
            Port::new(80, Protocol::Tcp),
            Timespan::from_nanos(5),
            "a b"
        ],
        "(1.2.3.4, 80/tcp, 5ns, a b)",
        r#"(1.2.3.4, 80/tcp, 5ns, "a b")"#,
    );
    check(
        table! {vector![1u64] => set![Data::None], set![] => table!{}},
        "{{} -> {}, (1) -> {nil}}",
        "{{} -> {->}, (1) -> {nil}}",
    );
    // Mixed types sort by type first: boolean < count < integer < real < string.
    check(
        set!["x", 1.5, -1i64, 1u64, true],
        "{T, 1, -1, 1.500000, x}",
        r#"{T, 1, -1, 1.5, "x"}"#,
    );
}

#[test]
fn parser_conveniences() {
    let cases: &[(&str, Data)] = &[
        ("true", true.into()),
        ("  ( 1 ,2 )  ", vector![1u64, 2u64]),
        ("{1->2}", table! {1u64 => 2u64}),
        ("{-1->-2}", table! {-1i64 => -2i64}),
        ("[2001:db8::1]", addr("2001:db8::1").into()),
        (
            "[2001:db8::1]/32",
            Subnet::new(addr("2001:db8::"), 32).unwrap().into(),
        ),
        ("1.5us", Timespan::from_nanos(1_500).into()),
        ("2min", Timespan::from_nanos(120_000_000_000).into()),
        ("1d", Timespan::from_nanos(86_400_000_000_000).into()),
        ("@5s", Timestamp::from_nanos(5_000_000_000).into()),
        ("@-1ns", Timestamp::from_nanos(-1).into()),
        (
            "2024-02-29T00:00:00",
            Timestamp::from_nanos(1_709_164_800_000_000_000).into(),
        ),
        ("\"\\u{20ac}\"", "€".into()),
        ("+inf", f64::INFINITY.into()),
        ("1E3", 1000.0.into()),
        ("{1, 1}", set![1u64]),
        ("enum(\"Conn::LOG\")", EnumValue::new("Conn::LOG").into()),
    ];
    for (text, expected) in cases {
        assert_eq!(&text.parse::<Data>().unwrap(), expected, "{text}");
    }
}

#[test]
fn parse_errors_name_position_and_expectation() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "a value"),
        ("(1, 2", 5, "`,` or `)`"),
        ("(1 2)", 3, "`,` or `)`"),
        ("18446744073709551616", 0, "count"),
        ("+9223372036854775808", 0, "integer"),
        ("10.0.0.0/33", 0, "valid subnet"),
        ("2001:db8::/129", 0, "valid subnet"),
        ("70000/tcp", 0, "port"),
        ("80/tcpx", 0, "port"),
        ("\"abc", 0, "closing"),
        ("\"\\q\"", 1, "escape"),
        ("\"\\xzz\"", 1, "hex"),
        ("{1 -> 2, 3}", 10, "`->`"),
        ("{1 -> 2, 1 -> 3}", 9, "duplicate"),
        ("1.5ns", 0, "timespan"),
        ("2024-02-30T00:00:00Z", 0, "date"),
        ("3000-01-01T00:00:00Z", 0, "date"),
        ("1 2", 2, "end of input"),
        ("@x", 1, "timespan"),
        ("#", 0, "a value"),
        ("enum(1)", 5, "quoted enum name"),
    ];
    for (text, position, expected) in cases {
        let err = Data::parse_literal(text).expect_err(text);
        assert_eq!(err.position, *position, "{text}: {err}");
        assert!(err.expected.contains(expected), "{text}: {err}");
    }
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}{}", "(".repeat(256), ")".repeat(256));
    assert_eq!(Data::parse_literal(&ok).unwrap().depth(), 256);
    let deep = format!("{}{}", "(".repeat(257), ")".repeat(257));
    let err = Data::parse_literal(&deep).unwrap_err();
    assert!(err.expected.contains("nesting"), "{err}");
    // Hostile input far deeper than the limit fails cleanly too.
    assert!(Data::parse_literal(&"{".repeat(1_000_000)).is_err());
}
