"""A cluster under faults: broker-rs nodes, each in its own network namespace with its own
address, on a virtual network the harness builds (a veth pair per node to a routing
"switch" namespace), with faults applied during traffic and every delivery checked.

    python3 chaos.py [--all] [--only NAME,...] [--python PY] [--report FILE]

Run as root (`cargo xtask chaos` does). `--python` is an interpreter with broker-rs's `broker`
module (the wheel). Scenarios are data: a topology (nodes with their subscriptions and the
topics they publish on, and who dials whom) and a fault. Each scenario: the nodes peer, publish
a burst (every message must arrive exactly once, in order, at every subscriber and nowhere
else), the fault strikes and is detected (the statuses it must cause), a second burst goes out
(exactly once where a path of live, connected nodes exists, at most once and in order where
none does), the fault heals, the peerings come back, and a third burst must arrive exactly once
again. Each node's resident memory is sampled throughout.

Faults: `cut A B` (packets between two nodes dropped in the switch: the peering's TCP
connection goes silent, as with a cut cable), `partition A.. | B..`, `isolate A` (its link
down), `kill A` (SIGKILL, then a restart), `pause A` (SIGSTOP for a while, then SIGCONT).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
# Each node's peer_silence_timeout: a silent peering is lost after this (`CHAOS_SILENCE=0`
# shows what the kernel's defaults do: the cut goes unnoticed).
SILENCE_S = float(os.environ.get("CHAOS_SILENCE", "3"))
SILENCE = "%gs" % SILENCE_S
BURST = 150
RATE = 600.0


def sh(*args, check=True):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class Net:
    """A switch namespace routing between one /24 per node (10.77.N.0/24, node at .2)."""

    def __init__(self, names):
        self.tag = "chaos%d" % os.getpid()
        self.sw = self.tag + "-sw"
        self.index = {n: i + 1 for i, n in enumerate(names)}
        self.rules = []
        sh("ip", "netns", "add", self.sw)
        sh("ip", "-n", self.sw, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.sw, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        for n, i in self.index.items():
            ns = self.ns(n)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "link", "add", "v%d" % i, "netns", self.sw, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.sw, "addr", "add", "10.77.%d.1/24" % i, "dev", "v%d" % i)
            sh("ip", "-n", self.sw, "link", "set", "v%d" % i, "up")
            sh("ip", "-n", ns, "addr", "add", "10.77.%d.2/24" % i, "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", "10.77.%d.1" % i)

    def ns(self, name):
        return "%s-%d" % (self.tag, self.index[name])

    def addr(self, name):
        return "10.77.%d.2" % self.index[name]

    def _block(self, a, b, add):
        for x, y in ((a, b), (b, a)):
            rule = ["from", "10.77.%d.0/24" % self.index[x], "to", "10.77.%d.0/24" % self.index[y], "blackhole"]
            sh("ip", "-n", self.sw, "rule", "add" if add else "del", *rule)

    def cut(self, a, b):
        self._block(a, b, True)

    def restore(self, a, b):
        self._block(a, b, False)

    def link(self, name, up):
        sh("ip", "-n", self.sw, "link", "set", "v%d" % self.index[name], "up" if up else "down")

    def close(self):
        for n in self.index:
            sh("ip", "netns", "del", self.ns(n), check=False)
        sh("ip", "netns", "del", self.sw, check=False)


class Agent:
    """A node's process (`agent.py` in the node's namespace) and everything it reported."""

    def __init__(self, net, python, name, spec, dials, incarnation, tmp):
        self.name = name
        self.incarnation = incarnation
        store = dict(spec["store"], path=os.path.join(tmp, name + ".sqlite")) if spec.get("store") else None
        cfg = {
            "store": store,
            "name": name,
            "incarnation": incarnation,
            "listen": net.addr(name),
            "peers": [net.addr(d) for d in dials],
            "subs": spec["subs"],
            "pubs": spec["pubs"],
            "timeout": SILENCE,
        }
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.ns(name), python, os.path.join(HERE, "agent.py"), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = []
        self.cond = threading.Condition()
        self.err = []
        self.rss_max = 0
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()
        self.id = self.wait(lambda p: p[0] == "ready", 30, "ready")[1]

    def _pump(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.rstrip("\n").split("\t"))
                self.cond.notify_all()

    def wait(self, pred, timeout, what, start=0):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for p in self.lines[start:]:
                    if pred(p):
                        return p
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no %s within %.0f s; stderr: %s" % (self.name, what, timeout, "".join(self.err[-5:])))
                self.cond.wait(min(left, 0.2))

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def peers(self):
        mark = len(self.lines)
        self.send("peers")
        return int(self.wait(lambda p: p[0] == "peers", 10, "peers", mark)[1])

    def sample_rss(self):
        # The agent is the child of `ip netns exec`, which execs it: the pid is the agent's.
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        self.rss_max = max(self.rss_max, int(line.split()[1]))
        except OSError:
            pass

    def keys(self):
        mark = len(self.lines)
        self.send("keys")
        return set(json.loads(self.wait(lambda p: p[0] == "keys", 20, "keys", mark)[1]))

    def said(self, word):
        with self.cond:
            return [p for p in self.lines if p[0] == word]

    def received(self):
        with self.cond:
            return [p for p in self.lines if p[0] == "recv"]

    def statuses(self):
        with self.cond:
            return [(p[1], p[2]) for p in self.lines if p[0] == "status"]

    def stop(self):
        try:
            self.send("quit")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def zeek():
    workers = ["worker-1", "worker-2"]
    nodes = {
        "manager": {
            "subs": ["zeek/cluster/manager"],
            "pubs": ["zeek/cluster/worker", "zeek/cluster/proxy"],
            # A store master on the manager (SQLite, kept across a restart), clones on workers.
            "store": {"role": "master", "name": "chaos"},
        },
        "logger": {"subs": ["zeek/logs/"], "pubs": []},
        "proxy": {"subs": ["zeek/cluster/proxy"], "pubs": ["zeek/logs/proxy"]},
    }
    for w in workers:
        nodes[w] = {
            "subs": ["zeek/cluster/worker"],
            "pubs": ["zeek/cluster/manager", "zeek/logs/conn"],
            "store": {"role": "clone", "name": "chaos"},
        }
    links = [(w, n) for w in workers for n in ("manager", "logger", "proxy")]
    links += [("proxy", "manager"), ("proxy", "logger"), ("manager", "logger")]
    return nodes, links


def chain(names, closed):
    nodes = {n: {"subs": ["/chaos/"], "pubs": ["/chaos/" + n]} for n in names}
    links = [(names[i], names[i + 1]) for i in range(len(names) - 1)]
    if closed:
        links.append((names[-1], names[0]))
    return nodes, links


def mesh(names):
    nodes = {n: {"subs": ["/chaos/"], "pubs": ["/chaos/" + n]} for n in names}
    return nodes, [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


# name, topology, fault, whether it is in the short set that `cargo xtask ci` runs
SCENARIOS = [
    ("zeek-cut-worker-manager", zeek, ("cut", "worker-1", "manager"), True),
    ("zeek-kill-worker", zeek, ("kill", "worker-2"), True),
    ("ring-cut", lambda: chain(["a", "b", "c", "d"], True), ("cut", "a", "b"), True),
    ("line-partition", lambda: chain(["a", "b", "c", "d"], False), ("partition", ["a", "b"], ["c", "d"]), False),
    ("mesh-isolate", lambda: mesh(["a", "b", "c", "d"]), ("isolate", "c"), False),
    ("zeek-pause-logger", zeek, ("pause", "logger"), False),
    ("zeek-kill-manager", zeek, ("kill", "manager"), False),
]


def reachable(nodes, links, down_links, dead):
    """Pairs (a, b) connected through live nodes over links that are up."""
    adj = defaultdict(set)
    for a, b in links:
        if (a, b) in down_links or (b, a) in down_links or a in dead or b in dead:
            continue
        adj[a].add(b)
        adj[b].add(a)
    pairs = set()
    for s in nodes:
        seen, todo = {s}, [s]
        while todo:
            x = todo.pop()
            for y in adj[x]:
                if y not in seen:
                    seen.add(y)
                    todo.append(y)
        pairs |= {(s, t) for t in seen}
    return pairs


def run_scenario(python, name, topology, fault):
    nodes, links = topology()
    names = list(nodes)
    net = Net(names)
    tmp = tempfile.mkdtemp(prefix="chaos-")
    agents, history = {}, defaultdict(list)  # history: every incarnation of each node
    problems = []
    sampling = threading.Event()
    try:
        dials = defaultdict(list)
        for a, b in links:
            dials[a].append(b)
        degree = defaultdict(int)
        for a, b in links:
            degree[a] += 1
            degree[b] += 1

        def start(n, inc):
            agents[n] = Agent(net, python, n, nodes[n], dials[n], inc, tmp)
            history[n].append(agents[n])

        for n in names:
            start(n, 1)

        def sampler():
            while not sampling.is_set():
                for a in list(agents.values()):
                    a.sample_rss()
                time.sleep(0.2)

        threading.Thread(target=sampler, daemon=True).start()

        def await_peers(expect, timeout=30):
            end = time.monotonic() + timeout
            for n, k in expect.items():
                while agents[n].peers() != k:
                    if time.monotonic() > end:
                        raise AssertionError("%s has %d peers, not %d" % (n, agents[n].peers(), k))
                    time.sleep(0.1)

        await_peers({n: degree[n] for n in names})
        time.sleep(0.5)  # subscriptions propagate (link states)

        # expected[burst] = set of (publisher, subscriber) pairs that must get exactly once
        expected = {}

        def burst(b, pairs):
            expected[b] = pairs
            pubs = [n for n in names if nodes[n]["pubs"] and n in agents and agents[n].proc.poll() is None]
            marks = {n: len(agents[n].lines) for n in pubs}
            for n in pubs:
                agents[n].send("pub %d %d %d" % (b, BURST, RATE))
            for n in pubs:
                agents[n].wait(lambda p: p[0] == "sent" and p[1] == str(b), 60, "burst %d sent" % b, marks[n])
            # Everything that must arrive, arrives (or the check below says what did not).
            end = time.monotonic() + 15
            while time.monotonic() < end and missing(b):
                time.sleep(0.1)
            time.sleep(0.3)

        def wanted_seqs(pub, sub):
            subs = nodes[sub]["subs"]
            topics = nodes[pub]["pubs"]
            return [s for s in range(BURST) if any(topics[s % len(topics)].startswith(p) for p in subs)]

        def got(pub, sub, b):
            out = defaultdict(list)
            for a in history[sub]:
                for p in a.received():
                    if p[1] == pub and p[3] == str(b):
                        out[(a.incarnation, p[2])].append(int(p[4]))
            return out

        def missing(b):
            for pub, sub in expected[b]:
                if pub == sub or not nodes[pub]["pubs"]:
                    continue
                want = wanted_seqs(pub, sub)
                if want and sum(len(v) for v in got(pub, sub, b).values()) < len(want):
                    return True
            return False

        all_pairs = {(p, s) for p in names for s in names}
        burst(1, all_pairs)

        # The fault, and the statuses it must cause.
        kind = fault[0]
        down, dead = set(), set()
        status_mark = {n: len(agents[n].lines) for n in names}
        if kind == "cut":
            a, b = fault[1], fault[2]
            net.cut(a, b)
            down.add((a, b))
            # Both ends lose the silent peering within the silence timeout (and its probes).
            for x, y in ((a, b), (b, a)):
                agents[x].wait(lambda p, y=y: p[0] == "status" and p[1] == "PeerLost" and p[2] == agents[y].id,
                               4 * max(SILENCE_S, 3), "peer_lost for %s" % y, status_mark[x])
        elif kind == "partition":
            left, right = fault[1], fault[2]
            for x in left:
                for y in right:
                    net.cut(x, y)
                    if (x, y) in links or (y, x) in links:
                        down.add((x, y))
            for x, y in [(x, y) for x in left for y in right if (x, y) in links or (y, x) in links]:
                agents[x].wait(lambda p, y=y: p[0] == "status" and p[1] == "PeerLost" and p[2] == agents[y].id,
                               4 * max(SILENCE_S, 3), "peer_lost for %s" % y, status_mark[x])
        elif kind == "isolate":
            x = fault[1]
            net.link(x, False)
            down |= {(a, b) for a, b in links if x in (a, b)}
            for a, b in links:
                if x in (a, b):
                    y = b if a == x else a
                    agents[y].wait(lambda p: p[0] == "status" and p[1] == "PeerLost" and p[2] == agents[x].id,
                                   4 * max(SILENCE_S, 3), "peer_lost for %s" % x, status_mark[y])
        elif kind == "kill":
            x = fault[1]
            agents[x].proc.send_signal(signal.SIGKILL)
            agents[x].proc.wait()
            dead.add(x)
            for a, b in links:
                if x in (a, b):
                    y = b if a == x else a
                    agents[y].wait(lambda p: p[0] == "status" and p[1] in ("PeerLost", "PeerRemoved") and p[2] == agents[x].id,
                                   4 * max(SILENCE_S, 3), "peer_lost for %s" % x, status_mark[y])
        elif kind == "pause":
            x = fault[1]
            agents[x].proc.send_signal(signal.SIGSTOP)
        time.sleep(0.5)  # routing goes around the fault (link states)
        # During the fault: exactly once where a path of live nodes exists, at most once else.
        live = reachable(names, links, down, dead)
        if kind == "pause":
            # A paused node's peerings stay (its kernel answers), its messages wait for it.
            threading.Timer(2.0, lambda: agents[fault[1]].proc.send_signal(signal.SIGCONT)).start()
        burst(2, live)

        # Heal, and wait for the peerings to come back.
        if kind == "cut":
            net.restore(fault[1], fault[2])
        elif kind == "partition":
            for x in fault[1]:
                for y in fault[2]:
                    net.restore(x, y)
        elif kind == "isolate":
            net.link(fault[1], True)
        elif kind == "kill":
            start(fault[1], 2)
        if kind != "pause":
            time.sleep(1.5)  # re-dials happen every second
        await_peers({n: degree[n] for n in names}, 30)
        time.sleep(0.5)
        burst(3, all_pairs)

        # Checks.
        delivered = lost = duplicated = 0
        for b in (1, 2, 3):
            for pub in names:
                if not nodes[pub]["pubs"]:
                    continue
                for sub in names:
                    if sub == pub:
                        continue
                    want = wanted_seqs(pub, sub)
                    for (inc, pinc), seqs in got(pub, sub, b).items():
                        if seqs != sorted(seqs):
                            problems.append("burst %d: %s→%s out of order" % (b, pub, sub))
                        if len(set(seqs)) != len(seqs):
                            problems.append("burst %d: %s→%s duplicates" % (b, pub, sub))
                            duplicated += len(seqs) - len(set(seqs))
                        if not set(seqs) <= set(want):
                            problems.append("burst %d: %s got %s's messages it did not subscribe to" % (b, sub, pub))
                    all_seqs = [s for seqs in got(pub, sub, b).values() for s in seqs]
                    delivered += len(set(all_seqs))
                    if (pub, sub) in expected[b]:
                        miss = len(set(want) - set(all_seqs))
                        if miss:
                            lost += miss
                            problems.append("burst %d: %s→%s lost %d of %d" % (b, pub, sub, miss, len(want)))
        # Stores: after healing every clone equals the master; the master has every write it
        # acknowledged (across a kill -9 and restart with its SQLite file) and every write a
        # clone made (buffered through the fault and sent when its master came back).
        divergence = 0
        store_keys = 0
        stores = [n for n in names if nodes[n].get("store")]
        if stores:
            master = next(n for n in stores if nodes[n]["store"]["role"] == "master")
            clones = [n for n in stores if n != master]
            written = set()
            for n in stores:
                for a in history[n]:
                    for p in a.said("stored"):
                        written |= {"%s/%d/%s/%d" % (n, a.incarnation, p[1], i) for i in range(int(p[2]))}
            acked = set()
            for a in history[master]:
                for p in a.said("acked"):
                    acked |= {"%s/%d/%s/%d" % (master, a.incarnation, p[1], i) for i in range(int(p[2]))}
            end = time.monotonic() + 20
            while True:
                want = agents[master].keys()
                views = {c: agents[c].keys() for c in clones}
                settled = written <= want and all(v == want for v in views.values())
                if settled or time.monotonic() > end:
                    break
                time.sleep(0.5)
            store_keys = len(want)
            if not acked or not written:
                problems.append("the store saw no writes")
            if not acked <= want:
                problems.append("the master lost %d acknowledged writes" % len(acked - want))
            if not written <= want:
                problems.append("the master lacks %d writes made through clones" % len(written - want))
            for c, v in views.items():
                if v != want:
                    divergence += len(v ^ want)
                    problems.append("%s differs from the master in %d keys" % (c, len(v ^ want)))
        rss = {n: max(a.rss_max for a in history[n]) for n in names}
        for n, k in rss.items():
            if k > 400 * 1024:
                problems.append("%s grew to %d KiB" % (n, k))
        return {
            "scenario": name,
            "ok": not problems,
            "delivered": delivered,
            "lost": lost,
            "duplicated": duplicated,
            "store_divergence": divergence,
            "store_keys": store_keys,
            "max_rss_kib": max(rss.values()),
            "problems": problems,
        }
    finally:
        sampling.set()
        for a in agents.values():
            a.stop()
        net.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--report", default="")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("chaos: skipped: needs root to create network namespaces")
        return 0
    try:
        probe = "chaosprobe%d" % os.getpid()
        sh("ip", "netns", "add", probe)
        sh("ip", "netns", "del", probe)
    except Exception as e:
        print("chaos: skipped: cannot create network namespaces here (%s)" % e)
        return 0
    only = [s for s in args.only.split(",") if s]
    chosen = [s for s in SCENARIOS if (only and s[0] in only) or (not only and (args.all or s[3]))]
    results = []
    for name, topology, fault, _ in chosen:
        t0 = time.monotonic()
        try:
            r = run_scenario(args.python, name, topology, fault)
        except Exception as e:
            r = {"scenario": name, "ok": False, "delivered": 0, "lost": 0, "duplicated": 0, "store_divergence": 0, "store_keys": 0,
                 "max_rss_kib": 0, "problems": [str(e)]}
        r["seconds"] = round(time.monotonic() - t0, 1)
        results.append(r)
        print("%-26s %-4s delivered %6d  lost %3d  duplicated %3d  store keys %3d diverging %3d  max RSS %6d KiB  %5.1f s%s" % (
            name, "ok" if r["ok"] else "FAIL", r["delivered"], r["lost"], r["duplicated"], r["store_keys"], r["store_divergence"],
            r["max_rss_kib"], r["seconds"],
            "" if r["ok"] else "\n    " + "\n    ".join(r["problems"][:10])), flush=True)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
