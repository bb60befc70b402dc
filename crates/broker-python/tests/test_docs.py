"""Every example of the two reference documents: Broker's Python bindings chapter and §2.5
of the Broker 1.1 manual. Scripts from the documents live in `doc_scripts/` verbatim."""

import ipaddress
import os
import subprocess
import sys
import threading
import time

import broker

from conftest import doc_script, run_python, wait_until


# -- Communication (bindings doc 6.2) -----------------------------------------------------------


def test_bindings_doc_communication():
    with broker.Endpoint() as ep1, \
         broker.Endpoint() as ep2, \
         ep1.make_subscriber("/test") as s1, \
         ep2.make_subscriber("/test") as s2:
        port = ep1.listen("127.0.0.1", 0)
        assert ep2.peer("127.0.0.1", port, 1.0)

        ep1.await_peer(ep2.node_id())
        ep2.await_peer(ep1.node_id())

        ep2.publish("/test", ["ping"])
        (t, d) = s1.get()
        # t == "/test", d == ["ping"]
        assert t == "/test"
        assert d == ("ping",)  # vectors come back as tuples

        msg1 = ("/test/2", (1, 2, 3))
        msg2 = ("/test/3", (42, "foo", {"a": "A", "b": ipaddress.IPv4Address('1.2.3.4')}))
        ep2.publish_batch(msg1, msg2)
        got = s1.get(2, 5.0)
        assert got == [msg1, msg2]

        # "available", "poll()", "fd()" and "{add,remove}_topic".
        assert s2.available() == 0
        assert s2.poll() == []
        assert isinstance(s2.fd(), int)
        s1.add_topic("/other")
        s1.remove_topic("/test")
        assert wait_until(lambda: any(str(x) == "/other" for x in ep2.peer_subscriptions()))
        ep2.publish("/other", 1)
        assert s1.get(5.0) == ("/other", 1)


def test_manual_communication():
    # §2.5.2 of the manual: endpoints and subscribers without `with`, lists in messages.
    ep1 = broker.Endpoint()
    ep2 = broker.Endpoint()

    s1 = ep1.make_subscriber("/test")
    s2 = ep2.make_subscriber("/test")

    port = ep1.listen("127.0.0.1", 0)
    ep2.peer("127.0.0.1", port, 1.0)
    assert ep1.await_peer(ep2.node_id())

    ep2.publish("/test", ["ping"])
    (t, d) = s1.get()
    assert (t, d) == ("/test", ("ping",))

    msg1 = ("/test/2", [1, 2, 3])
    msg2 = ("/test/3", [42, "foo", {"a": "A", "b": ipaddress.IPv4Address('1.2.3.4')}])
    ep2.publish_batch(msg1, msg2)
    assert s1.get(2, 5.0) == [
        ("/test/2", (1, 2, 3)),
        ("/test/3", (42, "foo", {"a": "A", "b": ipaddress.IPv4Address("1.2.3.4")})),
    ]
    assert s2.available() == 0
    ep1.shutdown()
    ep2.shutdown()


# -- Zeek events (bindings doc 6.3, manual 2.5.3) -------------------------------------------------


class FakeZeek:
    """Stands in for `ping.zeek`: listens, subscribes to /topic/test and answers every
    `ping(n)` with `pong(n)` (Zeek's `auto_publish`)."""

    def __init__(self):
        self.ep = broker.Endpoint()
        self.sub = self.ep.make_subscriber("/topic/test")
        self.port = self.ep.listen("127.0.0.1", 0)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            msg = self.sub.get(0.1)
            if msg is None:
                continue
            ev = broker.zeek.Event(msg[1])
            if ev.name() == "ping":
                self.ep.publish("/topic/test", broker.zeek.Event("pong", *ev.args()))

    def close(self):
        self.stop.set()
        self.thread.join()
        self.ep.shutdown()


# Broker ≥ 2 (and the bindings document's own status example below) report
# endpoint_discovered before peer_added, while these older scripts take the first status for
# peer_added. The tests apply that one change, skipping endpoint_discovered.
SKIP_DISCOVERY = {
    "st = ss.get()": "st = ss.get()\n"
    "    while st.code() == broker.SC.EndpointDiscovered: st = ss.get()",
}


def test_ping_script(tmp_path):
    zeek = FakeZeek()
    try:
        code = doc_script("ping.py", {
            'ep.peer("127.0.0.1", 9999)': f'ep.peer("127.0.0.1", {zeek.port})',
            **SKIP_DISCOVERY,
        })
        r = run_python(code, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == [f"received pong[{n}]" for n in range(5)]
    finally:
        zeek.close()


def test_ping_script_of_the_manual():
    # The manual's version uses Broker 1.x's `broker.bro` module and plain endpoints.
    zeek = FakeZeek()
    try:
        ep = broker.Endpoint()
        sub = ep.make_subscriber("/topic/test")
        ss = ep.make_status_subscriber(True)
        ep.peer("127.0.0.1", zeek.port)
        st = ss.get()
        while st.code() == broker.SC.EndpointDiscovered:
            st = ss.get()
        assert type(st) == broker.Status and st.code() == broker.SC.PeerAdded
        received = []
        for n in range(5):
            ping = broker.bro.Event("ping", n)
            ep.publish("/topic/test", ping)
            (t, d) = sub.get()
            pong = broker.bro.Event(d)
            received.append("received {}{}".format(pong.name(), pong.args()))
        assert received == [f"received pong[{n}]" for n in range(5)]
        ep.shutdown()
    finally:
        zeek.close()


# -- Status and error messages (bindings doc 6.5, manual 2.5.5) --------------------------------


def test_status_unavailable_peer():
    with broker.Endpoint() as ep1, \
         ep1.make_status_subscriber() as es1:
        r = ep1.peer("127.0.0.1", 1947, 0.0)  # Try unavailable port, no retry
        assert r is False
        st1 = es1.get(5.0)
        # s1.code() == broker.EC.PeerUnavailable
        assert type(st1) == broker.Error
        assert st1.code() == broker.EC.PeerUnavailable


def test_status_peering():
    with broker.Endpoint() as ep1, \
         broker.Endpoint() as ep2, \
         ep1.make_status_subscriber(True) as es1, \
         ep2.make_status_subscriber(True) as es2:

        port = ep1.listen("127.0.0.1", 0)
        assert ep2.peer("127.0.0.1", port, 1.0) is True

        ep1.await_peer(ep2.node_id())
        ep2.await_peer(ep1.node_id())

        st1 = es1.get(2)
        st2 = es2.get(2)
        # st1.code() == [broker.SC.EndpointDiscovered, broker.SC.PeerAdded]
        assert [s.code() for s in st1] == [broker.SC.EndpointDiscovered, broker.SC.PeerAdded]
        assert [s.code() for s in st2] == [broker.SC.EndpointDiscovered, broker.SC.PeerAdded]
        assert st1[1].context().node_id() == ep2.node_id()
        assert st2[1].context().network.port == port


def test_manual_status_examples():
    ep1 = broker.Endpoint()
    es1 = ep1.make_status_subscriber()
    r = ep1.peer("127.0.0.1", 1947, 0.0)  # Try unavailable port, no retry
    st1 = es1.get()
    assert not r and st1.code() == broker.EC.PeerUnavailable
    ep1.shutdown()

    ep1 = broker.Endpoint()
    ep2 = broker.Endpoint()
    es1 = ep1.make_status_subscriber(True)
    es2 = ep2.make_status_subscriber(True)
    port = ep1.listen("127.0.0.1", 0)
    ep2.peer("127.0.0.1", port, 1.0)
    # The manual shows only peer_added; Broker ≥ 2 reports endpoint_discovered first.
    codes1 = [s.code() for s in es1.get(2, 5.0)]
    codes2 = [s.code() for s in es2.get(2, 5.0)]
    assert broker.SC.PeerAdded in codes1 and broker.SC.PeerAdded in codes2
    ep1.shutdown()
    ep2.shutdown()


# -- Data stores (bindings doc 6.6, manual 2.5.6) ------------------------------------------------


def test_master_example():
    with broker.Endpoint() as ep1, \
         ep1.attach_master("test", broker.Backend.Memory) as m:

        m.put("key", "value")
        x = m.get("key")
        # x == "value"
        assert x == "value"
        assert m.name() == "test"


def test_store_operations_example():
    ep1 = broker.Endpoint()
    m = ep1.attach_master("test", broker.Backend.Memory)
    m.put("e", 5)
    m.put("f", 5)
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

    assert m.await_idle()
    assert m.get("e") == 6
    assert m.get("f") == 4
    assert m.get("str") == "bar"
    assert m.get("set") == {2, 3}
    assert m.get("table") == {"2": "C", 3: "D"}
    assert m.get("vec") == (1, 2, 3)
    ep1.shutdown()


def test_sqlite_scripts(tmp_path):
    """sqlite-listen.py and sqlite-connect.py, on a free port, for a few rounds."""
    probe = broker.Endpoint()
    port = probe.listen("127.0.0.1", 0)
    probe.shutdown()
    time.sleep(0.2)
    listen = doc_script("sqlite-listen.py", {
        "ep.listen('127.0.0.1', 9999)": f"ep.listen('127.0.0.1', {port})",
        "while True:": "import sys\n    for _ in range(4):",
        "print(m.get('foo'))": "print(m.get('foo'), flush=True)",
    })
    connect = doc_script("sqlite-connect.py", {
        "ep.peer('127.0.0.1', 9999, 1.0)": f"ep.peer('127.0.0.1', {port}, 1.0)",
        "while True:": "for _ in range(3):",
        # Ending the endless loop: let the last increment reach the master before leaving.
        "print(c.get('foo'))": "print(c.get('foo'), flush=True)\n    c.await_idle()",
        **SKIP_DISCOVERY,
    })
    server = subprocess.Popen([sys.executable, "-c", listen], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: (tmp_path / "mystore.sqlite").exists(), 20)
        r = run_python(connect, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        values = [int(x) for x in r.stdout.split() if x != "None"]
        # Each round adds 1 at the master; the clone sees its writes once they come back.
        assert values == sorted(values) and values and values[-1] <= 3
        out, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("endpoint_discovered") or lines[0].startswith("peer_added")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # The master kept the counter in Broker's SQLite layout.
    reopened = doc_script("sqlite-listen.py", {
        "ep.listen('127.0.0.1', 9999)": "pass",
        "while True:\n        print(ss.get())\n        print(m.get('foo'))":
            "print(m.get('foo'))",
    })
    r = run_python(reopened, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"
