"""Processes and clients for the WebSocket suite: our `broker node` with its WebSocket server
(the interoperability suite's `RsNode`), and small helpers for the JSON the PyPI WebSocket
clients (`websockets`, `websocket-client`) exchange with it.

Everything listens on 127.0.0.1 with port 0 and is stopped at the end of its test.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop"))

from harness import RsNode, broker_bin, settle_until  # noqa: E402  (the interop suite's)

WAIT = 15.0

__all__ = ["HERE", "WAIT", "Node", "broker_bin", "settle_until", "typed", "event", "data_message"]


class Node(RsNode):
    """`broker node --port 0 --disable-ssl`, by default with a WebSocket server; `stores`
    attaches in-memory masters."""

    def __init__(self, websocket=True, peers=(), subscribe=(), stores=(), env=None):
        extra = [a for s in stores for a in ("--master-store", s)]
        super().__init__("node", disable_ssl=True, peers=peers, subscribe=subscribe, extra=extra,
                         websocket=websocket, env=env)

    def wait_line(self, pred):
        return self.wait_for(pred, what="a line")

    @property
    def url(self):
        return "ws://127.0.0.1:%d/v1/messages/json" % self.ws_port

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def http(self, path):
        import urllib.request

        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.ws_port, path), timeout=WAIT) as r:
            return r.read().decode()


def typed(t, v):
    return {"@data-type": t, "data": v}


def event(name, *args, metadata=None):
    """A Zeek event as Broker's JSON encodes it."""
    inner = [typed("string", name), typed("vector", list(args))]
    if metadata is not None:
        inner.append(typed("vector", metadata))
    return typed("vector", [typed("count", 1), typed("count", 1), typed("vector", inner)])


def data_message(topic, value, sort_keys=False):
    msg = {"type": "data-message", "topic": topic}
    msg.update(value)
    if sort_keys:
        # zeek-client's form: sorted keys, default separators.
        return json.dumps(msg, sort_keys=True)
    return json.dumps(msg)
