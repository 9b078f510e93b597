//! `netsh show`: the topology of this namespace and every named one, read
//! through the gate like any other capability call.

use serde::Serialize;

use crate::error::CapResult;
use crate::firewall::FirewallKind;
use crate::gate::Gate;
use crate::ops::{LinkInfo, Ns, Op, Reply, RouteSpec, RoutingRule, RuleInfo};

/// What `show` prints: the active firewall backend and each namespace.
#[derive(Debug, Serialize)]
pub struct Topology {
    pub firewall: FirewallKind,
    /// The DNS resolver of container networks (not shown for one namespace).
    pub resolver: Option<crate::dns::lifecycle::Status>,
    pub namespaces: Vec<NsView>,
}

/// How `show` prints its text (JSON always carries everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub json: bool,
    /// Links and rules, one line each, as `ip -br` lists links.
    pub brief: bool,
    /// IPv6 link-local addresses and routes, and the built-in policy rules,
    /// too (noise, hidden by default).
    pub all: bool,
}

/// One namespace's state.
#[derive(Debug, Serialize)]
pub struct NsView {
    /// `None` for the namespace netsh runs in.
    pub name: Ns,
    pub links: Vec<LinkInfo>,
    pub routes: Vec<RouteSpec>,
    /// Policy routing rules of both families, the built-in ones too.
    pub routing_rules: Vec<RoutingRule>,
    /// netsh-owned firewall rules (empty when the firewall cannot be read).
    pub rules: Vec<RuleInfo>,
    /// Firewall state netsh did not make, as read-only commands (other
    /// nf_tables tables, iptables rules and policies; what can be read), for
    /// netsh's own namespace or the one `show` was asked for.
    pub others: Vec<String>,
}

/// Read one namespace; the firewall state netsh did not make only when
/// `others` (it costs two iptables-save runs).
async fn read_ns(gate: &Gate, ns: Ns, others: bool) -> CapResult<NsView> {
    let links = match gate.call(Op::LinkList { ns: ns.clone() }).await? {
        Reply::Links(l) => l,
        other => return Err(other.mismatch()),
    };
    let mut routes = match gate.call(Op::RouteList { ns: ns.clone(), table: Some(0) }).await? {
        Reply::Routes(r) => r,
        other => return Err(other.mismatch()),
    };
    // The kernel lists routes of one prefix in the order they were added (for
    // link-local ones, whichever device finished first): not state. IPv4
    // first, default routes first, then by destination and device.
    routes.sort_by(|a, b| {
        let key = |r: &RouteSpec| (r.dest.is_ipv6(), r.dest.prefix() != 0, r.dest.ip(), r.dest.prefix(), r.dev.clone());
        key(a).cmp(&key(b))
    });
    let routing_rules = match gate.call(Op::RoutingRuleList { ns: ns.clone() }).await? {
        Reply::RoutingRules(r) => r,
        other => return Err(other.mismatch()),
    };
    let rules = match gate.call(Op::FwList { ns: ns.clone() }).await {
        Ok(Reply::Rules(r)) => r,
        _ => Vec::new(),
    };
    let others = match others {
        true => match gate.call(Op::FwForeignList { ns: ns.clone() }).await {
            Ok(Reply::Lines(lines)) => lines,
            _ => Vec::new(),
        },
        false => Vec::new(),
    };
    Ok(NsView { name: ns, links, routes, routing_rules, rules, others })
}

/// Read `only` or, when `None`, this namespace and every named one. Only
/// the namespace asked for, or netsh's own, lists the firewall state netsh
/// did not make: showing many namespaces runs iptables-save twice, not twice each.
pub async fn read(gate: &Gate, only: Option<String>) -> CapResult<Vec<NsView>> {
    let one = only.is_some();
    let names: Vec<Ns> = match only {
        Some(name) => vec![Some(name)],
        None => {
            let named = match gate.call(Op::NetnsList).await? {
                Reply::Names(n) => n,
                other => return Err(other.mismatch()),
            };
            std::iter::once(None).chain(named.into_iter().map(Some)).collect()
        }
    };
    let mut views = Vec::new();
    for ns in names {
        let others = one || ns.is_none();
        views.push(read_ns(gate, ns, others).await?);
    }
    Ok(views)
}
