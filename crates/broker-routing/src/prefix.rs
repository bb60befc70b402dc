//! A compressed radix tree keyed by byte strings, answering "which keys are prefixes of this
//! topic" in time proportional to the topic's length, whatever the number of keys.

/// A map from byte-string keys to values, with prefix matching.
///
/// ```
/// use broker_routing::PrefixMap;
/// let mut m = PrefixMap::new();
/// m.insert(b"zeek/", 1);
/// m.insert(b"zeek/events", 2);
/// m.insert(b"a", 3);
/// let mut hits = Vec::new();
/// m.for_each_prefix_of(b"zeek/events/conn", |v| hits.push(*v));
/// assert_eq!(hits, [1, 2]);
/// hits.clear();
/// m.for_each_prefix_of(b"alice", |v| hits.push(*v)); // plain string prefix, as in Broker
/// assert_eq!(hits, [3]);
/// ```
#[derive(Debug, Clone)]
pub struct PrefixMap<V> {
    nodes: Vec<Node<V>>,
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<V> {
    label: Box<[u8]>,
    /// Sorted by the first byte of each child's label (labels of siblings differ there).
    children: Vec<u32>,
    value: Option<V>,
}

impl<V> Node<V> {
    fn new(label: &[u8], value: Option<V>) -> Self {
        Node {
            label: label.into(),
            children: Vec::new(),
            value,
        }
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<V> Default for PrefixMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PrefixMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        PrefixMap {
            nodes: vec![Node::new(b"", None)],
            free: Vec::new(),
            len: 0,
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn child(&self, node: u32, first: u8) -> Result<usize, usize> {
        self.nodes[node as usize]
            .children
            .binary_search_by_key(&first, |&c| self.nodes[c as usize].label[0])
    }

    fn alloc(&mut self, node: Node<V>) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// The node for exactly `key`, creating (and splitting) nodes as needed.
    fn node_for(&mut self, key: &[u8]) -> u32 {
        let mut node = 0u32;
        let mut rest = key;
        while !rest.is_empty() {
            match self.child(node, rest[0]) {
                Err(pos) => {
                    let leaf = self.alloc(Node::new(rest, None));
                    self.nodes[node as usize].children.insert(pos, leaf);
                    return leaf;
                }
                Ok(pos) => {
                    let c = self.nodes[node as usize].children[pos];
                    let label_len = self.nodes[c as usize].label.len();
                    let common = common_prefix(&self.nodes[c as usize].label, rest);
                    if common < label_len {
                        // Split `c`: a new node takes the common part, `c` keeps the rest.
                        let head = self.nodes[c as usize].label[..common].to_vec();
                        let tail = self.nodes[c as usize].label[common..].to_vec();
                        let mid = self.alloc(Node::new(&head, None));
                        self.nodes[c as usize].label = tail.into();
                        self.nodes[mid as usize].children.push(c);
                        self.nodes[node as usize].children[pos] = mid;
                        node = mid;
                    } else {
                        node = c;
                    }
                    rest = &rest[common..];
                }
            }
        }
        node
    }

    /// The node path to exactly `key`, if it exists.
    fn path_to(&self, key: &[u8]) -> Option<Vec<u32>> {
        let mut path = vec![0u32];
        let mut rest = key;
        while !rest.is_empty() {
            let node = *path.last()?;
            let pos = self.child(node, rest[0]).ok()?;
            let c = self.nodes[node as usize].children[pos];
            let label = &self.nodes[c as usize].label;
            if !rest.starts_with(label) {
                return None;
            }
            rest = &rest[label.len()..];
            path.push(c);
        }
        Some(path)
    }

    /// Sets the value for `key`, returning the previous one.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        let n = self.node_for(key);
        let old = self.nodes[n as usize].value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value for exactly `key`, created with `f` when absent.
    pub fn get_or_insert_with(&mut self, key: &[u8], f: impl FnOnce() -> V) -> &mut V {
        let n = self.node_for(key) as usize;
        if self.nodes[n].value.is_none() {
            self.len += 1;
        }
        self.nodes[n].value.get_or_insert_with(f)
    }

    /// The value for exactly `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let n = *self.path_to(key)?.last()?;
        self.nodes[n as usize].value.as_ref()
    }

    /// The value for exactly `key`, mutably.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let n = *self.path_to(key)?.last()?;
        self.nodes[n as usize].value.as_mut()
    }

    /// Removes `key`, returning its value. Emptied leaves are freed.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let path = self.path_to(key)?;
        let n = *path.last()?;
        let old = self.nodes[n as usize].value.take()?;
        self.len -= 1;
        // Free childless, valueless nodes up the path (never the root).
        for w in path.windows(2).rev() {
            let (parent, node) = (w[0], w[1]);
            let nd = &self.nodes[node as usize];
            if nd.value.is_some() || !nd.children.is_empty() {
                break;
            }
            self.nodes[parent as usize].children.retain(|&c| c != node);
            self.nodes[node as usize].label = Box::new([]);
            self.free.push(node);
        }
        Some(old)
    }

    /// Calls `f` with the value of every key that is a prefix of `topic`, shortest first.
    #[inline]
    pub fn for_each_prefix_of(&self, topic: &[u8], mut f: impl FnMut(&V)) {
        let mut node = 0u32;
        let mut rest = topic;
        loop {
            let nd = &self.nodes[node as usize];
            if let Some(v) = &nd.value {
                f(v);
            }
            let Some(&first) = rest.first() else { return };
            let Ok(pos) = self.child(node, first) else {
                return;
            };
            let c = nd.children[pos];
            let label = &self.nodes[c as usize].label;
            if !rest.starts_with(label) {
                return;
            }
            rest = &rest[label.len()..];
            node = c;
        }
    }

    /// Whether any key is a prefix of `topic`.
    pub fn matches(&self, topic: &[u8]) -> bool {
        let mut any = false;
        self.for_each_prefix_of(topic, |_| any = true);
        any
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (Vec<u8>, &V)> + '_ {
        let mut out = Vec::with_capacity(self.len);
        let mut stack = vec![(0u32, Vec::new())];
        while let Some((n, prefix)) = stack.pop() {
            let nd = &self.nodes[n as usize];
            let mut key = prefix;
            key.extend_from_slice(&nd.label);
            if let Some(v) = &nd.value {
                out.push((key.clone(), v));
            }
            for &c in nd.children.iter().rev() {
                stack.push((c, key.clone()));
            }
        }
        out.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Compares against a naive model on a deterministic mix of inserts, removals and lookups.
    #[test]
    fn agrees_with_a_naive_model() {
        let mut m = PrefixMap::new();
        let mut model: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"ab/";
        for i in 0..20_000u32 {
            let len = (next() % 6) as usize;
            let key: Vec<u8> = (0..len).map(|_| alphabet[(next() % 3) as usize]).collect();
            match next() % 3 {
                0 => assert_eq!(m.insert(&key, i), model.insert(key.clone(), i)),
                1 => assert_eq!(m.remove(&key), model.remove(&key)),
                _ => {
                    let topic: Vec<u8> = key.iter().chain(b"ba/").copied().collect();
                    let mut got = Vec::new();
                    m.for_each_prefix_of(&topic, |v| got.push(*v));
                    let want: Vec<u32> = (0..=topic.len())
                        .filter_map(|l| model.get(&topic[..l]).copied())
                        .collect();
                    assert_eq!(got, want, "topic {:?}", String::from_utf8_lossy(&topic));
                }
            }
            assert_eq!(m.len(), model.len());
            assert_eq!(m.get(&key), model.get(&key));
        }
        let all: Vec<(Vec<u8>, u32)> = m.iter().map(|(k, v)| (k, *v)).collect();
        let want: Vec<(Vec<u8>, u32)> = model.into_iter().collect();
        assert_eq!(all, want);
    }
}
