//! Grants (`KIND:SCOPE`), parsed once into typed values, and what an
//! operation needs ([`Need`]); [`Grant::allows`] is the only matcher.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::ops::Proto;

/// What a grant is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Netns,
    Link,
    Addr,
    Route,
    Nat,
    Publish,
    Sysctl,
    Kv,
    Exec,
    Firewall,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Netns => "netns",
            Kind::Link => "link",
            Kind::Addr => "addr",
            Kind::Route => "route",
            Kind::Nat => "nat",
            Kind::Publish => "publish",
            Kind::Sysctl => "sysctl",
            Kind::Kv => "kv",
            Kind::Exec => "exec",
            Kind::Firewall => "firewall",
        }
    }
}

/// A grant's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Name glob; `*` stops at `sep`, a lone `*` matches everything.
    Glob {
        pattern: String,
        sep: char,
    },
    Cidr(IpNetwork),
    Ports {
        proto: Option<Proto>,
        first: u16,
        last: u16,
    },
}

/// One permission, e.g. `link:br-*`, `addr:172.25.0.0/16`, `publish:tcp/8000-8100`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    kind: Kind,
    scope: Scope,
    text: String,
}

/// What one operation needs, e.g. the link `c1/eth0` or the source `172.25.0.0/16`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "scope", rename_all = "lowercase")]
pub enum Need {
    /// A named namespace.
    Netns(String),
    /// A link: `NAME` in netsh's namespace, `NS/NAME` in a named one.
    Link(String),
    /// An address (by its IP).
    Addr(IpNetwork),
    /// A route destination.
    Route(IpNetwork),
    /// A masqueraded source network.
    Nat(IpNetwork),
    /// Published host ports.
    Publish { proto: Proto, first: u16, last: u16 },
    /// A dotted sysctl key.
    Sysctl(String),
    /// A key-value store key.
    Kv(String),
    /// Running programs in a named namespace.
    Exec(String),
    /// Firewall state beyond netsh's own rules: `forward-policy`.
    Firewall(String),
}

impl Need {
    fn kind(&self) -> Kind {
        match self {
            Need::Netns(_) => Kind::Netns,
            Need::Link(_) => Kind::Link,
            Need::Addr(_) => Kind::Addr,
            Need::Route(_) => Kind::Route,
            Need::Nat(_) => Kind::Nat,
            Need::Publish { .. } => Kind::Publish,
            Need::Sysctl(_) => Kind::Sysctl,
            Need::Kv(_) => Kind::Kv,
            Need::Exec(_) => Kind::Exec,
            Need::Firewall(_) => Kind::Firewall,
        }
    }

    /// The named namespace this need reaches into, if any (not a hosts group `@G`).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Need::Netns(n) | Need::Exec(n) if !n.starts_with('@') => Some(n),
            Need::Link(l) => l.split_once('/').map(|(ns, _)| ns),
            _ => None,
        }
    }

    /// The same need with its namespace called `other` (another name of it).
    pub fn under(&self, other: &str) -> Need {
        match self {
            Need::Netns(_) => Need::Netns(other.to_string()),
            Need::Exec(_) => Need::Exec(other.to_string()),
            Need::Link(l) => Need::Link(format!("{other}/{}", l.split_once('/').map_or(l.as_str(), |(_, d)| d))),
            need => need.clone(),
        }
    }
}

/// The narrowest grant that allows the need, as text.
impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Netns(n) => write!(f, "netns:{n}"),
            Need::Link(n) => write!(f, "link:{n}"),
            Need::Addr(c) => write!(f, "addr:{}", c.ip()),
            Need::Route(c) => write!(f, "route:{c}"),
            Need::Nat(c) => write!(f, "nat:{c}"),
            Need::Publish { proto, first, last } if first == last => write!(f, "publish:{}/{first}", proto.as_str()),
            Need::Publish { proto, first, last } => write!(f, "publish:{}/{first}-{last}", proto.as_str()),
            Need::Sysctl(k) => write!(f, "sysctl:{k}"),
            Need::Kv(k) => write!(f, "kv:{k}"),
            Need::Exec(n) => write!(f, "exec:{n}"),
            Need::Firewall(n) => write!(f, "firewall:{n}"),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a grant did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid grant {text:?}: {reason} (e.g. link:br-*, addr:172.25.0.0/16, publish:tcp/8000-8100)")]
pub struct GrantError {
    text: String,
    reason: String,
}

impl FromStr for Grant {
    type Err = GrantError;

    fn from_str(text: &str) -> Result<Self, GrantError> {
        let fail = |reason: &str| GrantError { text: text.into(), reason: reason.into() };
        let (kind, scope) = text.split_once(':').ok_or_else(|| fail("missing ':'"))?;
        if scope.is_empty() {
            return Err(fail("empty scope"));
        }
        let kinds = [
            Kind::Netns,
            Kind::Link,
            Kind::Addr,
            Kind::Route,
            Kind::Nat,
            Kind::Publish,
            Kind::Sysctl,
            Kind::Kv,
            Kind::Exec,
            Kind::Firewall,
        ];
        let kind = kinds.into_iter().find(|k| k.name() == kind).ok_or_else(|| {
            fail("unknown kind; use netns, link, addr, route, nat, publish, sysctl, kv, exec or firewall")
        })?;
        let scope = match kind {
            Kind::Netns | Kind::Link | Kind::Exec | Kind::Firewall => Scope::Glob { pattern: scope.into(), sep: '/' },
            Kind::Sysctl => Scope::Glob { pattern: scope.into(), sep: '.' },
            // A key glob: `*` spans '/' (kv:docker-bridge/* is everything under it).
            Kind::Kv => Scope::Glob { pattern: scope.into(), sep: '\0' },
            Kind::Addr | Kind::Route | Kind::Nat => {
                Scope::Cidr(scope.parse().map_err(|_| fail("scope is not a CIDR such as 10.0.0.0/8"))?)
            }
            Kind::Publish => {
                let (proto, ports) = match scope.split_once('/') {
                    Some(("tcp", p)) => (Some(Proto::Tcp), p),
                    Some(("udp", p)) => (Some(Proto::Udp), p),
                    Some(_) => return Err(fail("protocol must be tcp or udp")),
                    None => (None, scope),
                };
                let (first, last) =
                    crate::ops::parse_ports(ports).ok_or_else(|| fail("ports must be PORT or FIRST-LAST"))?;
                if first > last {
                    return Err(fail("port range is reversed"));
                }
                Scope::Ports { proto, first, last }
            }
        };
        Ok(Grant { kind, scope, text: text.into() })
    }
}

/// Glob match: `*` matches any run of characters other than `sep`, `?` one such character.
fn glob(pattern: &str, text: &str, sep: char) -> bool {
    if pattern == "*" {
        return true;
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char], sep: char) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).take_while(|&i| i == 0 || t[i - 1] != sep).any(|i| go(&p[1..], &t[i..], sep)),
            Some('?') => t.first().is_some_and(|c| *c != sep) && go(&p[1..], &t[1..], sep),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..], sep),
        }
    }
    go(&p, &t, sep)
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Whether `inner` (a network) lies inside `outer`.
fn within(outer: &IpNetwork, inner: &IpNetwork) -> bool {
    same_family(outer.ip(), inner.ip()) && inner.prefix() >= outer.prefix() && outer.contains(inner.network())
}

impl Grant {
    /// Whether this grant allows `need`.
    pub fn allows(&self, need: &Need) -> bool {
        if self.kind != need.kind() {
            return false;
        }
        match (&self.scope, need) {
            (
                Scope::Glob { pattern, sep },
                Need::Netns(name)
                | Need::Link(name)
                | Need::Sysctl(name)
                | Need::Kv(name)
                | Need::Exec(name)
                | Need::Firewall(name),
            ) => glob(pattern, name, *sep),
            (Scope::Cidr(scope), Need::Addr(addr)) => same_family(scope.ip(), addr.ip()) && scope.contains(addr.ip()),
            (Scope::Cidr(scope), Need::Route(net) | Need::Nat(net)) => within(scope, net),
            (Scope::Ports { proto, first, last }, Need::Publish { proto: p, first: f, last: l }) => {
                proto.is_none_or(|x| x == *p) && first <= f && l <= last
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(text: &str) -> Grant {
        text.parse().unwrap()
    }

    fn link(name: &str) -> Need {
        Need::Link(name.into())
    }

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    #[test]
    fn a_need_names_its_namespace_and_moves_to_another_name() {
        let link = Need::Link("c2/eth0".into());
        assert_eq!(link.namespace(), Some("c2"));
        assert_eq!(link.under("c1"), Need::Link("c1/eth0".into()));
        assert_eq!(Need::Exec("c2".into()).under("c1"), Need::Exec("c1".into()));
        assert_eq!(Need::Link("eth0".into()).namespace(), None);
        assert_eq!(Need::Netns("@net".into()).namespace(), None);
        assert_eq!(Need::Kv("a/b".into()).namespace(), None);
    }

    #[test]
    fn name_globs() {
        let table = [
            ("link:br-*", "br-x", true),
            ("link:br-*", "br-", true),
            ("link:br-*", "br", false),
            ("link:br-", "br-", true),
            ("link:br-", "br-x", false),
            ("link:br-*", "eth9", false),
            ("link:br-*", "br-a.b", true),
            ("link:veth*", "c1/eth0", false),
            ("link:*/lo", "c1/lo", true),
            ("link:*/lo", "lo", false),
            ("link:*", "lo", true),
            ("link:eth?", "eth0", true),
            ("link:eth?", "eth10", false),
        ];
        for (grant, name, expected) in table {
            assert_eq!(g(grant).allows(&link(name)), expected, "{grant} vs {name}");
        }
        assert!(g("netns:c-*").allows(&Need::Netns("c-1".into())));
        assert!(g("exec:c-*").allows(&Need::Exec("c-1".into())));
        assert!(!g("netns:*").allows(&Need::Exec("c-1".into())));
        assert!(g("firewall:forward-policy").allows(&Need::Firewall("forward-policy".into())));
        assert!(!g("sysctl:*").allows(&Need::Firewall("forward-policy".into())));
        assert!(!g("netns:c-*").allows(&link("c-1")));
        assert!(
            g("sysctl:net.ipv4.conf.*.route_localnet")
                .allows(&Need::Sysctl("net.ipv4.conf.br-x.route_localnet".into()))
        );
        assert!(!g("sysctl:net.ipv4.*").allows(&Need::Sysctl("net.ipv4.conf.all.forwarding".into())));
        assert!(g("sysctl:net.ipv4.ip_forward").allows(&Need::Sysctl("net.ipv4.ip_forward".into())));
        assert!(g("kv:docker-bridge/*").allows(&Need::Kv("docker-bridge/net/a/b".into())));
        assert!(!g("kv:docker-bridge/*").allows(&Need::Kv("overlay/net/a".into())));
    }

    #[test]
    fn cidr_scopes() {
        assert!(g("route:10.0.0.0/8").allows(&Need::Route(net("10.1.0.0/16"))));
        assert!(!g("route:10.0.0.0/8").allows(&Need::Route(net("10.0.0.0/7"))));
        assert!(g("route:10.0.0.0/7").allows(&Need::Route(net("11.0.0.0/8"))));
        assert!(!g("route:10.0.0.0/8").allows(&Need::Route(net("0.0.0.0/0"))));
        assert!(g("route:0.0.0.0/0").allows(&Need::Route(net("0.0.0.0/0"))));
        assert!(g("addr:172.25.0.0/16").allows(&Need::Addr(net("172.25.0.1/16"))));
        assert!(!g("addr:172.25.0.0/16").allows(&Need::Addr(net("172.26.0.1/16"))));
        assert!(g("nat:fd00::/8").allows(&Need::Nat(net("fd12::/64"))));
        assert!(!g("nat:fd00::/8").allows(&Need::Nat(net("10.0.0.0/8"))));
        assert!(!g("addr:0.0.0.0/0").allows(&Need::Addr(net("fd00::1/64"))));
        assert!(g("addr:::/0").allows(&Need::Addr(net("fd00::1/64"))));
    }

    #[test]
    fn port_scopes() {
        let publish = |proto, first, last| Need::Publish { proto, first, last };
        assert!(g("publish:tcp/8000-8100").allows(&publish(Proto::Tcp, 8000, 8100)));
        assert!(!g("publish:tcp/8000-8100").allows(&publish(Proto::Tcp, 8000, 8101)));
        assert!(!g("publish:tcp/8000-8100").allows(&publish(Proto::Udp, 8050, 8050)));
        assert!(g("publish:0-65535").allows(&publish(Proto::Udp, 65535, 65535)));
        assert!(g("publish:tcp/0").allows(&publish(Proto::Tcp, 0, 0)));
        assert!(!g("publish:tcp/1-65534").allows(&publish(Proto::Tcp, 65535, 65535)));
    }

    #[test]
    fn malformed_grants() {
        for bad in
            ["link", "link:", "bogus:x", "addr:10.0.0.0/33", "publish:tcp/9-1", "publish:sctp/1", "publish:tcp/70000"]
        {
            assert!(bad.parse::<Grant>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn needs_print_as_grants() {
        assert_eq!(Need::Publish { proto: Proto::Tcp, first: 80, last: 80 }.to_string(), "publish:tcp/80");
        assert_eq!(Need::Addr(net("10.0.0.5/24")).to_string(), "addr:10.0.0.5");
        let need = Need::Addr(net("10.0.0.5/24"));
        assert!(g(&need.to_string()).allows(&need));
    }
}
