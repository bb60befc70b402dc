"""A WebSocket client of our node and a C++ Broker 2.8 endpoint peered with that node: what the
client publishes reaches C++ as C++'s own publications do (every type and a Zeek event), and
what C++ publishes reaches the client in Broker's JSON encoding.

Skipped, with one line saying so, when no built C++ Broker is found.
"""

import json
import time

import pytest
import websocket  # websocket-client, as zeek-client uses

from harness import RsNode, Script, cpp_available, peered, settle_until

pytestmark = pytest.mark.skipif(
    not cpp_available(), reason="no built C++ Broker (CPP_BROKER_DIR): interop suite skipped"
)

def typed(t, v):
    return {"@data-type": t, "data": v}


# The values of node.py's every_type(), as a WebSocket client writes them.
EVERY_TYPE = [
    typed("none", {}),
    typed("boolean", True),
    typed("count", 42),
    typed("integer", -7),
    typed("real", 3.5),
    typed("string", "text"),
    typed("address", "10.1.2.3"),
    typed("address", "2001:db8::1"),
    typed("subnet", "10.0.0.0/8"),
    typed("port", "8080/tcp"),
    typed("timestamp", "2024-05-06T07:08:09.500"),
    typed("timespan", "1250ms"),
    typed("enum-value", "Conn::LOG"),
    typed("set", [typed("count", 1), typed("count", 2)]),
    typed("table", [{"key": typed("string", "a"), "value": typed("count", 1)},
                    {"key": typed("string", "b"), "value": typed("count", 2)}]),
    typed("vector", [typed("integer", 1), typed("string", "two"), typed("vector", [typed("real", 3.0)])]),
]


@pytest.fixture
def net():
    procs = []
    yield procs
    for p in procs:
        try:
            p.stop()
        except Exception:  # noqa: BLE001
            pass


def ws_node(procs, peers):
    n = RsNode("WS", disable_ssl=True, peers=peers, websocket=True)
    procs.append(n)
    return n


def client(node, topics):
    ws = websocket.create_connection("ws://127.0.0.1:%d/v1/messages/json" % node.ws_port, timeout=15)
    ws.send(json.dumps(topics))
    assert json.loads(ws.recv())["type"] == "ack"
    return ws


def test_a_websocket_clients_values_reach_cpp_as_cpps_own(net):
    c = Script("C", "cpp")
    net.append(c)
    c.sub("/v")
    c.listen()
    m = ws_node(net, [c])
    peered(c, 1)
    ws = client(m, [])
    time.sleep(0.5)
    for v in EVERY_TYPE:
        ws.send(json.dumps(dict({"type": "data-message", "topic": "/v/types"}, **v)))
    ws.send(json.dumps(dict({"type": "data-message", "topic": "/v/end"}, **typed("count", 0))))
    settle_until(lambda: len(c.messages("/v/end")) >= 1, what="the sentinel at C++")
    got = c.messages("/v/types")
    # The reference: the same values published by a C++ endpoint.
    q = Script("Q", "cpp")
    net.append(q)
    q.listen()
    c.peer(q)
    peered(c, 2)
    time.sleep(0.5)
    q.pub("/v/types", "types")
    q.pub("/v/end", "count", 1)
    settle_until(lambda: len(c.messages("/v/end")) >= 2, what="the second sentinel at C++")
    ref = c.messages("/v/types")[len(got):]
    assert got == ref
    assert len(got) == 16
    ws.close()


def test_cpp_publications_and_events_reach_a_websocket_client(net):
    c = Script("C", "cpp")
    net.append(c)
    c.listen()
    m = ws_node(net, [c])
    peered(c, 1)
    ws = client(m, ["/cpp"])
    # The client's subscription travels to C++ through the node.
    time.sleep(1.0)
    c.pub("/cpp/types", "types")
    c.pub("/cpp/event", "event")
    got = [json.loads(ws.recv()) for _ in range(17)]
    assert [g["topic"] for g in got] == ["/cpp/types"] * 16 + ["/cpp/event"]
    assert [{"@data-type": g["@data-type"], "data": g["data"]} for g in got[:16]] == EVERY_TYPE
    ev = got[16]
    assert ev["@data-type"] == "vector"
    fmt, kind, body = ev["data"]
    assert (fmt, kind) == (typed("count", 1), typed("count", 1))
    name, args = body["data"][0], body["data"][1]
    assert name == typed("string", "interop_test")
    assert len(args["data"]) == 15
    # The metadata: the network timestamp, key 1.
    meta = body["data"][2]["data"]
    assert meta[0]["data"][0] == typed("count", 1)
    assert meta[0]["data"][1] == typed("timestamp", "2024-01-02T03:04:05.000")
    ws.close()
