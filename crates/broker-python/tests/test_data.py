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


T = broker.Data.Type

CASES = [
    # (python value in, python value out, Broker type name)
    (None, None, T.Nil),
    (True, True, T.Boolean),
    (False, False, T.Boolean),
    (broker.Count(42), broker.Count(42), T.Count),
    (broker.Count(2**64 - 1), broker.Count(2**64 - 1), T.Count),
    (-7, -7, T.Integer),
    (2**63 - 1, 2**63 - 1, T.Integer),
    (3.25, 3.25, T.Real),
    (datetime.timedelta(seconds=1, microseconds=500), datetime.timedelta(seconds=1, microseconds=500), T.Timespan),
    (datetime.timedelta(days=-1), datetime.timedelta(days=-1), T.Timespan),
    (datetime.datetime(2020, 5, 17, 12, 0, 0, 123456, tzinfo=UTC),
     datetime.datetime(2020, 5, 17, 12, 0, 0, 123456, tzinfo=UTC), T.Timestamp),
    ("text", "text", T.String),
    ("ünïcode ✓", "ünïcode ✓", T.String),
    (b"\x82\xff", b"\x82\xff", T.String),
    (b"ascii", "ascii", T.String),
    (ipaddress.IPv4Address("1.2.3.4"), ipaddress.IPv4Address("1.2.3.4"), T.Address),
    (ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("2001:db8::1"), T.Address),
    (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("10.0.0.0/8"), T.Subnet),
    (ipaddress.IPv6Network("2001:db8::/32"), ipaddress.IPv6Network("2001:db8::/32"), T.Subnet),
    (broker.Port(80, broker.Port.TCP), broker.Port(80, broker.Port.TCP), T.Port),
    (broker.Port(53, broker.Port.UDP), broker.Port(53, broker.Port.UDP), T.Port),
    (broker.Port(8, broker.Port.ICMP), broker.Port(8, broker.Port.ICMP), T.Port),
    (broker.Port(0, broker.Port.Unknown), broker.Port(0, broker.Port.Unknown), T.Port),
    (broker.Enum("Conn::LOG"), broker.Enum("Conn::LOG"), T.EnumValue),
    ((1, "a", (2.5,)), (1, "a", (2.5,)), T.Vector),
    ([1, [2, [3]]], (1, (2, (3,))), T.Vector),
    ((), (), T.Vector),
    ({1, 2, 3}, {1, 2, 3}, T.Set),
    (frozenset({"x"}), {"x"}, T.Set),
    ({"a": 1, (1, 2): {3}}, {"a": 1, (1, 2): {3}}, T.Table),
    ({}, {}, T.Table),
]


@pytest.mark.parametrize("value,expected,data_type", CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_conversion_table(value, expected, data_type, pair):
    assert broker.Data(value).get_type() == data_type
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


# -- Broker's typed API (what Broker's own data.py exercises, beyond it) ---------------------


def test_typed_accessors_and_value_classes():
    d = broker.Data({"a": 1, broker.Count(2): (ipaddress.ip_address("10.0.0.1"), None)})
    assert d.get_type() == broker.Data.Type.Table
    t = d.as_table()
    assert isinstance(t, broker.Table) and len(t) == 2 and str(t) == "Table{2: (10.0.0.1, nil), a: 1}"
    v = t[broker.Count(2)].as_vector()
    assert isinstance(v, broker.Vector) and v[-1].get_type() == broker.Data.Type.Nil
    a = v[0].as_address()
    assert isinstance(a, broker.Address) and a.is_v4() and a.bytes()[-4:] == bytes([10, 0, 0, 1])
    assert broker.Data.to_py(t["a"]) == 1
    # Elements are Broker's plain Data, not the Python subclass (as in Broker).
    assert not isinstance(v[0], broker.Data) and isinstance(v[0], broker._broker.Data)
    with pytest.raises(TypeError):
        d.as_set()
    assert broker.Data(True).as_boolean() is True
    assert broker.Data(broker.Count(7)).as_count() == 7
    assert broker.Data("é").as_string() == "é".encode()
    assert broker.Data(datetime.timedelta(seconds=1.5)).as_timespan() == 1.5
    assert getattr(broker.Data.Type, "None") == broker.Data.Type.Nil
    assert broker.Data.Type.Count.name == "Count" and broker.SC.PeerAdded.value == 1


def test_containers_behave_like_brokers():
    s = broker.Set([broker.Data(3), 1, "x"])
    assert str(s) == "Set{1, 3, x}" and broker.Data(1) in s and len(s) == 3
    s.add(2)
    s.remove(broker.Data("x"))
    assert [broker.Data.to_py(x) for x in s] == [1, 2, 3]
    v = broker.Vector([1, 2, 3])
    v.append("four")
    v[0] = 10
    del v[1]
    assert str(v) == "Vector[10, 3, four]" and broker.Data.to_py(v.pop()) == "four"
    assert str(v[0:1]) == "Vector[10]"
    with pytest.raises(IndexError):
        v[5]
    t = broker.Table({"k": 1})
    t[broker.Data("j")] = 2
    assert [broker.Data.to_py(k) for k in t] == ["j", "k"]
    with pytest.raises(KeyError):
        t["missing"]
    # The value classes convert like the Python values they stand for.
    assert broker.Data.to_py(broker.Data(v)) == (10, 3)
    assert broker.Data.to_py(broker.Data(t)) == {"j": 2, "k": 1}
    assert broker.Data.to_py(broker.Data(broker.Subnet(broker.Address(bytes(4), 4), 8))) == ipaddress.ip_network("0.0.0.0/8")


def test_time_classes():
    ts = broker.Timespan(1500)
    assert ts.count() == 1500 and repr(ts) == "1500ns"
    assert broker.Timespan(1.5) == broker.Timespan(1_500_000_000)
    assert (ts + ts).count() == 3000 and (ts * 2) == (2 * ts) and ts / ts == 1
    assert (ts / 3).count() == 500 and (ts % 1000).count() == 500
    assert broker.Timestamp(2.0).time_since_epoch() == broker.Timespan(2_000_000_000)
    d = broker.Data(broker.Timestamp(2.0))
    assert d.get_type() == broker.Data.Type.Timestamp and d.as_timestamp() == 2.0
    assert broker.Data.to_py(d) == datetime.datetime(1970, 1, 1, 0, 0, 2, tzinfo=broker.utc)


def test_module_names_of_brokers_bindings():
    assert broker.utc is datetime.timezone.utc
    assert broker.Version.string() == f"{broker.Version.MAJOR}.{broker.Version.MINOR}.{broker.Version.PATCH}"
    assert broker.Version.compatible(broker.Version.PROTOCOL)
    assert broker.Frontend.Master != broker.Frontend.Clone
    assert broker.APIFlags.Blocking.name == "Blocking"
    with pytest.raises(NotImplementedError):
        broker.Message().to_broker()
    assert broker.ImmutableData.to_py(broker.Data({1})) == frozenset({1})
    assert str(broker.Topic("/a/") / broker.Topic("/b/c")) == "/a//b/c"
    t = broker.Topic("/b/c")
    t /= broker.Topic("/a/")
    assert str(t) == "/b/c/a"
