//! The iptables rendering of rules: netsh-owned chains and how each
//! [`FwRule`] becomes rule lines. Pure; `backend::kernel::iptables` applies them.

use std::fmt::Write as _;

use crate::error::CapResult;
use crate::ops::{FwRule, Isolation};

/// An iptables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Nat,
    Filter,
}

impl Table {
    /// `nat` or `filter`.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// A netsh chain and where it is jumped to from (built-in chain, match before `-j`).
#[derive(Debug, Clone, Copy)]
pub struct Chain {
    pub table: Table,
    pub name: &'static str,
    /// Built-in chain holding the jump, or `None` for a chain reached from another netsh chain.
    pub from: Option<&'static str>,
    /// Matches on the jump rule.
    pub jump_match: &'static str,
}

/// Every chain netsh owns, in creation order.
pub const CHAINS: &[Chain] = &[
    Chain {
        table: Table::Nat,
        name: "NETSH-PREROUTING",
        from: Some("PREROUTING"),
        jump_match: "-m addrtype --dst-type LOCAL",
    },
    Chain { table: Table::Nat, name: "NETSH-OUTPUT", from: Some("OUTPUT"), jump_match: "-m addrtype --dst-type LOCAL" },
    Chain { table: Table::Nat, name: "NETSH-POSTROUTING", from: Some("POSTROUTING"), jump_match: "" },
    // Link exceptions come before isolation drops them.
    Chain { table: Table::Filter, name: "NETSH-LINKS", from: Some("FORWARD"), jump_match: "" },
    Chain { table: Table::Filter, name: "NETSH-ISOLATION", from: Some("FORWARD"), jump_match: "" },
    Chain { table: Table::Filter, name: "NETSH-ISOLATION-2", from: None, jump_match: "" },
    Chain { table: Table::Filter, name: "NETSH-FORWARD", from: Some("FORWARD"), jump_match: "" },
];

/// The jump rule (without `-A`/`-I`) from a chain's built-in chain.
pub fn jump_spec(chain: &Chain) -> Option<String> {
    let from = chain.from?;
    let m = if chain.jump_match.is_empty() { String::new() } else { format!("{} ", chain.jump_match) };
    Some(format!("{from} {m}-j {}", chain.name))
}

/// One rule line: table and `CHAIN args...` (without `-A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub table: Table,
    pub spec: String,
}

/// A rule's lines, each tagged with a comment naming owner, id and rule,
/// and its id (see [`super::rule_id`]).
pub fn render(owner: &str, rule: &FwRule) -> CapResult<(String, Vec<Line>)> {
    super::check_owner(owner)?;
    super::check_rule(rule)?;
    let id = super::rule_id(owner, rule);
    let comment = super::tag(owner, &id, rule);
    let tagged = lines(rule)
        .into_iter()
        .map(|l| Line { table: l.table, spec: format!("{} -m comment --comment \"{comment}\"", l.spec) })
        .collect();
    Ok((id, tagged))
}

fn nat(spec: String) -> Line {
    Line { table: Table::Nat, spec }
}

fn filter(spec: String) -> Line {
    Line { table: Table::Filter, spec }
}

fn lines(rule: &FwRule) -> Vec<Line> {
    match rule {
        FwRule::Masquerade { source, out_not } => {
            let mut spec = format!("NETSH-POSTROUTING -s {source}");
            if let Some(out) = out_not {
                write!(spec, " ! -o {out}").ok();
            }
            spec.push_str(" -j MASQUERADE");
            vec![nat(spec)]
        }
        FwRule::Snat { source, out, to } => {
            let out = out.as_ref().map(|o| format!(" -o {o}")).unwrap_or_default();
            let target = to.map_or("MASQUERADE".to_string(), |ip| format!("SNAT --to-source {ip}"));
            vec![nat(format!("NETSH-POSTROUTING -s {source}{out} -j {target}"))]
        }
        FwRule::Publish { proto, host_ip, first, last, to_ip, to_port } => {
            let p = proto.as_str();
            let dst = host_ip.map(|ip| format!(" -d {ip}/32")).unwrap_or_default();
            let mut out = Vec::new();
            for port in *first..=*last {
                let target = *to_port + (port - first);
                let dnat = format!("{dst} -p {p} -m {p} --dport {port} -j DNAT --to-destination {to_ip}:{target}");
                out.push(nat(format!("NETSH-PREROUTING{dnat}")));
                out.push(nat(format!("NETSH-OUTPUT{dnat}")));
                let svc = format!("-d {to_ip}/32 -p {p} -m {p} --dport {target}");
                out.push(nat(format!("NETSH-POSTROUTING -m addrtype --src-type LOCAL {svc} -j MASQUERADE")));
                out.push(nat(format!("NETSH-POSTROUTING -s {to_ip}/32 {svc} -j MASQUERADE")));
                out.push(filter(format!("NETSH-FORWARD {svc} -j ACCEPT")));
            }
            out
        }
        FwRule::ForwardAccept { input, output } => {
            let i = input.as_ref().map(|i| format!(" -i {i}")).unwrap_or_default();
            let o = output.as_ref().map(|o| format!(" -o {o}")).unwrap_or_default();
            let back_in = output.as_ref().map(|o| format!(" -i {o}")).unwrap_or_default();
            let back_out = input.as_ref().map(|i| format!(" -o {i}")).unwrap_or_default();
            vec![
                filter(format!(
                    "NETSH-FORWARD{back_in}{back_out} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
                )),
                filter(format!("NETSH-FORWARD{i}{o} -j ACCEPT")),
            ]
        }
        FwRule::LinkAccept { bridge, client, server, proto, first, last } => {
            let p = proto.as_str();
            let ports = if first == last { first.to_string() } else { format!("{first}:{last}") };
            let on = format!("-i {bridge} -o {bridge} -p {p} -m {p}");
            vec![
                filter(format!("NETSH-LINKS -s {client}/32 -d {server}/32 {on} --dport {ports} -j ACCEPT")),
                filter(format!(
                    "NETSH-LINKS -s {server}/32 -d {client}/32 {on} --sport {ports} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
                )),
            ]
        }
        FwRule::Isolate { bridge, mode } => match mode {
            Isolation::Networks => vec![
                filter(format!("NETSH-ISOLATION -i {bridge} ! -o {bridge} -j NETSH-ISOLATION-2")),
                filter(format!("NETSH-ISOLATION-2 -o {bridge} -j DROP")),
            ],
            Isolation::Ports => vec![filter(format!("NETSH-ISOLATION -i {bridge} -o {bridge} -j DROP"))],
            Isolation::External => vec![
                filter(format!("NETSH-ISOLATION -i {bridge} ! -o {bridge} -j DROP")),
                filter(format!("NETSH-ISOLATION ! -i {bridge} -o {bridge} -j DROP")),
            ],
        },
    }
}

/// The commands that make netsh's chains and their jumps.
pub fn setup_commands() -> Vec<String> {
    let mut out: Vec<String> =
        CHAINS.iter().map(|c| format!("iptables -t {} -N {}", c.table.as_str(), c.name)).collect();
    for chain in CHAINS.iter().rev() {
        if let Some(jump) = jump_spec(chain) {
            out.push(format!("iptables -t {} -I {}", chain.table.as_str(), jump.replacen(' ', " 1 ", 1)));
        }
    }
    out
}

/// The rule lines as `iptables -t TABLE -A ...` commands.
pub fn commands(lines: &[Line]) -> Vec<String> {
    lines.iter().map(|l| format!("iptables -t {} -A {}", l.table.as_str(), l.spec)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Proto;

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
    fn publish_range_maps_port_by_port() {
        let (_, lines) = render("n", &publish(8000, 8002)).unwrap();
        let dnat: Vec<_> = lines.iter().filter(|l| l.spec.starts_with("NETSH-PREROUTING")).collect();
        assert_eq!(dnat.len(), 3);
        assert!(dnat[2].spec.contains("--dport 8002 -j DNAT --to-destination 172.17.0.2:82"));
        assert!(dnat[2].spec.ends_with(":publish tcp *:8000-8002 172.17.0.2:80\""), "{}", dnat[2].spec);
    }

    #[test]
    fn reversed_range_is_invalid() {
        assert!(matches!(render("n", &publish(9000, 8000)), Err(crate::error::CapError::Invalid(_))));
    }
}
