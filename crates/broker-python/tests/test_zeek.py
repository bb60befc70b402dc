"""broker.zeek.Event: name, arguments, metadata, parsing received messages."""

import datetime

import pytest

import broker
import broker.zeek

from conftest import wait_until


def test_event_parts():
    ev = broker.zeek.Event("ping", 1, "two", broker.Count(3))
    assert ev.valid()
    assert ev.name() == "ping"
    assert ev.args() == [1, "two", broker.Count(3)]
    assert ev.metadata() is None
    assert repr(ev) == "ping(1, two, 3)"
    # Zeek's layout: (1, 1, (name, (args...)))
    assert ev.as_data() == (broker.Count(1), broker.Count(1), ("ping", (1, "two", broker.Count(3))))


def test_metadata_forms():
    ts = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    ev = broker.zeek.Event("e", metadata={broker.zeek.MetadataType.NetworkTimestamp: ts, 200: "user"})
    assert ev.metadata() == [(broker.Count(1), ts), (broker.Count(200), "user")]
    assert ev.timestamp() == ts
    ev2 = broker.zeek.Event("e", 1, metadata=[(1, ts)])
    assert dict(ev2.metadata())[broker.Count(1)] == ts
    with pytest.raises(TypeError):
        broker.zeek.Event("e", metadata=[("key", 1)])
    with pytest.raises(TypeError):
        broker.zeek.Event("e", metadata=[1, 2])
    # A NetworkTimestamp that is not a timestamp makes the event invalid, as in Broker.
    for bad in ("invalid", 1.234):
        ev3 = broker.zeek.Event("e", 1, metadata=[(broker.zeek.MetadataType.NetworkTimestamp, bad)])
        assert not ev3.valid()
        with pytest.raises(ValueError):
            ev3.args()


def test_parse_received_data_and_invalid_data():
    ev = broker.zeek.Event("pong", 5)
    again = broker.zeek.Event(ev.as_data())
    assert again.name() == "pong" and again.args() == [5]
    assert broker.zeek.Event(ev).args() == [5]
    bad = broker.zeek.Event((1, 2, 3))
    assert not bad.valid()
    with pytest.raises(ValueError, match="invalid Event data"):
        bad.name()
    with pytest.raises(ValueError):
        bad.args()
    assert not broker.zeek.Event("just a string is a name").args()
    with pytest.raises(TypeError):
        broker.zeek.Event()


def test_events_over_a_peering_and_safe_event():
    with broker.Endpoint() as ep1, broker.Endpoint() as ep2, ep1.make_subscriber("/zeek") as s:
        port = ep1.listen("127.0.0.1", 0)
        assert ep2.peer("127.0.0.1", port, 0)
        assert wait_until(lambda: any(str(t) == "/zeek" for t in ep2.peer_subscriptions()))
        ep2.publish("/zeek", broker.zeek.Event("Site::note", {1, 2}, {"a": (1, 2)}, metadata={200: True}))
        t, d = s.get(5.0)
        ev = broker.zeek.Event(d)
        assert t == "/zeek" and ev.name() == "Site::note"
        assert ev.args() == [{1, 2}, {"a": (1, 2)}]
        assert ev.metadata() == [(broker.Count(200), True)]
        safe = broker.zeek.SafeEvent(d)
        args = safe.args()
        assert isinstance(args[0], frozenset)
        hash(args[1])
        assert broker.bro.Event is broker.zeek.Event
