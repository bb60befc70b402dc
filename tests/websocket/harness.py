"""Processes and clients for the WebSocket suite: our `broker node` with its WebSocket server,
and small helpers around the PyPI WebSocket clients (`websockets`, `websocket-client`).

Everything listens on 127.0.0.1 with port 0 and is stopped at the end of its test.
"""

import json
import os
import re
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WAIT = 15.0

_LISTEN = re.compile(r"^node ([0-9a-f-]+) listening on [^ ]+:(\d+)$")
_WS = re.compile(r"^websocket listening on (wss?)://[^:]+:(\d+)/v1/messages/json$")


def broker_bin():
    return os.environ.get("RS_BROKER_BIN") or os.path.join(HERE, "..", "..", "target", "debug", "broker")


class Node:
    """`broker node --port 0` (plain TCP between peers), optionally with a WebSocket server;
    its stdout lines (the listening lines, statuses, `topic: value` of --subscribe) are
    collected."""

    def __init__(self, websocket=True, peers=(), subscribe=(), stores=(), env=None, extra=()):
        argv = [broker_bin(), "node", "--port", "0", "--disable-ssl"]
        if websocket:
            argv += ["--websocket-port", "0"]
        for p in peers:
            argv += ["--peer", "127.0.0.1:%d" % p.port]
        for t in subscribe:
            argv += ["--subscribe", t]
        for s in stores:
            argv += ["--master-store", s]
        argv += list(extra)
        e = dict(os.environ)
        e.setdefault("BROKER_CONNECT_RETRY", "1")
        e.update(env or {})
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        self.stderr = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        m = _LISTEN.match(self.wait_line(lambda l: _LISTEN.match(l)))
        self.id, self.port = m.group(1), int(m.group(2))
        self.ws_port = None
        if websocket:
            self.ws_port = int(_WS.match(self.wait_line(lambda l: _WS.match(l))).group(2))

    def _pump(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    def _pump_err(self):
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_line(self, pred, timeout=WAIT):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for l in self.lines:
                    if pred(l):
                        return l
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("no such line in %r; stderr %r" % (self.lines[-20:], self.stderr[-20:]))
                self.cond.wait(min(left, 0.2))

    def messages(self, prefix):
        with self.cond:
            return [l for l in self.lines if l.startswith(prefix) and ": " in l]

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

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def settle_until(pred, timeout=WAIT, what="a condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("no %s within %.0fs" % (what, timeout))


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
