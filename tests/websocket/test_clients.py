"""Zeek's WebSocket API of our `broker node`, driven by the PyPI clients Zeek users script with:
`websockets` (what zeekpy and Broker's and Zeek's btests use) and `websocket-client` (what
zeek-client uses), beside our Python bindings and a second native node.
"""

import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import tempfile

import pytest
import websocket  # websocket-client
import websockets

import broker
from broker import zeek

from ws_harness import Node, WAIT, broker_bin, data_message, event, settle_until, typed
from node import canon  # the interop suite's type-tagged text of a received value


@pytest.fixture
def node():
    n = Node()
    yield n
    n.stop()


# What zeekpy sends for each type (floats for reals, fractional nanoseconds, ISO times with a
# zone), and what our bindings then hand a subscriber.
FROM_CLIENT = [
    (typed("none", {}), "nil"),
    (typed("boolean", True), "bool:T"),
    (typed("count", 42), "count:42"),
    (typed("integer", -7), "int:-7"),
    (typed("real", 5.0), "real:5.0"),
    (typed("real", 0.1), "real:0.1"),
    (typed("string", "t\u00e9xt\u0001"), "str:t\u00e9xt\u0001"),
    (typed("address", "10.1.2.3"), "addr:10.1.2.3"),
    (typed("address", "2001:db8::1"), "addr:2001:db8::1"),
    (typed("subnet", "10.0.0.0/8"), "subnet:10.0.0.0/8"),
    (typed("port", "8080/tcp"), "port:8080/tcp"),
    (typed("timestamp", "2024-05-06T07:08:09.500000+00:00"), "time:1714979289.500000"),
    (typed("timespan", "1250000000.0ns"), "span:1.250000"),
    (typed("enum-value", "Conn::LOG"), "enum:Conn::LOG"),
    (typed("set", [typed("count", 2), typed("count", 1)]), "{count:1, count:2}"),
    (typed("table", [{"key": typed("string", "a"), "value": typed("count", 1)}]), "{str:a -> count:1}"),
    (typed("vector", [typed("integer", 1), typed("string", "two"), typed("vector", [typed("real", 3.0)])]),
     "(int:1, str:two, (real:3.0))"),
]

# What our bindings publish, and the exact JSON text a client receives (Broker's bytes).
TO_CLIENT = [
    (None, '{"@data-type":"none","data":{}}'),
    (True, '{"@data-type":"boolean","data":true}'),
    (broker.Count(42), '{"@data-type":"count","data":42}'),
    (-7, '{"@data-type":"integer","data":-7}'),
    (3.5, '{"@data-type":"real","data":3.5}'),
    ("text", '{"@data-type":"string","data":"text"}'),
    (ipaddress.ip_address("10.1.2.3"), '{"@data-type":"address","data":"10.1.2.3"}'),
    (ipaddress.ip_address("2001:db8::1"), '{"@data-type":"address","data":"2001:db8::1"}'),
    (ipaddress.ip_network("10.0.0.0/8"), '{"@data-type":"subnet","data":"10.0.0.0/8"}'),
    (broker.Port(8080, broker.Port.TCP), '{"@data-type":"port","data":"8080/tcp"}'),
    (datetime.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=datetime.timezone.utc),
     '{"@data-type":"timestamp","data":"2024-05-06T07:08:09.500"}'),
    (datetime.timedelta(seconds=1.25), '{"@data-type":"timespan","data":"1250ms"}'),
    (broker.Enum("Conn::LOG"), '{"@data-type":"enum-value","data":"Conn::LOG"}'),
    ({broker.Count(2), broker.Count(1)},
     '{"@data-type":"set","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":2}]}'),
    ({"a": broker.Count(1)},
     '{"@data-type":"table","data":[{"key":{"@data-type":"string","data":"a"},"value":{"@data-type":"count","data":1}}]}'),
    ((1, "two"), '{"@data-type":"vector","data":[{"@data-type":"integer","data":1},{"@data-type":"string","data":"two"}]}'),
]


def plain():
    o = broker.BrokerOptions()
    o.disable_ssl = True
    return broker.Configuration(o)


def bindings_endpoint(node, *topics):
    ep = broker.Endpoint(plain())
    subs = [ep.make_subscriber(t) for t in topics]
    cfg_ok = ep.peer("127.0.0.1", node.port, 1.0)
    assert cfg_ok
    return ep, subs


def test_every_type_both_ways_with_websockets_and_our_bindings(node):
    ep, (sub,) = bindings_endpoint(node, "/from-ws")
    try:
        async def run():
            async with websockets.connect(node.url) as ws:
                await ws.send(json.dumps(["/to-ws"]))
                ack = json.loads(await ws.recv())
                assert ack["type"] == "ack" and ack["endpoint"] == node.id and "version" in ack
                # The bindings' subscription has reached the node once it lists it.
                settle_until(lambda: "/from-ws" in json.loads(node.http("/v1/status"))["subscriptions"]["peers"])
                for value, _ in FROM_CLIENT:
                    await ws.send(data_message("/from-ws", value))
                got = [sub.get(WAIT) for _ in FROM_CLIENT]
                assert [canon(v) for _, v in got] == [c for _, c in FROM_CLIENT]
                assert {t for t, _ in got} == {"/from-ws"}
                # The node advertises the client's subscription to the bindings' endpoint.
                settle_until(lambda: "/to-ws" in {str(t) for t in ep.peer_subscriptions()})
                for value, _ in TO_CLIENT:
                    ep.publish("/to-ws/x", value)
                for _, text in TO_CLIENT:
                    msg = await asyncio.wait_for(ws.recv(), WAIT)
                    assert msg == '{"type":"data-message","topic":"/to-ws/x",' + text[1:]
        asyncio.run(run())
    finally:
        ep.shutdown()


def test_zeek_events_with_metadata_reach_the_bindings_as_events(node):
    ep, (sub,) = bindings_endpoint(node, "/zeek/event")
    try:
        ts = "2024-01-02T03:04:05.000"
        ev = event("ping", typed("string", "hi"), typed("count", 7),
                   metadata=[typed("vector", [typed("count", 1), typed("timestamp", ts)])])
        ws = websocket.create_connection(node.url, timeout=WAIT)
        ws.send(json.dumps(["/zeek/event"], sort_keys=True))
        assert json.loads(ws.recv())["type"] == "ack"
        settle_until(lambda: "/zeek/event" in json.loads(node.http("/v1/status"))["subscriptions"]["peers"])
        ws.send(data_message("/zeek/event/ping", ev, sort_keys=True))
        _, value = sub.get(WAIT)
        e = zeek.Event(value)
        assert e.name() == "ping"
        assert [canon(a) for a in e.args()] == ["str:hi", "count:7"]
        assert e.metadata()[0][1] == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        # And back: the bindings' event reaches the client in Broker's encoding.
        ep.publish("/zeek/event/pong", zeek.Event("pong", broker.Count(1)))
        msg = json.loads(ws.recv())
        assert msg["topic"] == "/zeek/event/pong"
        inner = msg["data"][2]["data"]
        assert inner[0] == typed("string", "pong")
        assert inner[1] == typed("vector", [typed("count", 1)])
        ws.close()
    finally:
        ep.shutdown()


def test_a_client_a_native_node_and_a_bindings_subscriber_through_one_node(node):
    native = Node(websocket=False, peers=[node], subscribe=["/chat"])
    ep, (sub,) = bindings_endpoint(node, "/chat")
    try:
        ws = websocket.create_connection(node.url, timeout=WAIT)
        ws.send('["/chat"]')
        assert json.loads(ws.recv())["type"] == "ack"
        settle_until(lambda: {"/chat"} <= set(json.loads(node.http("/v1/status"))["subscriptions"]["peers"]))
        # The client speaks: the native node and the bindings hear it; the client does not.
        ws.send(data_message("/chat/ws", typed("string", "from ws")))
        assert canon(sub.get(WAIT)[1]) == "str:from ws"
        native.wait_line(lambda l: l == "/chat/ws: from ws")
        # The bindings speak: the client and the native node hear it.
        ep.publish("/chat/py", "from py")
        assert json.loads(ws.recv())["data"] == "from py"
        native.wait_line(lambda l: l == "/chat/py: from py")
        # The native side speaks (`broker publish` through the native node): everybody hears.
        subprocess.run([broker_bin(), "publish", "/chat/native", '"from native"',
                        "--peer", "127.0.0.1:%d" % native.port, "--disable-ssl"], check=True, timeout=30)
        assert json.loads(ws.recv())["data"] == "from native"
        assert canon(sub.get(WAIT)[1]) == "str:from native"
        ws.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            print("unexpected:", ws.recv())  # nothing else: in particular not its own message
        ws.close()
    finally:
        ep.shutdown()
        native.stop()


def test_errors_reach_only_the_offending_client_with_brokers_texts(node):
    a = websocket.create_connection(node.url, timeout=WAIT)
    b = websocket.create_connection(node.url, timeout=WAIT)
    for c in (a, b):
        c.send('["/e"]')
        assert json.loads(c.recv())["type"] == "ack"
    a.send(json.dumps({"type": "data-message", "topic": "/e", "@data-type": "phone", "data": "555"}))
    assert json.loads(a.recv()) == {"type": "error", "code": "deserialization_failed",
                                    "context": "input #1 contained invalid data"}
    a.send(data_message("/e", typed("count", 1)))
    assert json.loads(b.recv())["data"] == 1  # b got the good one, not the error
    a.close()
    b.close()


def test_malformed_subscriptions_are_refused_with_zeeks_error_and_no_ack(node):
    async def run():
        async with websockets.connect(node.url) as ws:
            await ws.send('["broken", "brrr')
            assert json.loads(await ws.recv()) == {
                "type": "error", "code": "deserialization_failed", "context": "subscriptions not an array"}
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1008
        async with websockets.connect(node.url.replace("/json", "/yaml")) as ws:
            assert json.loads(await ws.recv())["code"] == "invalid_uri"
    asyncio.run(run())


def test_a_long_message_in_4k_fragments_is_reassembled(node):
    ep, (sub,) = bindings_endpoint(node, "/frag")
    try:
        async def run():
            async with websockets.connect(node.url) as ws:
                await ws.send("[]")
                await ws.recv()
                settle_until(lambda: "/frag" in json.loads(node.http("/v1/status"))["subscriptions"]["peers"])
                text = data_message("/frag", typed("string", "x" * 20000))
                # Broker's gh-357-regression btest: a message sent in 4 KiB fragments.
                await ws.send(text[i:i + 4096] for i in range(0, len(text), 4096))
        asyncio.run(run())
        assert canon(sub.get(WAIT)[1]) == "str:" + "x" * 20000
    finally:
        ep.shutdown()


def make_cert(dir):
    key, crt = os.path.join(dir, "ws.key"), os.path.join(dir, "ws.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return crt, key


def test_wss_with_a_certificate_serves_zeek_clients_anonymous_mode_and_verifying_clients():
    with tempfile.TemporaryDirectory() as d:
        crt, key = make_cert(d)
        n = Node(env={"BROKER_WEB_SOCKET_CERTIFICATE": crt, "BROKER_WEB_SOCKET_KEY": key})
        try:
            url = "wss://127.0.0.1:%d/v1/messages/json" % n.ws_port
            # zeek-client's ssl.enable=true without a certificate: no verification, Broker's
            # anonymous cipher list (TLS 1.3 suites still apply).
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_ciphers("AECDH-AES256-SHA@SECLEVEL=0")
            ws = websocket.create_connection(url, sslopt={"context": ctx}, timeout=WAIT)
            ws.send("[]")
            assert json.loads(ws.recv())["type"] == "ack"
            ws.close()
            # A verifying client (websockets with the certificate as its CA).
            async def run():
                vctx = ssl.create_default_context(cafile=crt)
                async with websockets.connect(url, ssl=vctx) as ws:
                    await ws.send("[]")
                    assert json.loads(await ws.recv())["type"] == "ack"
            asyncio.run(run())
            # Plain ws on a TLS server fails.
            with pytest.raises(Exception):
                websocket.create_connection(url.replace("wss", "ws"), timeout=5).recv()
        finally:
            n.stop()


def test_a_thousand_connections_opened_and_closed_while_messages_flow_give_memory_back(node):
    """1,000 clients come and go (50 at a time, each receiving a message) while one client
    publishes all along; the node's memory returns to where it was after a first round."""
    stop = False

    async def publisher():
        async with websockets.connect(node.url) as ws:
            await ws.send("[]")
            await ws.recv()
            i = 0
            while not stop:
                await ws.send(data_message("/flow", typed("count", i)))
                i += 1
                if i % 20 == 0:
                    await asyncio.sleep(0.01)  # some 2,000 messages/s

    async def one(i):
        # No bound on the client's queue of unread messages: `websockets` stops reading the
        # socket when that queue is full, and would then not see the server's answer to its
        # close frame behind the flow.
        ws = await websockets.connect(node.url, max_queue=None)
        await ws.send('["/flow"]')
        assert json.loads(await ws.recv())["type"] == "ack"
        msg = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert msg["topic"] == "/flow"
        if i % 2:
            # Gone without a word (a crashed client).
            ws.transport.abort()
        else:
            await ws.close()
            assert ws.close_code == 1000, ws.close_code

    async def rounds(n):
        for _ in range(n // 50):
            await asyncio.gather(*(one(i) for i in range(50)))

    async def run():
        nonlocal stop
        pub = asyncio.create_task(publisher())
        await rounds(200)  # warm up: allocator arenas, caches
        await asyncio.sleep(0.5)
        before = node.rss_kib()
        await rounds(1000)
        await asyncio.sleep(0.5)
        after = node.rss_kib()
        stop = True
        await pub
        return before, after

    before, after = asyncio.run(run())
    metrics = node.http("/metrics")
    settle_until(lambda: "broker_web_socket_clients 0" in node.http("/metrics"), what="all clients gone")
    print("node RSS before %d KiB, after 1,000 connections %d KiB" % (before, after))
    assert after - before < 8 * 1024, "RSS grew from %d KiB to %d KiB; %s" % (before, after, metrics)


def test_the_python_bindings_open_a_websocket_server():
    ep = broker.Endpoint(plain())
    sub = ep.make_subscriber("/py")
    try:
        port = ep.listen_websocket("127.0.0.1", 0)
        assert port > 0
        ws = websocket.create_connection("ws://127.0.0.1:%d/v1/messages/json" % port, timeout=WAIT)
        ws.send("[]")
        assert json.loads(ws.recv())["endpoint"] == ep.node_id()
        ws.send(data_message("/py", typed("count", 5)))
        assert canon(sub.get(WAIT)[1]) == "count:5"
        ws.close()
    finally:
        ep.shutdown()
