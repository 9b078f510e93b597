//! Text for people and JSON for machines: how every front end shows what
//! the workflows return, so the CLI, the shell and the agent print the same.

use ipnetwork::IpNetwork;
use serde_json::json;

use super::RecipeInfo;
use super::plan::PlanReport;
use super::run::allow_flags;
use super::runs::RunRow;
use super::show::{Style, Topology};
use crate::audit::Entry;
use crate::firewall::FirewallKind;
use crate::ops::{
    AddrInfo, LinkInfo, ROUTE_PROTOS, ROUTE_SCOPES, Reply, RouteSpec, RoutingRule, RuleAction, number_name, table_name,
};

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// A recipe's usage, as `--help` prints it.
pub fn usage(info: &RecipeInfo) -> String {
    format!("{} {} — {}\n\nusage:\n{}\n", info.name, info.version, info.summary, indent(&info.usage))
}

/// `netsh inspect`: manifest, digest, grants, and a command that grants them all.
pub fn inspect(info: &RecipeInfo, file: &str) -> String {
    let mut out = format!(
        "{} {} — {}\nsha256: {}\n\nusage:\n{}\n\ngrants requested:\n",
        info.name,
        info.version,
        info.summary,
        info.sha256,
        indent(&info.usage)
    );
    for g in &info.grants {
        out.push_str(&format!("  {:<32} {}\n", g.grant, g.reason));
    }
    out.push_str(&format!("\nto grant all of them: netsh run {} {file}\n", allow_flags(&info.declared())));
    out
}

/// One JSON shape for a recipe, wherever it is shown.
pub fn recipe_json(info: &RecipeInfo) -> serde_json::Value {
    serde_json::to_value(info).unwrap_or(serde_json::Value::Null)
}

/// A plan as text: each operation, then the grants.
pub fn plan_text(plan: &PlanReport) -> String {
    let mut out = String::new();
    for p in &plan.ops {
        if !p.changes {
            out.push_str(&format!("# no change: {}\n", p.op));
            continue;
        }
        for c in &p.commands {
            out.push_str(&format!("{c}\n"));
        }
    }
    out.push_str(&format!("\n{} change(s)\n", plan.changes));
    out.push_str(&format!("grants used:    {}\n", plan.grants.used.iter().cloned().collect::<Vec<_>>().join(" ")));
    let missing: Vec<String> = plan.grants.missing.iter().map(|n| n.to_string()).collect();
    let missing = if missing.is_empty() { "none".to_string() } else { allow_flags(&missing) };
    out.push_str(&format!("grants missing: {missing}\n"));
    out
}

/// A plan as JSON.
pub fn plan_json(plan: &PlanReport) -> serde_json::Value {
    let ops: Vec<_> = plan
        .ops
        .iter()
        .map(|p| json!({"call": p.op, "cmd": p.op.to_string(), "commands": p.commands, "changes": p.changes}))
        .collect();
    let missing: Vec<String> = plan.grants.missing.iter().map(|n| n.to_string()).collect();
    json!({
        "recipe": plan.recipe, "sha256": plan.sha256, "ops": ops, "changes": plan.changes,
        "grants_used": plan.grants.used, "grants_missing": missing, "error": plan.error,
    })
}

/// `netsh runs` as a table.
pub fn runs_table(rows: &[RunRow]) -> String {
    let mut out = format!("{:<22} {:<20} {:>5}  {:<26} PRINCIPAL\n", "RUN", "STATE", "STEPS", "STARTED");
    for r in rows {
        out.push_str(&format!("{:<22} {:<20} {:>5}  {:<26} {}\n", r.id, r.state, r.steps, r.started, r.principal));
    }
    out
}

/// One audit entry, as a line.
pub fn audit_entry(e: &Entry, json: bool) -> String {
    if json {
        return serde_json::to_string(e).unwrap_or_default();
    }
    let why = e.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
    format!("{} {} {} {:<5} {} -> {}{}", e.time, e.run, e.principal, e.decision, e.cmd, e.result, why)
}

/// Links like `ip -br addr`: name, kind, state, addresses, master.
pub fn links(links: &[LinkInfo]) -> String {
    shown_links(links, true)
}

/// IPv6 link-local (fe80::/10) and multicast (ff00::/8): every interface has them.
fn link_local(net: &IpNetwork) -> bool {
    match net {
        IpNetwork::V6(n) => n.ip().segments()[0] & 0xffc0 == 0xfe80 || n.ip().is_multicast(),
        IpNetwork::V4(_) => false,
    }
}

fn shown_links(links: &[LinkInfo], all: bool) -> String {
    let mut out = String::new();
    for l in links {
        let state = if l.up { l.oper_state.to_uppercase() } else { "DOWN".into() };
        let master = l.master.as_ref().map(|m| format!(" master {m}")).unwrap_or_default();
        let addrs: Vec<String> = l.addresses.iter().filter(|a| all || !link_local(a)).map(|a| a.to_string()).collect();
        out.push_str(&format!("  {:<15} {:<8} {:<8} {}{}\n", l.name, l.kind, state, addrs.join(" "), master));
    }
    out
}

/// Namespaces like `ip -br addr` + `ip route` + `ip rule`, with netsh's rules (briefly:
/// links and one line per rule).
pub fn topology(topology: &Topology, style: Style) -> String {
    let mut out = match topology.firewall {
        FirewallKind::Nftables => {
            "firewall: nftables (netsh's rules: nft list table ip netsh; nft list table ip6 netsh)\n"
        }
        FirewallKind::Iptables => "firewall: iptables (netsh's rules: iptables-save | grep NETSH)\n",
    }
    .to_string();
    if let Some(resolver) = &topology.resolver {
        out.push_str(&resolver.text());
    }
    for view in &topology.namespaces {
        match &view.name {
            Some(name) => out.push_str(&format!("netns {name}\n")),
            None => out.push_str("(this namespace)\n"),
        }
        out.push_str(&shown_links(&view.links, style.all));
        for r in view.routes.iter().filter(|r| !style.brief && (style.all || !link_local(&r.dest))) {
            out.push_str(&format!("  route {r}\n"));
        }
        for r in view.routing_rules.iter().filter(|r| !style.brief && (style.all || !r.is_builtin())) {
            out.push_str(&format!("  ip rule {}", routing_rule(r)));
        }
        for rule in &view.rules {
            out.push_str(&format!("  rule {} ({}): {}\n", rule.id, rule.owner, rule.rule));
            for c in rule.commands.iter().filter(|_| !style.brief) {
                out.push_str(&format!("    {c}\n"));
            }
        }
        match (view.others.len(), style.brief) {
            (0, _) => {}
            (n, true) => out.push_str(&format!(
                "  {n} firewall rules or tables netsh did not make (show without -br lists them)\n"
            )),
            (_, false) => {
                out.push_str("  not netsh's (read-only):\n");
                view.others.iter().for_each(|line| out.push_str(&format!("    {line}\n")));
            }
        }
    }
    out
}

/// One tracked connection as `conntrack -L` prints it.
fn flow(f: &crate::ops::Flow) -> String {
    let tuple = |t: &crate::ops::Tuple| {
        let port = |name: &str, p: Option<u16>| p.map(|p| format!(" {name}={p}")).unwrap_or_default();
        format!("src={} dst={}{}{}", t.src, t.dst, port("sport", t.sport), port("dport", t.dport))
    };
    let state = f.state.as_ref().map(|s| format!(" {s}")).unwrap_or_default();
    let flags: String = f.flags.iter().map(|x| format!(" [{x}]")).collect();
    format!("{:<8} {}{state} {} {}{flags}\n", f.proto, f.timeout, tuple(&f.original), tuple(&f.reply))
}

/// A shell command's reply.
pub fn reply(reply: &Reply) -> String {
    match reply {
        Reply::Done | Reply::Rule { .. } | Reply::Edited(_) | Reply::Written(Some(_)) => String::new(),
        Reply::Written(None) => "not written: the key exists or changed meanwhile\n".into(),
        Reply::Exited(0) => String::new(),
        Reply::Exited(code) => format!("(exit status {code})\n"),
        Reply::Port(port) => format!("{port}\n"),
        Reply::Entry(None) => "(absent)\n".into(),
        Reply::Entry(Some(e)) => format!("{}\n", e.value),
        Reply::Entries(entries) => entries.iter().map(|e| format!("{} {}\n", e.key, e.value)).collect(),
        Reply::Bool(b) => format!("{b}\n"),
        Reply::Text(t) => format!("{t}\n"),
        Reply::Names(names) | Reply::Lines(names) => names.iter().map(|n| format!("{n}\n")).collect(),
        Reply::Link(l) => links(std::slice::from_ref(l)),
        Reply::Links(l) => links(l),
        Reply::Addrs(addrs) => addrs.iter().map(|a| format!("{} {}\n", a.dev, a.cidr)).collect(),
        Reply::Routes(routes) => routes.iter().map(|r| format!("{r}\n")).collect(),
        Reply::RoutingRules(rules) => rules.iter().map(routing_rule).collect(),
        Reply::Neighs(neighs) => neighs
            .iter()
            .map(|n| format!("{} dev {} lladdr {} {}\n", n.ip, n.dev, n.mac, n.state.to_uppercase()))
            .collect(),
        Reply::Fdb(entries) => entries.iter().map(|f| format!("{f} self\n")).collect(),
        Reply::Flows(flows) => flows.iter().map(flow).collect(),
        Reply::Gaps(gaps) => gaps
            .iter()
            .map(|g| format!("table {} netsh lacks set {}\n", if g.v6 { "ip6" } else { "ip" }, g.set))
            .collect(),
        Reply::Policy { v6, policy } => format!("{} -P FORWARD {}\n", crate::ops::iptables_tool(*v6), policy.as_str()),
        Reply::Rules(rules) => rules
            .iter()
            .map(|r| {
                format!(
                    "{} ({}): {}\n{}",
                    r.id,
                    r.owner,
                    r.rule,
                    r.commands.iter().map(|c| format!("  {c}\n")).collect::<String>()
                )
            })
            .collect(),
    }
}

/// A listing as iproute2's `-j` prints it (`ifname`, `flags`, `addr_info`,
/// `dst`/`gateway`, `lladdr`), so scripts written for `ip -j` read it.
pub fn reply_json(reply: &Reply) -> serde_json::Value {
    match reply {
        Reply::Link(l) => json!([link_json(l)]),
        Reply::Links(links) => links.iter().map(link_json).collect(),
        Reply::Addrs(addrs) => addrs_json(addrs),
        Reply::Routes(routes) => routes.iter().map(route_json).collect(),
        Reply::RoutingRules(rules) => rules.iter().map(routing_rule_json).collect(),
        Reply::Neighs(neighs) => neighs
            .iter()
            .map(|n| json!({"dst": n.ip, "dev": n.dev, "lladdr": n.mac, "state": [n.state.to_uppercase()]}))
            .collect(),
        Reply::Fdb(entries) => {
            entries.iter().map(|f| json!({"mac": f.mac, "ifname": f.dev, "dst": f.dst, "flags": ["self"]})).collect()
        }
        other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
    }
}

fn addr_info(cidr: &ipnetwork::IpNetwork) -> serde_json::Value {
    let family = if cidr.is_ipv6() { "inet6" } else { "inet" };
    json!({"family": family, "local": cidr.ip(), "prefixlen": cidr.prefix()})
}

fn link_json(l: &LinkInfo) -> serde_json::Value {
    let loopback = l.kind == "loopback";
    let mut flags: Vec<&str> = if loopback { vec!["LOOPBACK"] } else { vec!["BROADCAST", "MULTICAST"] };
    if l.up {
        flags.push("UP");
    }
    if l.up && (loopback || l.oper_state == "up") {
        flags.push("LOWER_UP");
    }
    let mut v = json!({
        "ifindex": l.index, "ifname": l.name, "flags": flags, "mtu": l.mtu,
        "operstate": l.oper_state.to_uppercase(), "link_type": if loopback { "loopback" } else { "ether" },
        "address": l.mac, "linkinfo": {"info_kind": l.kind},
        "addr_info": l.addresses.iter().map(addr_info).collect::<Vec<_>>(),
    });
    if let Some(master) = &l.master {
        v["master"] = json!(master);
    }
    v
}

/// Addresses grouped by interface, in the order listed.
fn addrs_json(addrs: &[AddrInfo]) -> serde_json::Value {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for a in addrs {
        match out.iter_mut().find(|v| v["ifname"] == a.dev.as_str()) {
            Some(v) => v["addr_info"].as_array_mut().into_iter().for_each(|list| list.push(addr_info(&a.cidr))),
            None => out.push(json!({"ifname": a.dev, "addr_info": [addr_info(&a.cidr)]})),
        }
    }
    out.into()
}

/// `PRIORITY:\tfrom ... lookup T`, as `ip rule` prints it; IPv6 rules say so.
fn routing_rule(r: &RoutingRule) -> String {
    let priority = r.priority.unwrap_or_default();
    let body = RoutingRule { priority: None, ..r.clone() };
    format!("{priority}:\t{body}{}\n", if r.v6 { " (IPv6)" } else { "" })
}

/// `ip -j rule`'s shape (`priority`, `src`/`srclen`, `table`, `action`), and the family.
fn routing_rule_json(r: &RoutingRule) -> serde_json::Value {
    let mut v = json!({"priority": r.priority, "family": if r.v6 { "inet6" } else { "inet" }});
    let mut prefix = |net: Option<IpNetwork>, key: &str| {
        v[key] = match net {
            Some(net) => json!(net.ip()),
            None => json!("all"),
        };
        if let Some(net) = net.filter(|n| n.prefix() != if n.is_ipv6() { 128 } else { 32 }) {
            v[format!("{key}len")] = json!(net.prefix());
        }
    };
    prefix(r.from, "src");
    if r.to.is_some() {
        prefix(r.to, "dst");
    }
    if let Some(iif) = &r.iif {
        v["iif"] = json!(iif);
    }
    if let Some(oif) = &r.oif {
        v["oif"] = json!(oif);
    }
    if let Some(mark) = r.fwmark {
        v["fwmark"] = json!(format!("{mark:#x}"));
    }
    match r.action {
        Some(RuleAction::Lookup(table)) => v["table"] = json!(table_name(table)),
        Some(RuleAction::Blackhole) => v["action"] = json!("blackhole"),
        Some(RuleAction::Unreachable) => v["action"] = json!("unreachable"),
        Some(RuleAction::Prohibit) => v["action"] = json!("prohibit"),
        None => {}
    }
    v
}

fn route_json(r: &RouteSpec) -> serde_json::Value {
    let dst = if r.dest.prefix() == 0 { "default".to_string() } else { r.dest.to_string() };
    let mut v = json!({"dst": dst});
    if let Some(via) = r.via {
        v["gateway"] = json!(via);
    }
    if let Some(dev) = &r.dev {
        v["dev"] = json!(dev);
    }
    if let Some(metric) = r.metric {
        v["metric"] = json!(metric);
    }
    if let Some(src) = r.src {
        v["prefsrc"] = json!(src);
    }
    if let Some(table) = r.table {
        v["table"] = json!(table.to_string());
    }
    if r.onlink {
        v["flags"] = json!(["onlink"]);
    }
    if let Some(proto) = r.proto {
        v["protocol"] = json!(number_name(ROUTE_PROTOS, proto));
    }
    if let Some(scope) = r.scope {
        v["scope"] = json!(number_name(ROUTE_SCOPES, scope));
    }
    v
}
