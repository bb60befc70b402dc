"""A cluster under faults: `broker node` processes, each in its own network namespace with its own
address, on a virtual network the harness builds (a veth pair per node to a routing
"switch" namespace), with faults applied during traffic and every delivery checked.

    python3 chaos.py [--all] [--only NAME,...] [--soak [MINUTES]] [--broker BIN] [--report FILE]

Run as root (`cargo xtask chaos` does); where no network namespace can be made, the nodes run
on loopback addresses (127.0.77.N), the scenarios that need the network (cut, partition,
isolate) are skipped, and the output says so. `--broker` is the binary whose nodes run
(`broker node --control`: the harness publishes and writes to stores through its stdin). Scenarios are data: a topology (nodes with their subscriptions and the
topics they publish on, and who dials whom) and a fault. Each scenario: the nodes peer, publish
a burst (every message must arrive exactly once, in order, at every subscriber and nowhere
else), the fault strikes and is detected (the statuses it must cause), a second burst goes out
(exactly once where a path of live, connected nodes exists, at most once and in order where
none does), the fault heals, the peerings come back, and a third burst must arrive exactly once
again. Each node's resident memory is sampled throughout.

Faults: `cut A B` (packets between two nodes dropped in the switch: the peering's TCP
connection goes silent, as with a cut cable), `partition A.. | B..`, `isolate A` (its link
down), `kill A` (SIGKILL, then a restart), `stall A` (a subscriber with a small queue stops
taking messages for 3 s), `slow A B` and `reset A B` (a peering through a fault-injecting
TCP proxy in A's namespace holds every chunk 100 ms, or drops the connection without a
goodbye), `pause A` (SIGSTOP for a while, then SIGCONT). Stores: the Zeek-like topology has a master
(SQLite, kept across a restart) on the manager and clones on the workers, written during every
burst; after healing every clone must equal the master, which must hold every write it
acknowledged and every write made through a clone.

`--soak` runs an 8-node Zeek-like cluster (manager, logger, two proxies, four workers) under
steady bursts for the given minutes (10 by default) with a fault every minute, and reports every
node's resident memory and CPU time over the run.
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
RSS_LIMIT_KIB = 400 * 1024


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


class LoopNet:
    """Where no namespace can be made: every node on its own loopback address (127.0.77.N).
    Faults that need the network (cut, partition, isolate) cannot be made here."""

    def __init__(self, names):
        self.index = {n: i + 1 for i, n in enumerate(names)}

    def ns(self, name):
        return None

    def addr(self, name):
        return "127.0.77.%d" % self.index[name]

    def close(self):
        pass


NETWORK_FAULTS = ("cut", "partition", "isolate")
NAMESPACES = True  # set by main(): whether this machine lets us make network namespaces


def in_ns(net, name, argv):
    """`argv` run in `name`'s namespace (or directly, on loopback addresses)."""
    ns = net.ns(name)
    return argv if ns is None else ["ip", "netns", "exec", ns] + argv


STORE_WRITES = 20


def camel(code):
    """`peer_lost` -> `PeerLost`, the status names the checks use."""
    return "".join(w.capitalize() for w in code.split("_"))


class Agent:
    """A node: a `broker node --control` process in the node's namespace, driven over its stdin
    (`publish`, `put`, `keys`, ...), and everything it printed, as lists of words: `ready ID`,
    `status CODE ID`, `recv NAME INCARNATION BURST SEQ TOPIC`, the answers to commands, and
    the harness's own marks (`sent`, `stored`, `acked`) in the order they happened."""

    def __init__(self, net, broker, name, spec, dials, incarnation, tmp, proxies=None):
        self.name = name
        self.incarnation = incarnation
        self.spec = spec
        argv = [broker, "node", "--disable-ssl", "--control", "--address", net.addr(name), "--port", "9999"]
        for d in dials:
            if proxies and d in proxies:
                argv += ["--peer", "127.0.0.1:%d" % proxies[d].port]
            else:
                argv += ["--peer", "%s:9999" % net.addr(d)]
        for topic in spec["subs"]:
            argv += ["--subscribe", topic]
        if spec.get("queue"):
            argv += ["--queue-size", str(spec["queue"])]
        store = spec.get("store")
        if store and store["role"] == "master":
            # Kept in the scenario's directory across a restart.
            argv += ["--master-store", store["name"], "--store-backend", store.get("backend", "sqlite"), "--store-dir", tmp]
        elif store:
            argv += ["--clone-store", store["name"]]
            if store.get("buffer"):
                argv += ["--mutation-buffer-interval", str(store["buffer"])]
        env = dict(os.environ, BROKER_PEER_SILENCE_TIMEOUT=SILENCE, BROKER_CONNECT_RETRY="1s")
        self.proc = subprocess.Popen(
            in_ns(net, name, argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines = []
        self.by_burst = defaultdict(list)
        self.cond = threading.Condition()
        self.write_lock = threading.Lock()
        self.err = []
        self.rss_max = 0
        self.rss_now = 0
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()
        self.id = self.wait(lambda p: p[0] == "ready", 30, "ready")[1]

    @staticmethod
    def parse(line):
        """One line of the node's output as words (see the class)."""
        if line.startswith("node ") and " listening on " in line:
            return ["ready", line.split()[1]]
        if line.startswith(("status ", "error ")):
            kind, rest = line.split(" ", 1)
            code, rest = rest.split(": ", 1)
            who, _, message = rest.partition(": ")
            return [kind, camel(code), who.split(" ")[0], message]
        topic, sep, value = line.partition(": ")
        if sep and " " not in topic and value.startswith("("):
            # `(NAME, INCARNATION, BURST, SEQ)` (strings print as their bytes).
            return ["recv"] + [v.strip() for v in value.strip("()").split(",")] + [topic]
        return line.split(" ", 2) if line.startswith("keys ") else line.split()

    def _pump(self):
        for raw in self.proc.stdout:
            self._add(self.parse(raw.rstrip("\n")))

    def _add(self, words):
        with self.cond:
            self.lines.append(words)
            if words and words[0] == "recv":
                # Indexed as they come: the checks look up a (publisher, burst) at once
                # instead of scanning every line (an hour's soak has millions).
                self.by_burst[(words[1], words[3])].append((words[2], int(words[4])))
            self.cond.notify_all()

    def received_in(self, pub, burst):
        """(publisher incarnation, seq) of what arrived from `pub` in `burst`."""
        with self.cond:
            return list(self.by_burst.get((pub, str(burst)), ()))

    def wait(self, pred, timeout, what, start=0):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for p in self.lines[start:]:
                    if p and pred(p):
                        return p
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no %s within %.0f s; stderr: %s" % (self.name, what, timeout, "".join(self.err[-5:])))
                self.cond.wait(min(left, 0.2))

    def send(self, line):
        with self.write_lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def ask(self, command, word, timeout=20):
        """Sends a command and returns its answer (the first line starting with `word`)."""
        with self.cond:
            mark = len(self.lines)
        self.send(command)
        return self.wait(lambda p: p[0] == word, timeout, word, mark)

    def publish_burst(self, b, n, rate):
        """Publishes `n` messages `(NAME, INCARNATION, b, SEQ)` at `rate` a second in a thread
        (and with a store, STORE_WRITES writes; a master's `acked` once its backend has them),
        then marks `sent b n`."""

        def run():
            try:
                start = time.monotonic()
                pubs = self.spec["pubs"]
                for seq in range(n):
                    self.send('publish %s ("%s", %d, %d, %d)' % (pubs[seq % len(pubs)], self.name, self.incarnation, b, seq))
                    ahead = start + (seq + 1) / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                store = self.spec.get("store")
                if store:
                    for i in range(STORE_WRITES):
                        self.send('put %s "%s/%d/%d/%d" %d' % (store["name"], self.name, self.incarnation, b, i, i))
                    self.send("echo stored %d %d" % (b, STORE_WRITES))
                    if store["role"] == "master":
                        if self.ask("await-idle %s 10" % store["name"], "idle", 30)[2] == "true":
                            self._add(["acked", str(b), str(STORE_WRITES)])
                self.send("echo sent %d %d" % (b, n))
            except (OSError, ValueError, AssertionError):
                pass  # killed meanwhile

        threading.Thread(target=run, daemon=True).start()

    def peers(self):
        return int(self.ask("peers", "peers", 10)[1])

    def cpu_seconds(self):
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def sample_rss(self):
        # `ip netns exec` execs the node: the pid is the node's.
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        self.rss_now = int(line.split()[1])
                        self.rss_max = max(self.rss_max, self.rss_now)
        except OSError:
            pass

    def keys(self):
        store = self.spec["store"]["name"]
        text = self.ask("keys " + store, "keys")[2].strip()
        # `{k1, k2}` with the keys' bytes (none contains ", ").
        inner = text[1:-1]
        return set(inner.split(", ")) if inner else set()

    def said(self, word):
        with self.cond:
            return [p for p in self.lines if p and p[0] == word]

    def received(self):
        return self.said("recv")

    def statuses(self):
        with self.cond:
            return [(p[1], p[2]) for p in self.lines if p and p[0] == "status"]

    def stop(self):
        try:
            self.send("quit")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def zeek(workers=2, proxies=1):
    workers = ["worker-%d" % (i + 1) for i in range(workers)]
    proxy_names = ["proxy"] if proxies == 1 else ["proxy-%d" % (i + 1) for i in range(proxies)]
    nodes = {
        "manager": {
            "subs": ["zeek/cluster/manager"],
            "pubs": ["zeek/cluster/worker", "zeek/cluster/proxy"],
            # A store master on the manager (SQLite, kept across a restart), clones on workers.
            "store": {"role": "master", "name": "chaos"},
        },
        "logger": {"subs": ["zeek/logs/"], "pubs": []},
    }
    for p in proxy_names:
        nodes[p] = {"subs": ["zeek/cluster/proxy"], "pubs": ["zeek/logs/proxy"]}
    for w in workers:
        nodes[w] = {
            "subs": ["zeek/cluster/worker"],
            "pubs": ["zeek/cluster/manager", "zeek/logs/conn"],
            "store": {"role": "clone", "name": "chaos"},
        }
    links = [(w, n) for w in workers for n in ["manager", "logger"] + proxy_names]
    links += [(p, n) for p in proxy_names for n in ("manager", "logger")] + [("manager", "logger")]
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


def slow_subscriber(topology, name, queue):
    nodes, links = topology
    nodes[name]["queue"] = queue
    return nodes, links


def short_buffer(topology, name, seconds):
    """`name`'s clone keeps writes without a master only this long."""
    nodes, links = topology
    nodes[name]["store"] = dict(nodes[name]["store"], buffer=seconds)
    return nodes, links


def master_backend(topology, backend):
    nodes, links = topology
    for spec in nodes.values():
        if (spec.get("store") or {}).get("role") == "master":
            spec["store"] = dict(spec["store"], backend=backend)
    return nodes, links


# name, topology, fault, whether it is in the short set that `cargo xtask ci` runs
SCENARIOS = [
    ("zeek-cut-worker-manager", zeek, ("cut", "worker-1", "manager"), True),
    ("zeek-kill-worker", zeek, ("kill", "worker-2"), True),
    ("ring-cut", lambda: chain(["a", "b", "c", "d"], True), ("cut", "a", "b"), True),
    ("line-partition", lambda: chain(["a", "b", "c", "d"], False), ("partition", ["a", "b"], ["c", "d"]), False),
    ("mesh-isolate", lambda: mesh(["a", "b", "c", "d"]), ("isolate", "c"), False),
    ("zeek-pause-logger", zeek, ("pause", "logger"), False),
    ("zeek-kill-manager", zeek, ("kill", "manager"), False),
    ("zeek-kill-manager-rocksdb", lambda: master_backend(zeek(), "rocksdb"), ("kill", "manager"), False),
    ("zeek-isolate-worker", zeek, ("isolate", "worker-1"), False),
    ("zeek-isolate-worker-short-buffer", lambda: short_buffer(zeek(), "worker-1", 0.5), ("isolate", "worker-1"), False),
    ("zeek-slow-worker-logger", zeek, ("slow", "worker-1", "logger"), False),
    ("zeek-reset-worker-manager", zeek, ("reset", "worker-1", "manager"), False),
    ("zeek-stall-logger", lambda: slow_subscriber(zeek(), "logger", 64), ("stall", "logger"), False),
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


class Proxy:
    """`proxy.py` in a dialing node's namespace, between it and one peer."""

    def __init__(self, net, dialer, target, port):
        self.port = port
        self.proc = subprocess.Popen(
            in_ns(net, dialer, [sys.executable, os.path.join(HERE, "proxy.py"), "127.0.0.1", str(port), net.addr(target), "9999"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise AssertionError("the proxy from %s to %s did not start" % (dialer, target))

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Cluster:
    """A running cluster: its network, every node's incarnations, and the bursts published."""

    def __init__(self, broker, topology, proxied=()):
        self.nodes, self.links = topology()
        self.names = list(self.nodes)
        self.broker = broker
        self.net = Net(self.names) if NAMESPACES else LoopNet(self.names)
        self.tmp = tempfile.mkdtemp(prefix="chaos-")
        self.agents, self.history = {}, defaultdict(list)
        self.dials, self.degree = defaultdict(list), defaultdict(int)
        for a, b in self.links:
            self.dials[a].append(b)
            self.degree[a] += 1
            self.degree[b] += 1
        self.expected = {}  # burst -> pairs (publisher, subscriber) that must get it exactly once
        self.next_burst = 1
        self.samples = []  # (seconds, {node: (rss KiB, cpu seconds)})
        self.t0 = time.monotonic()
        self.sampling = threading.Event()
        self.problems = []  # found while the scenario runs (see `report`)
        # Peerings through a fault-injecting proxy: (dialer, target) -> Proxy.
        self.proxies = {}
        for k, (a, b) in enumerate(proxied):
            self.proxies[(a, b)] = Proxy(self.net, a, b, 19999 + k)
        for n in self.names:
            self.start(n, 1)
        threading.Thread(target=self._sampler, daemon=True).start()
        self.await_peers()
        time.sleep(0.5)  # subscriptions propagate (link states)

    def start(self, n, inc):
        mine = {b: p for (a, b), p in self.proxies.items() if a == n}
        self.agents[n] = Agent(self.net, self.broker, n, self.nodes[n], self.dials[n], inc, self.tmp, mine)
        self.history[n].append(self.agents[n])

    def _sampler(self):
        while not self.sampling.is_set():
            row = {}
            for n, a in list(self.agents.items()):
                a.sample_rss()
                row[n] = (a.rss_now, a.cpu_seconds())
            self.samples.append((time.monotonic() - self.t0, row))
            time.sleep(0.2)

    def await_peers(self, timeout=30):
        end = time.monotonic() + timeout
        for n in self.names:
            while self.agents[n].peers() != self.degree[n]:
                if time.monotonic() > end:
                    raise AssertionError("%s has %d peers, not %d" % (n, self.agents[n].peers(), self.degree[n]))
                time.sleep(0.1)

    def wanted_seqs(self, pub, sub):
        subs, topics = self.nodes[sub]["subs"], self.nodes[pub]["pubs"]
        return [s for s in range(BURST) if any(topics[s % len(topics)].startswith(p) for p in subs)]

    def got(self, pub, sub, b):
        out = defaultdict(list)
        for a in self.history[sub]:
            for inc, seq in a.received_in(pub, b):
                out[(a.incarnation, inc)].append(seq)
        return out

    def missing(self, b):
        for pub, sub in self.expected[b]:
            if pub == sub or not self.nodes[pub]["pubs"]:
                continue
            want = self.wanted_seqs(pub, sub)
            if want and sum(len(v) for v in self.got(pub, sub, b).values()) < len(want):
                return True
        return False

    def burst(self, pairs):
        """Every publisher publishes a burst; `pairs` must get it exactly once."""
        b = self.next_burst
        self.next_burst += 1
        self.expected[b] = pairs
        pubs = [n for n in self.names if self.nodes[n]["pubs"] and self.agents[n].proc.poll() is None]
        marks = {n: len(self.agents[n].lines) for n in pubs}
        for n in pubs:
            self.agents[n].publish_burst(b, BURST, RATE)
        for n in pubs:
            self.agents[n].wait(lambda p: p[0] == "sent" and p[1] == str(b), 60, "burst %d sent" % b, marks[n])
        end = time.monotonic() + 15
        while time.monotonic() < end and self.missing(b):
            time.sleep(0.1)
        time.sleep(0.3)

    def all_pairs(self):
        return {(p, q) for p in self.names for q in self.names}

    def lost_peer(self, x, y, mark, codes=("PeerLost",)):
        """`x` reports losing `y` (after line `mark`)."""
        self.agents[x].wait(lambda p: p[0] == "status" and p[1] in codes and p[2] == self.agents[y].id,
                            4 * max(SILENCE_S, 3), "peer_lost for %s" % y, mark)

    def neighbours(self, x):
        return [b if a == x else a for a, b in self.links if x in (a, b)]

    def apply(self, fault):
        """Applies a fault and waits for the statuses it must cause; returns the links down and
        the nodes dead meanwhile."""
        kind, down, dead = fault[0], set(), set()
        marks = {n: len(self.agents[n].lines) for n in self.names}
        self.fault_marks = marks
        if kind == "cut":
            a, b = fault[1], fault[2]
            self.net.cut(a, b)
            down.add((a, b))
            self.lost_peer(a, b, marks[a])
            self.lost_peer(b, a, marks[b])
        elif kind == "partition":
            left, right = fault[1], fault[2]
            for x in left:
                for y in right:
                    self.net.cut(x, y)
            for x in left:
                for y in right:
                    if (x, y) in self.links or (y, x) in self.links:
                        down.add((x, y))
                        self.lost_peer(x, y, marks[x])
                        self.lost_peer(y, x, marks[y])
        elif kind == "isolate":
            x = fault[1]
            self.net.link(x, False)
            for y in self.neighbours(x):
                down.add((x, y))
                self.lost_peer(y, x, marks[y])
        elif kind == "kill":
            x = fault[1]
            self.agents[x].proc.send_signal(signal.SIGKILL)
            self.agents[x].proc.wait()
            dead.add(x)
            for y in self.neighbours(x):
                self.lost_peer(y, x, marks[y], ("PeerLost", "PeerRemoved"))
        elif kind == "slow":
            # Every chunk on one peering held 100 ms: slower, nothing lost.
            self.proxies[(fault[1], fault[2])].send("delay 100")
        elif kind == "reset":
            # The connection of one peering dropped without a goodbye: both ends lose it, the
            # dialer dials again.
            a, b = fault[1], fault[2]
            self.proxies[(a, b)].send("reset")
            down.add((a, b))
            self.lost_peer(a, b, marks[a])
            self.lost_peer(b, a, marks[b])
        elif kind == "stall":
            # A subscriber that stops taking messages: its full queue holds everybody back
            # for at most a second, then loses its oldest (counted); nobody else loses a thing.
            self.agents[fault[1]].send("stall 3")
        elif kind == "pause":
            # A paused node's peerings stay (its kernel answers); its messages wait for it.
            x = fault[1]
            self.agents[x].proc.send_signal(signal.SIGSTOP)
            threading.Timer(2.0, lambda: self.agents[x].proc.send_signal(signal.SIGCONT)).start()
        time.sleep(0.5)  # routing goes around the fault (link states)
        return down, dead

    def heal(self, fault, down=()):
        kind = fault[0]
        # Statuses count from the fault on (a dropped connection may be back before healing).
        marks = self.fault_marks
        if kind == "cut":
            self.net.restore(fault[1], fault[2])
        elif kind == "partition":
            for x in fault[1]:
                for y in fault[2]:
                    self.net.restore(x, y)
        elif kind == "isolate":
            self.net.link(fault[1], True)
        elif kind == "slow":
            self.proxies[(fault[1], fault[2])].send("normal")
        elif kind == "kill":
            self.start(fault[1], self.agents[fault[1]].incarnation + 1)
        if kind not in ("pause", "slow", "stall"):
            time.sleep(1.5)  # re-dials happen every second
        self.await_peers(30)
        # Both ends of every peering that came back say so (a restarted node's peers see its
        # new id).
        back = set(down) | ({(fault[1], y) for y in self.neighbours(fault[1])} if kind == "kill" else set())
        for a, b in back:
            for x, y in ((a, b), (b, a)):
                mark = 0 if kind == "kill" and x == fault[1] else marks[x]
                self.agents[x].wait(lambda p, y=y: p[0] == "status" and p[1] == "PeerAdded" and p[2] == self.agents[y].id,
                                    10, "peer_added for %s after healing" % y, mark)
        time.sleep(0.5)

    def cycle(self, fault):
        """A burst, the fault, a burst during it, healing, a burst after."""
        self.burst(self.all_pairs())
        ids = {n: self.agents[n].id for n in self.names}
        down, dead = self.apply(fault)
        paths = reachable(self.names, self.links, down, dead)
        self.expect_reachability(ids, paths, dead)
        # Who must get the burst during the fault: not a stalled subscriber.
        during = {(p, q) for p, q in paths if fault[0] != "stall" or q != fault[1]}
        self.burst(during)
        if fault[0] == "stall":
            time.sleep(3)
        self.check_no_false_alarms(ids, paths, dead)
        self.heal(fault, down)
        self.expect_rediscovery(ids, paths, fault)
        self.burst(self.all_pairs())

    def expect_reachability(self, ids, during, dead):
        """Every live node reports `endpoint_unreachable` for each node it has no path to any
        more (its last path gone: a killed node's old id, the far side of a partition)."""
        for x in self.names:
            if x in dead:
                continue
            for y in self.names:
                if y != x and (x, y) not in during:
                    self.agents[x].wait(
                        lambda p, y=y: p[0] == "status" and p[1] == "EndpointUnreachable" and p[2] == ids[y],
                        4 * max(SILENCE_S, 3), "endpoint_unreachable for %s" % y, self.fault_marks[x])

    def check_no_false_alarms(self, ids, during, dead):
        """While the fault lasts, nobody calls a node unreachable that it still has a path to."""
        for x in self.names:
            if x in dead:
                continue
            with self.agents[x].cond:
                lines = self.agents[x].lines[self.fault_marks[x]:]
            for y in self.names:
                if y != x and (x, y) in during:
                    if any(p[0] == "status" and p[1] == "EndpointUnreachable" and p[2] == ids[y] for p in lines):
                        self.problems.append("%s called %s unreachable while a path existed" % (x, y))

    def expect_rediscovery(self, ids, during, fault):
        """After healing every node reports `endpoint_discovered` for each node it had lost (a
        restarted node under its new id; the restarted node for everybody)."""
        restarted = fault[1] if fault[0] == "kill" else None
        for x in self.names:
            for y in self.names:
                if y == x:
                    continue
                if x == restarted or y == restarted or (x, y) not in during:
                    mark = 0 if x == restarted else self.fault_marks[x]
                    self.agents[x].wait(
                        lambda p, y=y: p[0] == "status" and p[1] == "EndpointDiscovered" and p[2] == self.agents[y].id,
                        10, "endpoint_discovered for %s after healing" % y, mark)

    def check(self, problems):
        """Delivery checks over every burst so far; returns (delivered, lost, duplicated)."""
        delivered = lost = duplicated = 0
        for b in sorted(self.expected):
            for pub in self.names:
                if not self.nodes[pub]["pubs"]:
                    continue
                for sub in self.names:
                    if sub == pub:
                        continue
                    want = self.wanted_seqs(pub, sub)
                    got = self.got(pub, sub, b)
                    for seqs in got.values():
                        if seqs != sorted(seqs):
                            problems.append("burst %d: %s→%s out of order" % (b, pub, sub))
                        if len(set(seqs)) != len(seqs):
                            problems.append("burst %d: %s→%s duplicates" % (b, pub, sub))
                            duplicated += len(seqs) - len(set(seqs))
                        if not set(seqs) <= set(want):
                            problems.append("burst %d: %s got %s's messages it did not subscribe to" % (b, sub, pub))
                    all_seqs = {x for seqs in got.values() for x in seqs}
                    delivered += len(all_seqs)
                    if (pub, sub) in self.expected[b]:
                        miss = len(set(want) - all_seqs)
                        if miss:
                            lost += miss
                            problems.append("burst %d: %s→%s lost %d of %d" % (b, pub, sub, miss, len(want)))
        return delivered, lost, duplicated

    def check_stores(self, problems):
        """After healing every clone equals the master; the master has every write it
        acknowledged (across a kill -9 and restart with its SQLite file) and every write a
        clone made (buffered through a fault, sent when the master came back). Returns (keys,
        keys diverging)."""
        stores = [n for n in self.names if self.nodes[n].get("store")]
        if not stores:
            return 0, 0
        master = next(n for n in stores if self.nodes[n]["store"]["role"] == "master")
        clones = [n for n in stores if n != master]

        def said(nodes, word):
            out = set()
            for n in nodes:
                for a in self.history[n]:
                    for p in a.said(word):
                        out |= {"%s/%d/%s/%d" % (n, a.incarnation, p[1], i) for i in range(int(p[2]))}
            return out

        def reported_drops(n):
            # A clone's writes dropped after waiting longer than its mutation buffer interval
            # for a master, each reported as a `no_such_master` error.
            return sum(1 for a in self.history[n] for p in a.said("error")
                       if p[1] == "NoSuchMaster" and "dropped a put" in p[3])

        written, acked = said(stores, "stored"), said([master], "acked")
        dropped = {c: reported_drops(c) for c in clones}
        end = time.monotonic() + 20
        while True:
            want = self.agents[master].keys()
            views = {c: self.agents[c].keys() for c in clones}
            lacking = {c: len(said([c], "stored") - want) for c in clones}
            settled = all(lacking[c] == dropped[c] for c in clones) and written - said(clones, "stored") <= want
            if settled and all(v == want for v in views.values()) or time.monotonic() > end:
                break
            time.sleep(0.5)
        divergence = 0
        if not acked or not written:
            problems.append("the store saw no writes")
        if not acked <= want:
            problems.append("the master lost %d acknowledged writes" % len(acked - want))
        for c in clones:
            # Every write made through a clone reached the master or was reported dropped.
            if lacking[c] != dropped[c]:
                problems.append("the master lacks %d writes made through %s, which reported %d dropped" % (lacking[c], c, dropped[c]))
        expect_drops = {c for c in clones if self.nodes[c]["store"].get("buffer")}
        for c in expect_drops:
            if dropped[c] == 0:
                problems.append("%s's short mutation buffer dropped nothing" % c)
        for c, v in views.items():
            if v != want:
                divergence += len(v ^ want)
                problems.append("%s differs from the master in %d keys" % (c, len(v ^ want)))
        return len(want), divergence

    def max_rss(self):
        return {n: max(a.rss_max for a in self.history[n]) for n in self.names}

    def close(self):
        self.sampling.set()
        for a in self.agents.values():
            a.stop()
        for p in self.proxies.values():
            p.stop()
        self.net.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def report(name, cluster, problems, extra=None):
    problems = cluster.problems + problems
    delivered, lost, duplicated = cluster.check(problems)
    keys, divergence = cluster.check_stores(problems)
    rss = cluster.max_rss()
    for n, k in rss.items():
        if k > RSS_LIMIT_KIB:
            problems.append("%s grew to %d KiB" % (n, k))
    r = {
        "scenario": name,
        "ok": not problems,
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "store_keys": keys,
        "store_divergence": divergence,
        "max_rss_kib": max(rss.values()),
        "max_rss_kib_by_node": rss,
        "problems": problems,
    }
    r.update(extra or {})
    return r


def run_scenario(broker, name, topology, fault):
    proxied = [(fault[1], fault[2])] if fault[0] in ("slow", "reset") else []
    cluster = Cluster(broker, topology, proxied)
    try:
        problems = []
        cluster.cycle(fault)
        if fault[0] == "stall":
            # What the stalled subscriber did not get, its queue dropped and counted: no
            # message vanishes without a count.
            x = fault[1]
            agent = cluster.agents[x]
            dropped = int(agent.ask("dropped", "dropped", 10)[1])
            missed = 0
            for pub in cluster.names:
                if pub != x and cluster.nodes[pub]["pubs"]:
                    want = set(cluster.wanted_seqs(pub, x))
                    for b in cluster.expected:
                        missed += len(want - {s for seqs in cluster.got(pub, x, b).values() for s in seqs})
            if dropped != missed or missed == 0:
                problems.append("%s missed %d messages and counted %d dropped" % (x, missed, dropped))
        return report(name, cluster, problems)
    finally:
        cluster.close()


def run_soak(broker, minutes):
    """An 8-node Zeek-like cluster under steady bursts with a fault every minute; per-node RSS
    and CPU over time."""
    cluster = Cluster(broker, lambda: zeek(workers=4, proxies=2))
    faults = [
        ("cut", "worker-1", "manager"),
        ("kill", "worker-2"),
        ("pause", "logger"),
        ("isolate", "proxy-1"),
        ("partition", ["worker-3", "worker-4"], ["manager", "logger", "proxy-1", "proxy-2", "worker-1", "worker-2"]),
        ("kill", "manager"),
    ]
    try:
        problems = []
        end = time.monotonic() + minutes * 60
        i = 0
        while time.monotonic() < end:
            started = time.monotonic()
            cluster.cycle(faults[i % len(faults)])
            i += 1
            # Steady load until the minute is over.
            while time.monotonic() < min(end, started + 60):
                cluster.burst(cluster.all_pairs())
        table = []
        step = max(1, len(cluster.samples) // 12)
        for t, row in cluster.samples[::step]:
            table.append({"t": round(t), "rss_kib": {n: v[0] for n, v in row.items()},
                          "cpu_s": {n: round(v[1], 1) for n, v in row.items()}})
        return report("soak-%dmin" % minutes, cluster, problems, {"faults": i, "bursts": cluster.next_burst - 1,
                                                                   "over_time": table})
    finally:
        cluster.close()


def rocksdb_built(broker):
    """Whether `broker` has the RocksDB backend (the `rocksdb` feature)."""
    tmp = tempfile.mkdtemp(prefix="chaos-probe-")
    try:
        r = subprocess.run([broker, "node", "--disable-ssl", "--port", "0", "--control", "--master-store", "probe",
                            "--store-backend", "rocksdb", "--store-dir", tmp],
                           input="quit\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        return r.returncode == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--broker", default=os.path.join(HERE, "..", "..", "target", "debug", "broker"),
                    help="the `broker` binary whose nodes run (default: the workspace's debug build)")
    ap.add_argument("--report", default="")
    ap.add_argument("--soak", type=float, nargs="?", const=10.0, default=0,
                    help="minutes of soak (default 10): an 8-node cluster, a fault a minute")
    args = ap.parse_args()
    global NAMESPACES
    try:
        if os.geteuid() != 0:
            raise RuntimeError("not root")
        probe = "chaosprobe%d" % os.getpid()
        sh("ip", "netns", "add", probe)
        sh("ip", "netns", "del", probe)
    except Exception as e:
        NAMESPACES = False
        print("chaos: no network namespaces here (%s): nodes on loopback addresses 127.0.77.N, "
              "scenarios with cuts, partitions and isolation skipped" % e)
    if args.soak:
        if not NAMESPACES:
            print("chaos: the soak needs network namespaces")
            return 0
        r = run_soak(args.broker, args.soak)
        print("%s %s: %d faults, %d bursts, delivered %d, lost %d, duplicated %d, store keys %d diverging %d, max RSS %d KiB" % (
            r["scenario"], "ok" if r["ok"] else "FAIL", r["faults"], r["bursts"], r["delivered"], r["lost"], r["duplicated"],
            r["store_keys"], r["store_divergence"], r["max_rss_kib"]))
        print("  peak RSS KiB by node (any incarnation): %s" % r["max_rss_kib_by_node"])
        for row in r["over_time"]:
            print("  t=%4ds  RSS KiB %s  CPU s %s" % (row["t"], row["rss_kib"], row["cpu_s"]))
        for p in r["problems"][:20]:
            print("    " + p)
        if args.report:
            with open(args.report, "w") as f:
                json.dump(r, f, indent=1)
        return 0 if r["ok"] else 1
    only = [s for s in args.only.split(",") if s]
    chosen = [s for s in SCENARIOS if (only and s[0] in only) or (not only and (args.all or s[3]))]
    results = []
    rocksdb = rocksdb_built(args.broker)
    for name, topology, fault, _ in chosen:
        if not NAMESPACES and fault[0] in NETWORK_FAULTS:
            print("%-34s skipped (needs network namespaces)" % name)
            continue
        if "rocksdb" in name and not rocksdb:
            print("%-34s skipped (%s was built without the rocksdb feature)" % (name, args.broker))
            continue
        t0 = time.monotonic()
        try:
            r = run_scenario(args.broker, name, topology, fault)
        except Exception as e:
            r = {"scenario": name, "ok": False, "delivered": 0, "lost": 0, "duplicated": 0, "store_divergence": 0, "store_keys": 0,
                 "max_rss_kib": 0, "problems": [str(e)]}
        r["seconds"] = round(time.monotonic() - t0, 1)
        results.append(r)
        print("%-34s %-4s delivered %6d  lost %3d  duplicated %3d  store keys %3d diverging %3d  max RSS %6d KiB  %5.1f s%s" % (
            name, "ok" if r["ok"] else "FAIL", r["delivered"], r["lost"], r["duplicated"], r["store_keys"], r["store_divergence"],
            r["max_rss_kib"], r["seconds"],
            "" if r["ok"] else "\n    " + "\n    ".join(r["problems"][:10])), flush=True)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
