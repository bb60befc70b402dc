//! `broker bench cluster`: Broker's cluster benchmark. A cluster configuration (generated from
//! recording directories, or read from a file in Broker's format) names nodes, their peerings
//! and subscriptions, the generator file each replays and what each must receive from each
//! other node. Every node is an endpoint (in this process, or with `--processes` a process of
//! its own over loopback); receivers count what arrives by sender, senders replay their
//! generator files, and the run ends when every receiver has its count (or at the timeout,
//! with a report of what is missing). Ports are the system's: a configuration's `tcp://` port
//! only says that the node listens.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker::{Configuration, Endpoint, EndpointId, MessageCounter};
use broker_wire::{GeneratorEntry, GeneratorReader, GeneratorStats};

use crate::bench::peak_rss_kib;
use crate::cluster_config::{self as cc, Node, NodeId};

/// What `broker bench cluster` was asked.
#[derive(clap::Args)]
pub(crate) struct ClusterArgs {
    /// Recording directories, one per node (the directory's name is the node's).
    pub(crate) dirs: Vec<String>,
    /// Read the cluster configuration from this file (Broker's format; `-` for stdin).
    #[arg(short = 'c', long = "config", alias = "cluster-config-file")]
    pub(crate) config: Option<String>,
    /// Print the configuration generated from the directories, as Broker's
    /// `--mode=generate-config`, and stop.
    #[arg(long)]
    pub(crate) generate_config: bool,
    /// Print what the generator files hold, as Broker's `--mode=dump-stats`, and stop.
    #[arg(long)]
    pub(crate) dump_stats: bool,
    /// Run each node as its own process over loopback (else every node in this one).
    #[arg(long)]
    pub(crate) processes: bool,
    /// Give up after this many seconds, with a report of what is missing.
    #[arg(long = "timeout", default_value_t = 120)]
    pub(crate) timeout_secs: u64,
    /// Say what happens.
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Replay every generator file this many times (expecting that many times the inputs):
    /// a small recording becomes a load worth measuring.
    #[arg(long, default_value_t = 1)]
    pub(crate) repeat: u64,
}

impl ClusterArgs {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Messages a replaying node hands to its endpoint at once.
const BATCH: usize = 1000;

/// How long a receiver keeps counting after it has what it expected, to catch extra messages.
const GRACE: Duration = Duration::from_millis(200);

pub(crate) fn run(args: ClusterArgs) -> Result<()> {
    if args.generate_config {
        if args.dirs.is_empty() {
            bail!("--generate-config needs recording directories");
        }
        print!("{}", cc::print(&cc::generate(&args.dirs)?));
        return Ok(());
    }
    let mut nodes = match (&args.config, args.dirs.is_empty()) {
        (Some(path), true) => {
            let (text, base) = if path == "-" {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
                (t, PathBuf::from("."))
            } else {
                let p = Path::new(path);
                let t = std::fs::read_to_string(p)
                    .with_context(|| format!("unable to read cluster config file {path}"))?;
                (t, p.parent().map(Path::to_path_buf).unwrap_or_default())
            };
            cc::nodes_from_config(&text, &base)?
        }
        (None, false) => cc::generate(&args.dirs)?,
        (Some(_), false) => bail!("give either recording directories or --config, not both"),
        (None, true) => bail!("give recording directories or --config FILE"),
    };
    if args.dump_stats {
        return dump_stats(&nodes);
    }
    if nodes.len() < 2 {
        bail!("at least two nodes required");
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if args.repeat > 1 {
        repeat(&mut nodes, args.repeat)?;
    }
    let tree = cc::build_tree(&mut nodes)?;
    cc::verify(&nodes)?;
    let plan = Plan::new(nodes, tree);
    if args.verbose {
        eprintln!("{}", plan.describe());
    }
    let report = if args.processes {
        run_processes(&plan, &args)?
    } else {
        run_in_process(&plan, &args)?
    };
    report.print(
        &plan,
        if args.processes {
            "processes"
        } else {
            "process"
        },
    );
    report.check(&plan)
}

/// Makes every sender replay its file `k` times (a file that loops exactly `k` times delivers
/// exactly `k` times what it delivers once).
fn repeat(nodes: &mut [Node], k: u64) -> Result<()> {
    for n in nodes.iter_mut() {
        let times = |x: u64| x.checked_mul(k).context("--repeat overflows a count");
        if let Some(g) = &n.generator_file {
            let once = match n.num_outputs {
                Some(m) => m,
                None => {
                    let bytes = std::fs::read(g).with_context(|| format!("{}", g.display()))?;
                    GeneratorStats::of(&bytes)
                        .with_context(|| format!("error while parsing {}", g.display()))?
                        .entries()
                }
            };
            n.num_outputs = Some(times(once)?);
        }
        n.num_inputs = times(n.num_inputs)?;
        for v in n.inputs_by_node.values_mut() {
            *v = times(*v)?;
        }
    }
    Ok(())
}

fn dump_stats(nodes: &[Node]) -> Result<()> {
    let mut any = false;
    for n in nodes {
        let Some(path) = &n.generator_file else {
            continue;
        };
        any = true;
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let s = GeneratorStats::of(&bytes)
            .with_context(|| format!("error while parsing {}", path.display()))?;
        println!("{}", path.display());
        println!("├── entries: {}", s.entries());
        println!("|   ├── data-entries: {}", s.data_entries);
        println!("|   └── command-entries: {}", s.command_entries);
        println!("└── topics:");
        let k = s.by_topic.len();
        for (i, (t, c)) in s.by_topic.iter().enumerate() {
            let lead = if i + 1 == k { "└──" } else { "├──" };
            println!("    {lead} {t} ({c})");
        }
    }
    if !any {
        bail!("no generator files found in config");
    }
    Ok(())
}

/// The nodes with what each must receive, by sender.
struct Plan {
    nodes: Vec<Node>,
    tree: cc::Tree,
    /// Per node: messages expected from each other node (its own publications are not
    /// delivered to its own subscribers, so they are left out).
    expect: Vec<BTreeMap<String, u64>>,
    /// Per node: a note for what was left out.
    notes: Vec<String>,
}

impl Plan {
    fn new(nodes: Vec<Node>, tree: cc::Tree) -> Plan {
        let mut expect = Vec::new();
        let mut notes = Vec::new();
        for n in &nodes {
            let mut e = n.inputs_by_node.clone();
            if e.is_empty() && n.num_inputs > 0 {
                // Without inputs-by-node only the total can be checked.
                e.insert(String::new(), n.num_inputs);
            }
            if let Some(own) = e.remove(&n.name) {
                notes.push(format!(
                    "{} expects {own} of its own messages: an endpoint does not deliver its own publications to its own subscribers, so they are not counted",
                    n.name
                ));
            }
            expect.push(e);
        }
        Plan {
            nodes,
            tree,
            expect,
            notes,
        }
    }

    fn expected_total(&self, i: usize) -> u64 {
        self.expect[i].values().sum()
    }

    /// Topics each sender must know subscribers for before it starts.
    fn routes(&self, sender: usize) -> Vec<String> {
        let name = &self.nodes[sender].name;
        let mut out: Vec<String> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if i != sender && self.expect[i].get(name).is_some_and(|k| *k > 0) {
                out.extend(n.topics.iter().cloned());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn describe(&self) -> String {
        let mut s = String::from("cluster:\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let peers: Vec<&str> = self.tree.right[i]
                .iter()
                .map(|&j| self.nodes[j].name.as_str())
                .collect();
            s.push_str(&format!(
                "  {}: {} topics, peers to [{}], expects {} ({:?}){}\n",
                n.name,
                n.topics.len(),
                peers.join(", "),
                self.expected_total(i),
                self.expect[i],
                n.generator_file
                    .as_ref()
                    .map(|g| format!(", replays {}", g.display()))
                    .unwrap_or_default()
            ));
        }
        for note in &self.notes {
            s.push_str(&format!("note: {note}\n"));
        }
        s
    }
}

/// What a replayed entry publishes.
#[derive(Clone)]
enum Item {
    Data(broker_data::SharedData),
    Command(broker::Command),
}

impl Item {
    fn of(entry: GeneratorEntry) -> (broker::Topic, Item) {
        match entry {
            GeneratorEntry::Data { topic, data } => (topic, Item::Data(data.into())),
            GeneratorEntry::Command { topic, command } => (topic, Item::Command(command)),
        }
    }
}

/// Entries of a generator file made up ahead of the run, so that a replay measures the
/// endpoints rather than the making up (which Broker's tool does while it runs): up to this
/// many bytes of made-up content (as encoded), else the file is read while it is replayed.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

/// A generator file ready to replay (see [`CACHE_BYTES`]).
struct Replay {
    path: PathBuf,
    bytes: Vec<u8>,
    cache: Option<Vec<(broker::Topic, Item)>>,
}

impl Replay {
    fn load(path: &Path) -> Result<Replay> {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let reader = GeneratorReader::new(&bytes)
            .with_context(|| format!("unable to open generator file {}", path.display()))?;
        let mut cache = Some(Vec::new());
        let mut size = 0usize;
        for entry in reader {
            let entry = entry.with_context(|| format!("error while parsing {}", path.display()))?;
            size += match &entry {
                GeneratorEntry::Data { data, .. } => broker_wire::encoded_data_len(data),
                GeneratorEntry::Command { .. } => 64,
            };
            if size > CACHE_BYTES {
                cache = None;
                break;
            }
            if let Some(c) = &mut cache {
                c.push(Item::of(entry));
            }
        }
        Ok(Replay {
            path: path.to_path_buf(),
            bytes,
            cache,
        })
    }
}

/// One node of a run: its endpoint and, for a receiver, its counter.
struct RunNode {
    ep: Endpoint,
    counter: Option<MessageCounter>,
    port: Option<u16>,
}

impl RunNode {
    fn start(node: &Node) -> Result<RunNode> {
        // As Broker's benchmark: plain TCP, the node's forwarding.
        let config = Configuration {
            disable_ssl: true,
            forward: node.forward,
            ..Configuration::default()
        };
        let ep = Endpoint::new(config)?;
        let topics: Vec<&str> = node.topics.iter().map(String::as_str).collect();
        // Subscribe before peering, so that the first messages find the subscription.
        let counter = if node.is_receiver() {
            Some(ep.make_counter(&topics)?)
        } else {
            if node.forward {
                ep.forward(&topics)?;
            }
            None
        };
        let port = match &node.id {
            NodeId::Tcp { host, .. } => Some(
                ep.listen(host, 0)
                    .with_context(|| format!("{} cannot listen on {host}", node.name))?,
            ),
            NodeId::Local(_) => None,
        };
        Ok(RunNode { ep, counter, port })
    }

    fn connect(&self, host: &str, port: u16) -> Result<()> {
        self.ep.peer(host, port, None)?;
        Ok(())
    }

    /// Waits until this node's peers announced every topic in `topics`.
    fn await_routes(&self, topics: &[String], timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            let known = self.ep.peer_subscriptions()?;
            let missing: Vec<&String> = topics
                .iter()
                .filter(|t| !known.iter().any(|k| k.as_str() == t.as_str()))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!("the subscriptions {missing:?} never reached this node");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Publishes `num_outputs` messages from the generator file (looping or stopping early),
    /// or the whole file once; returns how many.
    fn replay(&self, file: &Replay, num_outputs: Option<u64>) -> Result<u64> {
        let mut batch: broker::Publications = Vec::with_capacity(BATCH);
        let flush = |batch: &mut broker::Publications| -> Result<()> {
            if !batch.is_empty() {
                self.ep.publish_prepared(std::mem::take(batch))?;
            }
            Ok(())
        };
        let mut publish = |topic: broker::Topic, item: Item| -> Result<()> {
            match item {
                Item::Data(data) => {
                    batch.push((topic, data));
                    if batch.len() == BATCH {
                        flush(&mut batch)?;
                    }
                }
                Item::Command(command) => {
                    flush(&mut batch)?;
                    self.ep.publish_command(topic.as_str(), command)?;
                }
            }
            Ok(())
        };
        let limit = num_outputs.unwrap_or(u64::MAX);
        let mut sent = 0u64;
        match &file.cache {
            Some(cache) if !cache.is_empty() => {
                let once = num_outputs.is_none();
                for (topic, item) in cache.iter().cycle() {
                    if sent == limit || (once && sent == cache.len() as u64) {
                        break;
                    }
                    publish(topic.clone(), item.clone())?;
                    sent += 1;
                }
            }
            Some(_) => {}
            None => {
                let mut reader = GeneratorReader::new(&file.bytes)?;
                while sent < limit {
                    let entry = match reader.next() {
                        Some(e) => e.with_context(|| {
                            format!("error while parsing {}", file.path.display())
                        })?,
                        None if num_outputs.is_some() && sent > 0 => {
                            reader.rewind();
                            continue;
                        }
                        None => break,
                    };
                    let (topic, item) = Item::of(entry);
                    publish(topic, item)?;
                    sent += 1;
                }
            }
        }
        flush(&mut batch)?;
        Ok(sent)
    }

    /// Waits for `total` messages (until `end`), then a moment more for extra ones; returns
    /// the count and how long after `t0` it reached `total`.
    fn receive(&self, total: u64, end: Instant, t0: Instant) -> (u64, Option<Duration>) {
        let Some(c) = &self.counter else {
            return (0, None);
        };
        let got = c.wait_for(total, end.saturating_duration_since(Instant::now()));
        if got < total {
            return (got, None);
        }
        let at = t0.elapsed();
        std::thread::sleep(GRACE);
        (c.total(), Some(at))
    }

    fn counts(&self) -> BTreeMap<EndpointId, u64> {
        self.counter
            .as_ref()
            .map(|c| {
                c.by_sender()
                    .into_iter()
                    .map(|(k, v)| (k, v.total()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What a node did in a run.
#[derive(Debug, Default, Clone)]
struct NodeResult {
    sent: u64,
    send_time: Option<Duration>,
    /// When it had all it expected (none: it never did).
    receive_time: Option<Duration>,
    /// Messages counted, by sending node's name.
    received: BTreeMap<String, u64>,
    peak_kib: u64,
}

struct Report {
    nodes: Vec<NodeResult>,
    system: Duration,
    timed_out: bool,
}

impl Report {
    fn total_expected(plan: &Plan) -> u64 {
        (0..plan.nodes.len()).map(|i| plan.expected_total(i)).sum()
    }

    fn print(&self, plan: &Plan, mode: &str) {
        let total = Self::total_expected(plan);
        let secs = self.system.as_secs_f64();
        let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
        for note in &plan.notes {
            println!("note: {note}");
        }
        for (n, r) in plan.nodes.iter().zip(&self.nodes) {
            if let Some(t) = r.send_time {
                println!(
                    "{} (sending): {:.6}s ({} messages)",
                    n.name,
                    t.as_secs_f64(),
                    r.sent
                );
            }
            if n.is_receiver() {
                match r.receive_time {
                    Some(t) => println!("{} (receiving): {:.6}s", n.name, t.as_secs_f64()),
                    None => println!("{} (receiving): incomplete", n.name),
                }
            }
        }
        println!("system: {secs:.6}s, {total} messages delivered, {rate:.0} msg/s");
        for (n, r) in plan.nodes.iter().zip(&self.nodes) {
            println!("{} peak memory: {} KiB", n.name, r.peak_kib);
        }
        let nodes: Vec<String> = plan
            .nodes
            .iter()
            .zip(&self.nodes)
            .map(|(n, r)| {
                format!(
                    "{{\"name\":\"{}\",\"sent\":{},\"received\":{},\"send_seconds\":{},\"receive_seconds\":{},\"peak_kib\":{}}}",
                    n.name,
                    r.sent,
                    r.received.values().sum::<u64>(),
                    r.send_time.map_or("null".into(), |t| format!("{:.6}", t.as_secs_f64())),
                    r.receive_time.map_or("null".into(), |t| format!("{:.6}", t.as_secs_f64())),
                    r.peak_kib
                )
            })
            .collect();
        println!(
            "{{\"bench\":\"cluster\",\"mode\":\"{mode}\",\"nodes\":{},\"messages\":{total},\"seconds\":{secs:.6},\"msgs_per_sec\":{rate:.0},\"complete\":{},\"per_node\":[{}]}}",
            plan.nodes.len(),
            !self.timed_out,
            nodes.join(",")
        );
    }

    /// Every node received exactly what it should from each sender.
    fn check(&self, plan: &Plan) -> Result<()> {
        let mut wrong = Vec::new();
        for (i, (n, r)) in plan.nodes.iter().zip(&self.nodes).enumerate() {
            let want = &plan.expect[i];
            let got: BTreeMap<String, u64> = if want.contains_key("") {
                // Only a total was configured.
                [(String::new(), r.received.values().sum())]
                    .into_iter()
                    .collect()
            } else {
                r.received.clone()
            };
            let mut keys: Vec<&String> = want.keys().chain(got.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (w, g) = (
                    want.get(k).copied().unwrap_or(0),
                    got.get(k).copied().unwrap_or(0),
                );
                if w != g {
                    let from = if k.is_empty() { "all nodes" } else { k };
                    wrong.push(format!("{} expected {w} from {from}, received {g}", n.name));
                }
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        let why = if self.timed_out {
            "the run timed out"
        } else {
            "wrong counts"
        };
        bail!("{why}:\n  {}", wrong.join("\n  "))
    }
}

fn name_of(
    ids: &BTreeMap<EndpointId, String>,
    counts: BTreeMap<EndpointId, u64>,
) -> BTreeMap<String, u64> {
    counts
        .into_iter()
        .map(|(id, n)| (ids.get(&id).cloned().unwrap_or_else(|| id.to_string()), n))
        .collect()
}

fn run_in_process(plan: &Plan, args: &ClusterArgs) -> Result<Report> {
    let nodes = &plan.nodes;
    let run: Vec<RunNode> = nodes.iter().map(RunNode::start).collect::<Result<_>>()?;
    for (i, node) in nodes.iter().enumerate() {
        for &j in &plan.tree.right[i] {
            let (NodeId::Tcp { host, .. }, Some(port)) = (&nodes[j].id, run[j].port) else {
                bail!(
                    "{} peers to {}, which does not listen",
                    node.name,
                    nodes[j].name
                );
            };
            if args.verbose {
                eprintln!("{} peers to {} ({host}:{port})", node.name, nodes[j].name);
            }
            run[i]
                .connect(host, port)
                .with_context(|| format!("{} cannot peer to {}", node.name, nodes[j].name))?;
        }
    }
    for (i, r) in run.iter().enumerate() {
        if nodes[i].is_sender() {
            r.await_routes(&plan.routes(i), args.timeout())
                .with_context(|| nodes[i].name.clone())?;
        }
    }
    let ids: BTreeMap<EndpointId, String> = run
        .iter()
        .zip(nodes)
        .map(|(r, n)| (r.ep.node_id(), n.name.clone()))
        .collect();
    let replays: Vec<Option<Replay>> = nodes
        .iter()
        .map(|n| n.generator_file.as_deref().map(Replay::load).transpose())
        .collect::<Result<_>>()?;
    if args.verbose {
        eprintln!("all nodes are up and running, run benchmark");
    }
    let t0 = Instant::now();
    let end = t0 + args.timeout();
    let mut results = vec![NodeResult::default(); nodes.len()];
    let timed_out = std::thread::scope(|s| -> Result<bool> {
        let mut receivers = Vec::new();
        for (i, r) in run.iter().enumerate() {
            if nodes[i].is_receiver() {
                let total = plan.expected_total(i);
                receivers.push((i, s.spawn(move || r.receive(total, end, t0).1)));
            }
        }
        let mut senders = Vec::new();
        for (i, r) in run.iter().enumerate() {
            if let Some(g) = &replays[i] {
                let num = nodes[i].num_outputs;
                senders.push((i, s.spawn(move || (r.replay(g, num), t0.elapsed()))));
            }
        }
        for (i, h) in senders {
            let (sent, took) = h.join().map_err(|_| anyhow::anyhow!("a sender panicked"))?;
            results[i].sent = sent.with_context(|| format!("{} replaying", nodes[i].name))?;
            results[i].send_time = Some(took);
        }
        let mut timed_out = false;
        for (i, h) in receivers {
            let t = h
                .join()
                .map_err(|_| anyhow::anyhow!("a receiver panicked"))?;
            timed_out |= t.is_none();
            results[i].receive_time = t;
        }
        Ok(timed_out)
    })?;
    let system = results
        .iter()
        .filter_map(|r| r.receive_time.max(r.send_time))
        .max()
        .unwrap_or_default();
    let peak = peak_rss_kib();
    for (i, r) in run.iter().enumerate() {
        results[i].received = name_of(&ids, r.counts());
        results[i].peak_kib = peak;
    }
    for r in run {
        r.ep.shutdown();
    }
    Ok(Report {
        nodes: results,
        system,
        timed_out,
    })
}

/// A node in a process of its own (`broker bench cluster-node`), driven over its stdin and
/// stdout: one command per line in, one answer per line out.
struct NodeProcess {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Answers that came while another was awaited.
    pending: Vec<Vec<String>>,
}

impl NodeProcess {
    fn spawn(config: &Path, name: &str) -> Result<NodeProcess> {
        let exe = std::env::current_exe()?;
        let mut child = Process::new(exe)
            .args(["bench-cluster-node", &config.to_string_lossy(), name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start a node process")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(NodeProcess {
            child,
            stdin,
            lines,
            pending: Vec::new(),
        })
    }

    fn send(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// The next line that starts with `word`, within `timeout`.
    fn expect(&mut self, word: &str, timeout: Duration) -> Result<Vec<String>> {
        if let Some(k) = self.pending.iter().position(|p| p[0] == word) {
            return Ok(self.pending.remove(k)[1..].to_vec());
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| anyhow::anyhow!("no {word:?} from the node process"))?;
            let parts: Vec<String> = line.split('\t').map(str::to_owned).collect();
            match parts[0].as_str() {
                "error" => bail!("{}", parts[1..].join(" ")),
                w if w == word => return Ok(parts[1..].to_vec()),
                _ => self.pending.push(parts),
            }
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.send("quit");
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_processes(plan: &Plan, args: &ClusterArgs) -> Result<Report> {
    let nodes = &plan.nodes;
    // The children read the configuration as given, generator files by absolute path.
    let mut resolved = nodes.clone();
    for n in &mut resolved {
        if let Some(g) = &n.generator_file {
            n.generator_file = Some(std::fs::canonicalize(g)?);
        }
    }
    let dir = std::env::temp_dir().join(format!("broker-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("cluster.conf");
    std::fs::write(&config, cc::print(&resolved))?;
    let step = Duration::from_secs(30).min(args.timeout());
    let mut procs = Vec::new();
    let mut ids = BTreeMap::new();
    let mut ports = Vec::new();
    for n in nodes {
        let mut p = NodeProcess::spawn(&config, &n.name)?;
        let ready = p.expect("ready", step).with_context(|| n.name.clone())?;
        let id: EndpointId = ready
            .first()
            .context("ready without id")?
            .parse()
            .map_err(|e| anyhow::anyhow!("bad id from {}: {e}", n.name))?;
        ids.insert(id, n.name.clone());
        ports.push(ready.get(1).and_then(|p| p.parse::<u16>().ok()));
        procs.push(p);
    }
    for (i, node) in nodes.iter().enumerate() {
        for &j in &plan.tree.right[i] {
            let (NodeId::Tcp { host, .. }, Some(port)) = (&nodes[j].id, ports[j]) else {
                bail!(
                    "{} peers to {}, which does not listen",
                    node.name,
                    nodes[j].name
                );
            };
            procs[i].send(&format!("peer\t{host}\t{port}"))?;
            procs[i]
                .expect("ok", step)
                .with_context(|| node.name.clone())?;
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        if node.is_sender() {
            let mut line = String::from("routes");
            for t in plan.routes(i) {
                line.push('\t');
                line.push_str(&t);
            }
            procs[i].send(&line)?;
            procs[i]
                .expect("ok", step)
                .with_context(|| node.name.clone())?;
        }
    }
    if args.verbose {
        eprintln!("all node processes are up and running, run benchmark");
    }
    let timeout_ms = args.timeout().as_millis();
    for (i, n) in nodes.iter().enumerate() {
        if n.is_receiver() {
            procs[i].send(&format!(
                "receive\t{}\t{timeout_ms}",
                plan.expected_total(i)
            ))?;
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        if n.is_sender() {
            procs[i].send("send")?;
        }
    }
    let mut results = vec![NodeResult::default(); nodes.len()];
    let wait = args.timeout() + Duration::from_secs(10);
    let mut timed_out = false;
    for (i, n) in nodes.iter().enumerate() {
        if n.is_sender() {
            let sent = procs[i]
                .expect("sent", wait)
                .with_context(|| n.name.clone())?;
            results[i].sent = sent.first().and_then(|s| s.parse().ok()).unwrap_or(0);
            results[i].send_time = sent
                .get(1)
                .and_then(|s| s.parse::<f64>().ok())
                .map(Duration::from_secs_f64);
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        if n.is_receiver() {
            let r = procs[i]
                .expect("received", wait)
                .with_context(|| n.name.clone())?;
            let complete = r.first().map(String::as_str) == Some("complete");
            timed_out |= !complete;
            results[i].receive_time = r
                .get(2)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|_| complete)
                .map(Duration::from_secs_f64);
        }
    }
    // A receiver's "received" came after its grace period; the system time is when the last
    // one had its count.
    let system = results
        .iter()
        .filter_map(|r| r.receive_time.max(r.send_time))
        .max()
        .unwrap_or_default();
    for (i, n) in nodes.iter().enumerate() {
        procs[i].send("report")?;
        let r = procs[i]
            .expect("report", step)
            .with_context(|| n.name.clone())?;
        results[i].peak_kib = r.first().and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut counts = BTreeMap::new();
        for pair in &r[1..] {
            if let Some((id, k)) = pair.split_once('=') {
                if let (Ok(id), Ok(k)) = (id.parse::<EndpointId>(), k.parse::<u64>()) {
                    counts.insert(id, k);
                }
            }
        }
        results[i].received = name_of(&ids, counts);
    }
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Report {
        nodes: results,
        system,
        timed_out,
    })
}

/// `broker bench-cluster-node CONFIG NAME`: one node of `--processes`, driven by the parent.
pub(crate) fn node_process(config: &str, name: &str) -> Result<()> {
    let out = |line: String| {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    let result = (|| -> Result<()> {
        let text = std::fs::read_to_string(config)?;
        let nodes = cc::nodes_from_config(&text, Path::new("."))?;
        let node = nodes
            .into_iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no node {name} in {config}"))?;
        let run = std::sync::Arc::new(RunNode::start(&node)?);
        let replay = node
            .generator_file
            .as_deref()
            .map(Replay::load)
            .transpose()?
            .map(std::sync::Arc::new);
        out(format!(
            "ready\t{}\t{}",
            run.ep.node_id(),
            run.port.map_or("-".into(), |p| p.to_string())
        ));
        let mut sender = None;
        let mut receiver = None;
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            let parts: Vec<&str> = line.split('\t').collect();
            match parts.as_slice() {
                ["peer", host, port] => {
                    run.connect(host, port.parse()?)?;
                    out("ok".into());
                }
                ["routes", topics @ ..] => {
                    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
                    run.await_routes(&topics, Duration::from_secs(30))?;
                    out("ok".into());
                }
                ["receive", total, timeout_ms] => {
                    let total: u64 = total.parse()?;
                    let end = Instant::now() + Duration::from_millis(timeout_ms.parse()?);
                    let r = run.clone();
                    receiver = Some(std::thread::spawn(move || {
                        let t0 = Instant::now();
                        match r.receive(total, end, t0) {
                            (got, Some(at)) => {
                                out(format!("received\tcomplete\t{got}\t{}", at.as_secs_f64()))
                            }
                            (got, None) => out(format!("received\tincomplete\t{got}")),
                        }
                    }));
                }
                ["send"] => {
                    let file = replay.clone().context("nothing to replay")?;
                    let num = node.num_outputs;
                    let r = run.clone();
                    sender = Some(std::thread::spawn(move || {
                        let t0 = Instant::now();
                        match r.replay(&file, num) {
                            Ok(n) => out(format!("sent\t{n}\t{}", t0.elapsed().as_secs_f64())),
                            Err(e) => out(format!("error\t{e:#}")),
                        }
                    }));
                }
                ["report"] => {
                    if let Some(h) = receiver.take() {
                        let _ = h.join();
                    }
                    if let Some(h) = sender.take() {
                        let _ = h.join();
                    }
                    let mut line = format!("report\t{}", peak_rss_kib());
                    for (id, k) in run.counts() {
                        line.push_str(&format!("\t{id}={k}"));
                    }
                    out(line);
                }
                ["quit"] => break,
                other => bail!("unknown command {other:?}"),
            }
        }
        run.ep.shutdown();
        Ok(())
    })();
    if let Err(e) = &result {
        out(format!("error\t{e:#}"));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_wire::{EntityId, GeneratorWriter};

    /// A generator file of three data entries and a command, replayed with `num-outputs`
    /// smaller than the file (it stops), larger (it loops) and absent (once), from memory and
    /// read as it goes: exactly that many messages of each kind arrive.
    #[test]
    fn a_replay_stops_or_loops_at_num_outputs_and_sends_commands() {
        let mut w = GeneratorWriter::new(2);
        let data = broker::Topic::new("/r/x").unwrap();
        let store = broker::Topic::new("/r/<$>/data/master").unwrap();
        for i in 0..3u64 {
            w.write_data(&data, &broker_data::Data::Count(i)).unwrap();
        }
        w.write_command(
            &store,
            &broker::Command::Clear {
                publisher: EntityId::NIL,
            },
        )
        .unwrap();
        let path = std::env::temp_dir().join(format!("broker-replay-{}.dat", std::process::id()));
        std::fs::write(&path, w.take()).unwrap();
        for cached in [true, false] {
            let mut replay = Replay::load(&path).unwrap();
            assert_eq!(replay.cache.as_ref().map(Vec::len), Some(4));
            if !cached {
                replay.cache = None;
            }
            let plain = || Configuration {
                disable_ssl: true,
                ..Configuration::default()
            };
            let sender = RunNode {
                ep: Endpoint::new(plain()).unwrap(),
                counter: None,
                port: None,
            };
            let receiver = Endpoint::new(plain()).unwrap();
            let counter = receiver.make_counter(&["/r"]).unwrap();
            sender.ep.peer_local(&receiver).unwrap();
            let end = Instant::now() + Duration::from_secs(10);
            while sender.ep.peer_subscriptions().unwrap().is_empty() {
                assert!(Instant::now() < end);
                std::thread::sleep(Duration::from_millis(2));
            }
            assert_eq!(sender.replay(&replay, Some(2)).unwrap(), 2);
            assert_eq!(sender.replay(&replay, Some(10)).unwrap(), 10);
            assert_eq!(sender.replay(&replay, None).unwrap(), 4);
            assert_eq!(counter.wait_for(16, Duration::from_secs(10)), 16);
            std::thread::sleep(Duration::from_millis(50));
            let c = counter.by_sender()[&sender.ep.node_id()];
            // 2 data; then 3 data, a command, 3 data, a command, 2 data; then the file once.
            assert_eq!((c.data, c.commands), (2 + 8 + 3, 2 + 1), "cached: {cached}");
            sender.ep.shutdown();
            receiver.shutdown();
        }
        let _ = std::fs::remove_file(&path);
    }
}
