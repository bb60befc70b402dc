"""busrt's Python client from PyPI (`busrt` 0.1.2, unmodified) against `broker bus serve`:
registration, p2p with ACKs and the missing-target error, topics, broadcasts, RPC to
`.broker` and between two Python clients (the server: conftest.py)."""

import queue
import time

import busrt
import busrt.rpc
import pytest


def client(path, name):
    c = busrt.client.Client(path, name)
    frames = queue.Queue()
    c.on_frame = frames.put
    c.connect()
    return c, frames


def ok(op):
    return op.wait_completed(timeout=5)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_messages_topics_and_broadcasts(server, transport):
    path = server[transport]
    a, fa = client(path, "py.a." + transport)
    b, fb = client(path, "py.b." + transport)
    f = busrt.client.Frame("hello", qos=1)
    assert ok(a.send("py.b." + transport, f)) == busrt.client.RESPONSE_OK
    got = fb.get(timeout=5)
    assert (got.type, got.sender, got.payload) == (busrt.client.OP_MESSAGE, "py.a." + transport, b"hello")
    # A missing target: the ACK says so.
    assert ok(a.send("nobody", busrt.client.Frame("x", qos=1))) == busrt.client.ERR_CLIENT_NOT_REGISTERED
    # Topics with wildcards.
    assert ok(b.subscribe(["py/+/x", "other"])) == busrt.client.RESPONSE_OK
    time.sleep(0.05)
    p = busrt.client.Frame("data", tp=busrt.client.OP_PUBLISH, qos=1)
    assert ok(a.send("py/t/x", p)) == busrt.client.RESPONSE_OK
    got = fb.get(timeout=5)
    assert (got.type, got.topic, got.payload) == (busrt.client.OP_PUBLISH, "py/t/x", b"data")
    # Broadcast by mask.
    bc = busrt.client.Frame("all", tp=busrt.client.OP_BROADCAST, qos=1)
    assert ok(a.send("py.?." + transport, bc)) == busrt.client.RESPONSE_OK
    assert fa.get(timeout=5).payload == b"all"
    assert fb.get(timeout=5).payload == b"all"
    a.disconnect()
    b.disconnect()


def test_a_taken_name_is_refused(server):
    a, _ = client(server["unix"], "py.taken")
    with pytest.raises(Exception):
        client(server["unix"], "py.taken")
    a.disconnect()


def test_rpc_to_the_broker_service_and_between_clients(server):
    c, _ = client(server["unix"], "py.caller")
    rpc = busrt.rpc.Rpc(c)
    r = rpc.call(".broker", busrt.rpc.Request("test")).wait_completed(timeout=5)
    assert r.get_payload() == b"\x81\xa2ok\xc3"
    s, _ = client(server["tcp"], "py.svc")
    svc = busrt.rpc.Rpc(s)

    def on_call(event):
        if event.method == b"double":
            return bytes([event.get_payload()[0] * 2])
        raise busrt.rpc.RpcException("no such method", code=-32601)

    svc.on_call = on_call
    r = rpc.call("py.svc", busrt.rpc.Request("double", b"\x15")).wait_completed(timeout=5)
    assert r.get_payload() == b"\x2a"
    with pytest.raises(busrt.rpc.RpcException) as e:
        rpc.call("py.svc", busrt.rpc.Request("nope")).wait_completed(timeout=5)
    assert e.value.rpc_error_code == -32601
    c.disconnect()
    s.disconnect()
