//! The firewall rule model shared by every backend: owners, stable rule ids,
//! and the one-line text form of a rule that backends keep beside it in the
//! kernel (iptables comments, nftables element comments), so a rule can be
//! read back, restored and listed without a file of netsh's own.
//! `iptables` renders rules as iptables lines.

pub mod iptables;
pub mod nft;

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use sha2::{Digest, Sha256};

use crate::error::{CapError, CapResult};
use crate::ops::{FwRule, Isolation, Proto};

/// Which firewall backend carries out firewall operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallKind {
    /// nf_tables over netlink, in-process (the default where the kernel has it).
    Nftables,
    /// iptables-restore, one process per run.
    Iptables,
}

impl FirewallKind {
    /// nftables when the kernel speaks nf_tables, else iptables.
    pub fn detect() -> FirewallKind {
        match netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER) {
            Ok(_) => FirewallKind::Nftables,
            Err(_) => FirewallKind::Iptables,
        }
    }

    /// `nftables` or `iptables`.
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallKind::Nftables => "nftables",
            FirewallKind::Iptables => "iptables",
        }
    }
}

impl std::str::FromStr for FirewallKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "nftables" | "nft" => Ok(FirewallKind::Nftables),
            "iptables" => Ok(FirewallKind::Iptables),
            other => Err(format!("unknown firewall backend {other:?}: use nftables or iptables")),
        }
    }
}

/// The commands that make `rule` of `owner` with backend `kind`, ready to paste.
pub fn add_commands(kind: FirewallKind, owner: &str, rule: &FwRule) -> Vec<String> {
    let id = rule_id(owner, rule);
    match kind {
        FirewallKind::Nftables => nft::Family::of(rule)
            .iter()
            .flat_map(|f| nft::element_commands(*f, &nft::rule_elements(&id, rule), &tag(owner, &id, rule)))
            .collect(),
        FirewallKind::Iptables => {
            iptables::render(owner, rule).map(|(_, lines)| iptables::commands(&lines)).unwrap_or_default()
        }
    }
}

/// The commands that remove `rule` of `owner`.
pub fn remove_commands(kind: FirewallKind, owner: &str, rule: &FwRule) -> Vec<String> {
    let add = add_commands(kind, owner, rule);
    match kind {
        FirewallKind::Nftables => add.iter().map(|c| c.replacen("'add element", "'delete element", 1)).collect(),
        FirewallKind::Iptables => add.iter().map(|c| c.replacen(" -A ", " -D ", 1)).collect(),
    }
}

/// The commands that make netsh's table of `family` (nftables) or its
/// chains (iptables, one set for every family) before their first rule.
pub fn setup_commands(kind: FirewallKind, family: nft::Family) -> Vec<String> {
    match kind {
        FirewallKind::Nftables => nft::setup_commands(family),
        FirewallKind::Iptables if family == nft::Family::V4 => iptables::setup_commands(),
        FirewallKind::Iptables => Vec::new(),
    }
}

/// Check an owner label: it ends up inside comments in the kernel.
pub fn check_owner(owner: &str) -> CapResult<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '@');
    if owner.is_empty() || owner.len() > 100 || !owner.chars().all(ok) {
        return Err(CapError::Invalid(format!(
            "firewall owner {owner:?} must be 1-100 characters of letters, digits, '-', '_', '.', '/', '@'"
        )));
    }
    Ok(())
}

/// Check what the kernel cannot express or would take wrongly.
pub fn check_rule(rule: &FwRule) -> CapResult<()> {
    if let FwRule::LinkAccept { client, server, first, last, .. } = rule {
        if first > last {
            return Err(CapError::Invalid(format!("port range {first}-{last} is reversed")));
        }
        if client.is_ipv4() != server.is_ipv4() {
            return Err(CapError::Invalid(format!(
                "link client {client} and server {server} are of different IP versions"
            )));
        }
    }
    if let FwRule::Snat { source, out: None, to: None } = rule {
        return Err(CapError::Invalid(format!("masquerading {source} out of any interface is `masquerade {source}`")));
    }
    if let FwRule::Snat { source, to: Some(to), .. } = rule
        && source.is_ipv4() != to.is_ipv4()
    {
        return Err(CapError::Invalid(format!("source {source} and SNAT address {to} are of different IP versions")));
    }
    if let FwRule::Publish { host_ip, first, last, to_ip, to_port, .. } = rule {
        if first > last {
            return Err(CapError::Invalid(format!("port range {first}-{last} is reversed")));
        }
        if u32::from(*to_port) + u32::from(last - first) > 65535 {
            return Err(CapError::Invalid(format!("destination ports {to_port}+{} exceed 65535", last - first)));
        }
        if host_ip.is_some_and(|ip| ip.is_ipv4() != to_ip.is_ipv4()) {
            return Err(CapError::Invalid(format!(
                "host address and destination {to_ip} are of different IP versions"
            )));
        }
    }
    Ok(())
}

/// A rule's id: a digest of its owner and its text, so the same rule for
/// the same owner always has the same id, whichever backend holds it.
pub fn rule_id(owner: &str, rule: &FwRule) -> String {
    let mut hash = Sha256::new();
    hash.update(owner.as_bytes());
    hash.update([0]);
    hash.update(rule.to_string().as_bytes());
    hex::encode(&hash.finalize()[..6])
}

/// The tag marking a rule as netsh's: `netsh:OWNER:ID:RULE`.
pub fn tag(owner: &str, id: &str, rule: &FwRule) -> String {
    format!("netsh:{owner}:{id}:{rule}")
}

/// Parse a tag back into (owner, id, rule).
pub fn parse_tag(text: &str) -> Option<(String, String, FwRule)> {
    let rest = text.strip_prefix("netsh:")?;
    let (owner, rest) = rest.split_once(':')?;
    let (id, rule) = rest.split_once(':')?;
    Some((owner.to_string(), id.to_string(), rule.parse().ok()?))
}

fn addr_port(ip: Option<IpAddr>, port: impl fmt::Display) -> String {
    match ip {
        Some(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        Some(ip) => format!("{ip}:{port}"),
        None => format!("*:{port}"),
    }
}

fn or_any(name: &Option<String>) -> &str {
    name.as_deref().unwrap_or("*")
}

fn ports(first: u16, last: u16) -> String {
    if first == last { first.to_string() } else { format!("{first}-{last}") }
}

/// One line: `masquerade SRC [!OUT]`, `publish PROTO HOST:PORTS TO:PORT`,
/// `forward IN OUT` (`*` for any), `isolate BRIDGE networks|ports|external`,
/// `link BRIDGE CLIENT SERVER PROTO PORTS`, `snat SRC OUT|* TO|masquerade`.
impl fmt::Display for FwRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FwRule::Masquerade { source, out_not } => {
                write!(f, "masquerade {source}")?;
                out_not.as_ref().map_or(Ok(()), |o| write!(f, " !{o}"))
            }
            FwRule::Publish { proto, host_ip, first, last, to_ip, to_port } => {
                write!(
                    f,
                    "publish {} {} {}",
                    proto.as_str(),
                    addr_port(*host_ip, ports(*first, *last)),
                    addr_port(Some(*to_ip), to_port)
                )
            }
            FwRule::ForwardAccept { input, output } => write!(f, "forward {} {}", or_any(input), or_any(output)),
            FwRule::Isolate { bridge, mode } => write!(f, "isolate {bridge} {}", mode.as_str()),
            FwRule::LinkAccept { bridge, client, server, proto, first, last } => {
                write!(f, "link {bridge} {client} {server} {} {}", proto.as_str(), ports(*first, *last))
            }
            FwRule::Snat { source, out, to } => {
                let to = to.map_or("masquerade".to_string(), |ip| ip.to_string());
                write!(f, "snat {source} {} {to}", or_any(out))
            }
        }
    }
}

fn bad(text: &str) -> CapError {
    CapError::Invalid(format!("{text:?} is not a firewall rule (e.g. `publish tcp *:8080 172.17.0.2:80`)"))
}

/// `HOST:PORT` with `*` for any host and `[v6]` brackets.
fn split_addr(text: &str) -> Option<(Option<IpAddr>, &str)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host == "*" { None } else { Some(host.parse().ok()?) };
    Some((ip, port))
}

fn parse_proto(word: &str) -> Option<Proto> {
    match word {
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        _ => None,
    }
}

fn any(word: &str) -> Option<String> {
    (word != "*").then(|| word.to_string())
}

impl std::str::FromStr for FwRule {
    type Err = CapError;

    fn from_str(text: &str) -> CapResult<FwRule> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let rule = match words.as_slice() {
            ["masquerade", source] => {
                FwRule::Masquerade { source: source.parse().map_err(|_| bad(text))?, out_not: None }
            }
            ["masquerade", source, out] => FwRule::Masquerade {
                source: source.parse::<IpNetwork>().map_err(|_| bad(text))?,
                out_not: Some(out.strip_prefix('!').ok_or_else(|| bad(text))?.to_string()),
            },
            ["publish", proto, host, to] => {
                let proto = parse_proto(proto).ok_or_else(|| bad(text))?;
                let (host_ip, ports) = split_addr(host).ok_or_else(|| bad(text))?;
                let (first, last) = crate::ops::parse_ports(ports).ok_or_else(|| bad(text))?;
                let (to_ip, to_port) = split_addr(to).ok_or_else(|| bad(text))?;
                FwRule::Publish {
                    proto,
                    host_ip,
                    first,
                    last,
                    to_ip: to_ip.ok_or_else(|| bad(text))?,
                    to_port: to_port.parse().map_err(|_| bad(text))?,
                }
            }
            ["forward", input, output] => FwRule::ForwardAccept { input: any(input), output: any(output) },
            ["isolate", bridge, mode] => FwRule::Isolate {
                bridge: bridge.to_string(),
                mode: match *mode {
                    "networks" => Isolation::Networks,
                    "ports" => Isolation::Ports,
                    "external" => Isolation::External,
                    _ => return Err(bad(text)),
                },
            },
            ["snat", source, out, to] => FwRule::Snat {
                source: source.parse().map_err(|_| bad(text))?,
                out: any(out),
                to: match *to {
                    "masquerade" => None,
                    ip => Some(ip.parse().map_err(|_| bad(text))?),
                },
            },
            ["link", bridge, client, server, proto, ports] => {
                let (first, last) = crate::ops::parse_ports(ports).ok_or_else(|| bad(text))?;
                FwRule::LinkAccept {
                    bridge: bridge.to_string(),
                    client: client.parse().map_err(|_| bad(text))?,
                    server: server.parse().map_err(|_| bad(text))?,
                    proto: parse_proto(proto).ok_or_else(|| bad(text))?,
                    first,
                    last,
                }
            }
            _ => return Err(bad(text)),
        };
        check_rule(&rule)?;
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(first: u16, last: u16) -> FwRule {
        FwRule::Publish {
            proto: Proto::Tcp,
            host_ip: None,
            first,
            last,
            to_ip: "172.17.0.2".parse().unwrap(),
            to_port: 80,
        }
    }

    #[test]
    fn same_rule_same_id() {
        assert_eq!(rule_id("net1", &publish(8080, 8080)), rule_id("net1", &publish(8080, 8080)));
        assert_ne!(rule_id("net1", &publish(8080, 8080)), rule_id("net2", &publish(8080, 8080)));
    }

    #[test]
    fn rules_round_trip_through_text_and_tags() {
        let rules = [
            publish(8000, 8002),
            FwRule::Publish {
                proto: Proto::Udp,
                host_ip: Some("fd00::1".parse().unwrap()),
                first: 53,
                last: 53,
                to_ip: "fd00::2".parse().unwrap(),
                to_port: 5353,
            },
            FwRule::Masquerade { source: "172.17.0.0/16".parse().unwrap(), out_not: Some("br-x".into()) },
            FwRule::Masquerade { source: "fd00::/64".parse().unwrap(), out_not: None },
            FwRule::ForwardAccept { input: Some("br-x".into()), output: None },
            FwRule::Isolate { bridge: "br-x".into(), mode: Isolation::Ports },
            FwRule::Snat { source: "10.0.0.0/24".parse().unwrap(), out: Some("eth0".into()), to: None },
            FwRule::Snat { source: "10.0.0.0/24".parse().unwrap(), out: None, to: Some("192.0.2.1".parse().unwrap()) },
            FwRule::LinkAccept {
                bridge: "docker0".into(),
                client: "172.17.0.3".parse().unwrap(),
                server: "172.17.0.2".parse().unwrap(),
                proto: Proto::Tcp,
                first: 5432,
                last: 5433,
            },
        ];
        for rule in rules {
            let text = rule.to_string();
            assert_eq!(text.parse::<FwRule>().unwrap(), rule, "{text}");
            let tag = tag("docker-bridge/n/c", "abc", &rule);
            assert_eq!(parse_tag(&tag), Some(("docker-bridge/n/c".into(), "abc".into(), rule)));
        }
        assert_eq!(publish(8080, 8080).to_string(), "publish tcp *:8080 172.17.0.2:80");
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in ["", "publish tcp *:9-1 1.2.3.4:80", "publish sctp *:1 1.2.3.4:80", "isolate br x", "masquerade x"] {
            assert!(bad.parse::<FwRule>().is_err(), "{bad}");
        }
        assert!(check_owner("bad owner").is_err());
    }
}
