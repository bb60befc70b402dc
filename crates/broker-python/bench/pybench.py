"""Python-level throughput of broker-rs's bindings, the counterpart of
`../shared/bench/broker14/pybench.py` (C++ Broker 1.4's python3-broker).

    python pybench.py [N] [REPS]

Variants (over 127.0.0.1, TLS off), each with a Python subscriber in a separate process that
receives in batches (`sub.get(1000, 0.2)`):
  py-ep-publish    publisher: Endpoint.publish(topic, Count(i)) per message
  py-ep-batch100   publisher: Endpoint.publish_batch(*100 (topic, data) pairs)
  py-publisher     publisher: Publisher.publish_batch(100 items)
The subscriber reports its own rate (first to last message); the publisher measures from its
first publish to the subscriber's "done" message. Prints one PYRESULT line per run, a median
table, and one JSON line.
"""
import json
import os
import statistics
import subprocess
import sys
import time

import broker


def cfg():
    o = broker.BrokerOptions()
    o.disable_ssl = True
    o.ignore_broker_conf = True
    return broker.Configuration(o)


def sub_main(n, portfile):
    ep = broker.Endpoint(cfg())
    sub = ep.make_subscriber("/bench/t")
    port = ep.listen("127.0.0.1", 0)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(portfile + ".tmp", portfile)
    got = 0
    t_first = None
    end = time.time() + 300
    while got < n and time.time() < end:
        xs = sub.get(min(1000, n - got), 0.2)
        if xs and t_first is None:
            t_first = time.time()
        got += len(xs)
    t_last = time.time()
    ep.publish("/bench/done", broker.Count(got))
    time.sleep(0.5)
    rate = (got - 1) / (t_last - t_first) if t_first and got > 1 else 0
    print(f"PYSUB received={got} sub_rate={rate:.1f} dropped={sub.dropped()}", flush=True)
    os._exit(0)


def start_receiver(n):
    pf = f"/tmp/broker-rs-pybench.{os.getpid()}.port"
    if os.path.exists(pf):
        os.remove(pf)
    p = subprocess.Popen([sys.executable, __file__, "--sub", str(n), pf],
                         stdout=subprocess.PIPE, text=True)
    for _ in range(400):
        if os.path.exists(pf):
            break
        time.sleep(0.025)
    with open(pf) as f:
        port = int(f.read())
    os.remove(pf)
    return p, port


def run(variant, n):
    p, port = start_receiver(n)
    ep = broker.Endpoint(cfg())
    done = ep.make_subscriber("/bench/done")
    assert ep.peer("127.0.0.1", port, 1.0)
    end = time.time() + 10
    while time.time() < end and not any(t.string() == "/bench/t" for t in ep.peer_subscriptions()):
        time.sleep(0.005)
    t0 = time.time()
    if variant == "py-ep-publish":
        for i in range(n):
            ep.publish("/bench/t", broker.Count(i))
    elif variant == "py-ep-batch100":
        for s in range(0, n, 100):
            ep.publish_batch(*[("/bench/t", broker.Count(i)) for i in range(s, min(n, s + 100))])
    elif variant == "py-publisher":
        pub = ep.make_publisher("/bench/t")
        for s in range(0, n, 100):
            pub.publish_batch(*[broker.Count(i) for i in range(s, min(n, s + 100))])
    t_pub = time.time()
    ack = done.get(300.0)
    t1 = time.time()
    out, _ = p.communicate(timeout=30)
    sub_rate = None
    for tok in out.split():
        if tok.startswith("sub_rate="):
            sub_rate = float(tok.split("=", 1)[1])
    ok = ack is not None and ack[1].value == n
    rate = n / (t1 - t0) if ok else 0.0
    print(f"PYRESULT variant={variant} n={n} publish_call_s={t_pub - t0:.3f} "
          f"e2e_s={t1 - t0:.3f} e2e_rate={rate:.1f} sub_rate={sub_rate} ok={int(ok)}", flush=True)
    ep.shutdown()
    return rate, sub_rate


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--sub":
        sub_main(int(sys.argv[2]), sys.argv[3])
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    res = {}
    for _ in range(reps):
        for variant in ("py-ep-publish", "py-ep-batch100", "py-publisher"):
            res.setdefault(variant, []).append(run(variant, n))
    print("\n| variant | e2e msgs/s median (runs) | subscriber msgs/s median |")
    print("|---|---|---|")
    summary = {}
    for v, rs in res.items():
        e2e = [r[0] for r in rs]
        sr = [r[1] for r in rs if r[1] is not None]
        summary[v] = {"e2e": statistics.median(e2e), "sub": statistics.median(sr) if sr else None}
        srs = f"{statistics.median(sr):,.0f}" if sr else "n/a"
        print(f"| {v} | **{statistics.median(e2e):,.0f}** ({', '.join(f'{x:,.0f}' for x in e2e)}) | {srs} |")
    print(json.dumps({"bench": "broker-rs-python", "n": n, "reps": reps, "results": summary}))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
