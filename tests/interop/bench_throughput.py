"""Benchmark (not a test): C++ Broker's `broker-throughput` beside broker-rs in every pairing.

The server counts Zeek events on /benchmark/events and prints `rate: N events/s` each second;
the client publishes `broker-throughput -t 1 -r 0`'s event as fast as the server takes it.
`broker throughput` is our implementation of the same tool, so the four pairings run the same
load: C++ → C++, broker-rs → C++, C++ → broker-rs, broker-rs → broker-rs. Pairings alternate
round by round; each round's figure is the median of its per-second rates after a warm-up.

    unshare -n sh -c 'ip link set lo up && python3 tests/interop/bench_throughput.py \
        [--rounds 3] [--seconds 8] [--tls]'

(`RS_BROKER_BIN` picks our binary, default target/release/broker; `CPP_BROKER_DIR` C++ Broker.)
Prints one line per pairing and a JSON line.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CPP = os.path.join(os.environ.get("CPP_BROKER_DIR", "/var/cache/cpp-broker-2.8"), "bin", "broker-throughput")
RS = os.environ.get("RS_BROKER_BIN") or os.path.join(HERE, "..", "..", "target", "release", "broker")
WARMUP = 2


def server_cmd(impl, port, tls):
    if impl == "cpp":
        return [CPP, "--verbose", "--server"] + ([] if tls else ["--disable-ssl"]) + ["127.0.0.1:%d" % port]
    return [RS, "throughput", "--server"] + ([] if tls else ["--disable-ssl"]) + ["127.0.0.1:%d" % port]


def client_cmd(impl, port, tls):
    if impl == "cpp":
        # A flat-out C++ client overflows its 2,048-message peer buffer within a second and
        # drops the peering (backpressure_overflow): a buffer it never fills lets it keep
        # sending, so the server's receive rate is what is measured (ours blocks instead).
        return [CPP, "-t", "1", "-r", "0", "--peer-buffer-size=100000000"] + (
            [] if tls else ["--disable-ssl"]
        ) + ["127.0.0.1:%d" % port]
    return [RS, "throughput"] + ([] if tls else ["--disable-ssl"]) + ["127.0.0.1:%d" % port]


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def one(server, client, tls, seconds):
    port = free_port()
    srv = subprocess.Popen(server_cmd(server, port, tls), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rates = []
    try:
        # Wait until it listens.
        while True:
            line = srv.stdout.readline()
            if not line or "listening" in line:
                break
        time.sleep(0.2)
        cli = subprocess.Popen(client_cmd(client, port, tls), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            end = time.monotonic() + seconds + WARMUP + 1
            started = False
            while time.monotonic() < end:
                line = srv.stdout.readline()
                m = re.match(r"rate: (\d+) events/s", line)
                if not m:
                    continue
                n = int(m.group(1))
                if not started and n == 0:
                    continue
                started = True
                rates.append(n)
        finally:
            cli.kill()
            cli.wait()
    finally:
        srv.kill()
        srv.wait()
    steady = rates[WARMUP:] or rates
    return statistics.median(steady) if steady else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--tls", action="store_true")
    a = ap.parse_args()
    pairings = [("cpp", "cpp"), ("rs", "cpp"), ("cpp", "rs"), ("rs", "rs")]
    results = {p: [] for p in pairings}
    for r in range(a.rounds):
        for client, server in pairings:
            results[(client, server)].append(one(server, client, a.tls, a.seconds))
    base = statistics.median(results[("cpp", "cpp")]) or 1
    out = {"transport": "tls" if a.tls else "plain"}
    for (client, server), xs in results.items():
        med = statistics.median(xs)
        print(
            "%-3s -> %-3s  median %10.0f events/s  (%.2fx C++ -> C++; rounds %s)"
            % (client, server, med, med / base, ", ".join("%.0f" % x for x in xs))
        )
        out["%s_to_%s" % (client, server)] = med
    print(json.dumps(out))


if __name__ == "__main__":
    main()
