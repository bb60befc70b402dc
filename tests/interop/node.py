"""One scripted Broker endpoint for the interoperability suite.

The same script runs with C++ Broker's Python bindings (Debian's python3 with
PYTHONPATH=$CPP_BROKER_DIR/python) and with ours (`import broker` from the test virtualenv), so
a network of C++ endpoints and the same network with broker-rs endpoints run the very same
code. It reads one JSON command per line on stdin and writes one JSON event per line on
stdout:

  {"op": "listen"}                          -> {"ev": "listening", "port": P}
  {"op": "peer", "port": P}                 -> {"ev": "peered"} | {"ev": "peer_failed", ...}
  {"op": "unpeer", "port": P}               -> {"ev": "unpeered", "ok": bool}
  {"op": "sub", "topics": [...]}            -> then {"ev": "msg", "topic": T, "value": V}
  {"op": "pub", "topic": T, "kind": K, "n": N}
        K: "count" (N counts 0..N-1), "types" (one value of every type), "event" (a Zeek
        event whose arguments are values of every type, with metadata)
  {"op": "master", "name": S} / {"op": "clone", "name": S}   -> {"ev": "attached", ...}
  {"op": "put", "name": S, "key": K, "value": V}
  {"op": "get", "name": S, "key": K}        -> {"ev": "got", "value": V | null, "error": E}
  {"op": "peers"}                           -> {"ev": "peers", "n": N}
  {"op": "id"}                              -> {"ev": "id", "id": ID}
  {"op": "sync", "tag": X}                  -> {"ev": "sync", "tag": X}
  {"op": "shutdown"}                        -> {"ev": "shutdown"}, then exits

Statuses and errors always come as {"ev": "status", "code": C, "peer": ID}. Values are
printed canonically (type-tagged text, sets and tables sorted) so that both bindings print a
received value the same way.
"""

import datetime
import ipaddress
import json
import select
import sys
import threading

import broker

try:
    import broker.zeek as zeek
except ImportError:  # pragma: no cover
    zeek = None

_out = threading.Lock()


def emit(**ev):
    with _out:
        sys.stdout.write(json.dumps(ev, sort_keys=True) + "\n")
        sys.stdout.flush()


def snake(name):
    """`PeerAdded` (how the bindings name codes) as `peer_added` (Broker's own name)."""
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def canon(v):
    """A type-tagged text for a received (converted) value."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool:" + ("T" if v else "F")
    if isinstance(v, broker.Count):
        return "count:%d" % v.value
    if isinstance(v, int):
        return "int:%d" % v
    if isinstance(v, float):
        return "real:%r" % v
    if isinstance(v, str):
        return "str:" + v
    if isinstance(v, bytes):
        return "bytes:" + v.hex()
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return "addr:%s" % v
    if isinstance(v, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return "subnet:%s" % v
    if isinstance(v, broker.Port):
        return "port:%s" % v
    if isinstance(v, datetime.datetime):
        return "time:%.6f" % v.timestamp()
    if isinstance(v, datetime.timedelta):
        return "span:%.6f" % v.total_seconds()
    if isinstance(v, broker.Enum):
        return "enum:" + v.name
    if isinstance(v, (set, frozenset)):
        return "{" + ", ".join(sorted(canon(x) for x in v)) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join(sorted("%s -> %s" % (canon(k), canon(x)) for k, x in v.items())) + "}"
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(canon(x) for x in v) + ")"
    return "?%s:%r" % (type(v).__name__, v)


def every_type():
    utc = datetime.timezone.utc
    return [
        None,
        True,
        broker.Count(42),
        -7,
        3.5,
        "text",
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("2001:db8::1"),
        ipaddress.ip_network("10.0.0.0/8"),
        broker.Port(8080, broker.Port.TCP),
        datetime.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=utc),
        datetime.timedelta(seconds=1.25),
        broker.Enum("Conn::LOG"),
        {broker.Count(1), broker.Count(2)},
        {"a": broker.Count(1), "b": broker.Count(2)},
        (1, "two", (3.0,)),
    ]


class Node:
    def __init__(self, opts):
        o = broker.BrokerOptions()
        o.disable_ssl = bool(opts.get("disable_ssl"))
        o.disable_forwarding = not opts.get("forward", True)
        self.ep = broker.Endpoint(broker.Configuration(o))
        self.stores = {}
        self.lock = threading.Lock()
        self.subs = [(self.ep.make_status_subscriber(True), "status")]
        threading.Thread(target=self.pump, daemon=True).start()

    def pump(self):
        """Reads every subscriber through its descriptor: C++ Broker's bindings hold the GIL
        while they block in get(), so no thread may block there."""
        while True:
            with self.lock:
                subs = list(self.subs)
            ready, _, _ = select.select([s.fd() for s, _ in subs], [], [], 0.05)
            for s, kind in subs:
                if s.fd() not in ready:
                    continue
                for item in s.poll():
                    try:
                        self.show(kind, item)
                    except Exception as e:  # noqa: BLE001
                        emit(ev="error", error="cannot show %r: %s: %s" % (item, type(e).__name__, e))

    def show(self, kind, item):
        if kind == "status":
            code = item.code()
            ctx = item.context()
            peer = ctx.node_id() if ctx is not None else ""
            emit(ev="status", code=snake(str(code).split(".")[-1]), peer=peer)
        else:
            topic, value = item
            emit(ev="msg", topic=topic, value=canon(value))

    def run(self, cmd):
        op = cmd["op"]
        if op == "listen":
            emit(ev="listening", port=self.ep.listen("127.0.0.1", 0))
        elif op == "peer":
            try:
                ok = self.ep.peer("127.0.0.1", cmd["port"], cmd.get("retry", 0))
            except Exception as e:  # noqa: BLE001
                emit(ev="peer_failed", error=str(e))
                return
            emit(ev="peered" if ok else "peer_failed", error="")
        elif op == "unpeer":
            emit(ev="unpeered", ok=bool(self.ep.unpeer("127.0.0.1", cmd["port"])))
        elif op == "sub":
            # One subscriber per topic: C++ Broker's bindings fail on a list of topics under
            # Python 3.10 and later (they test for `collections.Iterable`).
            for topic in cmd["topics"]:
                sub = self.ep.make_subscriber(topic, 100000)
                with self.lock:
                    self.subs.append((sub, "data"))
            emit(ev="subscribed")
        elif op == "pub":
            topic, kind, n = cmd["topic"], cmd["kind"], cmd.get("n", 1)
            if kind == "count":
                for i in range(n):
                    self.ep.publish(topic, broker.Count(i))
            elif kind == "types":
                for v in every_type():
                    self.ep.publish(topic, v)
            elif kind == "event":
                args = every_type()[1:]  # (nil is not a Zeek argument)
                ts = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
                meta = [(zeek.MetadataType.NetworkTimestamp, ts)]
                self.ep.publish(topic, zeek.Event("interop_test", *args, metadata=meta))
            emit(ev="published", n=n)
        elif op == "master":
            self.stores[cmd["name"]] = self.ep.attach_master(cmd["name"], broker.Backend.Memory)
            emit(ev="attached", name=cmd["name"])
        elif op == "clone":
            self.stores[cmd["name"]] = self.ep.attach_clone(cmd["name"])
            emit(ev="attached", name=cmd["name"])
        elif op == "put":
            self.stores[cmd["name"]].put(cmd["key"], cmd["value"])
            emit(ev="put")
        elif op == "get":
            r = self.stores[cmd["name"]].get(cmd["key"])
            if r is None:
                emit(ev="got", value=None)
            else:
                emit(ev="got", value=canon(r))
        elif op == "peers":
            emit(ev="peers", n=len(self.ep.peers()))
        elif op == "id":
            emit(ev="id", id=str(self.ep.node_id()))
        elif op == "sync":
            emit(ev="sync", tag=cmd.get("tag"))
        elif op == "shutdown":
            for s in self.stores.values():
                del s
            self.stores.clear()
            self.ep.shutdown()
            emit(ev="shutdown")
            sys.stdout.flush()
            return "exit"
        else:
            emit(ev="error", error="unknown op " + op)


def main():
    first = json.loads(sys.stdin.readline() or "{}")
    node = Node(first)
    emit(ev="ready", impl=getattr(broker, "__file__", "?"))
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            if node.run(json.loads(line)) == "exit":
                break
        except Exception as e:  # noqa: BLE001
            emit(ev="error", error="%s: %s" % (type(e).__name__, e))
    sys.stdout.flush()
    # Daemon threads may block in get(): leave without waiting for them.
    import os

    os._exit(0)


if __name__ == "__main__":
    main()
