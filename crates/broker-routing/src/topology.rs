//! The graph every routed endpoint derives from the link-state database, and the shortest-path
//! trees it forwards along.

use std::collections::{BTreeMap, VecDeque};

use broker_wire::{EndpointId, LinkState, Topic};

use crate::bitset::Bitset;
use crate::fxhash::FxHashMap;
use crate::prefix::PrefixMap;

/// The routing view derived from all link states: nodes, edges, who may be transit, and an index
/// from filter prefixes to the nodes that subscribe.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    pub(crate) ids: Vec<EndpointId>,
    pub(crate) index: FxHashMap<EndpointId, usize>,
    /// Neighbours of each node, in endpoint-id order (for deterministic trees).
    adj: Vec<Vec<usize>>,
    /// Whether a node forwards for others (stubs and nodes with forwarding off do not).
    transit: Vec<bool>,
    /// Filter prefix → nodes subscribed to it.
    pub(crate) filters: PrefixMap<Bitset>,
    /// Each stub's designated attachment.
    designated: FxHashMap<EndpointId, EndpointId>,
}

/// What one node needs of the shortest-path tree rooted at some origin: its children there,
/// each with the set of nodes in the child's subtree.
#[derive(Debug, Default)]
pub(crate) struct Branches {
    pub(crate) children: Vec<(EndpointId, Bitset)>,
}

impl Topology {
    /// Builds the graph as `me` sees it. An edge between two routed endpoints exists only when
    /// both list each other. A stub (plain Broker peer) hangs off one endpoint only, its
    /// *designated attachment*: of the endpoints that list it and that `me` can reach, the
    /// smallest id among those that forward (or, if none does, the smallest id). Every
    /// endpoint of a connected part of the network picks the same one, so a C++ Broker node
    /// peered with several broker-rs endpoints gets each message once and has each of its own
    /// injected once (see `docs/routing.md`).
    pub(crate) fn build(lsdb: &BTreeMap<EndpointId, LinkState>, me: EndpointId) -> Topology {
        let mut ids: Vec<EndpointId> = lsdb.keys().copied().collect();
        for ls in lsdb.values() {
            ids.extend(ls.stubs.iter().map(|(id, _)| *id));
        }
        ids.sort();
        ids.dedup();
        let index: FxHashMap<EndpointId, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let n = ids.len();
        let mut adj = vec![Vec::new(); n];
        let mut transit = vec![false; n];
        let mut filters: PrefixMap<Bitset> = PrefixMap::new();
        let add_filter = |filters: &mut PrefixMap<Bitset>, topics: &[Topic], node: usize| {
            for t in topics {
                filters
                    .get_or_insert_with(t.as_bytes(), || Bitset::with_capacity(n))
                    .insert(node);
            }
        };
        // Whom each endpoint lists, sorted: an edge
        // is a pair that lists each other, found by binary search — not by scanning the
        // other's list, which made every rebuild quadratic in a hub's degree (a Zeek
        // manager peered with 1,000 workers).
        let mut listed: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (origin, ls) in lsdb {
            let a = index[origin];
            transit[a] = ls.forwarding;
            add_filter(&mut filters, &ls.filter, a);
            // (One without a link state lists nobody: no edge to it below.)
            let mut mine: Vec<usize> = ls
                .neighbors
                .iter()
                .filter_map(|nb| index.get(nb).copied())
                .collect();
            mine.sort_unstable();
            mine.dedup();
            listed[a] = mine;
        }
        for (a, mine) in listed.iter().enumerate() {
            for &b in mine {
                if listed[b].binary_search(&a).is_ok() {
                    adj[a].push(b);
                }
            }
        }
        // Which routed endpoints `me` reaches (stubs aside, through forwarding endpoints only,
        // as messages travel), to pick attachments among them.
        let mut reached = vec![false; n];
        if let Some(&m) = index.get(&me) {
            let mut queue = VecDeque::from([m]);
            reached[m] = true;
            while let Some(u) = queue.pop_front() {
                if u != m && !transit[u] {
                    continue;
                }
                for &v in &adj[u] {
                    if !reached[v] {
                        reached[v] = true;
                        queue.push_back(v);
                    }
                }
            }
        }
        let mut designated: FxHashMap<EndpointId, EndpointId> = FxHashMap::default();
        for (origin, ls) in lsdb {
            for (stub, filter) in &ls.stubs {
                let s = index[stub];
                add_filter(&mut filters, filter, s);
                if lsdb.contains_key(stub) || !reached[index[origin]] {
                    continue;
                }
                let better = |current: &EndpointId| {
                    let key = |id: &EndpointId| (!transit[index[id]], *id);
                    key(origin) < key(current)
                };
                let slot = designated.entry(*stub).or_insert(*origin);
                if better(slot) {
                    *slot = *origin;
                }
            }
        }
        for (stub, at) in &designated {
            let (s, a) = (index[stub], index[at]);
            adj[a].push(s);
            adj[s].push(a);
        }
        for list in &mut adj {
            list.sort_unstable();
            list.dedup();
        }
        Topology {
            ids,
            index,
            adj,
            transit,
            filters,
            designated,
        }
    }

    /// The designated attachment of stub `stub` (see [`build`](Self::build)), if it has one.
    pub(crate) fn attachment(&self, stub: EndpointId) -> Option<EndpointId> {
        self.designated.get(&stub).copied()
    }

    /// Breadth-first parents from `root`, expanding only the root and transit nodes, visiting
    /// neighbours in id order: every endpoint computes the same tree from the same database.
    fn bfs(&self, root: usize) -> (Vec<Option<usize>>, Vec<usize>) {
        let n = self.ids.len();
        let mut parent = vec![None; n];
        let mut seen = vec![false; n];
        let mut order = Vec::with_capacity(n);
        let mut queue = VecDeque::from([root]);
        seen[root] = true;
        while let Some(u) = queue.pop_front() {
            order.push(u);
            if u != root && !self.transit[u] {
                continue;
            }
            for &v in &self.adj[u] {
                if !seen[v] {
                    seen[v] = true;
                    parent[v] = Some(u);
                    queue.push_back(v);
                }
            }
        }
        (parent, order)
    }

    /// The nodes reachable from `root` (the root included).
    pub(crate) fn reachable_from(&self, root: EndpointId) -> Vec<EndpointId> {
        match self.index.get(&root) {
            Some(&r) => self.bfs(r).1.into_iter().map(|i| self.ids[i]).collect(),
            None => Vec::new(),
        }
    }

    /// `me`'s children in the tree rooted at `origin`, with their subtrees.
    pub(crate) fn branches(&self, origin: usize, me: usize) -> Branches {
        let (parent, order) = self.bfs(origin);
        let n = self.ids.len();
        let mut subtree: Vec<Bitset> = (0..n).map(|_| Bitset::with_capacity(n)).collect();
        for &u in order.iter().rev() {
            subtree[u].insert(u);
            if let Some(p) = parent[u] {
                let (lo, hi) = if p < u {
                    subtree.split_at_mut(u)
                } else {
                    subtree.split_at_mut(p)
                };
                let (child, par) = if p < u {
                    (&hi[0], &mut lo[p])
                } else {
                    (&lo[u], &mut hi[0])
                };
                par.union_with(child);
            }
        }
        let mut children: Vec<(EndpointId, Bitset)> = Vec::new();
        for &u in &order {
            if parent[u] == Some(me) {
                children.push((self.ids[u], std::mem::take(&mut subtree[u])));
            }
        }
        Branches { children }
    }
}
