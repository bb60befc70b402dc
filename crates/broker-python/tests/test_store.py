"""Data stores from Python: every operation, expiry, clones, backends, waiting for idle."""

import datetime
import time
import warnings

import pytest

import broker

from conftest import wait_until


def run_tri_setup(f):
    """A master and two clones on three peered endpoints."""
    with broker.Endpoint() as ep0, \
         broker.Endpoint() as ep1, \
         broker.Endpoint() as ep2, \
         ep0.attach_master("test", broker.Backend.Memory) as m, \
         ep1.attach_clone("test") as c1, \
         ep2.attach_clone("test") as c2:
        port = ep0.listen("127.0.0.1", 0)
        assert ep1.peer("127.0.0.1", port)
        assert ep2.peer("127.0.0.1", port)
        assert ep0.await_peer(ep1.node_id())
        assert ep0.await_peer(ep2.node_id())
        assert c1.await_idle()
        assert c2.await_idle()
        f(m, c1, c2)


def test_accessors_everywhere():
    def impl(m, c1, c2):
        v1, v2, v3, v4 = "A", {"A", "B", "C"}, {1: "A", 2: "B", 3: "C"}, ("A", "B", "C")
        m.put("a", v1)
        m.put("b", v2)
        m.put("c", v3)
        m.put("d", v4)
        assert c2.put_unique("e", "first") is True
        assert c2.put_unique("e", "second") is False
        assert c2.put_unique("e", "third") is False
        for s in (m, c1, c2):
            assert s.await_idle()

        def check(x):
            assert wait_until(lambda: x.get("e") == "first")
            assert x.get("a") == v1
            assert x.get("b") == v2
            assert x.get("c") == v3
            assert x.get("d") == v4
            assert x.get("X") is None
            assert x.exists("d") is True
            assert x.exists("X") is False
            assert x.get_index_from_value("b", "A") is True
            assert x.get_index_from_value("b", "X") is False
            assert x.get_index_from_value("c", 1) == "A"
            assert x.get_index_from_value("c", 10) is None
            assert x.get_index_from_value("d", 1) == "B"
            assert x.get_index_from_value("d", 10) is None
            assert x.keys() == {"a", "b", "c", "d", "e"}

        for s in (m, c1, c2):
            check(s)

        m.put("e", 5)
        m.put("f", 5)
        m.put("g", 5, 0.1)
        m.put("h", 5, datetime.timedelta(seconds=20))
        m.put("str", "b")
        m.put("vec", (1, 2))
        m.put("set", {1, 2})
        m.put("table", {1: "A", "2": "C"})
        m.increment("e", 1)
        m.decrement("f", 1)
        m.append("str", "ar")
        m.insert_into("set", 3)
        m.remove_from("set", 1)
        m.insert_into("table", 3, "D")
        m.remove_from("table", 1)
        m.push("vec", 3)
        m.push("vec", 4)
        m.pop("vec")
        time.sleep(0.15)  # 'g' expires.
        for s in (m, c1, c2):
            assert s.await_idle()

        def check_ops(x):
            assert wait_until(lambda: x.get("g") is None and x.get("vec") == (1, 2, 3))
            assert x.get("e") == 6
            assert x.get("f") == 4
            assert x.get("h") == 5
            assert x.get("str") == "bar"
            assert x.get("set") == {2, 3}
            assert x.get("table") == {3: "D", "2": "C"}
            assert x.keys() == {"a", "b", "c", "d", "e", "f", "h", "str", "vec", "set", "table"}

        for s in (m, c1, c2):
            check_ops(s)

        # Writes through a clone reach the master and the other clone.
        c1.put("from-clone", broker.Count(1))
        c1.increment("from-clone", broker.Count(2))
        c1.erase("a")
        assert c1.await_idle()
        for s in (m, c2):
            assert wait_until(lambda: s.get("from-clone") == broker.Count(3) and not s.exists("a"))
        c2.clear()
        assert c2.await_idle()
        for s in (m, c1, c2):
            assert wait_until(lambda: s.keys() == set())

    run_tri_setup(impl)


def test_every_mutation_with_expiry():
    with broker.Endpoint() as ep, ep.attach_master("exp", broker.Backend.Memory) as m:
        m.put("n", 1)
        m.increment("n", 1, 0.2)
        m.put("s", "a")
        m.append("s", "b", 0.2)
        m.put("set", set())
        m.insert_into("set", 1, expiry=0.2)
        m.put("t", {})
        m.insert_into("t", "k", "v", 0.2)
        m.put("v", ())
        m.push("v", 1, 0.2)
        m.put("w", (1, 2))
        m.pop("w", 0.2)
        m.put("r", {1})
        m.remove_from("r", 1, 0.2)
        m.put("d", 5)
        m.decrement("d", 1, 0.2)
        assert m.put_unique("u", 1, 0.2) is True
        m.put("stay", 1)
        assert m.await_idle()
        assert m.get("n") == 2 and m.get("s") == "ab" and m.get("t") == {"k": "v"}
        assert wait_until(lambda: m.keys() == {"stay"}, 5)


def test_store_errors_and_types():
    with broker.Endpoint() as ep, ep.make_status_subscriber() as es:
        m = ep.attach_master("types", broker.Backend.Memory)
        m.put("i", 1)
        m.increment("i", "not a number")
        err = es.get(5.0)
        assert type(err) == broker.Error and err.code() == broker.EC.TypeClash
        assert m.get("i") == 1
        # As in Broker, attaching the name again gives the master already there.
        again = ep.attach_master("types", broker.Backend.Memory)
        assert again.get("i") == 1 and again.is_master()
        with pytest.warns(RuntimeWarning, match="no_such_master"):
            assert ep.attach_clone("types") is None
        with pytest.raises(TypeError):
            m.put("x", object())
        with pytest.raises(ValueError):
            m.put("x", 1, -1)
        assert m.name() == "types" and m.is_master() and "master" in repr(m)
        m.reset()
        with pytest.raises(RuntimeError):
            m.get("i")


def test_sqlite_backend_persists(tmp_path):
    path = str(tmp_path / "store.sqlite")
    with broker.Endpoint() as ep:
        m = ep.attach_master("persist", broker.Backend.SQLite, {"path": path})
        m.put("k", {"nested": (1, 2.5, broker.Count(3))})
        m.put("soon", 1, 30)
        assert m.await_idle()
    with broker.Endpoint() as ep:
        m = ep.attach_master("persist", broker.Backend.SQLite, {"path": path})
        assert m.get("k") == {"nested": (1, 2.5, broker.Count(3))}
        assert m.get("soon") == 1
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_text("hello")
    with broker.Endpoint() as ep:
        with pytest.warns(RuntimeWarning, match="backend_failure"):
            assert ep.attach_master("bad", broker.Backend.SQLite, {"path": str(bad)}) is None
    assert bad.read_text() == "hello"


def test_clone_without_master_answers_none():
    with broker.Endpoint() as ep:
        c = ep.attach_clone("nobody", resync_interval=0.1)
        t0 = time.time()
        assert c.get("x") is None
        assert time.time() - t0 < 10
        assert c.is_master() is False
