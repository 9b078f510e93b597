//! `ip rule` over rtnetlink: policy routing rules of both families.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::RouteHeader;
use netlink_packet_route::rule::{RuleAction as NlAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion};

use super::netlink::{absent, nl_error};
use crate::error::CapResult;
use crate::ops::{RoutingRule, RuleAction};

/// The kernel's message for `rule`; unset fields stay unset (a deletion's pattern).
fn message(rule: &RoutingRule) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = if rule.v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    if let Some(from) = rule.from {
        msg.header.src_len = from.prefix();
        msg.attributes.push(RuleAttribute::Source(from.ip()));
    }
    if let Some(to) = rule.to {
        msg.header.dst_len = to.prefix();
        msg.attributes.push(RuleAttribute::Destination(to.ip()));
    }
    msg.attributes.extend(rule.iif.clone().map(RuleAttribute::Iifname));
    msg.attributes.extend(rule.oif.clone().map(RuleAttribute::Oifname));
    msg.attributes.extend(rule.fwmark.map(RuleAttribute::FwMark));
    msg.attributes.extend(rule.priority.map(RuleAttribute::Priority));
    msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
    msg.header.action = match rule.action {
        None => NlAction::Unspec,
        Some(RuleAction::Lookup(table)) => {
            match u8::try_from(table) {
                Ok(small) => msg.header.table = small,
                Err(_) => msg.attributes.push(RuleAttribute::Table(table)),
            }
            NlAction::ToTable
        }
        Some(RuleAction::Blackhole) => NlAction::Blackhole,
        Some(RuleAction::Unreachable) => NlAction::Unreachable,
        Some(RuleAction::Prohibit) => NlAction::Prohibit,
    };
    msg
}

/// `ip rule add ...`.
pub async fn add(h: &Handle, rule: &RoutingRule) -> CapResult<()> {
    rule.check_new()?;
    let mut request = h.rule().add();
    *request.message_mut() = message(rule);
    request.execute().await.map_err(|e| nl_error(e, &format!("rule {rule}"), "add"))
}

/// `ip rule del ...`: the first rule, in priority order, that `rule` selects.
pub async fn delete(h: &Handle, rule: &RoutingRule) -> CapResult<()> {
    rule.check()?;
    h.rule().del(message(rule)).execute().await.map_err(|e| absent(e, &format!("rule {rule}")))
}

/// `ip rule show` + `ip -6 rule show`, in priority order per family.
pub async fn list(h: &Handle) -> CapResult<Vec<RoutingRule>> {
    let mut rules = Vec::new();
    for version in [IpVersion::V4, IpVersion::V6] {
        let msgs: Vec<RuleMessage> =
            h.rule().get(version).execute().try_collect().await.map_err(|e| nl_error(e, "rules", "list"))?;
        rules.extend(msgs.iter().filter_map(to_rule));
    }
    Ok(rules)
}

/// A rule as netsh knows rules; `None` for actions it does not make (goto, nop).
fn to_rule(msg: &RuleMessage) -> Option<RoutingRule> {
    let mut table = u32::from(msg.header.table);
    let mut rule =
        RoutingRule { priority: Some(0), v6: msg.header.family == AddressFamily::Inet6, ..RoutingRule::default() };
    let prefix = |ip: IpAddr, len: u8| IpNetwork::new(ip, len).ok();
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Source(ip) => rule.from = prefix(*ip, msg.header.src_len),
            RuleAttribute::Destination(ip) => rule.to = prefix(*ip, msg.header.dst_len),
            RuleAttribute::Iifname(name) => rule.iif = Some(name.clone()),
            RuleAttribute::Oifname(name) => rule.oif = Some(name.clone()),
            RuleAttribute::FwMark(mark) => rule.fwmark = Some(*mark),
            RuleAttribute::Priority(p) => rule.priority = Some(*p),
            RuleAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    rule.action = Some(match msg.header.action {
        NlAction::ToTable => RuleAction::Lookup(table),
        NlAction::Blackhole => RuleAction::Blackhole,
        NlAction::Unreachable => RuleAction::Unreachable,
        NlAction::Prohibit => RuleAction::Prohibit,
        _ => return None,
    });
    Some(rule)
}
