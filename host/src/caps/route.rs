//! `netsh:host/route`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::{cidr, done, ifname, ip, ns};
use crate::error::{CapError, CapResult};
use crate::ops::{Op, Reply, RouteSpec, RoutingRule, RuleAction};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::route::{Host, RouteInfo, RuleAction as WitAction, RuleInfo};
use crate::runtime::bindings::netsh::host::types::Error;

/// Convert a WIT route; "default" takes its family from `via` (IPv4 without one).
pub fn spec(r: RouteInfo) -> CapResult<RouteSpec> {
    let via = r.via.as_deref().map(ip).transpose()?;
    let dest = if r.dest == "default" {
        let any = match via {
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        IpNetwork::new(any, 0).map_err(|e| CapError::Invalid(e.to_string()))?
    } else {
        cidr(&r.dest)?
    };
    if via.is_some_and(|v| v.is_ipv4() != dest.is_ipv4()) {
        return Err(CapError::Invalid(format!(
            "route {}: gateway and destination are of different IP versions",
            r.dest
        )));
    }
    if via.is_none() && r.dev.is_none() {
        return Err(CapError::Invalid(format!("route {} needs a gateway (via) or a device (dev)", r.dest)));
    }
    let src = r.src.as_deref().map(ip).transpose()?;
    if src.is_some_and(|s| s.is_ipv4() != dest.is_ipv4()) {
        return Err(CapError::Invalid(format!(
            "route {}: source and destination are of different IP versions",
            r.dest
        )));
    }
    let table = r.table.filter(|t| *t != crate::ops::MAIN_TABLE);
    let dev = r.dev.map(ifname).transpose()?;
    Ok(RouteSpec { dest, via, dev, onlink: r.onlink, metric: r.metric, src, table, proto: None, scope: None })
}

fn to_wit(r: RouteSpec) -> RouteInfo {
    RouteInfo {
        dest: if r.dest.prefix() == 0 { "default".into() } else { r.dest.to_string() },
        via: r.via.map(|v| v.to_string()),
        dev: r.dev,
        onlink: r.onlink,
        metric: r.metric,
        src: r.src.map(|s| s.to_string()),
        table: r.table,
    }
}

/// Convert a WIT policy rule; the family is checked against its prefixes.
fn routing_rule(r: RuleInfo) -> CapResult<RoutingRule> {
    let rule = RoutingRule {
        priority: r.priority,
        v6: r.ipv6,
        from: r.src.as_deref().map(cidr).transpose()?,
        to: r.dst.as_deref().map(cidr).transpose()?,
        iif: r.iif.map(ifname).transpose()?,
        oif: r.oif.map(ifname).transpose()?,
        fwmark: r.fwmark,
        action: r.action.map(|a| match a {
            WitAction::Lookup(table) => RuleAction::Lookup(table),
            WitAction::Blackhole => RuleAction::Blackhole,
            WitAction::Unreachable => RuleAction::Unreachable,
            WitAction::Prohibit => RuleAction::Prohibit,
        }),
    };
    rule.check()?;
    Ok(rule)
}

fn rule_to_wit(r: RoutingRule) -> RuleInfo {
    RuleInfo {
        priority: r.priority,
        ipv6: r.v6,
        src: r.from.map(|n| n.to_string()),
        dst: r.to.map(|n| n.to_string()),
        iif: r.iif,
        oif: r.oif,
        fwmark: r.fwmark,
        action: r.action.map(|a| match a {
            RuleAction::Lookup(table) => WitAction::Lookup(table),
            RuleAction::Blackhole => WitAction::Blackhole,
            RuleAction::Unreachable => WitAction::Unreachable,
            RuleAction::Prohibit => WitAction::Prohibit,
        }),
    }
}

impl Host for RecipeState {
    async fn add(&mut self, ns_: Option<String>, route: RouteInfo) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::RouteAdd { ns: ns(ns_)?, route: spec(route)? }))();
        self.call(op, done).await
    }

    async fn delete(&mut self, ns_: Option<String>, route: RouteInfo) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::RouteDelete { ns: ns(ns_)?, route: spec(route)? }))();
        self.call(op, done).await
    }

    async fn add_rule(&mut self, ns_: Option<String>, rule: RuleInfo) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::RoutingRuleAdd { ns: ns(ns_)?, rule: routing_rule(rule)? }))();
        self.call(op, done).await
    }

    async fn delete_rule(&mut self, ns_: Option<String>, rule: RuleInfo) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::RoutingRuleDelete { ns: ns(ns_)?, rule: routing_rule(rule)? }))();
        self.call(op, done).await
    }

    async fn rules(&mut self, ns_: Option<String>) -> wasmtime::Result<Result<Vec<RuleInfo>, Error>> {
        self.call(ns(ns_).map(|ns| Op::RoutingRuleList { ns }), |r| match r {
            Reply::RoutingRules(r) => Ok(r.into_iter().map(rule_to_wit).collect()),
            other => Err(other.mismatch()),
        })
        .await
    }

    async fn list(&mut self, ns_: Option<String>) -> wasmtime::Result<Result<Vec<RouteInfo>, Error>> {
        self.call(ns(ns_).map(|ns| Op::RouteList { ns, table: None }), |r| match r {
            Reply::Routes(r) => Ok(r.into_iter().map(to_wit).collect()),
            other => Err(other.mismatch()),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit(src: Option<&str>, ipv6: bool) -> RuleInfo {
        RuleInfo {
            priority: Some(10),
            ipv6,
            src: src.map(String::from),
            dst: None,
            iif: Some("br0".into()),
            oif: None,
            fwmark: Some(7),
            action: Some(WitAction::Lookup(100)),
        }
    }

    #[test]
    fn rules_convert_both_ways_and_keep_to_their_family() {
        let rule = routing_rule(wit(Some("10.1.0.0/24"), false)).expect("valid");
        assert_eq!(rule.to_string(), "pref 10 from 10.1.0.0/24 iif br0 fwmark 0x7 lookup 100");
        assert_eq!(routing_rule(rule_to_wit(rule.clone())).expect("valid"), rule);
        let err = routing_rule(wit(Some("10.1.0.0/24"), true)).expect_err("v4 prefix in a v6 rule");
        assert!(err.to_string().contains("not an IPv6 prefix"), "{err}");
        assert!(routing_rule(wit(Some("10.1.0.0/33"), false)).is_err());
        assert!(routing_rule(RuleInfo { iif: Some("a-name-too-long-for-linux".into()), ..wit(None, false) }).is_err());
    }
}
