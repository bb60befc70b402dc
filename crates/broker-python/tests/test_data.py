"""The conversions of the documentation's table, both ways, through a real peering."""

import datetime
import ipaddress

import pytest

import broker

UTC = datetime.timezone.utc


def roundtrip(value):
    return broker.Data.to_py(broker.Data(value))


@pytest.fixture(scope="module")
def pair():
    """Two peered endpoints: values cross the wire for real."""
    cfg = broker.Configuration(broker.BrokerOptions())
    cfg.options.disable_ssl = True
    ep1, ep2 = broker.Endpoint(cfg), broker.Endpoint(cfg)
    sub = ep1.make_subscriber("/data")
    port = ep1.listen("127.0.0.1", 0)
    assert ep2.peer("127.0.0.1", port, 1.0)
    assert ep2.await_peer(ep1.node_id())
    yield ep2, sub
    ep1.shutdown()
    ep2.shutdown()


CASES = [
    # (python value in, python value out, Broker type name)
    (None, None, "none"),
    (True, True, "boolean"),
    (False, False, "boolean"),
    (broker.Count(42), broker.Count(42), "count"),
    (broker.Count(2**64 - 1), broker.Count(2**64 - 1), "count"),
    (-7, -7, "integer"),
    (2**63 - 1, 2**63 - 1, "integer"),
    (3.25, 3.25, "real"),
    (datetime.timedelta(seconds=1, microseconds=500), datetime.timedelta(seconds=1, microseconds=500), "timespan"),
    (datetime.timedelta(days=-1), datetime.timedelta(days=-1), "timespan"),
    (datetime.datetime(2020, 5, 17, 12, 0, 0, 123456, tzinfo=UTC),
     datetime.datetime(2020, 5, 17, 12, 0, 0, 123456, tzinfo=UTC), "timestamp"),
    ("text", "text", "string"),
    ("ünïcode ✓", "ünïcode ✓", "string"),
    (b"\x82\xff", b"\x82\xff", "string"),
    (b"ascii", "ascii", "string"),
    (ipaddress.IPv4Address("1.2.3.4"), ipaddress.IPv4Address("1.2.3.4"), "address"),
    (ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("2001:db8::1"), "address"),
    (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("10.0.0.0/8"), "subnet"),
    (ipaddress.IPv6Network("2001:db8::/32"), ipaddress.IPv6Network("2001:db8::/32"), "subnet"),
    (broker.Port(80, broker.Port.TCP), broker.Port(80, broker.Port.TCP), "port"),
    (broker.Port(53, broker.Port.UDP), broker.Port(53, broker.Port.UDP), "port"),
    (broker.Port(8, broker.Port.ICMP), broker.Port(8, broker.Port.ICMP), "port"),
    (broker.Port(0, broker.Port.Unknown), broker.Port(0, broker.Port.Unknown), "port"),
    (broker.Enum("Conn::LOG"), broker.Enum("Conn::LOG"), "enum_value"),
    ((1, "a", (2.5,)), (1, "a", (2.5,)), "vector"),
    ([1, [2, [3]]], (1, (2, (3,))), "vector"),
    ((), (), "vector"),
    ({1, 2, 3}, {1, 2, 3}, "set"),
    (frozenset({"x"}), {"x"}, "set"),
    ({"a": 1, (1, 2): {3}}, {"a": 1, (1, 2): {3}}, "table"),
    ({}, {}, "table"),
]


@pytest.mark.parametrize("value,expected,type_name", CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_conversion_table(value, expected, type_name, pair):
    assert broker.Data(value).get_type() == type_name
    assert roundtrip(value) == expected
    ep, sub = pair
    ep.publish("/data", value)
    topic, got = sub.get(5.0)
    assert topic == "/data"
    assert got == expected
    assert type(got) == type(expected)


def test_exact_types():
    assert type(roundtrip((1, 2))) is tuple
    assert type(roundtrip({1})) is set
    assert type(roundtrip({1: 2})) is dict
    assert type(roundtrip(broker.Count(1))) is broker.Count
    ts = roundtrip(datetime.datetime(2001, 1, 1, tzinfo=UTC))
    assert ts.tzinfo is not None and ts.utcoffset() == datetime.timedelta(0)
    # A naive datetime is local time, as datetime.timestamp() takes it.
    naive = datetime.datetime(2001, 1, 1, 12, 0)
    assert roundtrip(naive) == naive.astimezone(UTC)
    # Another timezone keeps the instant.
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    assert roundtrip(datetime.datetime(2001, 1, 1, 14, 0, tzinfo=plus2)) == datetime.datetime(2001, 1, 1, 12, 0, tzinfo=UTC)


def test_unsupported_values_raise_type_error_naming_the_type():
    class Thing:
        pass

    for bad, name in [(object(), "object"), (Thing(), "Thing"), (1j, "complex"), ([1, {2: print}], "builtin_function_or_method")]:
        with pytest.raises(TypeError, match=name):
            broker.Data(bad)
    ep = broker.Endpoint()
    with pytest.raises(TypeError, match="unsupported data type: <class 'object'>"):
        ep.publish("/x", object())
    with pytest.raises(TypeError, match="complex"):
        ep.publish_batch(("/x", 1), ("/y", 2j))
    ep.shutdown()


def test_out_of_range_and_too_deep():
    with pytest.raises(OverflowError):
        broker.Data(2**63)
    with pytest.raises(OverflowError):
        broker.Count(-1)
    with pytest.raises(OverflowError):
        broker.Data(datetime.timedelta(days=200000))
    deep = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValueError, match="nested"):
        broker.Data(deep)
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError):
        broker.Data(loop)


def test_unhashable_nesting_and_safe_subscriber():
    value = {frozenset({1}): ({"k": "v"},)}
    with broker.Endpoint() as ep1, broker.Endpoint() as ep2, \
         ep1.make_subscriber("/t") as plain, ep1.make_safe_subscriber("/t") as safe:
        port = ep1.listen("127.0.0.1", 0)
        assert ep2.peer("127.0.0.1", port, 1.0)
        assert ep2.await_peer(ep1.node_id())
        # A set of tables: Python's set cannot hold dicts, the safe subscriber can.
        ep2.publish("/t", broker.Data({frozenset([("a", 1)]): 1}))
        ep2.publish("/t", [{1, 2}, value])
        t, d = safe.get(5.0)
        assert d == {frozenset({("a", 1)}): 1}
        t, d = safe.get(5.0)
        assert isinstance(d[0], frozenset)
        hash(d)  # everything in it is hashable
        # A plain subscriber loses nothing either: what plain types cannot hold comes in
        # the immutable forms.
        assert plain.get(5.0)[1] == {frozenset({("a", 1)}): 1}
        t, d = plain.get(5.0)
        assert d == ({1, 2}, value)


def test_wrapper_classes():
    c = broker.Count(5)
    assert c.value == 5 and str(c) == "5" and repr(c) == "Count(5)"
    assert broker.Count(1) < broker.Count(2) and broker.Count(3) == broker.Count(3)
    assert hash(broker.Count(3)) == hash(broker.Count(3))
    assert broker.Count(3) != 3  # as in Broker: a Count is not an int
    assert int(broker.Count(3)) == 3
    with pytest.raises(TypeError):
        broker.Count("3")
    p = broker.Port(22, broker.Port.TCP)
    assert p.number() == 22 and p.get_type() == broker.Port.TCP and repr(p) == "22/tcp"
    assert broker.Port.Protocol.UDP == broker.Port.UDP
    assert {broker.Port(1, broker.Port.TCP): 1}[broker.Port(1, broker.Port.TCP)] == 1
    e = broker.Enum("Log::WRITER_ASCII")
    assert e.name == "Log::WRITER_ASCII" and e == broker.Enum("Log::WRITER_ASCII")
    assert str(broker.Data((1, "a", broker.Count(2)))) == "(1, a, 2)"
    assert broker.Data({1: 2}) == broker.Data({1: 2})
    t = broker.Topic("/a") / "b"
    assert t.string() == "/a/b" and t == "/a/b" and str(broker.Topic("x") / broker.Topic("y")) == "x/y"
    assert isinstance(broker.now(), datetime.datetime) and broker.now().tzinfo is not None
    assert broker.Version.MAJOR >= 0 and isinstance(broker.Version.PROTOCOL, int)


def test_codes_compare_with_numbers():
    assert broker.EC.PeerUnavailable == broker.EC.PeerUnavailable
    assert int(broker.EC.NoSuchKey) == 9 and broker.EC.NoSuchKey == 9
    assert int(broker.SC.PeerAdded) == 1
    assert broker.EC.RequestTimeOut != broker.EC.StaleData
