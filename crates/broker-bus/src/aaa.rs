//! Access rules per client name (busrt's AAA map), made safer: a wildcard is allowed by what
//! it can reach, not by its text; a denied subscription subscribes nothing; hosts default to
//! both address families; and identities a client cannot simply claim — the peer's uid/gid
//! on UNIX sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use crate::pattern::{self, Syntax, NAME, TOPIC};

/// An IP network (`10.0.0.0/8`, `::1/128`, a bare address for one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<IpNet, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?} is not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// One operation's rule: everything, or what some mask covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    any: bool,
    masks: Vec<String>,
}

impl Default for Acl {
    fn default() -> Self {
        Acl {
            any: true,
            masks: Vec::new(),
        }
    }
}

/// Whether mask `a` matches every string pattern `p` can match (segment by segment; `p`'s
/// wildcards must be covered by `a`'s).
pub fn covers(syntax: Syntax, a: &str, p: &str) -> bool {
    let mut a_segs = a.split(syntax.sep);
    let mut p_segs = p.split(syntax.sep);
    loop {
        match (a_segs.next(), p_segs.next()) {
            (Some(x), rest) if x == syntax.wild => return rest.is_some(),
            (_, Some(y)) if y == syntax.wild => return false,
            (Some(x), Some(_)) if x == syntax.any => {}
            (Some(x), Some(y)) if x == y && y != syntax.any => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl Acl {
    fn set(&mut self, masks: &[&str], everything: &str) {
        self.any = false;
        for m in masks {
            if *m == everything {
                self.any = true;
            }
            if !self.masks.iter().any(|x| x == m) {
                self.masks.push((*m).to_owned());
            }
        }
    }

    fn deny(&mut self) {
        self.any = false;
        self.masks.clear();
    }

    /// Whether a literal name or topic is allowed.
    pub fn allows(&self, syntax: Syntax, literal: &str) -> bool {
        self.any
            || self
                .masks
                .iter()
                .any(|m| pattern::matches(syntax, m, literal))
    }

    /// Whether everything a pattern can reach is allowed.
    pub fn allows_pattern(&self, syntax: Syntax, p: &str) -> bool {
        self.any || self.masks.iter().any(|m| covers(syntax, m, p))
    }
}

/// The rules of one client name (copied into a connection when it registers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAaa {
    hosts: Vec<IpNet>,
    uids: Option<Vec<u32>>,
    gids: Option<Vec<u32>>,
    pub(crate) p2p: Acl,
    pub(crate) broadcast: Acl,
    pub(crate) publish: Acl,
    pub(crate) subscribe: Acl,
}

impl Default for ClientAaa {
    fn default() -> Self {
        ClientAaa {
            // Both families (busrt allows IPv4 only by default).
            hosts: vec![
                "0.0.0.0/0".parse().expect("net"),
                "::/0".parse().expect("net"),
            ],
            uids: None,
            gids: None,
            p2p: Acl::default(),
            broadcast: Acl::default(),
            publish: Acl::default(),
            subscribe: Acl::default(),
        }
    }
}

impl ClientAaa {
    /// Everything allowed, from every host.
    pub fn new() -> ClientAaa {
        ClientAaa::default()
    }

    /// TCP clients only from these networks.
    pub fn hosts_allow(mut self, nets: Vec<IpNet>) -> Self {
        self.hosts = nets;
        self
    }

    /// UNIX-socket clients only if the peer process runs as one of these users (SO_PEERCRED:
    /// the kernel says, not the client). TCP clients are refused when this is set.
    pub fn uids_allow(mut self, uids: Vec<u32>) -> Self {
        self.uids = Some(uids);
        self
    }

    /// UNIX-socket clients only if the peer process runs in one of these groups.
    pub fn gids_allow(mut self, gids: Vec<u32>) -> Self {
        self.gids = Some(gids);
        self
    }

    /// Direct messages only to names these masks match (`*` alone: any).
    pub fn allow_p2p_to(mut self, masks: &[&str]) -> Self {
        self.p2p.set(masks, "*");
        self
    }

    /// Broadcasts only with masks that reach nothing beyond these.
    pub fn allow_broadcast_to(mut self, masks: &[&str]) -> Self {
        self.broadcast.set(masks, "*");
        self
    }

    /// Publications only on topics these masks match (`#` alone: any).
    pub fn allow_publish_to(mut self, masks: &[&str]) -> Self {
        self.publish.set(masks, "#");
        self
    }

    /// Subscriptions only to patterns that reach nothing beyond these masks.
    pub fn allow_subscribe_to(mut self, masks: &[&str]) -> Self {
        self.subscribe.set(masks, "#");
        self
    }

    /// No direct messages.
    pub fn deny_p2p(mut self) -> Self {
        self.p2p.deny();
        self
    }

    /// No broadcasts.
    pub fn deny_broadcast(mut self) -> Self {
        self.broadcast.deny();
        self
    }

    /// No publications.
    pub fn deny_publish(mut self) -> Self {
        self.publish.deny();
        self
    }

    /// No subscriptions.
    pub fn deny_subscribe(mut self) -> Self {
        self.subscribe.deny();
        self
    }

    /// Whether a client connecting from `peer` may register.
    pub fn admits(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Internal => true,
            Peer::Tcp(ip) => {
                self.uids.is_none()
                    && self.gids.is_none()
                    && self.hosts.iter().any(|n| n.contains(*ip))
            }
            Peer::Unix { uid, gid } => {
                self.uids
                    .as_ref()
                    .is_none_or(|u| uid.is_some_and(|x| u.contains(&x)))
                    && self
                        .gids
                        .as_ref()
                        .is_none_or(|g| gid.is_some_and(|x| g.contains(&x)))
            }
        }
    }

    /// Whether a direct message to `target` is allowed.
    pub fn may_send(&self, target: &str) -> bool {
        self.p2p.allows(NAME, target)
    }

    /// Whether a broadcast with `mask` is allowed: by every name it can reach.
    pub fn may_broadcast(&self, mask: &str) -> bool {
        self.broadcast.allows_pattern(NAME, mask)
    }

    /// Whether publishing on `topic` is allowed.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.allows(TOPIC, topic)
    }

    /// Whether subscribing to `pattern` is allowed: by every topic it can reach.
    pub fn may_subscribe(&self, pattern: &str) -> bool {
        self.subscribe.allows_pattern(TOPIC, pattern)
    }
}

/// Who is connecting, as the transport (not the client) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// An in-process client (never checked).
    Internal,
    /// A TCP client from this address.
    Tcp(IpAddr),
    /// A UNIX-socket client with the kernel's credentials of the peer process.
    Unix {
        /// Its user id.
        uid: Option<u32>,
        /// Its group id.
        gid: Option<u32>,
    },
}

/// The rules by primary client name; shared, and changeable while the bus runs (a client's
/// rules are copied when it registers: `Bus::force_disconnect` makes a change bite at once).
#[derive(Debug, Clone, Default)]
pub struct AaaMap(Arc<RwLock<HashMap<String, ClientAaa>>>);

impl AaaMap {
    /// An empty map: nobody may connect over the listeners that use it.
    pub fn new() -> AaaMap {
        AaaMap::default()
    }

    /// Sets a name's rules.
    pub fn insert(&self, name: &str, rules: ClientAaa) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), rules);
    }

    /// Removes a name.
    pub fn remove(&self, name: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// A copy of a name's rules.
    pub fn get(&self, name: &str) -> Option<ClientAaa> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_what_they_should() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(
            n.contains("::ffff:10.0.0.1".parse().unwrap()),
            "v4-mapped counts as v4"
        );
        let all6: IpNet = "::/0".parse().unwrap();
        assert!(all6.contains("::1".parse().unwrap()));
        let host: IpNet = "127.0.0.1".parse().unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nope/8".parse::<IpNet>().is_err());
        let v4all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(v4all.contains("1.2.3.4".parse().unwrap()));
    }

    /// busrt checks a wildcard's text, so `a/+` admitted `a/#`; here a pattern needs a mask
    /// that covers everything it reaches.
    #[test]
    fn wildcards_are_checked_by_what_they_reach() {
        let r = ClientAaa::new().allow_subscribe_to(&["a/+"]);
        assert!(r.may_subscribe("a/x"));
        assert!(r.may_subscribe("a/+"));
        assert!(
            !r.may_subscribe("a/#"),
            "a/# reaches a/b/c, which a/+ does not"
        );
        assert!(!r.may_subscribe("#"));
        let r = ClientAaa::new().allow_subscribe_to(&["a/#"]);
        assert!(r.may_subscribe("a/#") && r.may_subscribe("a/+/c") && r.may_subscribe("a/b"));
        assert!(!r.may_subscribe("a"), "a/# does not match a");
        let r = ClientAaa::new().allow_broadcast_to(&["?"]);
        assert!(r.may_broadcast("x"));
        assert!(!r.may_broadcast("*"), "* reaches every client");
        let r = ClientAaa::new().allow_broadcast_to(&["grp.?"]);
        assert!(r.may_broadcast("grp.?") && r.may_broadcast("grp.x"));
        assert!(!r.may_broadcast("grp.*"), "grp.* reaches grp.x.y");
        let r = ClientAaa::new().allow_broadcast_to(&["*"]);
        assert!(r.may_broadcast("*"));
    }

    #[test]
    fn every_rule_allows_and_denies() {
        let r = ClientAaa::new();
        assert!(
            r.may_send("x") && r.may_broadcast("*") && r.may_publish("t") && r.may_subscribe("#")
        );
        let r = ClientAaa::new()
            .deny_p2p()
            .deny_broadcast()
            .deny_publish()
            .deny_subscribe();
        assert!(
            !r.may_send("x")
                && !r.may_broadcast("x")
                && !r.may_publish("t")
                && !r.may_subscribe("t")
        );
        let r = ClientAaa::new().allow_p2p_to(&["svc.*"]);
        assert!(r.may_send("svc.a") && !r.may_send("svc") && !r.may_send("other"));
        assert!(r.may_send("svc.a%%0"), "a secondary is one more segment");
        let r = ClientAaa::new().allow_p2p_to(&["x"]);
        assert!(
            r.may_send("x") && !r.may_send("x%%0"),
            "busrt's rule: exact names only"
        );
        let r = ClientAaa::new().allow_publish_to(&["logs/+"]);
        assert!(r.may_publish("logs/conn") && !r.may_publish("logs/a/b") && !r.may_publish("x"));
        let r = ClientAaa::new().allow_publish_to(&["logs/+", "#"]);
        assert!(r.may_publish("anything"));
    }

    #[test]
    fn peers_are_admitted_by_address_or_credentials() {
        let r = ClientAaa::new().hosts_allow(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(r.admits(&Peer::Tcp("10.9.9.9".parse().unwrap())));
        assert!(!r.admits(&Peer::Tcp("192.168.0.1".parse().unwrap())));
        assert!(
            r.admits(&Peer::Unix {
                uid: Some(5),
                gid: Some(5)
            }),
            "hosts do not bind UNIX clients"
        );
        let r = ClientAaa::new().uids_allow(vec![1000]);
        assert!(r.admits(&Peer::Unix {
            uid: Some(1000),
            gid: None
        }));
        assert!(!r.admits(&Peer::Unix {
            uid: Some(0),
            gid: None
        }));
        assert!(!r.admits(&Peer::Unix {
            uid: None,
            gid: None
        }));
        assert!(
            !r.admits(&Peer::Tcp("127.0.0.1".parse().unwrap())),
            "a uid rule needs a UNIX socket"
        );
        let r = ClientAaa::new().gids_allow(vec![20]);
        assert!(r.admits(&Peer::Unix {
            uid: Some(0),
            gid: Some(20)
        }));
        assert!(!r.admits(&Peer::Unix {
            uid: Some(0),
            gid: Some(21)
        }));
        assert!(
            ClientAaa::new().admits(&Peer::Tcp("::1".parse().unwrap())),
            "IPv6 by default"
        );
    }
}
