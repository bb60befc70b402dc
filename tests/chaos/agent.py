"""One node of a chaos scenario: a broker-rs endpoint (our Python bindings) in its own network
namespace, driven line by line over stdin by `chaos.py`, reporting on stdout.

Argument: a JSON object with `name`, `incarnation`, `listen` (address or null), `peers`
(addresses to dial, port 9999), `subs` (topic prefixes), `pubs` (topics to publish on, in
turn), `timeout` (`peer_silence_timeout`), optionally `store` (`role` master or clone, `name`,
and for a master the SQLite `path`, kept across restarts).

Commands: `pub BURST N RATE` publishes N messages `(name, incarnation, burst, seq)`, at most
RATE a second (and with a store, 20 writes: `stored BURST 20`, at a master `acked BURST 20`
once its backend has them), then prints `sent BURST N`; `keys` prints `keys JSON-LIST`; `dropped` prints `dropped COUNT` (what the
subscriber's full queue dropped); `stall S` stops taking messages
for S seconds (a slow subscriber; `queue` in the argument sets its queue's size); `peers` prints `peers COUNT`; `quit` shuts down.
Reports: `ready ID`, `status CODE PEER-ID`, `recv NAME INCARNATION BURST SEQ TOPIC`.
"""

import json
import sys
import threading
import time

import broker

PORT = 9999
STORE_WRITES = 20


def num(v):
    """A count as received (`broker.Count`) or as a plain int."""
    return int(v.value) if hasattr(v, "value") else int(v)


def main():
    cfg = json.loads(sys.argv[1])
    lock = threading.Lock()

    def say(*parts):
        with lock:
            sys.stdout.write("\t".join(str(p) for p in parts) + "\n")
            sys.stdout.flush()

    options = broker.BrokerOptions()
    options.disable_ssl = True
    conf = broker.Configuration(options)
    conf.set("peer_silence_timeout", cfg["timeout"])
    conf.set("connect_retry", "1s")
    if cfg.get("queue"):
        conf.set("subscriber_queue_size", cfg["queue"])
    ep = broker.Endpoint(conf)
    store = None
    role = (cfg.get("store") or {}).get("role")
    if role == "master":
        store = ep.attach_master(cfg["store"]["name"], broker.Backend.SQLite, {"path": cfg["store"]["path"]})
    elif role == "clone":
        store = ep.attach_clone(cfg["store"]["name"])
    statuses = ep.make_status_subscriber(True)
    sub = ep.make_subscriber(cfg["subs"]) if cfg["subs"] else None
    if cfg["listen"]:
        ep.listen(cfg["listen"], PORT)
    for host, port in cfg["peers"]:
        ep.peer_nosync(host, port, 1.0)
    done = threading.Event()

    def watch_statuses():
        while not done.is_set():
            s = statuses.get(0.2)
            if s is None:
                continue
            kind = "status" if isinstance(s, broker.Status) else "error"
            say(kind, str(s.code()).split(".")[-1], s.context().node_id())

    stall_until = [0.0]

    def receive():
        while not done.is_set():
            pause = stall_until[0] - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            for topic, data in sub.get(1000, 0.2):
                name, inc, burst, seq = data
                say("recv", name, num(inc), num(burst), num(seq), topic)

    threading.Thread(target=watch_statuses, daemon=True).start()
    if sub is not None:
        threading.Thread(target=receive, daemon=True).start()
    say("ready", ep.node_id())
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "pub":
            burst, n, rate = int(parts[1]), int(parts[2]), float(parts[3])
            start = time.monotonic()
            for seq in range(n):
                topic = cfg["pubs"][seq % len(cfg["pubs"])]
                ep.publish(topic, (cfg["name"], broker.Count(cfg["incarnation"]), broker.Count(burst), broker.Count(seq)))
                ahead = start + (seq + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if store is not None:
                # Writes of this burst: through the clone (to the master) or at the master,
                # which acknowledges them once its backend has them.
                for i in range(STORE_WRITES):
                    store.put("%s/%d/%d/%d" % (cfg["name"], cfg["incarnation"], burst, i), broker.Count(i))
                say("stored", burst, STORE_WRITES)
                if role == "master" and store.await_idle(10.0):
                    say("acked", burst, STORE_WRITES)
            say("sent", burst, n)
        elif parts[0] == "keys":
            keys = store.keys() if store is not None else None
            say("keys", json.dumps(sorted(str(k) for k in (keys or ()))))
        elif parts[0] == "dropped":
            say("dropped", sub.dropped() if sub is not None else 0)
        elif parts[0] == "stall":
            stall_until[0] = time.monotonic() + float(parts[1])
        elif parts[0] == "peers":
            say("peers", len(ep.peers()))
        elif parts[0] == "quit":
            break
    done.set()
    ep.shutdown()


if __name__ == "__main__":
    main()
