"""Mixed networks of real processes: C++ Broker 2.8 endpoints (its Python bindings) and
broker-rs endpoints (our `broker node`, or our Python bindings) in every position, TLS on and
off, checked by exact delivery counts against what the same network built only of C++ nodes
does.

Skipped, with one line saying so, when no built C++ Broker is found (CPP_BROKER_DIR, default
/var/cache/cpp-broker-2.8; `cargo xtask ci` builds it from ../shared/cpp-broker).
"""

import time

import pytest

from harness import RsNode, Script, cpp_available, peered, settle_until

pytestmark = pytest.mark.skipif(
    not cpp_available(), reason="no built C++ Broker (CPP_BROKER_DIR): interop suite skipped"
)

N = 20
# Where a node in the middle may come from: C++ Broker, our `broker node`, our Python bindings.
MIDDLES = ["cpp", "rs-node", "rs-py"]


class Net:
    """The processes of one test, stopped at its end."""

    def __init__(self, tls):
        self.tls = tls
        self.procs = []

    def script(self, name, impl="cpp", forward=True):
        s = Script(name, impl, disable_ssl=not self.tls, forward=forward)
        self.procs.append(s)
        return s

    def node(self, name, impl, peers=(), subscribe=(), forward=True, listen=True, extra=()):
        """A node of any implementation that subscribes to `subscribe`, listens and dials
        `peers` (already listening)."""
        if impl == "rs-node":
            n = RsNode(name, disable_ssl=not self.tls, peers=peers, subscribe=subscribe, forward=forward, extra=extra)
            self.procs.append(n)
            return n
        n = self.script(name, "cpp" if impl == "cpp" else "rs", forward=forward)
        if subscribe:
            n.sub(*subscribe)
        if listen:
            n.listen()
        for p in peers:
            n.peer(p)
        return n

    def close(self):
        for p in self.procs:
            try:
                p.stop()
            except Exception:  # noqa: BLE001
                pass


@pytest.fixture(params=[False, True], ids=["tcp", "tls"])
def net(request):
    n = Net(request.param)
    yield n
    n.close()


def counts(node, prefix="/t/"):
    return len([m for m in node.messages(prefix)])


def wait_sentinel(nodes, topic, n=1):
    """Waits until every node got the sentinel on `topic` (published after the data by the
    same publisher, so everything before it has arrived on every path)."""
    for x in nodes:
        settle_until(lambda x=x: len(x.messages(topic)) >= n, what="sentinel %s at %s" % (topic, x.name))


def publish_and_settle(pub, subscribers, n=N):
    pub.pub("/t/x", "count", n)
    pub.pub("/t/end", "count", 1)
    wait_sentinel(subscribers, "/t/end")
    # A second sentinel: duplicates that looped around arrive before it does.
    pub.pub("/t/end", "count", 1)
    wait_sentinel(subscribers, "/t/end", 2)


def publish_values(pub):
    """One value of every type and a Zeek event on /v, then a sentinel on /v/end."""
    pub.pub("/v/types", "types")
    pub.pub("/v/event", "event")
    pub.pub("/v/end", "count", 1)


def connected(*scripts_and_peers):
    for node, k in scripts_and_peers:
        if isinstance(node, Script):
            peered(node, k)


@pytest.mark.parametrize("middle", MIDDLES)
def test_chain_through_any_middle_delivers_exactly_once(net, middle):
    """C++ A (subscribes, publishes) — M — C++ C (subscribes): C gets every message once, A
    none back (the storm of issue 16 with a broker-rs M)."""
    a = net.node("A", "cpp", subscribe=["/t"])
    c = net.node("C", "cpp", subscribe=["/t"])
    # The middle subscribes as `broker-node -t /t` does (a C++ relay carries only its own
    # topics), and gets every message once too.
    m = net.node("M", middle, peers=[a, c], subscribe=["/t"])
    connected((a, 1), (c, 1), (m, 2))
    time.sleep(0.5)
    publish_and_settle(a, [c, m])
    assert counts(c, "/t/x") == N
    assert counts(m, "/t/x") == N
    assert counts(a, "/t/") == 0, "nothing comes back to the publisher"


@pytest.mark.parametrize("middle", ["rs-node", "rs-py"])
def test_subscriptions_made_after_peering_travel_and_nothing_storms(net, middle):
    """Issue 16's storm: with both subscriptions made after the peerings, the relay tells each
    side about the other's (routing updates). A broker-rs relay that kept the publisher as
    `sender` made C reflect the message back, and A reflect that: ~14,000 copies in 5 s."""
    a = net.node("A", "cpp")
    c = net.node("C", "cpp")
    net.node("M", middle, peers=[a, c])
    connected((a, 1), (c, 1))
    a.sub("/t")
    c.sub("/t")
    time.sleep(1.0)
    publish_and_settle(a, [c])
    assert counts(c, "/t/x") == N
    assert counts(a) == 0


@pytest.mark.parametrize("middle", ["rs-node", "rs-py"])
def test_a_broker_rs_relay_carries_what_it_does_not_subscribe(net, middle):
    """Beyond Broker: a broker-rs node in the middle announces what is reachable through it,
    so it relays topics it does not subscribe to itself."""
    a = net.node("A", "cpp")
    c = net.node("C", "cpp", subscribe=["/t"])
    net.node("M", middle, peers=[a, c])
    connected((a, 1), (c, 1))
    time.sleep(0.5)
    publish_and_settle(a, [c])
    assert counts(c, "/t/x") == N


@pytest.mark.parametrize("middle", ["cpp", "rs-node"])
def test_every_type_and_zeek_events_arrive_as_through_cpp(net, middle):
    """Values of all 15 types and a Zeek event with metadata, C++ → M → C++, arrive exactly as
    they do through a C++ relay (the same canonical text)."""
    a = net.node("A", "cpp")
    c = net.node("C", "cpp", subscribe=["/v"])
    m = net.node("M", middle, peers=[a, c], subscribe=["/v"])
    connected((a, 1), (c, 1))
    time.sleep(0.5)
    publish_values(a)
    wait_sentinel([c], "/v/end")
    got = c.messages("/v/")
    assert len(got) == 16 + 1 + 1, got
    # The reference: the values as C++ Broker converts them, from a direct C++ peering.
    ref = net.node("R", "cpp", subscribe=["/v"], peers=[a])
    peered(a, 2)
    time.sleep(0.3)
    publish_values(a)
    wait_sentinel([ref], "/v/end")
    assert got == ref.messages("/v/")
    assert [t for t, _ in got[:16]] == ["/v/types"] * 16


@pytest.mark.parametrize("impl", ["rs-node", "rs-py"])
def test_values_from_broker_rs_arrive_at_cpp_as_from_cpp(net, impl):
    """The other direction: values published by broker-rs reach C++ as C++'s own do (our Python
    bindings publish the same Python values; our node relays a C++ publisher's)."""
    c = net.node("C", "cpp", subscribe=["/v"])
    if impl == "rs-py":
        p = net.node("P", "rs-py", peers=[c])
    else:
        src = net.node("S", "cpp")
        net.node("M", "rs-node", peers=[src, c])
        peered(src, 1)
        p = src
    peered(c, 1)
    time.sleep(0.5)
    publish_values(p)
    wait_sentinel([c], "/v/end")
    ref_pub = net.node("Q", "cpp", peers=[c])
    peered(c, 2)
    time.sleep(0.3)
    publish_values(ref_pub)
    wait_sentinel([c], "/v/end", 2)
    got = c.messages("/v/")
    first, second = got[: len(got) // 2], got[len(got) // 2 :]
    assert first == second


@pytest.mark.parametrize("hub", MIDDLES)
def test_hub_with_cpp_publisher_and_subscribers(net, hub):
    """A hub with a C++ publisher and two C++ subscribers: each gets every message once."""
    p = net.node("P", "cpp", subscribe=["/t"])
    s1 = net.node("S1", "cpp", subscribe=["/t"])
    s2 = net.node("S2", "cpp", subscribe=["/t"])
    h = net.node("H", hub, peers=[p, s1, s2], subscribe=["/t"])
    connected((p, 1), (s1, 1), (s2, 1), (h, 3))
    time.sleep(0.5)
    publish_and_settle(p, [s1, s2])
    assert (counts(s1, "/t/x"), counts(s2, "/t/x"), counts(p)) == (N, N, 0)


def test_a_node_subscriber_beside_a_cpp_subscriber_gets_each_message_once(net):
    """Our node subscribes to /t and so does a C++ peer of it; a C++ publisher publishes:
    both get every message once (the C++ subscriber no longer reflects it back)."""
    p = net.node("P", "cpp")
    s = net.node("S", "cpp", subscribe=["/t"])
    h = net.node("H", "rs-node", peers=[p, s], subscribe=["/t"])
    connected((p, 1), (s, 1))
    time.sleep(0.5)
    publish_and_settle(p, [s, h])
    assert counts(s, "/t/x") == N
    assert counts(h, "/t/x") == N


def test_a_cpp_node_peered_with_two_broker_rs_nodes_is_heard_once(net):
    """C++ X peers with broker-rs R1 and R2, which peer with each other: a loop that storms
    when R1 and R2 are C++ nodes too. Through its designated attachment, X's messages reach
    everybody once and X gets each of theirs once."""
    x = net.node("X", "cpp", subscribe=["/t"])
    r1 = net.node("R1", "rs-node", peers=[x], subscribe=["/t"])
    r2 = net.node("R2", "rs-node", peers=[x, r1], subscribe=["/t"])
    y = net.node("Y", "cpp", subscribe=["/t"], peers=[r2])
    connected((x, 2), (y, 1))
    time.sleep(1.0)
    publish_and_settle(x, [r1, r2, y])
    assert (counts(r1, "/t/x"), counts(r2, "/t/x"), counts(y, "/t/x")) == (N, N, N)
    assert counts(x) == 0
    # And the other way: Y's messages reach X once.
    y.pub("/t/y", "count", N)
    y.pub("/t/end2", "count", 1)
    wait_sentinel([x, r1], "/t/end2")
    assert (counts(x, "/t/y"), counts(r1, "/t/y")) == (N, N)


def test_the_same_loop_of_cpp_nodes_storms(net):
    """The reference for the test above: with C++ nodes for R1 and R2 the loop repeats X's
    message (Broker 2.8 only avoids sending a message back to its last hop)."""
    x = net.node("X", "cpp", subscribe=["/t"])
    r1 = net.node("R1", "cpp", peers=[x], subscribe=["/t"])
    net.node("R2", "cpp", peers=[x, r1], subscribe=["/t"])
    peered(x, 2)
    time.sleep(0.5)
    x.pub("/t/x", "count", 1)
    settle_until(lambda: counts(r1, "/t/x") > 1, what="a repeated message in an all-C++ loop")


def test_a_zeek_like_cluster_with_a_broker_rs_manager(net):
    """Zeek's layout (forwarding off on Zeek nodes): workers and a logger peer with the
    manager; the manager is broker-rs. Node topics and broadcast topics each arrive once."""
    mgr = net.node("manager", "rs-node", subscribe=["zeek/cluster/manager/"], forward=False)
    logger = net.node("logger", "cpp", subscribe=["zeek/cluster/logger/"], forward=False, peers=[mgr])
    workers = [
        net.node("w%d" % i, "cpp", subscribe=["zeek/cluster/worker/", "zeek/cluster/node/w%d/" % i], forward=False, peers=[mgr, logger])
        for i in range(2)
    ]
    connected((logger, 1), (workers[0], 2), (workers[1], 2))
    time.sleep(0.5)
    for w in workers:
        w.pub("zeek/cluster/manager/hello", "event")
        w.pub("zeek/cluster/logger/log", "count", 5)
    settle_until(lambda: len(mgr.messages("zeek/cluster/manager/")) == 2, what="hellos at the manager")
    settle_until(lambda: len(logger.messages("zeek/cluster/logger/")) == 10, what="logs at the logger")
    # The manager's broadcast to workers: once each (our node publishes through a C++ peer?
    # no: workers are its direct peers).
    time.sleep(0.3)
    assert len(mgr.messages("zeek/cluster/manager/")) == 2
    assert len(logger.messages("zeek/cluster/logger/")) == 10


def statuses_of(node):
    return [c for c, _ in node.statuses() if c in ("peer_added", "peer_removed", "peer_lost", "endpoint_unreachable")]


@pytest.mark.parametrize("impl", ["cpp", "rs-node", "rs-py"])
def test_unpeer_and_shutdown_statuses_match_cpp(net, impl):
    """A C++ endpoint that unpeers from, and then sees the shutdown of, a peer of each kind
    reports the same statuses whatever the peer is (Broker 2.8: the side that ends a peering
    reports peer_removed, the other side peer_lost — also when it ends with a BYE)."""
    a = net.node("A", "cpp")
    b = net.node("B", impl, peers=[a])
    peered(a, 1)
    time.sleep(0.3)
    # The peer shuts down (SIGTERM for our node: the same graceful shutdown).
    b.shutdown()
    settle_until(lambda: "endpoint_unreachable" in statuses_of(a), what="endpoint_unreachable at A")
    assert statuses_of(a) == ["peer_added", "peer_lost", "endpoint_unreachable"]
    # A unpeers a peer of this kind.
    c = net.node("C", impl)
    a.peer(c)
    settle_until(lambda: statuses_of(a).count("peer_added") == 2, what="second peer_added at A")
    assert a.ask({"op": "unpeer", "port": c.port}, "unpeered")["ok"]
    settle_until(lambda: statuses_of(a).count("endpoint_unreachable") == 2, what="second endpoint_unreachable")
    assert statuses_of(a)[3:] == ["peer_added", "peer_removed", "endpoint_unreachable"]
    # And the side that was unpeered reports what a C++ endpoint reports: peer_lost.
    settle_until(lambda: "endpoint_unreachable" in statuses_of(c), what="endpoint_unreachable at C")
    assert statuses_of(c) == ["peer_added", "peer_lost", "endpoint_unreachable"]


@pytest.mark.parametrize("master_impl,clone_impl", [("cpp", "rs-py"), ("rs-py", "cpp")])
def test_stores_across_implementations(net, master_impl, clone_impl):
    """A master on one implementation and a clone on the other, peered directly: writes at
    either end reach both."""
    m = net.node("M", master_impl)
    m.ask({"op": "master", "name": "s"}, "attached")
    c = net.node("C", clone_impl, peers=[m])
    peered(m, 1)
    c.ask({"op": "clone", "name": "s"}, "attached")
    m.ask({"op": "put", "name": "s", "key": "k", "value": 1}, "put")
    settle_until(lambda: c.ask({"op": "get", "name": "s", "key": "k"}, "got")["value"] == "int:1", what="the master's put at the clone")
    c.ask({"op": "put", "name": "s", "key": "j", "value": "v"}, "put")
    settle_until(lambda: m.ask({"op": "get", "name": "s", "key": "j"}, "got")["value"] == "str:v", what="the clone's put at the master")


def test_a_cpp_clone_of_a_broker_rs_master_two_hops_away(net):
    """Master on our node, C++ clone behind another of our nodes: the clone receives the store
    (the master's unicast is routed to it). Its own writes reach the master too (broadcast on
    the master's topic)."""
    m = net.node("M", "rs-node", extra=["--master-store", "s"])
    r = net.node("R", "rs-node", peers=[m])
    c = net.node("C", "cpp", peers=[r])
    peered(c, 1)
    time.sleep(0.5)
    c.ask({"op": "clone", "name": "s"}, "attached")
    c.ask({"op": "put", "name": "s", "key": "k", "value": 7}, "put")
    settle_until(lambda: c.ask({"op": "get", "name": "s", "key": "k"}, "got", timeout=30)["value"] == "int:7", timeout=40, what="the clone's write back at the clone")


def test_a_mesh_with_a_cpp_link_is_no_worse_than_all_cpp(net):
    """Two C++ nodes X and Y (forwarding off, as Zeek runs them) peered with each other and
    with R1 and R2, which peer with each other too. A message of X reaches Y directly and once
    more through its designated attachment (we cannot know X and Y are peered); with C++ nodes
    for R1 and R2 everybody gets more copies. Compared node by node in the same run."""

    def run(impl):
        x = net.node("X" + impl, "cpp", subscribe=["/t"], forward=False)
        y = net.node("Y" + impl, "cpp", subscribe=["/t"], forward=False, peers=[x])
        r1 = net.node("R1" + impl, impl, subscribe=["/t"], peers=[x, y])
        r2 = net.node("R2" + impl, impl, subscribe=["/t"], peers=[x, y, r1])
        connected((x, 3), (y, 3))
        time.sleep(1.0)
        publish_and_settle(x, [y, r1, r2])
        return [counts(n, "/t/x") for n in (x, y, r1, r2)]

    ours = run("rs-node")
    theirs = run("cpp")
    assert ours[0] == 0 and ours[2:] == [N, N], ours
    assert all(o <= t for o, t in zip(ours, theirs)), (ours, theirs)
    assert ours[1] <= 2 * N, ours
