"""Endpoints, peerings, subscribers, publishers and statuses beyond the documents' examples."""

import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

import broker

from conftest import wait_until


def plain_config():
    cfg = broker.Configuration(broker.BrokerOptions())
    cfg.options.disable_ssl = True
    return cfg


@pytest.fixture
def peered():
    ep1, ep2 = broker.Endpoint(plain_config()), broker.Endpoint(plain_config())
    port = ep1.listen("127.0.0.1", 0)
    assert port > 0
    assert ep2.peer("127.0.0.1", port, 1.0)
    assert ep1.await_peer(ep2.node_id()) and ep2.await_peer(ep1.node_id())
    yield ep1, ep2, port
    ep1.shutdown()
    ep2.shutdown()


def test_get_forms(peered):
    ep1, ep2, _ = peered
    with ep1.make_subscriber(["/a", broker.Topic("/b")]) as s:
        assert wait_until(lambda: {str(t) for t in ep2.peer_subscriptions()} >= {"/a", "/b"})
        assert s.get(0.05) is None  # timeout
        assert s.get(3, 0.05) == []  # count and timeout
        assert s.get(timeout=0.01) is None
        for i in range(5):
            ep2.publish("/a/x" if i % 2 else "/b", broker.Count(i))
        assert s.get() == ("/b", broker.Count(0))
        assert s.get(2) == [("/a/x", broker.Count(1)), ("/b", broker.Count(2))]
        assert wait_until(lambda: s.available() == 2)
        assert s.poll() == [("/a/x", broker.Count(3)), ("/b", broker.Count(4))]
        assert s.poll() == [] and s.available() == 0
        ep2.publish("/b", 1)
        assert s.get(num=1, timeout=5.0) == [("/b", 1)]
        assert s.dropped() == 0
    with pytest.raises(RuntimeError):
        s.get(0.01)


def test_fd_is_readable_exactly_while_messages_wait(peered):
    ep1, ep2, _ = peered
    s = ep1.make_subscriber("/fd")
    assert wait_until(lambda: any(str(t) == "/fd" for t in ep2.peer_subscriptions()))
    assert select.select([s.fd()], [], [], 0.05)[0] == []
    ep2.publish("/fd", "x")
    assert select.select([s.fd()], [], [], 5.0)[0] == [s.fd()]
    assert s.poll() == [("/fd", "x")]
    assert select.select([s.fd()], [], [], 0.05)[0] == []
    poller = select.poll()
    poller.register(s.fd(), select.POLLIN)
    ep2.publish_batch(("/fd", 1), ("/fd", 2))
    assert poller.poll(5000)
    assert s.get(2, 5.0) == [("/fd", 1), ("/fd", 2)]


def test_add_and_remove_topic(peered):
    ep1, ep2, _ = peered
    s = ep1.make_subscriber("/one")
    s.add_topic("/two")
    assert wait_until(lambda: {str(t) for t in ep2.peer_subscriptions()} >= {"/one", "/two"})
    ep2.publish("/two", 2)
    assert s.get(5.0) == ("/two", 2)
    s.remove_topic("/two")
    assert wait_until(lambda: "/two" not in {str(t) for t in ep2.peer_subscriptions()})
    ep2.publish("/two", 3)
    ep2.publish("/one", 1)
    assert s.get(5.0) == ("/one", 1)
    assert s.get(0.1) is None


def test_own_publications_are_not_delivered_locally(peered):
    ep1, ep2, _ = peered
    s1, s2 = ep1.make_subscriber("/echo"), ep2.make_subscriber("/echo")
    assert wait_until(lambda: any(str(t) == "/echo" for t in ep1.peer_subscriptions()))
    ep2.publish("/echo", 1)
    assert s1.get(5.0) == ("/echo", 1)
    assert s2.get(0.2) is None


def test_publisher(peered):
    ep1, ep2, _ = peered
    s = ep1.make_subscriber("/pub")
    assert wait_until(lambda: any(str(t) == "/pub" for t in ep2.peer_subscriptions()))
    with ep2.make_publisher("/pub") as p:
        assert p.demand() > 0 and p.capacity() >= p.demand() and p.free_capacity() == p.demand()
        assert select.select([p.fd()], [], [], 0)[0] == [p.fd()]
        p.publish(1)
        p.publish_batch(2, 3)
        p.publish_batch([4, 5])
        assert s.get(5, 5.0) == [("/pub", i) for i in range(1, 6)]
    with pytest.raises(RuntimeError):
        p.publish(6)


def test_peers_unpeer_and_status_sequence():
    ep1, ep2 = broker.Endpoint(plain_config()), broker.Endpoint(plain_config())
    es1 = ep1.make_status_subscriber(True)
    es2 = ep2.make_status_subscriber(True)
    port = ep1.listen("127.0.0.1", 0)
    assert ep2.peer("127.0.0.1", port, 0)
    assert [s.code() for s in es2.get(2, 5.0)] == [broker.SC.EndpointDiscovered, broker.SC.PeerAdded]
    [p] = ep2.peers()
    assert p.status == broker.PeerStatus.Peered
    assert p.peer.node_id() == ep1.node_id()
    assert p.peer.network.address == "127.0.0.1" and p.peer.network.port == port
    # Broker's OptionalNetworkInfo: `.get()` when set.
    assert p.peer.network.is_set() and p.peer.network.get().address == "127.0.0.1"
    assert p.flags & int(broker.PeerFlags.Remote) and p.flags & int(broker.PeerFlags.Outbound)
    assert ep2.unpeer("127.0.0.1", port)
    codes = [s.code() for s in es2.get(2, 5.0)]
    assert broker.SC.PeerRemoved in codes
    codes1 = [s.code() for s in es1.get(4, 5.0)]
    assert codes1[:2] == [broker.SC.EndpointDiscovered, broker.SC.PeerAdded]
    assert broker.SC.PeerLost in codes1 or broker.SC.PeerRemoved in codes1
    assert wait_until(lambda: ep2.peers() == [])
    assert not ep2.unpeer("127.0.0.1", port)
    # Errors only, without statuses.
    es = ep2.make_status_subscriber()
    assert not ep2.peer("127.0.0.1", 1, 0)
    err = es.get(5.0)
    assert type(err) == broker.Error and err.code() == broker.EC.PeerUnavailable
    assert "127.0.0.1" in repr(err) and err.message()
    assert es.available() == 0 and es.poll() == []
    ep1.shutdown()
    ep2.shutdown()


def test_peer_nosync_and_reconnect():
    cfg = plain_config()
    ep1, ep2 = broker.Endpoint(cfg), broker.Endpoint(cfg)
    port = ep1.listen("127.0.0.1", 0)
    es = ep2.make_status_subscriber(True)
    ep2.peer_nosync("127.0.0.1", port, 0.2)
    assert wait_until(lambda: ep1.await_peer(ep2.node_id(), 0.1))
    ep1.shutdown()
    assert wait_until(lambda: any(s.code() == broker.SC.PeerLost for s in es.poll()), 10)
    ep3 = broker.Endpoint(cfg)
    assert wait_until(lambda: ep3.listen("127.0.0.1", port) == port, 10)
    # ep2 dials again at its retry interval.
    assert ep3.await_peer(ep2.node_id(), 10)
    ep2.shutdown()
    ep3.shutdown()


def test_configuration_options():
    o = broker.BrokerOptions()
    assert o.disable_ssl is False and o.forward is True and o.ttl == 20
    o.disable_forwarding = True
    assert o.forward is False
    cfg = broker.Configuration(o)
    cfg.set("peer_buffer_size", 100)
    with pytest.raises(ValueError):
        cfg.set("no_such_option", 1)
    with pytest.raises(ValueError):
        cfg.set("ttl", "many")
    cfg.options.ttl = 3
    cfg.max_threads = 1
    with broker.Endpoint(cfg) as ep:
        assert len(ep.node_id()) == 36
    cfg.openssl_certificate = "/nonexistent/cert.pem"
    cfg.openssl_key = "/nonexistent/key.pem"
    with pytest.raises(RuntimeError):
        broker.Endpoint(cfg)


def test_recording_options_by_brokers_names_and_variables(tmp_path, monkeypatch):
    """broker.recording-directory and broker.output-generator-file-cap, as set() names and
    as BROKER_* variables: the endpoint writes Broker's recording files."""
    cfg = plain_config()
    cfg.set("broker.recording-directory", str(tmp_path / "set"))
    cfg.set("broker.output-generator-file-cap", 5)
    with pytest.raises(ValueError):
        cfg.set("broker.output-generator-file-cap", "lots")
    with broker.Endpoint(cfg) as ep:
        with ep.make_subscriber("/recorded"):
            for i in range(10):
                ep.publish("/recorded/x", i)
            me = ep.node_id()
        ep.shutdown()
    d = tmp_path / "set"
    assert (d / "id.txt").read_text() == me + "\n"
    assert (d / "topics.txt").read_text() == "/recorded\n"
    assert (d / "peers.txt").read_text() == ""
    assert "forward = true" in (d / "broker.conf").read_text()
    dat = (d / "messages.dat").read_bytes()
    # Header (magic, version 2), the topic, then five integer entries (the cap).
    assert dat[:5] == bytes([0xDE, 0xC0, 0xEC, 0x2E, 2])
    topic = b"\x00\x0b/recorded/x"
    assert dat[5 : 5 + len(topic)] == topic
    assert dat[5 + len(topic) :] == b"\x01\x00\x00\x03" * 5
    monkeypatch.setenv("BROKER_RECORDING_DIRECTORY", str(tmp_path / "env"))
    with broker.Endpoint(plain_config()) as ep:
        ep.shutdown()
    assert (tmp_path / "env" / "messages.dat").read_bytes() == bytes([0xDE, 0xC0, 0xEC, 0x2E, 2])
    # ignore_broker_conf: the variables are not read.
    o = broker.BrokerOptions()
    o.ignore_broker_conf = True
    monkeypatch.setenv("BROKER_RECORDING_DIRECTORY", str(tmp_path / "ignored"))
    with broker.Endpoint(broker.Configuration(o)) as ep:
        ep.shutdown()
    assert not (tmp_path / "ignored").exists()


def test_forwarding_across_three_endpoints():
    a, b, c = (broker.Endpoint(plain_config()) for _ in range(3))
    sc = c.make_subscriber("/fwd")
    pb = b.listen("127.0.0.1", 0)
    pc = c.listen("127.0.0.1", 0)
    assert a.peer("127.0.0.1", pb, 0) and b.peer("127.0.0.1", pc, 0)
    assert wait_until(lambda: any(str(t) == "/fwd" for t in a.peer_subscriptions()))
    a.publish("/fwd", "hop")
    assert sc.get(5.0) == ("/fwd", "hop")
    b.forward(["/extra"])
    for ep in (a, b, c):
        ep.shutdown()


def test_blocking_get_releases_the_gil(peered):
    ep1, ep2, _ = peered
    s = ep1.make_subscriber("/gil")
    assert wait_until(lambda: any(str(t) == "/gil" for t in ep2.peer_subscriptions()))
    got = []
    t = threading.Thread(target=lambda: got.append(s.get()))
    t.start()
    # While the other thread waits in get(), this one keeps running Python code.
    spins = 0
    end = time.time() + 0.3
    while time.time() < end:
        spins += 1
    assert spins > 10000
    ep2.publish("/gil", "wake")
    t.join(5)
    assert got == [("/gil", "wake")]


def test_shutdown_wakes_a_blocked_get():
    ep = broker.Endpoint(plain_config())
    s = ep.make_subscriber("/x")
    got = []
    t = threading.Thread(target=lambda: got.append(s.get()))
    t.start()
    time.sleep(0.1)
    ep.shutdown()
    t.join(5)
    assert not t.is_alive() and got == [None]
    with pytest.raises(RuntimeError):
        ep.publish("/x", 1)


def test_ctrl_c_interrupts_get(tmp_path):
    # Python leaves SIGINT ignored when it starts with it ignored (a CI job started in the
    # background): the child installs Python's handler itself, as an interactive one has it.
    code = (
        "import broker, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "ep = broker.Endpoint()\n"
        "s = ep.make_subscriber('/nothing')\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    s.get()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(3)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=10)
    assert out.strip() == "interrupted" and p.returncode == 3


def test_invalid_arguments():
    with broker.Endpoint(plain_config()) as ep:
        with pytest.raises(ValueError):
            ep.await_peer("not-an-id")
        with pytest.raises(TypeError):
            ep.publish(5, 1)
        with pytest.raises(TypeError):
            ep.make_subscriber(5)
        with pytest.raises(TypeError):
            ep.publish_batch(("/only-topic",))
        s = ep.make_subscriber("/x")
        with pytest.raises(ValueError):
            s.get(-1.0)
        with pytest.raises(TypeError):
            s.get("soon")
        assert ep.listen("256.0.0.1", 0) == 0  # Broker's answer for a failed listen
        assert ep.peer("127.0.0.1", 1, 0) is False


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN={ca}", cwd=d)
    for name, ca in (("node1", "ca"), ("node2", "ca"), ("rogue", "other-ca")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", cwd=d)
    return d


def tls_config(d, name, ca="ca"):
    cfg = broker.Configuration()
    cfg.openssl_cafile = str(d / f"{ca}.pem")
    cfg.openssl_certificate = str(d / f"{name}.pem")
    cfg.openssl_key = str(d / f"{name}.key")
    return cfg


def test_tls_with_certificates(certs):
    with broker.Endpoint(tls_config(certs, "node1")) as ep1, \
         broker.Endpoint(tls_config(certs, "node2")) as ep2, \
         broker.Endpoint(tls_config(certs, "rogue", "other-ca")) as rogue, \
         ep1.make_subscriber("/tls") as s:
        port = ep1.listen("127.0.0.1", 0)
        assert ep2.peer("127.0.0.1", port, 0)
        assert wait_until(lambda: any(str(t) == "/tls" for t in ep2.peer_subscriptions()))
        ep2.publish("/tls", "secret")
        assert s.get(5.0) == ("/tls", "secret")
        assert rogue.peer("127.0.0.1", port, 0) is False


def test_default_tls_is_anonymous_and_interoperates_with_plain_refusal():
    with broker.Endpoint() as ep1, broker.Endpoint() as ep2, \
         broker.Endpoint(plain_config()) as plain:
        port = ep1.listen("127.0.0.1", 0)
        assert ep2.peer("127.0.0.1", port, 0)
        assert plain.peer("127.0.0.1", port, 0) is False
