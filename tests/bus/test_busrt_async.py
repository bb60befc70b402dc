"""busrt's asyncio Python client from PyPI (`busrt-async` 0.1.3, unmodified) against
`broker bus serve` (conftest.py): registration, p2p with ACKs and the missing-target error,
topics with wildcards, broadcasts, RPC to `.broker`, between two clients and with an error
reply, and call0. Each test runs its own event loop (no pytest plugin needed)."""

import asyncio

import busrt_async
import busrt_async.rpc
import pytest

WAIT = 5


async def connect(path, name):
    c = busrt_async.client.Client(path, name)
    frames = asyncio.Queue()

    async def on_frame(frame):
        await frames.put(frame)

    c.on_frame = on_frame
    await c.connect()
    return c, frames


async def ok(op):
    return await (await op).wait_completed(timeout=WAIT)


def topics_op(c, op, topics):
    """(Un)subscribes with an ACK (the client's own `subscribe` sends QoS 0: nothing to wait
    for)."""
    f = busrt_async.client.Frame(tp=op, qos=1)
    f.topic = topics
    return c.send(None, f)


async def next_frame(frames):
    return await asyncio.wait_for(frames.get(), WAIT)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_messages_topics_and_broadcasts(server, transport):
    async def run():
        path = server[transport]
        a, fa = await connect(path, "pa.a." + transport)
        b, fb = await connect(path, "pa.b." + transport)
        m = busrt_async.client.Frame("hello", qos=1)
        assert await ok(a.send("pa.b." + transport, m)) == busrt_async.client.RESPONSE_OK
        got = await next_frame(fb)
        assert (got.type, got.sender, got.payload) == (
            busrt_async.client.OP_MESSAGE, "pa.a." + transport, b"hello")
        # A missing target: the ACK says so.
        missing = await ok(a.send("nobody", busrt_async.client.Frame("x", qos=1)))
        assert missing == busrt_async.client.ERR_CLIENT_NOT_REGISTERED
        # Topics with wildcards; an unsubscribed topic stops coming.
        sub = topics_op(b, busrt_async.client.OP_SUBSCRIBE, ["pa/+/x", "pa/#"])
        assert await ok(sub) == busrt_async.client.RESPONSE_OK
        p = busrt_async.client.Frame("data", tp=busrt_async.client.OP_PUBLISH, qos=1)
        assert await ok(a.send("pa/t/x", p)) == busrt_async.client.RESPONSE_OK
        got = await next_frame(fb)
        assert (got.type, got.topic, got.payload) == (
            busrt_async.client.OP_PUBLISH, "pa/t/x", b"data")
        unsub = topics_op(b, busrt_async.client.OP_UNSUBSCRIBE, ["pa/+/x", "pa/#"])
        assert await ok(unsub) == busrt_async.client.RESPONSE_OK
        p = busrt_async.client.Frame("gone", tp=busrt_async.client.OP_PUBLISH, qos=1)
        assert await ok(a.send("pa/t/x", p)) == busrt_async.client.RESPONSE_OK
        # Broadcast by mask: both get it (the sender too). What one sender sends reaches a
        # receiver in order: b's next frame being the broadcast shows that the publication
        # came once, though two subscriptions matched it, and the unsubscribed one not at all.
        bc = busrt_async.client.Frame("all", tp=busrt_async.client.OP_BROADCAST, qos=1)
        assert await ok(a.send("pa.?." + transport, bc)) == busrt_async.client.RESPONSE_OK
        assert (await next_frame(fa)).payload == b"all"
        assert (await next_frame(fb)).payload == b"all"
        await a.disconnect()
        await b.disconnect()

    asyncio.run(run())


def test_a_taken_name_is_refused(server):
    async def run():
        a, _ = await connect(server["unix"], "pa.taken")
        with pytest.raises(RuntimeError):
            await connect(server["unix"], "pa.taken")
        await a.disconnect()

    asyncio.run(run())


def test_rpc_to_the_broker_service_and_between_clients(server):
    async def run():
        c, _ = await connect(server["unix"], "pa.caller")
        rpc = busrt_async.rpc.Rpc(c)
        r = await (await rpc.call(".broker", busrt_async.rpc.Request("test"))).wait_completed(
            timeout=WAIT)
        assert r.get_payload() == b"\x81\xa2ok\xc3"
        s, _ = await connect(server["tcp"], "pa.svc")
        svc = busrt_async.rpc.Rpc(s)
        notified = asyncio.Queue()

        async def on_call(event):
            if event.method == b"double":
                return bytes([event.get_payload()[0] * 2])
            if event.method == b"note":
                await notified.put(event.get_payload())
                return None
            raise busrt_async.rpc.RpcException("no such method", code=-32601)

        svc.on_call = on_call
        call = await rpc.call("pa.svc", busrt_async.rpc.Request("double", b"\x15"))
        r = await call.wait_completed(timeout=WAIT)
        assert r.get_payload() == b"\x2a"
        call = await rpc.call("pa.svc", busrt_async.rpc.Request("nope"))
        with pytest.raises(busrt_async.rpc.RpcException) as e:
            await call.wait_completed(timeout=WAIT)
        assert e.value.rpc_error_code == -32601
        # call0: no reply wanted, the handler still runs.
        await rpc.call0("pa.svc", busrt_async.rpc.Request("note", b"n"))
        assert await asyncio.wait_for(notified.get(), WAIT) == b"n"
        # A call to nobody: busrt's transport error.
        call = await rpc.call("nobody", busrt_async.rpc.Request("x"))
        with pytest.raises(busrt_async.rpc.RpcException) as e:
            await call.wait_completed(timeout=WAIT)
        assert e.value.rpc_error_code == -32000 - busrt_async.client.ERR_CLIENT_NOT_REGISTERED
        await c.disconnect()
        await s.disconnect()

    asyncio.run(run())
