//! busrt's matching rules (submap 0.3.6): topics split on `/` with `+` (one segment) and `#`
//! (one or more segments, the rest of the pattern ignored); client names split on `.` with
//! `?` and `*` for broadcast masks. Empty segments count; `a/#` does not match `a`.

/// The separator and wildcards of one kind of pattern.
#[derive(Debug, Clone, Copy)]
pub struct Syntax {
    /// The segment separator.
    pub sep: char,
    /// Matches exactly one segment.
    pub any: &'static str,
    /// Matches one or more remaining segments; what follows it is ignored.
    pub wild: &'static str,
}

/// Topics: `/`, `+`, `#`.
pub const TOPIC: Syntax = Syntax {
    sep: '/',
    any: "+",
    wild: "#",
};

/// Client names (broadcast masks and p2p rules): `.`, `?`, `*`.
pub const NAME: Syntax = Syntax {
    sep: '.',
    any: "?",
    wild: "*",
};

/// Whether `pattern` matches the literal `subject`.
pub fn matches(syntax: Syntax, pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split(syntax.sep);
    let mut s = subject.split(syntax.sep);
    loop {
        match (p.next(), s.next()) {
            (Some(w), rest) if w == syntax.wild => return rest.is_some(),
            (Some(a), Some(_)) if a == syntax.any => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A pattern as stored: everything after the first wildcard segment dropped (`a/#/z` is
/// `a/#`), as submap stores it.
pub fn normalize(syntax: Syntax, pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for (i, seg) in pattern.split(syntax.sep).enumerate() {
        if i > 0 {
            out.push(syntax.sep);
        }
        out.push_str(seg);
        if seg == syntax.wild {
            break;
        }
    }
    out
}

/// Whether a pattern has wildcards (otherwise it matches one literal only).
pub fn has_wildcards(syntax: Syntax, pattern: &str) -> bool {
    pattern
        .split(syntax.sep)
        .any(|s| s == syntax.any || s == syntax.wild)
}

/// Subscriptions by pattern, in a tree of segments: which clients a published topic reaches
/// (each once), in time proportional to the topic's segments, not to the subscriptions.
#[derive(Debug, Default)]
pub struct SubMap {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    children: std::collections::HashMap<Box<str>, Node, foldhash::fast::RandomState>,
    any: Option<Box<Node>>,
    /// Clients whose pattern ends here with a wildcard (`…/#`).
    wild: Vec<u64>,
    /// Clients whose pattern ends exactly here.
    here: Vec<u64>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.any.is_none()
            && self.wild.is_empty()
            && self.here.is_empty()
    }
}

impl SubMap {
    /// Adds `client` under a normalized pattern (see [`normalize`]); idempotent.
    pub fn insert(&mut self, pattern: &str, client: u64) {
        let mut node = &mut self.root;
        let segs: Vec<&str> = pattern.split(TOPIC.sep).collect();
        for (i, seg) in segs.iter().enumerate() {
            if *seg == TOPIC.wild {
                if !node.wild.contains(&client) {
                    node.wild.push(client);
                }
                return;
            }
            node = if *seg == TOPIC.any {
                node.any.get_or_insert_with(Box::default)
            } else {
                node.children.entry((*seg).into()).or_default()
            };
            if i + 1 == segs.len() && !node.here.contains(&client) {
                node.here.push(client);
            }
        }
    }

    /// Removes `client` from a normalized pattern.
    pub fn remove(&mut self, pattern: &str, client: u64) {
        let segs: Vec<&str> = pattern.split(TOPIC.sep).collect();
        Self::remove_at(&mut self.root, &segs, client);
    }

    fn remove_at(node: &mut Node, segs: &[&str], client: u64) {
        let Some((seg, rest)) = segs.split_first() else {
            node.here.retain(|c| *c != client);
            return;
        };
        if *seg == TOPIC.wild {
            node.wild.retain(|c| *c != client);
            return;
        }
        if *seg == TOPIC.any {
            if let Some(child) = node.any.as_mut() {
                Self::remove_at(child, rest, client);
                if child.is_empty() {
                    node.any = None;
                }
            }
        } else if let Some(child) = node.children.get_mut(*seg) {
            Self::remove_at(child, rest, client);
            if child.is_empty() {
                node.children.remove(*seg);
            }
        }
    }

    /// Appends to `out` every client a publication on `topic` reaches (possibly more than
    /// once: the caller dedups).
    pub fn lookup(&self, topic: &str, out: &mut Vec<u64>) {
        Self::lookup_at(&self.root, Some(topic), out);
    }

    /// `rest`: the topic's remaining segments (none once they are used up).
    fn lookup_at(node: &Node, rest: Option<&str>, out: &mut Vec<u64>) {
        let Some(rest) = rest else {
            out.extend_from_slice(&node.here);
            return;
        };
        let (seg, next) = match rest.split_once(TOPIC.sep) {
            Some((s, n)) => (s, Some(n)),
            None => (rest, None),
        };
        // `#` here needs at least one more segment: there is one.
        out.extend_from_slice(&node.wild);
        if let Some(child) = node.children.get(seg) {
            Self::lookup_at(child, next, out);
        }
        if let Some(child) = &node.any {
            Self::lookup_at(child, next, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules_as_submap_has_them() {
        let m = |p, s| matches(TOPIC, p, s);
        assert!(m("a/+", "a/b"));
        assert!(!m("a/+", "a/b/c"));
        assert!(m("a/#", "a/b/c"));
        assert!(!m("a/#", "a"), "a/# does not match a");
        assert!(m("a/#/z", "a/b/c"), "the rest after # is ignored");
        assert!(m("#", ""));
        assert!(m("#", "x/y"));
        assert!(m("a//b", "a//b"));
        assert!(!m("a/b", "a//b"));
        assert!(m("+", ""));
        assert!(m("", ""));
        assert!(!m("a", "a/"));
        assert!(m("a/+", "a/"));
        assert!(m("!ge(2)", "!ge(2)"), "formulas are literal segments");
        assert!(m("a/+/c", "a/+/c"), "a published + is text");
        assert_eq!(normalize(TOPIC, "a/#/z"), "a/#");
    }

    #[test]
    fn name_rules_as_broadcastmap_has_them() {
        let m = |p, s| matches(NAME, p, s);
        assert!(m("a.*", "a.x"));
        assert!(m("a.*", "a.x.y"));
        assert!(!m("a.*", "a"));
        assert!(m("a.*.b", "a.x.q"), "a.*.b behaves as a.*");
        assert!(m("*", "anything.at.all"));
        assert!(m("*", ".broker"));
        assert!(m("grp.?", "grp.x%%0"));
        assert!(!m("grp.x", "grp.x%%0"));
        assert!(m("?.b", "a.b"));
    }

    /// The tree answers what matching each pattern one by one answers.
    #[test]
    fn the_tree_agrees_with_the_rules() {
        let patterns = [
            "a", "a/b", "a/+", "a/#", "+/b", "#", "a/+/c", "", "+", "a//b", "a/#/z", "x/y/#",
            "+/+", "a/b/",
        ];
        let topics = [
            "a", "a/b", "a/c", "a/b/c", "x/y", "x/y/z", "", "a//b", "b", "a/b/", "q/b",
        ];
        let mut map = SubMap::default();
        for (i, p) in patterns.iter().enumerate() {
            map.insert(&normalize(TOPIC, p), i as u64);
        }
        for t in topics {
            let mut got = Vec::new();
            map.lookup(t, &mut got);
            got.sort_unstable();
            got.dedup();
            let want: Vec<u64> = (0..patterns.len() as u64)
                .filter(|&i| matches(TOPIC, patterns[i as usize], t))
                .collect();
            assert_eq!(got, want, "topic {t:?}");
        }
        for (i, p) in patterns.iter().enumerate() {
            map.remove(&normalize(TOPIC, p), i as u64);
        }
        assert!(map.root.is_empty());
    }
}
