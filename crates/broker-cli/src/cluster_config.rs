//! Cluster configurations for `broker bench cluster`, in the format of Broker's
//! `broker-cluster-benchmark`: CAF's configuration syntax, read and printed, and generated from
//! recording directories exactly as Broker's `--mode=generate-config` does (same node names,
//! peerings, ids, counts and layout, so that either tool reads the other's file).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use broker_wire::GeneratorStats;

/// A value in CAF's configuration syntax.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A quoted string.
    Str(String),
    /// `<...>`.
    Uri(String),
    /// An integer.
    Int(i64),
    /// `true` / `false`.
    Bool(bool),
    /// Anything else unquoted (a real, a duration such as `10ms`, an atom).
    Word(String),
    /// `[a, b, ...]`.
    List(Vec<Value>),
    /// `{ key = value ... }` (also written `key { ... }`).
    Group(BTreeMap<String, Value>),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

/// Parses CAF's configuration syntax (the subset Broker's files use: groups, lists, strings in
/// single or double quotes, URIs, numbers, booleans, words; `;` comments).
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, Value>> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let top = p.members(false)?;
    Ok(top)
}

impl Parser<'_> {
    fn skip(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.s.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T> {
        bail!("cluster configuration, line {}: {what}", self.line)
    }

    fn key(&mut self) -> Result<String> {
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        {
            self.pos += 1;
        }
        if start == self.pos {
            return self.fail("expected a name");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    /// `key = value` or `key { ... }` pairs up to `}` (when `inner`) or the end.
    fn members(&mut self, inner: bool) -> Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        loop {
            self.skip();
            match self.s.get(self.pos) {
                None if inner => return self.fail("missing }"),
                None => return Ok(out),
                Some(b'}') if inner => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(_) => {}
            }
            let key = self.key()?;
            self.skip();
            let value = match self.s.get(self.pos) {
                Some(b'=') => {
                    self.pos += 1;
                    self.skip();
                    self.value()?
                }
                Some(b'{') => {
                    self.pos += 1;
                    Value::Group(self.members(true)?)
                }
                _ => return self.fail(&format!("expected = or {{ after {key}")),
            };
            // `a.b = 1` is `a { b = 1 }`.
            let mut parts: Vec<&str> = key.split('.').collect();
            let last = parts.pop().unwrap_or_default().to_owned();
            let mut map = &mut out;
            for p in parts {
                let entry = map
                    .entry(p.to_owned())
                    .or_insert_with(|| Value::Group(BTreeMap::new()));
                map = match entry {
                    Value::Group(g) => g,
                    _ => return self.fail(&format!("{p} is not a group")),
                };
            }
            map.insert(last, value);
        }
    }

    fn value(&mut self) -> Result<Value> {
        match self.s.get(self.pos) {
            Some(&q @ (b'"' | b'\'')) => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.pos) {
                        None | Some(b'\n') => return self.fail("unterminated string"),
                        Some(&c) if c == q => {
                            self.pos += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let c = self.s.get(self.pos + 1).copied();
                            out.push(match c {
                                Some(b'n') => b'\n',
                                Some(b't') => b'\t',
                                Some(c) => c,
                                None => return self.fail("unterminated string"),
                            });
                            self.pos += 2;
                        }
                        Some(&c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
                Ok(Value::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(b'<') => {
                let start = self.pos + 1;
                while self.s.get(self.pos).is_some_and(|&c| c != b'>') {
                    self.pos += 1;
                }
                if self.s.get(self.pos).is_none() {
                    return self.fail("unterminated <uri>");
                }
                self.pos += 1;
                Ok(Value::Uri(
                    String::from_utf8_lossy(&self.s[start..self.pos - 1]).into_owned(),
                ))
            }
            Some(b'[') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    self.skip();
                    match self.s.get(self.pos) {
                        None => return self.fail("missing ]"),
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::List(out));
                        }
                        _ => out.push(self.value()?),
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                Ok(Value::Group(self.members(true)?))
            }
            Some(_) => {
                let start = self.pos;
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|c| !c.is_ascii_whitespace() && !b",;]}".contains(c))
                {
                    self.pos += 1;
                }
                let word = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                Ok(match word.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    w => match w.parse::<i64>() {
                        Ok(n) => Value::Int(n),
                        Err(_) if w.is_empty() => return self.fail("expected a value"),
                        Err(_) => Value::Word(word),
                    },
                })
            }
            None => self.fail("expected a value"),
        }
    }
}

/// How a node is reached: Broker's `local:NAME` (it does not listen) or `tcp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeId {
    /// Does not listen.
    Local(String),
    /// Listens on this host (the port is Broker's; we listen on a port the system picks).
    Tcp { host: String, port: u16 },
}

impl NodeId {
    fn parse(uri: &str) -> Result<NodeId> {
        if let Some(name) = uri.strip_prefix("local:") {
            return Ok(NodeId::Local(name.to_owned()));
        }
        let Some(rest) = uri.strip_prefix("tcp://") else {
            bail!("node id <{uri}> is neither local:NAME nor tcp://HOST:PORT");
        };
        let (host, port) = rest
            .rsplit_once(':')
            .with_context(|| format!("node id <{uri}> has no port"))?;
        Ok(NodeId::Tcp {
            host: host.trim_matches(['[', ']']).to_owned(),
            port: port
                .trim_end_matches('/')
                .parse()
                .with_context(|| format!("bad port in <{uri}>"))?,
        })
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeId::Local(name) => write!(f, "local:{name}"),
            NodeId::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            NodeId::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// A node of the cluster, with the fields of Broker's benchmark.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) id: NodeId,
    /// Nodes this one connects to at startup.
    pub(crate) peers: BTreeSet<String>,
    pub(crate) topics: Vec<String>,
    pub(crate) generator_file: Option<PathBuf>,
    pub(crate) num_inputs: u64,
    pub(crate) inputs_by_node: BTreeMap<String, u64>,
    pub(crate) forward: bool,
    /// Messages to publish (looping or truncating the file); all of the file once when absent.
    pub(crate) num_outputs: Option<u64>,
}

impl Node {
    pub(crate) fn is_sender(&self) -> bool {
        self.generator_file.is_some()
    }

    pub(crate) fn is_receiver(&self) -> bool {
        self.num_inputs > 0
    }
}

fn string_list(node: &str, key: &str, v: &Value) -> Result<Vec<String>> {
    match v {
        Value::List(xs) => xs
            .iter()
            .map(|x| match x {
                Value::Str(s) | Value::Word(s) => Ok(s.clone()),
                other => bail!("{node}: {key} holds {other:?}, expected strings"),
            })
            .collect(),
        other => bail!("{node}: {key} is {other:?}, expected a list of strings"),
    }
}

fn count(node: &str, key: &str, v: &Value) -> Result<u64> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as u64),
        other => bail!("{node}: {key} is {other:?}, expected a count"),
    }
}

/// The nodes of a cluster configuration (Broker's `nodes { ... }`), relative generator files
/// resolved against `base`.
pub(crate) fn nodes_from_config(text: &str, base: &Path) -> Result<Vec<Node>> {
    let top = parse(text)?;
    let Some(Value::Group(nodes)) = top.get("nodes") else {
        bail!("the cluster configuration has no nodes {{ ... }} group");
    };
    let mut out = Vec::new();
    for (name, v) in nodes {
        let Value::Group(g) = v else {
            bail!("node {name} is not a group");
        };
        let id = match g.get("id") {
            Some(Value::Uri(u)) | Some(Value::Str(u)) => NodeId::parse(u)?,
            Some(other) => {
                bail!("{name}: id is {other:?}, expected <local:NAME> or <tcp://HOST:PORT>")
            }
            None => bail!("{name}: no entry for mandatory field id"),
        };
        let topics = match g.get("topics") {
            Some(v) => string_list(name, "topics", v)?,
            None => bail!("{name}: no entry for mandatory field topics"),
        };
        let peers = match g.get("peers") {
            Some(v) => string_list(name, "peers", v)?.into_iter().collect(),
            None => BTreeSet::new(),
        };
        let generator_file = match g.get("generator-file") {
            Some(Value::Str(p)) => {
                let p = PathBuf::from(p);
                let p = if p.is_relative() { base.join(p) } else { p };
                if !p.is_file() {
                    bail!("{name}: generator file does not exist: {}", p.display());
                }
                Some(p)
            }
            Some(other) => bail!("{name}: generator-file is {other:?}, expected a string"),
            None => None,
        };
        let num_inputs = match g.get("num-inputs") {
            Some(v) => count(name, "num-inputs", v)?,
            None => 0,
        };
        let num_outputs = match g.get("num-outputs") {
            Some(v) => Some(count(name, "num-outputs", v)?),
            None => None,
        };
        let forward = match g.get("forward") {
            Some(Value::Bool(b)) => *b,
            Some(other) => bail!("{name}: forward is {other:?}, expected true or false"),
            None => true,
        };
        let mut inputs_by_node = BTreeMap::new();
        match g.get("inputs-by-node") {
            Some(Value::Group(m)) => {
                for (k, v) in m {
                    inputs_by_node.insert(k.clone(), count(name, "inputs-by-node", v)?);
                }
            }
            Some(other) => bail!("{name}: inputs-by-node is {other:?}, expected a group"),
            None => {}
        }
        let total: u64 = inputs_by_node.values().sum();
        if !inputs_by_node.is_empty() && total != num_inputs {
            eprintln!(
                "warning: inconsistent data: {name} expects {num_inputs} messages but inputs-by-node only sums up to {total}"
            );
        }
        out.push(Node {
            name: name.clone(),
            id,
            peers,
            topics,
            generator_file,
            num_inputs,
            inputs_by_node,
            forward,
            num_outputs,
        });
    }
    Ok(out)
}

/// The peering graph: `right` are the nodes a node connects to, `left` those that connect to
/// it (Broker's `build_node_tree`, including its reduction of mutual peerings to one).
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) right: Vec<Vec<usize>>,
    pub(crate) left: Vec<Vec<usize>>,
}

pub(crate) fn build_tree(nodes: &mut [Node]) -> Result<Tree> {
    let index: BTreeMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let n = nodes.len();
    let mut right = vec![Vec::new(); n];
    let mut left = vec![Vec::new(); n];
    for (i, x) in nodes.iter().enumerate() {
        for p in &x.peers {
            let Some(&j) = index.get(p) else {
                bail!("{} cannot peer to unknown node {p}", x.name);
            };
            if i == j {
                bail!("{} cannot peer with itself", x.name);
            }
            right[i].push(j);
            left[j].push(i);
        }
    }
    for (i, x) in nodes.iter().enumerate() {
        if left[i].is_empty() && right[i].is_empty() {
            bail!("{} has no peering relation to any other node", x.name);
        }
    }
    for (i, x) in nodes.iter().enumerate() {
        if x.is_sender() && (has_loop(nodes, &right, i) || has_loop(nodes, &left, i)) {
            bail!("starting at node '{}' results in a routing loop", x.name);
        }
    }
    // If x peers to y and y to x, drop "y peers to x".
    for x in 0..n {
        let ys = right[x].clone();
        for y in ys {
            if let Some(k) = right[y].iter().position(|&z| z == x) {
                let xname = nodes[x].name.clone();
                nodes[y].peers.remove(&xname);
                right[y].remove(k);
                if let Some(j) = left[x].iter().position(|&z| z == y) {
                    left[x].remove(j);
                }
            }
        }
    }
    Ok(Tree { right, left })
}

/// Broker's `has_left_loop` / `has_right_loop`: a walk in one direction through forwarding
/// nodes that comes back to a node on its path.
fn has_loop(nodes: &[Node], edges: &[Vec<usize>], start: usize) -> bool {
    fn walk(nodes: &[Node], edges: &[Vec<usize>], x: usize, path: &mut Vec<usize>) -> bool {
        if !nodes[x].forward {
            return false;
        }
        for &y in &edges[x] {
            if path.contains(&y) {
                return true;
            }
            path.push(y);
            let found = walk(nodes, edges, y, path);
            path.pop();
            if found {
                return true;
            }
        }
        false
    }
    edges[start].iter().any(|&y| {
        let mut path = vec![start, y];
        walk(nodes, edges, y, &mut path)
    })
}

/// Broker's `verify_node_tree`.
pub(crate) fn verify(nodes: &[Node]) -> Result<()> {
    if !nodes.iter().any(Node::is_receiver) {
        bail!("no node expects to receive any data");
    }
    if !nodes.iter().any(Node::is_sender) {
        bail!("no node has a generator file for publishing data");
    }
    if let Some(n) = nodes.iter().find(|n| !n.is_sender() && !n.is_receiver()) {
        bail!("{} neither receives nor sends", n.name);
    }
    Ok(())
}

const REQUIRED_FILES: [&str; 5] = [
    "id.txt",
    "messages.dat",
    "peers.txt",
    "topics.txt",
    "broker.conf",
];

fn lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(text
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect())
}

/// Entries per topic of a generator file.
pub(crate) fn outputs_of(path: &Path) -> Result<BTreeMap<String, u64>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let stats = GeneratorStats::of(&bytes)
        .with_context(|| format!("error while reading generator file {}", path.display()))?;
    Ok(stats.by_topic)
}

/// The cluster configuration for the recordings in `directories`, as Broker's
/// `broker-cluster-benchmark --mode=generate-config` makes it.
pub(crate) fn generate(directories: &[String]) -> Result<Vec<Node>> {
    let mut dirs: Vec<String> = directories
        .iter()
        .map(|d| {
            let mut d = d.clone();
            while d.len() > 1 && d.ends_with('/') {
                d.pop();
            }
            d
        })
        .collect();
    // A stable configuration whatever the order of the arguments.
    dirs.sort();
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_handle: BTreeMap<String, String> = BTreeMap::new();
    let mut handles: Vec<BTreeSet<String>> = Vec::new();
    for dir in &dirs {
        if !Path::new(dir).is_dir() {
            bail!("\"{dir}\" is not a directory");
        }
        for f in REQUIRED_FILES {
            let p = Path::new(dir).join(f);
            if !p.is_file() {
                bail!("missing file: {}", p.display());
            }
        }
        let name = dir.rsplit('/').next().unwrap_or(dir).to_owned();
        if nodes.iter().any(|n| n.name == name) {
            bail!("node name \"{name}\" appears twice");
        }
        let handle = std::fs::read_to_string(Path::new(dir).join("id.txt"))?
            .trim()
            .to_owned();
        if handle.is_empty() {
            bail!("empty file: {dir}/id.txt");
        }
        if by_handle.insert(handle.clone(), name.clone()).is_some() {
            bail!("node ID: {handle} appears twice");
        }
        let mut topics = lines(&Path::new(dir).join("topics.txt"))?;
        topics.sort();
        topics.dedup();
        let conf = std::fs::read_to_string(Path::new(dir).join("broker.conf"))?;
        let conf =
            parse(&conf).with_context(|| format!("unable to parse \"{dir}/broker.conf\""))?;
        let forward = match conf.get("broker") {
            Some(Value::Group(g)) => !matches!(g.get("forward"), Some(Value::Bool(false))),
            _ => true,
        };
        handles.push(
            lines(&Path::new(dir).join("peers.txt"))?
                .into_iter()
                .collect(),
        );
        nodes.push(Node {
            name,
            id: NodeId::Local(String::new()),
            peers: BTreeSet::new(),
            topics,
            generator_file: Some(PathBuf::from(format!("{dir}/messages.dat"))),
            num_inputs: 0,
            inputs_by_node: BTreeMap::new(),
            forward,
            num_outputs: None,
        });
    }
    for (node, hs) in nodes.iter_mut().zip(handles) {
        for h in hs {
            let Some(peer) = by_handle.get(&h) else {
                bail!("missing data: cannot resolve peer ID {h}");
            };
            if *peer == node.name {
                bail!("corrupted data: {h} cannot peer with itself");
            }
            node.peers.insert(peer.clone());
        }
    }
    let tree = build_tree(&mut nodes)?;
    let outputs: Vec<BTreeMap<String, u64>> = nodes
        .iter()
        .map(|n| outputs_of(n.generator_file.as_deref().unwrap_or(Path::new(""))))
        .collect::<Result<_>>()?;
    // Broker's step and traverse: inputs at direct peers, and beyond them through forwarding
    // nodes in the same direction, filtered by the first hop's topics.
    fn step(nodes: &mut [Node], src: usize, dst: usize, out: &BTreeMap<String, u64>, f: &[String]) {
        let n: u64 = out
            .iter()
            .filter(|(topic, _)| f.iter().any(|x| topic.starts_with(x.as_str())))
            .map(|(_, k)| k)
            .sum();
        if n > 0 {
            nodes[dst].num_inputs += n;
            let src_name = nodes[src].name.clone();
            *nodes[dst].inputs_by_node.entry(src_name).or_default() += n;
        }
    }
    fn traverse(
        nodes: &mut [Node],
        edges: &[Vec<usize>],
        src: usize,
        dst: usize,
        out: &BTreeMap<String, u64>,
        f: &[String],
        depth: usize,
    ) {
        step(nodes, src, dst, out, f);
        if !nodes[dst].forward || depth > nodes.len() {
            return;
        }
        for &peer in &edges[dst] {
            let meets = f.iter().any(|t| nodes[peer].topics.contains(t));
            if meets {
                traverse(nodes, edges, src, peer, out, f, depth + 1);
            }
        }
    }
    for i in 0..nodes.len() {
        let out = &outputs[i];
        let own = nodes[i].topics.clone();
        step(&mut nodes, i, i, out, &own);
        for &peer in &tree.left[i].clone() {
            let f = nodes[peer].topics.clone();
            traverse(&mut nodes, &tree.left, i, peer, out, &f, 0);
        }
        for &peer in &tree.right[i].clone() {
            let f = nodes[peer].topics.clone();
            traverse(&mut nodes, &tree.right, i, peer, out, &f, 0);
        }
    }
    // Ids: local for nodes nobody connects to, else localhost with ports from 8000.
    let mut port = 8000u16;
    for (i, node) in nodes.iter_mut().enumerate() {
        node.id = if tree.left[i].is_empty() {
            NodeId::Local(node.name.clone())
        } else {
            let id = NodeId::Tcp {
                host: "127.0.0.1".into(),
                port,
            };
            port = port.wrapping_add(1);
            id
        };
        if outputs[i].is_empty() {
            node.generator_file = None;
        }
    }
    Ok(nodes)
}

/// A configuration in Broker's layout, as `generate-config` prints it.
pub(crate) fn print(nodes: &[Node]) -> String {
    let mut out = String::from("nodes {\n");
    let list = |out: &mut String, name: &str, xs: &mut dyn Iterator<Item = &String>| {
        let xs: Vec<&String> = xs.collect();
        if xs.is_empty() {
            return;
        }
        let _ = writeln!(out, "    {name} = [");
        for x in xs {
            let _ = writeln!(out, "      \"{x}\",");
        }
        let _ = writeln!(out, "    ]");
    };
    for n in nodes {
        let _ = writeln!(out, "  {} {{", n.name);
        let _ = writeln!(out, "    id = <{}>", n.id);
        if n.num_inputs > 0 {
            let _ = writeln!(out, "    num-inputs = {}", n.num_inputs);
            let _ = writeln!(out, "    inputs-by-node {{");
            for (k, v) in &n.inputs_by_node {
                let _ = writeln!(out, "      {k} = {v}");
            }
            let _ = writeln!(out, "    }}");
        }
        let _ = writeln!(out, "    forward = {}", n.forward);
        list(&mut out, "topics", &mut n.topics.iter());
        list(&mut out, "peers", &mut n.peers.iter());
        if let Some(num) = n.num_outputs {
            let _ = writeln!(out, "    num-outputs = {num}");
        }
        if let Some(g) = &n.generator_file {
            let _ = writeln!(out, "    generator-file = \"{}\"", g.display());
        }
        let _ = writeln!(out, "  }}");
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_readme_example_and_a_broker_conf_parse() {
        let text = r#"
; comments start with a semicolon
nodes {
  earth {
    id = <local:earth>
    peers = ["mars"]
    topics = ["/benchmark/events"]
    num-inputs = 100000
  }
  mars {
    id = <tcp://[::1]:8001>
    topics = ["/benchmark/events"]
    num-outputs = 100000
  }
}"#;
        let nodes = nodes_from_config(text, Path::new(".")).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].id, NodeId::Local("earth".into()));
        assert_eq!(
            nodes[1].id,
            NodeId::Tcp {
                host: "::1".into(),
                port: 8001
            }
        );
        assert_eq!(nodes[1].id.to_string(), "tcp://[::1]:8001");
        assert_eq!(nodes[0].num_inputs, 100_000);
        assert_eq!(nodes[1].num_outputs, Some(100_000));
        let conf = parse(
            "broker {\n  forward = false\n  ttl = 20\n}\nlogger {\n  component-blacklist = [\n    'caf',\n  ]\n  file-name = \"broker_[PID].log\"\n}\nscheduler {\n  max-throughput = -1\n  profiling-resolution = 100ms\n}\n",
        )
        .unwrap();
        let Some(Value::Group(b)) = conf.get("broker") else {
            panic!("{conf:?}")
        };
        assert_eq!(b["forward"], Value::Bool(false));
        let Some(Value::Group(s)) = conf.get("scheduler") else {
            panic!()
        };
        assert_eq!(s["max-throughput"], Value::Int(-1));
        assert_eq!(s["profiling-resolution"], Value::Word("100ms".into()));
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        for (text, want) in [
            (
                "nodes { a { topics = [] } }",
                "no entry for mandatory field id",
            ),
            ("nodes { a { id = <local:a> } }", "mandatory field topics"),
            (
                "nodes { a { id = <ftp://x> topics = [] } }",
                "neither local",
            ),
            (
                "nodes { a { id = <local:a> topics = [1] } }",
                "expected strings",
            ),
            ("nodes { a { id = <local:a>", "missing }"),
            ("nodes { a { id = \"x }", "unterminated string"),
            ("x = 1", "no nodes"),
        ] {
            let e = nodes_from_config(text, Path::new(".")).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{text}: {e:#}");
        }
    }

    #[test]
    fn a_forwarding_cycle_from_a_sender_is_refused_and_mutual_peerings_become_one() {
        let text = "nodes { a { id = <local:a> topics = [\"/t\"] peers = [\"b\"] num-inputs = 1 } b { id = <tcp://127.0.0.1:1> topics = [\"/t\"] peers = [\"c\"] } c { id = <tcp://127.0.0.1:2> topics = [\"/t\"] peers = [\"a\"] } }";
        let mut nodes = nodes_from_config(text, Path::new(".")).unwrap();
        // Nobody sends: no loop check, no error.
        assert!(build_tree(&mut nodes).is_ok());
        nodes[1].generator_file = Some(PathBuf::from("x.dat"));
        let e = build_tree(&mut nodes).unwrap_err();
        assert!(e.to_string().contains("routing loop"), "{e}");
        let text = "nodes { a { id = <local:a> topics = [] peers = [\"b\"] } b { id = <tcp://127.0.0.1:1> topics = [] peers = [\"a\"] } }";
        let mut nodes = nodes_from_config(text, Path::new(".")).unwrap();
        let tree = build_tree(&mut nodes).unwrap();
        assert_eq!(
            (tree.right[0].clone(), tree.right[1].clone()),
            (vec![1], vec![])
        );
        assert!(nodes[1].peers.is_empty());
    }

    #[test]
    fn printing_and_reading_give_the_same_nodes() {
        let text = "nodes {\n  a {\n    id = <local:a>\n    num-inputs = 3\n    inputs-by-node {\n      b = 3\n    }\n    forward = false\n    topics = [\n      \"/t\",\n    ]\n    peers = [\n      \"b\",\n    ]\n  }\n  b {\n    id = <tcp://127.0.0.1:8000>\n    forward = false\n    topics = [\n      \"/u\",\n    ]\n    num-outputs = 7\n  }\n}\n";
        let nodes = nodes_from_config(text, Path::new(".")).unwrap();
        assert_eq!(print(&nodes), text);
    }
}
