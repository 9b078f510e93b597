//! What each operation needs: an exhaustive match, no catch-all arm, so a
//! new operation cannot slip through without a decision.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::grant::Need;
use crate::ops::{FwRule, Ns, Op, RoutingRule};

/// What an operation needs before it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    /// Reading state: no grant.
    Nothing,
    /// Every listed need must be granted.
    All(Vec<Need>),
    /// Removing a firewall rule needs what adding it needed; resolved by the
    /// gate from the rule itself.
    RuleOf { ns: Ns, id: String },
}

/// `NAME` in netsh's namespace, `NS/NAME` in a named one.
fn link(ns: &Ns, name: &str) -> Need {
    Need::Link(match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    })
}

/// Mutations inside a named namespace also need that namespace.
fn inside(ns: &Ns, mut needs: Vec<Need>) -> Needs {
    if let Some(ns) = ns {
        needs.insert(0, Need::Netns(ns.clone()));
    }
    Needs::All(needs)
}

/// The needs of `op`.
pub fn needs(op: &Op) -> Needs {
    match op {
        Op::NetnsList
        | Op::NetnsExists { .. }
        | Op::NetnsNames { .. }
        | Op::NetnsIdentify { .. }
        | Op::ConntrackList { .. }
        | Op::NetnsReadEtc { .. }
        | Op::LinkGet { .. }
        | Op::LinkList { .. }
        | Op::AddrList { .. }
        | Op::RouteList { .. }
        | Op::RouteGet { .. }
        | Op::RoutingRuleList { .. }
        | Op::NeighList { .. }
        | Op::FdbList { .. }
        | Op::SysctlGet { .. }
        | Op::FwGet { .. }
        | Op::FwList { .. }
        | Op::FwForwardPolicy { .. }
        | Op::FwForeignList { .. }
        | Op::FwLayoutGaps { .. }
        | Op::FwFreePort { .. }
        | Op::KvGet { .. }
        | Op::KvList { .. } => Needs::Nothing,
        Op::NetnsCreate { name }
        | Op::NetnsDelete { name }
        | Op::NetnsAttach { name, .. }
        | Op::NetnsWriteEtc { name, .. }
        | Op::NetnsRemoveEtc { name, .. } => Needs::All(vec![Need::Netns(name.clone())]),
        Op::NetnsAlias { name, of } => Needs::All(vec![Need::Netns(name.clone()), Need::Netns(of.clone())]),
        // Running a program is root in that namespace: a grant of its own.
        Op::NetnsExec { name, .. } => Needs::All(vec![Need::Netns(name.clone()), Need::Exec(name.clone())]),
        Op::LinkAddBridge { ns, name, .. } => inside(ns, vec![link(ns, name)]),
        Op::LinkAddVeth { ns, spec } => {
            let mut needs = vec![link(ns, &spec.name)];
            let peer_ns = spec.peer_ns.clone().or_else(|| ns.clone());
            needs.push(link(&peer_ns, &spec.peer));
            if let Some(peer_ns) = &spec.peer_ns {
                needs.push(Need::Netns(peer_ns.clone()));
            }
            if let Some(master) = &spec.master {
                needs.push(link(ns, master));
            }
            inside(ns, needs)
        }
        Op::LinkAddMacvlan { ns, name, parent, .. } => inside(ns, vec![link(ns, name), link(ns, parent)]),
        Op::LinkAddVxlan { ns, spec } => {
            let others = spec.dev.iter().chain(&spec.master).map(|l| link(ns, l));
            inside(ns, std::iter::once(link(ns, &spec.name)).chain(others).collect())
        }
        // Neighbour and FDB entries belong to their device: its grant covers them.
        Op::NeighAdd { ns, dev, .. } | Op::NeighDelete { ns, dev, .. } => inside(ns, vec![link(ns, dev)]),
        Op::FdbAdd { ns, entry } | Op::FdbDelete { ns, entry } => inside(ns, vec![link(ns, &entry.dev)]),
        Op::LinkSetUp { ns, name, .. }
        | Op::LinkSetMtu { ns, name, .. }
        | Op::LinkSetMac { ns, name, .. }
        | Op::LinkSetAlias { ns, name, .. }
        | Op::LinkDelete { ns, name } => inside(ns, vec![link(ns, name)]),
        Op::LinkSetMaster { ns, name, master } => {
            inside(ns, std::iter::once(link(ns, name)).chain(master.iter().map(|m| link(ns, m))).collect())
        }
        Op::LinkSetNetns { ns, name, target } => {
            let mut needs = vec![link(ns, name), link(target, name)];
            needs.extend(target.iter().map(|t| Need::Netns(t.clone())));
            inside(ns, needs)
        }
        Op::LinkRename { ns, name, new_name } => inside(ns, vec![link(ns, name), link(ns, new_name)]),
        Op::AddrAdd { ns, dev, cidr, .. } | Op::AddrDelete { ns, dev, cidr } => {
            inside(ns, vec![Need::Addr(*cidr), link(ns, dev)])
        }
        Op::RouteAdd { ns, route } | Op::RouteDelete { ns, route } => {
            inside(ns, std::iter::once(Need::Route(route.dest)).chain(route.dev.iter().map(|d| link(ns, d))).collect())
        }
        Op::RoutingRuleAdd { ns, rule } | Op::RoutingRuleDelete { ns, rule } => {
            inside(ns, routing_rule_needs(ns, rule))
        }
        Op::SysctlSet { ns, key, .. } => inside(ns, vec![Need::Sysctl(key.replace('/', "."))]),
        Op::FwAdd { ns, rule, .. } => inside(ns, rule_needs(rule)),
        // What every forwarded packet meets: a grant of its own.
        Op::FwSetForwardPolicy { ns, .. } => inside(ns, vec![Need::Firewall("forward-policy".into())]),
        Op::FwRemove { ns, id } => Needs::RuleOf { ns: ns.clone(), id: id.clone() },
        // A shared hosts file is named @GROUP among namespaces (netns:* covers it).
        Op::HostsAdd { group, .. } | Op::HostsRemove { group, .. } => {
            Needs::All(vec![Need::Netns(format!("@{group}"))])
        }
        Op::HostsShare { name, group } => Needs::All(vec![Need::Netns(name.clone()), Need::Netns(format!("@{group}"))]),
        Op::KvPut { key, .. }
        | Op::KvPutLease { key, .. }
        | Op::KvCreate { key, .. }
        | Op::KvSwap { key, .. }
        | Op::KvDelete { key }
        | Op::KvRevert { key, .. } => Needs::All(vec![Need::Kv(key.clone())]),
    }
}

/// A policy rule reroutes the traffic it selects: the routes of its `from`
/// and `to` prefixes (of the whole family when it names neither), and the
/// interfaces it names.
fn routing_rule_needs(ns: &Ns, rule: &RoutingRule) -> Vec<Need> {
    let any = if rule.v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
    let whole = IpNetwork::new(any, 0).expect("a zero-length prefix is valid");
    let mut needs: Vec<Need> = rule.from.iter().chain(&rule.to).map(|net| Need::Route(*net)).collect();
    if needs.is_empty() {
        needs.push(Need::Route(whole));
    }
    needs.extend(rule.iif.iter().chain(&rule.oif).map(|dev| link(ns, dev)));
    needs
}

/// What adding (or removing) a firewall rule needs.
pub fn rule_needs(rule: &FwRule) -> Vec<Need> {
    match rule {
        FwRule::Masquerade { source, .. } | FwRule::Snat { source, .. } => vec![Need::Nat(*source)],
        FwRule::Publish { proto, first, last, .. } => vec![Need::Publish { proto: *proto, first: *first, last: *last }],
        FwRule::ForwardAccept { input, output } => input.iter().chain(output).map(|i| Need::Link(i.clone())).collect(),
        FwRule::Isolate { bridge, .. } | FwRule::LinkAccept { bridge, .. } => vec![Need::Link(bridge.clone())],
    }
}
