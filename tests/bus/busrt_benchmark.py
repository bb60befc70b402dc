"""busrt's own benchmark (`busrt ADDR benchmark`) against busrtd and against `broker bus serve`
in one run, alternating, over a UNIX socket and TCP, 100 B and 1 KiB payloads; prints every
stage side by side (median iterations per second of the rounds) with the ratio.

    python3 busrt_benchmark.py --busrt DIR --broker BIN [--iters N] [--rounds R]

DIR holds `busrt` and `busrtd` (`cargo install busrt --version 0.5.6 --features
server,cli,rpc --root DIR`). Both servers run with `--queue-size 1000000`: busrtd's own
benchmark client overflows the default queue in the send+recv stages and is disconnected.
Also reports each server's peak resident memory while a client floods a subscriber that never
reads (`--flood`).
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(kind, args, tmp):
    sock = os.path.join(tmp, "%s.sock" % kind)
    port = free_port()
    tcp = "127.0.0.1:%d" % port
    if kind == "busrtd":
        argv = [os.path.join(args.busrt, "busrtd"), "-B", sock, "-B", tcp, "--queue-size", "1000000"]
    else:
        argv = [args.broker, "bus", "serve", "-B", sock, "-B", tcp, "--queue-size", "1000000"]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(sock):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                pass
        time.sleep(0.05)
    return p, {"unix": sock, "tcp": tcp}


def run_benchmark(args, addr, size):
    r = subprocess.run([os.path.join(args.busrt, "busrt"), "-s", addr, "benchmark", "--payload-size", str(size),
                        "-i", str(args.iters)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)
    stages = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([a-z0-9.+]+)\s+([\d_]+)\s+[\d.]+\s+[\d.]+\s+([\d_]+)\s*$", line)
        if m:
            stages[m.group(1)] = int(m.group(3).replace("_", ""))
    if not stages:
        stages["failed"] = 0
        sys.stderr.write("benchmark against %s failed: %s\n" % (addr, (r.stderr or r.stdout)[-300:]))
    return stages


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def flood(args, proc, addr):
    """A subscriber that never reads and a publisher at full speed for 5 s: peak RSS."""
    sub = subprocess.Popen([os.path.join(args.busrt, "busrt"), "-s", "-n", "stuck", addr, "listen", "-t", "flood"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sub.send_signal(19)  # SIGSTOP: it never reads again
    payload = "x" * 100
    peak = rss_kib(proc.pid)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        subprocess.run([os.path.join(args.busrt, "busrt"), "-s", addr, "publish", "flood", payload],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = max(peak, rss_kib(proc.pid))
    sub.send_signal(18)
    sub.kill()
    sub.wait()
    return peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--busrt", required=True)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--iters", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flood", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="busbench-")
    servers = {k: start(k, args, tmp) for k in ("busrtd", "broker-rs")}
    try:
        results = {}
        for transport in ("unix", "tcp"):
            for size in (100, 1024):
                for _ in range(args.rounds):
                    for kind in ("busrtd", "broker-rs"):
                        stages = run_benchmark(args, servers[kind][1][transport], size)
                        for stage, v in stages.items():
                            results.setdefault((transport, size, stage, kind), []).append(v)
        print("| transport | payload | stage | busrtd iters/s | broker-rs iters/s | ratio |")
        print("|---|---|---|---|---|---|")
        keys = sorted({k[:3] for k in results})
        for transport, size, stage in keys:
            a = results.get((transport, size, stage, "busrtd"), [0])
            b = results.get((transport, size, stage, "broker-rs"), [0])
            ma, mb = statistics.median(a), statistics.median(b)
            ratio = "%.2f×" % (mb / ma) if ma else "busrtd failed"
            print("| %s | %d B | %s | %s | %s | %s |" % (transport, size, stage, format(int(ma), ","), format(int(mb), ","), ratio))
        if args.flood:
            for kind in ("busrtd", "broker-rs"):
                proc, addrs = servers[kind]
                print("flood to a stuck client, %s: peak RSS %d KiB" % (kind, flood(args, proc, addrs["unix"])))
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
