"""Processes of a mixed network: C++ Broker endpoints and broker-rs endpoints.

* `Script`: `node.py` under C++ Broker's Python bindings (`impl="cpp"`) or ours (`impl="rs"`).
* `RsNode`: our `broker node` binary, the relay a user drops into a cluster.

Everything listens on 127.0.0.1 with port 0; the suite runs inside a private network namespace
(see `conftest.py`), so C++ Broker's habit of listening on every address touches nothing else.
"""

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_WAIT = 15.0


def cpp_dir():
    return os.environ.get("CPP_BROKER_DIR", "/var/cache/cpp-broker-2.8")


def cpp_available():
    d = cpp_dir()
    return os.path.isfile(os.path.join(d, "python", "broker", "__init__.py")) and os.path.isfile(
        os.path.join(d, "bin", "broker-node")
    )


def broker_bin():
    return os.environ.get("RS_BROKER_BIN") or os.path.join(HERE, "..", "..", "target", "debug", "broker")


class Proc:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, name, argv, env=None, stdin=True):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.stderr = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "surrogateescape").rstrip("\n")
            with self.cond:
                self.lines.append(self.parse(line))
                self.cond.notify_all()

    def _pump_err(self):
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def parse(self, line):
        return line

    def wait_for(self, pred, timeout=DEFAULT_WAIT, what="an event"):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.lines:
                    if pred(item):
                        return item
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self._more():
                    raise AssertionError(
                        "%s: no %s within %.0fs; got %r; stderr %r"
                        % (self.name, what, timeout, self.lines[-20:], self.stderr[:6] + ["..."] + self.stderr[-6:])
                    )
                self.cond.wait(min(left, 0.2))

    def _more(self):
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


class Script(Proc):
    """`node.py` under C++ Broker's bindings ("cpp") or ours ("rs")."""

    def __init__(self, name, impl, disable_ssl=True, forward=True):
        env = dict(os.environ)
        if impl == "cpp":
            python = "/usr/bin/python3"
            env["PYTHONPATH"] = os.path.join(cpp_dir(), "python")
        else:
            python = os.environ.get("RS_PYTHON", sys.executable)
            env.pop("PYTHONPATH", None)
        self.impl = impl
        super().__init__(name, [python, "-u", os.path.join(HERE, "node.py")], env=env)
        self.send({"disable_ssl": disable_ssl, "forward": forward})
        self.wait_for(lambda e: e.get("ev") == "ready", what="start")
        self.id = self.ask({"op": "id"}, "id")["id"]

    def parse(self, line):
        try:
            return json.loads(line)
        except ValueError:
            return {"ev": "garbage", "line": line}

    def send(self, cmd):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def ask(self, cmd, ev, timeout=DEFAULT_WAIT):
        """Sends a command and waits for its answer (the first `ev` event after it)."""
        with self.cond:
            start = len(self.lines)
        self.send(cmd)
        return self.wait_for_new(start, lambda e: e.get("ev") in (ev, "error"), timeout, ev)

    def wait_for_new(self, start, pred, timeout=DEFAULT_WAIT, what="an event"):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.lines[start:]:
                    if pred(item):
                        if item.get("ev") == "error":
                            raise AssertionError("%s: %s" % (self.name, item))
                        return item
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "%s: no %s within %.0fs; got %r" % (self.name, what, timeout, self.lines[-20:])
                    )
                self.cond.wait(min(left, 0.2))

    def listen(self):
        self.port = self.ask({"op": "listen"}, "listening")["port"]
        return self.port

    def peer(self, other):
        r = self.ask({"op": "peer", "port": other.port}, "peered")
        return r

    def sub(self, *topics):
        self.ask({"op": "sub", "topics": list(topics)}, "subscribed")

    def pub(self, topic, kind="count", n=1):
        self.ask({"op": "pub", "topic": topic, "kind": kind, "n": n}, "published")

    def messages(self, topic_prefix=""):
        with self.cond:
            return [
                (e["topic"], e["value"])
                for e in self.lines
                if e.get("ev") == "msg" and e["topic"].startswith(topic_prefix)
            ]

    def statuses(self):
        with self.cond:
            return [(e["code"], e["peer"]) for e in self.lines if e.get("ev") == "status"]

    def sync(self):
        """Round trip through the script: everything it printed before is collected."""
        tag = time.monotonic()
        self.ask({"op": "sync", "tag": tag}, "sync")

    def shutdown(self):
        try:
            self.ask({"op": "shutdown"}, "shutdown", timeout=15)
        finally:
            self.stop()


_STATUS = re.compile(r"^(status|error) (\w+): ([0-9a-f-]+)")
_LISTEN = re.compile(r"^node ([0-9a-f-]+) listening on [^ ]+:(\d+)$")
_WS = re.compile(r"^websocket listening on wss?://[^ ]+:(\d+)/v1/messages/json$")


class RsNode(Proc):
    """Our `broker node`: prints its id and port, statuses, and with --subscribe the messages
    (`topic: value`, Broker's text format). With `websocket`, it serves Zeek's WebSocket API
    on a port of its own (`ws_port`). `env` adds variables to its environment."""

    def __init__(self, name, disable_ssl=True, peers=(), subscribe=(), forward=True, extra=(),
                 websocket=False, env=None):
        argv = [broker_bin(), "node", "--port", "0"]
        if websocket:
            argv += ["--websocket-port", "0"]
        if disable_ssl:
            argv.append("--disable-ssl")
        if not forward:
            argv.append("--no-forward")
        for p in peers:
            argv += ["--peer", "127.0.0.1:%d" % p.port]
        for t in subscribe:
            argv += ["--subscribe", t]
        argv += list(extra)
        e = dict(os.environ)
        e.setdefault("BROKER_CONNECT_RETRY", "1")
        e.update(env or {})
        super().__init__(name, argv, env=e, stdin=False)
        first = self.wait_for(lambda l: _LISTEN.match(l), what="listening line")
        m = _LISTEN.match(first)
        self.id, self.port = m.group(1), int(m.group(2))
        self.ws_port = None
        if websocket:
            line = self.wait_for(lambda l: _WS.match(l), what="websocket line")
            self.ws_port = int(_WS.match(line).group(1))

    def statuses(self):
        with self.cond:
            out = []
            for l in self.lines:
                m = _STATUS.match(l)
                if m:
                    out.append((m.group(2), m.group(3)))
            return out

    def messages(self, topic_prefix=""):
        with self.cond:
            out = []
            for l in self.lines:
                if _STATUS.match(l) or _LISTEN.match(l) or _WS.match(l) or ": " not in l:
                    continue
                topic, value = l.split(": ", 1)
                if topic.startswith(topic_prefix):
                    out.append((topic, value))
            return out

    def shutdown(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def settle_until(pred, timeout=DEFAULT_WAIT, what="a condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("no %s within %.0fs" % (what, timeout))


def peered(node, n, timeout=DEFAULT_WAIT):
    """Waits until `node` (a Script) has `n` peers."""
    settle_until(lambda: node.ask({"op": "peers"}, "peers")["n"] >= n, timeout, "%d peers at %s" % (n, node.name))
