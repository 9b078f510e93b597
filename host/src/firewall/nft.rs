//! netsh's nftables layout, as data: tables `ip netsh` and `ip6 netsh`, the
//! sets and maps that hold every rule's state, the base chains that consult
//! them, and how each [`FwRule`] becomes set elements. A connect or a publish
//! is an element added, a disconnect an element deleted: the chains never
//! change once made. Pure; `backend::kernel::nft` sends it over netlink.
//!
//! ```text
//! prerouting (nat, dstnat) / output (nat, -100): fib daddr type local jump portmap
//! portmap:     DNAT through @dnat_addr (address . proto . port) then @dnat_any (proto . port)
//! postrouting (nat, srcnat): SNAT through @snat_to and masquerade @masq_out
//!              (subnet . out interface); masquerade host-made and hairpin
//!              traffic to @published; skip @masq_skip (subnet . out
//!              interface), masquerade @masq_nets
//! forward (filter, filter - 10): jump isolation, then accept @fwd_* and @published,
//!              marking accepted packets (0x00100000) for iptables' FORWARD
//! isolation:   @links accepts a linked client's connections (and the replies)
//!              first; @icc_off drops within a bridge; @isolated between
//!              isolated bridges; @internal to and from anywhere else
//! ```

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::ops::{FwRule, Isolation, Proto};

/// The table's name in both families.
pub const TABLE: &str = "netsh";

/// The mark netsh sets on forwarded packets it accepts, so a single iptables
/// rule (`-m mark --mark 0x100000/0x100000 -j ACCEPT`) lets them past a
/// FORWARD chain whose policy is DROP.
pub const ACCEPT_MARK: u32 = 0x0010_0000;

/// An address family: one table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The families a rule belongs in: its addresses' family, or both for a
    /// rule that names only interfaces (forwarding and isolation hold for
    /// IPv6 as much as for IPv4).
    pub fn of(rule: &FwRule) -> &'static [Family] {
        let v6 = match rule {
            FwRule::Masquerade { source, .. } | FwRule::Snat { source, .. } => source.is_ipv6(),
            FwRule::Publish { to_ip, .. } => to_ip.is_ipv6(),
            FwRule::LinkAccept { client, .. } => client.is_ipv6(),
            FwRule::ForwardAccept { .. } | FwRule::Isolate { .. } => return &[Family::V4, Family::V6],
        };
        if v6 { &[Family::V6] } else { &[Family::V4] }
    }

    /// NFPROTO_IPV4 or NFPROTO_IPV6.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }

    /// `ip` or `ip6`.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn addr_len(self) -> u32 {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// Offsets of the source and destination address in the network header.
    fn addr_offsets(self) -> (u32, u32) {
        match self {
            Family::V4 => (12, 16),
            Family::V6 => (8, 24),
        }
    }
}

/// A field of a set key or a map's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Addr,
    Proto,
    Port,
    Ifname,
}

impl Field {
    /// nft's datatype id (for `nft list` to print elements).
    fn type_id(self, family: Family) -> u32 {
        match (self, family) {
            (Field::Addr, Family::V4) => 7,
            (Field::Addr, Family::V6) => 8,
            (Field::Proto, _) => 12,
            (Field::Port, _) => 13,
            (Field::Ifname, _) => 41,
        }
    }

    /// Length in a key, padded to 32-bit registers.
    pub fn len(self, family: Family) -> u32 {
        match self {
            Field::Addr => family.addr_len(),
            Field::Proto | Field::Port => 4,
            Field::Ifname => 16,
        }
    }
}

/// A set or map of the table.
#[derive(Debug, Clone, Copy)]
pub struct SetDef {
    pub name: &'static str,
    pub key: &'static [Field],
    pub data: &'static [Field],
    pub interval: bool,
    /// The declaration in nft syntax (inside `add set ip netsh NAME { ... }`).
    pub decl: &'static str,
}

use Field::{Addr, Ifname, Port, Proto as P};

/// Every set, in creation order.
pub const SETS: &[SetDef] = &[
    SetDef { name: "rules", key: &[Ifname], data: &[], interval: false, decl: "type ifname;" },
    SetDef { name: "masq_nets", key: &[Addr], data: &[], interval: true, decl: "type ADDR; flags interval;" },
    SetDef {
        name: "masq_skip",
        key: &[Addr, Ifname],
        data: &[],
        interval: true,
        decl: "type ADDR . ifname; flags interval;",
    },
    SetDef { name: "fwd_in", key: &[Ifname], data: &[], interval: false, decl: "type ifname;" },
    SetDef { name: "fwd_out", key: &[Ifname], data: &[], interval: false, decl: "type ifname;" },
    SetDef { name: "fwd_pair", key: &[Ifname, Ifname], data: &[], interval: false, decl: "type ifname . ifname;" },
    SetDef { name: "isolated", key: &[Ifname], data: &[], interval: false, decl: "type ifname;" },
    SetDef { name: "iso_same", key: &[Ifname, Ifname], data: &[], interval: false, decl: "type ifname . ifname;" },
    SetDef { name: "icc_off", key: &[Ifname, Ifname], data: &[], interval: false, decl: "type ifname . ifname;" },
    SetDef { name: "internal", key: &[Ifname], data: &[], interval: false, decl: "type ifname;" },
    SetDef { name: "int_same", key: &[Ifname, Ifname], data: &[], interval: false, decl: "type ifname . ifname;" },
    SetDef {
        name: "dnat_any",
        key: &[P, Port],
        data: &[Addr, Port],
        interval: false,
        decl: "type inet_proto . inet_service : ADDR . inet_service;",
    },
    SetDef {
        name: "dnat_addr",
        key: &[Addr, P, Port],
        data: &[Addr, Port],
        interval: false,
        decl: "type ADDR . inet_proto . inet_service : ADDR . inet_service;",
    },
    // Keyed by the destination and the host port too (conntrack's original
    // destination port): several host ports may publish one container port.
    SetDef {
        name: "published",
        key: &[Addr, P, Port, Port],
        data: &[],
        interval: false,
        decl: "type ADDR . inet_proto . inet_service . inet_service;",
    },
    SetDef {
        name: "snat_to",
        key: &[Addr, Ifname],
        data: &[Addr],
        interval: true,
        decl: "type ADDR . ifname : ADDR; flags interval;",
    },
    SetDef { name: "snat_any", key: &[Addr], data: &[Addr], interval: true, decl: "type ADDR : ADDR; flags interval;" },
    SetDef {
        name: "masq_out",
        key: &[Addr, Ifname],
        data: &[],
        interval: true,
        decl: "type ADDR . ifname; flags interval;",
    },
    SetDef {
        name: "links",
        key: &[Ifname, Addr, Addr, P, Port],
        data: &[],
        interval: false,
        decl: "type ifname . ADDR . ADDR . inet_proto . inet_service;",
    },
    SetDef {
        name: "hairpin",
        key: &[Addr, Addr, P, Port, Port],
        data: &[],
        interval: false,
        decl: "type ADDR . ADDR . inet_proto . inet_service . inet_service;",
    },
];

impl SetDef {
    /// nft's datatype id of a concatenation: each field's id in 6 bits, first field highest.
    pub fn type_id(fields: &[Field], family: Family) -> u32 {
        fields.iter().fold(0, |id, f| (id << 6) | f.type_id(family))
    }

    /// The declaration with the family's address type.
    pub fn declaration(&self, family: Family) -> String {
        let addr = match family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        self.decl.replace("ADDR", addr)
    }
}

/// One set element: the set, the key (and, for ranges, the key's end), the
/// map data, and the element in nft syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub set: &'static str,
    pub key: Vec<u8>,
    /// For ranges: the last key (pipapo), or `None` (rbtree: see `end_marker`).
    pub key_end: Option<Vec<u8>>,
    /// For single-field ranges (rbtree): the key after the range, flagged as its end.
    pub end_marker: Option<Vec<u8>>,
    pub data: Option<Vec<u8>>,
    pub text: String,
}

fn addr_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An interface name as a 16-byte key field.
pub fn ifname_bytes(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.resize(16, 0);
    b
}

fn proto_bytes(p: Proto) -> Vec<u8> {
    vec![if p == Proto::Tcp { 6 } else { 17 }, 0, 0, 0]
}

fn port_bytes(port: u16) -> Vec<u8> {
    let [hi, lo] = port.to_be_bytes();
    vec![hi, lo, 0, 0]
}

/// The first and last address of a network, and the address after it (if any).
fn range(net: &IpNetwork) -> (Vec<u8>, Vec<u8>, Option<Vec<u8>>) {
    match net {
        IpNetwork::V4(n) => {
            let (first, last) = (u32::from(n.network()), u32::from(n.broadcast()));
            let after = last.checked_add(1).map(|a| a.to_be_bytes().to_vec());
            (first.to_be_bytes().to_vec(), last.to_be_bytes().to_vec(), after)
        }
        IpNetwork::V6(n) => {
            let first = u128::from(n.network());
            let last = first | (u128::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0));
            let after = last.checked_add(1).map(|a| a.to_be_bytes().to_vec());
            (first.to_be_bytes().to_vec(), last.to_be_bytes().to_vec(), after)
        }
    }
}

fn element(set: &'static str, key: Vec<Vec<u8>>, data: Option<Vec<Vec<u8>>>, text: String) -> Element {
    Element { set, key: key.concat(), key_end: None, end_marker: None, data: data.map(|d| d.concat()), text }
}

fn q(name: &str) -> String {
    format!("\"{name}\"")
}

/// The elements that make up `rule`.
pub fn elements(rule: &FwRule) -> Vec<Element> {
    match rule {
        FwRule::Masquerade { source, out_not } => {
            let (first, last, after) = range(source);
            let net = IpNetwork::new(source.network(), source.prefix()).unwrap_or(*source);
            let mut out = vec![Element {
                set: "masq_nets",
                key: first.clone(),
                key_end: None,
                end_marker: after,
                data: None,
                text: net.to_string(),
            }];
            if let Some(out_if) = out_not {
                out.push(Element {
                    set: "masq_skip",
                    key: [first, ifname_bytes(out_if)].concat(),
                    key_end: Some([last, ifname_bytes(out_if)].concat()),
                    end_marker: None,
                    data: None,
                    text: format!("{net} . {}", q(out_if)),
                });
            }
            out
        }
        FwRule::Publish { proto, host_ip, first, last, to_ip, to_port } => {
            let p = proto.as_str();
            let mut out = Vec::new();
            for port in *first..=*last {
                let target = to_port + (port - first);
                let data = vec![addr_bytes(*to_ip), port_bytes(target)];
                let to = format!("{to_ip} . {target}");
                out.push(match host_ip {
                    Some(host) => element(
                        "dnat_addr",
                        vec![addr_bytes(*host), proto_bytes(*proto), port_bytes(port)],
                        Some(data),
                        format!("{host} . {p} . {port} : {to}"),
                    ),
                    None => element(
                        "dnat_any",
                        vec![proto_bytes(*proto), port_bytes(port)],
                        Some(data),
                        format!("{p} . {port} : {to}"),
                    ),
                });
                let dest = vec![addr_bytes(*to_ip), proto_bytes(*proto), port_bytes(target), port_bytes(port)];
                out.push(element("published", dest.clone(), None, format!("{to_ip} . {p} . {target} . {port}")));
                out.push(element(
                    "hairpin",
                    std::iter::once(addr_bytes(*to_ip)).chain(dest).collect(),
                    None,
                    format!("{to_ip} . {to_ip} . {p} . {target} . {port}"),
                ));
            }
            out
        }
        FwRule::ForwardAccept { input, output } => match (input, output) {
            (Some(i), Some(o)) => {
                vec![element("fwd_pair", vec![ifname_bytes(i), ifname_bytes(o)], None, format!("{} . {}", q(i), q(o)))]
            }
            (Some(i), None) => vec![element("fwd_in", vec![ifname_bytes(i)], None, q(i))],
            (None, Some(o)) => vec![element("fwd_out", vec![ifname_bytes(o)], None, q(o))],
            (None, None) => Vec::new(),
        },
        FwRule::Snat { source, out, to } => {
            let (first, last, after) = range(source);
            let net = IpNetwork::new(source.network(), source.prefix()).unwrap_or(*source);
            let data = to.map(addr_bytes);
            let to_text = to.map(|ip| format!(" : {ip}")).unwrap_or_default();
            match out {
                // Out of any interface: keyed by the source alone (nft cannot show an ifname range of everything).
                None => vec![Element {
                    set: "snat_any",
                    key: first,
                    key_end: None,
                    end_marker: after,
                    data,
                    text: format!("{net}{to_text}"),
                }],
                Some(o) => vec![Element {
                    set: if to.is_some() { "snat_to" } else { "masq_out" },
                    key: [first, ifname_bytes(o)].concat(),
                    key_end: Some([last, ifname_bytes(o)].concat()),
                    end_marker: None,
                    data,
                    text: format!("{net} . {}{to_text}", q(o)),
                }],
            }
        }
        FwRule::LinkAccept { bridge, client, server, proto, first, last } => (*first..=*last)
            .map(|port| {
                element(
                    "links",
                    vec![
                        ifname_bytes(bridge),
                        addr_bytes(*client),
                        addr_bytes(*server),
                        proto_bytes(*proto),
                        port_bytes(port),
                    ],
                    None,
                    format!("{} . {client} . {server} . {} . {port}", q(bridge), proto.as_str()),
                )
            })
            .collect(),
        FwRule::Isolate { bridge, mode } => {
            let pair = || vec![ifname_bytes(bridge), ifname_bytes(bridge)];
            let both = format!("{} . {}", q(bridge), q(bridge));
            match mode {
                Isolation::Networks => vec![
                    element("isolated", vec![ifname_bytes(bridge)], None, q(bridge)),
                    element("iso_same", pair(), None, both),
                ],
                Isolation::Ports => vec![element("icc_off", pair(), None, both)],
                Isolation::External => vec![
                    element("internal", vec![ifname_bytes(bridge)], None, q(bridge)),
                    element("int_same", pair(), None, both),
                ],
            }
        }
    }
}

/// A rule's elements with its index element (the id, named in the rules set) last.
pub fn rule_elements(id: &str, rule: &FwRule) -> Vec<Element> {
    let mut out = elements(rule);
    out.push(Element { set: "rules", key: ifname_bytes(id), key_end: None, end_marker: None, data: None, text: q(id) });
    out
}

/// Whether an element carries the rule's tag as its comment (the index, and
/// DNAT entries, so a port's holder can be named).
pub fn commented(el: &Element) -> bool {
    el.set == "rules" || el.set.starts_with("dnat_")
}

/// `nft add element ...` commands for a rule's elements, ready to paste.
pub fn element_commands(family: Family, elements: &[Element], tag: &str) -> Vec<String> {
    elements
        .iter()
        .map(|e| {
            let (key, data) = match e.text.split_once(" : ") {
                Some((k, d)) => (k, format!(" : {d}")),
                None => (e.text.as_str(), String::new()),
            };
            let comment = if commented(e) { format!(" comment {tag:?}") } else { String::new() };
            format!("nft 'add element {} {TABLE} {} {{ {key}{comment}{data} }}'", family.name(), e.set)
        })
        .collect()
}

/// Netlink registers: 32-bit register n (0-15).
pub const fn reg32(n: u32) -> u32 {
    8 + n
}

/// Meta keys netsh reads and sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    Mark = 3,
    Iifname = 6,
    Oifname = 7,
    L4proto = 16,
}

/// A verdict at the end of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(&'static str),
    Goto(&'static str),
}

/// The expressions netsh's chains use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta {
        key: MetaKey,
        dreg: u32,
    },
    SetMeta {
        key: MetaKey,
        sreg: u32,
    },
    /// Load `len` bytes at `offset` of header `base` (1 network, 2 transport).
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// Compare a register with bytes (equal when `eq`).
    Cmp {
        sreg: u32,
        eq: bool,
        data: Vec<u8>,
    },
    Lookup {
        set: &'static str,
        sreg: u32,
        dreg: Option<u32>,
    },
    /// `dreg = (sreg & mask) ^ xor`.
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// Conntrack state (0) or status (2) into a register.
    Ct {
        key: u32,
        dreg: u32,
    },
    /// The original direction's destination port (`ct original proto-dst`).
    CtOriginalPort {
        dreg: u32,
    },
    /// `fib saddr|daddr type` into a register (`daddr` when `dest`).
    FibAddrType {
        dest: bool,
        dreg: u32,
    },
    Dnat {
        family: Family,
        addr: u32,
        port: u32,
    },
    /// Source NAT to the address in register `addr`.
    Snat {
        family: Family,
        addr: u32,
    },
    Masquerade,
    Verdict(Verdict),
}

/// A rule: its expressions, and the same rule in nft syntax.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub exprs: Vec<Expr>,
    pub text: String,
}

/// A chain; base chains have (hook, priority, type).
#[derive(Debug, Clone)]
pub struct ChainDef {
    pub name: &'static str,
    pub hook: Option<(u32, i32, &'static str)>,
    pub rules: Vec<RuleDef>,
}

const PREROUTING: u32 = 0;
const FORWARD: u32 = 2;
const OUTPUT: u32 = 3;
const POSTROUTING: u32 = 4;
/// RTN_LOCAL, what `fib ... type local` compares with.
const RTN_LOCAL: u32 = 2;
/// ct state established|related.
const CT_EST_REL: u32 = 0b110;
/// ct status dnat (IPS_DST_NAT).
const CT_DNAT: u32 = 1 << 5;

fn rule(text: impl Into<String>, exprs: Vec<Expr>) -> RuleDef {
    RuleDef { exprs, text: text.into() }
}

fn meta(key: MetaKey, n: u32) -> Expr {
    Expr::Meta { key, dreg: reg32(n) }
}

fn lookup(set: &'static str) -> Expr {
    Expr::Lookup { set, sreg: reg32(0), dreg: None }
}

fn port(n: u32) -> Expr {
    Expr::Payload { base: 2, offset: 2, len: 2, dreg: reg32(n) }
}

/// `(reg & mask) != 0` for a host-order 32-bit mask.
fn any_bits(reg: u32, mask: u32) -> [Expr; 2] {
    [
        Expr::Bitwise { sreg: reg, dreg: reg, mask: mask.to_ne_bytes().to_vec(), xor: vec![0; 4] },
        Expr::Cmp { sreg: reg, eq: false, data: vec![0; 4] },
    ]
}

fn local(dest: bool) -> [Expr; 2] {
    [Expr::FibAddrType { dest, dreg: 1 }, Expr::Cmp { sreg: 1, eq: true, data: RTN_LOCAL.to_ne_bytes().to_vec() }]
}

/// Both protocols a port is published for: nft types `ct original
/// proto-dst` only once the protocol is known, so those rules come in pairs.
const PROTOS: [Proto; 2] = [Proto::Tcp, Proto::Udp];

/// `meta l4proto P`.
fn is_proto(p: Proto) -> [Expr; 2] {
    [meta(MetaKey::L4proto, 0), Expr::Cmp { sreg: reg32(0), eq: true, data: vec![proto_bytes(p)[0]] }]
}

fn ct(key: u32, mask: u32) -> Vec<Expr> {
    let mut v = vec![Expr::Ct { key, dreg: 1 }];
    v.extend(any_bits(1, mask));
    v
}

impl Family {
    fn addr(self, source: bool, n: u32) -> Expr {
        let (s, d) = self.addr_offsets();
        Expr::Payload { base: 1, offset: if source { s } else { d }, len: self.addr_len(), dreg: reg32(n) }
    }

    /// Registers an address takes.
    fn regs(self) -> u32 {
        self.addr_len() / 4
    }
}

/// Sets added to the layout after its first release, each with the chain
/// whose first rules consult it: a table an older netsh made gets them
/// (set, then rules at the chain's head) from the first batch that needs them.
pub const LATER_SETS: [(&str, &str); 4] =
    [("links", "isolation"), ("snat_to", "postrouting"), ("snat_any", "postrouting"), ("masq_out", "postrouting")];

/// The first rules of `chain` that consult the later set `set`.
pub fn later_rules(family: Family, set: &str) -> Vec<RuleDef> {
    match set {
        "links" => link_rules(family).to_vec(),
        "snat_to" => vec![snat_rule(family, "snat_to")],
        "snat_any" => vec![snat_rule(family, "snat_any")],
        "masq_out" => vec![masq_out_rule(family)],
        _ => Vec::new(),
    }
}

/// `snat to` the address `map` gives the source and out interface
/// (`snat_to`) or the source alone (`snat_any`).
fn snat_rule(family: Family, map: &'static str) -> RuleDef {
    let f = family.name();
    let (key, oif) = match map {
        "snat_to" => (format!("{f} saddr . oifname"), vec![meta(MetaKey::Oifname, family.regs())]),
        _ => (format!("{f} saddr"), Vec::new()),
    };
    let lookup = Expr::Lookup { set: map, sreg: reg32(0), dreg: Some(reg32(0)) };
    rule(
        format!("snat to {key} map @{map}"),
        [vec![family.addr(true, 0)], oif, vec![lookup, Expr::Snat { family, addr: reg32(0) }]].concat(),
    )
}

/// Masquerade what `@masq_out` names by source and out interface.
fn masq_out_rule(family: Family) -> RuleDef {
    let f = family.name();
    rule(
        format!("{f} saddr . oifname @masq_out masquerade"),
        vec![family.addr(true, 0), meta(MetaKey::Oifname, family.regs()), lookup("masq_out"), Expr::Masquerade],
    )
}

/// The isolation chain's first rules: a linked client's connections to the
/// server's ports, and the server's replies, accepted before any drop.
pub fn link_rules(family: Family) -> [RuleDef; 2] {
    let f = family.name();
    let a = family.regs();
    let key = |from_client: bool| {
        let port_offset = if from_client { 2 } else { 0 };
        vec![
            meta(MetaKey::Iifname, 0),
            family.addr(from_client, 4),
            family.addr(!from_client, 4 + a),
            meta(MetaKey::L4proto, 4 + 2 * a),
            Expr::Payload { base: 2, offset: port_offset, len: 2, dreg: reg32(5 + 2 * a) },
            lookup("links"),
            Expr::Verdict(Verdict::Goto("accepted")),
        ]
    };
    [
        rule(format!("iifname . {f} saddr . {f} daddr . meta l4proto . th dport @links goto accepted"), key(true)),
        rule(
            format!(
                "ct state established,related iifname . {f} daddr . {f} saddr . meta l4proto . th sport @links goto accepted"
            ),
            [ct(0, CT_EST_REL), key(false)].concat(),
        ),
    ]
}

/// Every chain of a family's table, in creation order (called chains first).
pub fn chains(family: Family) -> Vec<ChainDef> {
    let f = family.name();
    let a = family.regs();
    let accepted = ChainDef {
        name: "accepted",
        hook: None,
        rules: vec![rule(
            format!("meta mark set meta mark | {ACCEPT_MARK:#x} accept"),
            vec![
                meta(MetaKey::Mark, 0),
                Expr::Bitwise {
                    sreg: reg32(0),
                    dreg: reg32(0),
                    mask: (!ACCEPT_MARK).to_ne_bytes().to_vec(),
                    xor: ACCEPT_MARK.to_ne_bytes().to_vec(),
                },
                Expr::SetMeta { key: MetaKey::Mark, sreg: reg32(0) },
                Expr::Verdict(Verdict::Accept),
            ],
        )],
    };
    let pair = |i: MetaKey, o: MetaKey| vec![meta(i, 0), meta(o, 4)];
    let isolation = ChainDef {
        name: "isolation",
        hook: None,
        rules: [
            link_rules(family).to_vec(),
            vec![
                rule(
                    "iifname . oifname @icc_off drop",
                    [pair(MetaKey::Iifname, MetaKey::Oifname), vec![lookup("icc_off"), Expr::Verdict(Verdict::Drop)]]
                        .concat(),
                ),
                rule(
                    "iifname . oifname @iso_same return",
                    [
                        pair(MetaKey::Iifname, MetaKey::Oifname),
                        vec![lookup("iso_same"), Expr::Verdict(Verdict::Return)],
                    ]
                    .concat(),
                ),
                rule(
                    "iifname @isolated oifname @isolated drop",
                    vec![
                        meta(MetaKey::Iifname, 0),
                        lookup("isolated"),
                        meta(MetaKey::Oifname, 0),
                        lookup("isolated"),
                        Expr::Verdict(Verdict::Drop),
                    ],
                ),
                rule(
                    "iifname . oifname @int_same return",
                    [
                        pair(MetaKey::Iifname, MetaKey::Oifname),
                        vec![lookup("int_same"), Expr::Verdict(Verdict::Return)],
                    ]
                    .concat(),
                ),
                rule(
                    "iifname @internal drop",
                    vec![meta(MetaKey::Iifname, 0), lookup("internal"), Expr::Verdict(Verdict::Drop)],
                ),
                rule(
                    "oifname @internal drop",
                    vec![meta(MetaKey::Oifname, 0), lookup("internal"), Expr::Verdict(Verdict::Drop)],
                ),
            ],
        ]
        .concat(),
    };
    let est = || ct(0, CT_EST_REL);
    let to_accepted = Expr::Verdict(Verdict::Goto("accepted"));
    let published = |n: u32| {
        vec![
            family.addr(false, n),
            meta(MetaKey::L4proto, n + a),
            port(n + a + 1),
            Expr::CtOriginalPort { dreg: reg32(n + a + 2) },
            lookup("published"),
        ]
    };
    let forward = ChainDef {
        name: "forward",
        hook: Some((FORWARD, -10, "filter")),
        rules: vec![
            rule("jump isolation", vec![Expr::Verdict(Verdict::Jump("isolation"))]),
            rule(
                "ct state established,related oifname . iifname @fwd_pair goto accepted",
                [est(), pair(MetaKey::Oifname, MetaKey::Iifname), vec![lookup("fwd_pair"), to_accepted.clone()]]
                    .concat(),
            ),
            rule(
                "iifname . oifname @fwd_pair goto accepted",
                [pair(MetaKey::Iifname, MetaKey::Oifname), vec![lookup("fwd_pair"), to_accepted.clone()]].concat(),
            ),
            rule(
                "ct state established,related oifname @fwd_in goto accepted",
                [est(), vec![meta(MetaKey::Oifname, 0), lookup("fwd_in"), to_accepted.clone()]].concat(),
            ),
            rule(
                "iifname @fwd_in goto accepted",
                vec![meta(MetaKey::Iifname, 0), lookup("fwd_in"), to_accepted.clone()],
            ),
            rule(
                "ct state established,related iifname @fwd_out goto accepted",
                [est(), vec![meta(MetaKey::Iifname, 0), lookup("fwd_out"), to_accepted.clone()]].concat(),
            ),
            rule(
                "oifname @fwd_out goto accepted",
                vec![meta(MetaKey::Oifname, 0), lookup("fwd_out"), to_accepted.clone()],
            ),
        ]
        .into_iter()
        .chain(PROTOS.map(|p| {
            rule(
                format!(
                    "ct status dnat meta l4proto {} {f} daddr . meta l4proto . th dport . ct original proto-dst @published goto accepted",
                    p.as_str()
                ),
                [ct(2, CT_DNAT), is_proto(p).to_vec(), published(0), vec![to_accepted.clone()]].concat(),
            )
        }))
        .collect(),
    };
    let portmap = ChainDef {
        name: "portmap",
        hook: None,
        rules: vec![
            rule(
                format!("dnat {f} to {f} daddr . meta l4proto . th dport map @dnat_addr"),
                vec![
                    family.addr(false, 0),
                    meta(MetaKey::L4proto, a),
                    port(a + 1),
                    Expr::Lookup { set: "dnat_addr", sreg: reg32(0), dreg: Some(reg32(0)) },
                    Expr::Dnat { family, addr: reg32(0), port: reg32(a) },
                ],
            ),
            rule(
                format!("dnat {f} to meta l4proto . th dport map @dnat_any"),
                vec![
                    meta(MetaKey::L4proto, 0),
                    port(1),
                    Expr::Lookup { set: "dnat_any", sreg: reg32(0), dreg: Some(reg32(0)) },
                    Expr::Dnat { family, addr: reg32(0), port: reg32(a) },
                ],
            ),
        ],
    };
    let to_portmap = || [local(true).to_vec(), vec![Expr::Verdict(Verdict::Jump("portmap"))]].concat();
    let postrouting = ChainDef {
        name: "postrouting",
        hook: Some((POSTROUTING, 100, "nat")),
        rules: [snat_rule(family, "snat_to"), snat_rule(family, "snat_any"), masq_out_rule(family)]
            .into_iter()
            .chain(PROTOS.into_iter()
            .flat_map(|p| {
                let proto = p.as_str();
                [
                    rule(
                        format!(
                            "ct status dnat meta l4proto {proto} fib saddr type local {f} daddr . meta l4proto . th dport . ct original proto-dst @published masquerade"
                        ),
                        [ct(2, CT_DNAT), is_proto(p).to_vec(), local(false).to_vec(), published(0), vec![Expr::Masquerade]]
                            .concat(),
                    ),
                    rule(
                        format!(
                            "ct status dnat meta l4proto {proto} {f} saddr . {f} daddr . meta l4proto . th dport . ct original proto-dst @hairpin masquerade"
                        ),
                        [
                            ct(2, CT_DNAT),
                            is_proto(p).to_vec(),
                            vec![
                        family.addr(true, 0),
                        family.addr(false, a),
                        meta(MetaKey::L4proto, 2 * a),
                        port(2 * a + 1),
                        Expr::CtOriginalPort { dreg: reg32(2 * a + 2) },
                        lookup("hairpin"),
                        Expr::Masquerade,
                    ],
                ]
                .concat(),
                    ),
                ]
            })
            .chain([
            rule(
                format!("{f} saddr . oifname @masq_skip return"),
                vec![
                    family.addr(true, 0),
                    meta(MetaKey::Oifname, a),
                    lookup("masq_skip"),
                    Expr::Verdict(Verdict::Return),
                ],
            ),
            rule(
                format!("{f} saddr @masq_nets masquerade"),
                vec![family.addr(true, 0), lookup("masq_nets"), Expr::Masquerade],
            ),
            ]))
            .collect(),
    };
    vec![
        accepted,
        isolation,
        forward,
        portmap,
        ChainDef {
            name: "prerouting",
            hook: Some((PREROUTING, -100, "nat")),
            rules: vec![rule("fib daddr type local jump portmap", to_portmap())],
        },
        ChainDef {
            name: "output",
            hook: Some((OUTPUT, -100, "nat")),
            rules: vec![rule("fib daddr type local jump portmap", to_portmap())],
        },
        postrouting,
    ]
}

/// `nft 'add set|map FAMILY netsh NAME { ... }'`.
fn set_command(family: Family, set: &SetDef) -> String {
    let kind = if set.data.is_empty() { "set" } else { "map" };
    format!("nft 'add {kind} {} {TABLE} {} {{ {} }}'", family.name(), set.name, set.declaration(family))
}

/// What brings a table an older netsh made up to date for the later set
/// `set`: the set, then its rules at the head of `chain` (inserted last
/// first, so they stand in layout order).
pub fn upgrade_commands(family: Family, set: &str, chain: &str) -> Vec<String> {
    let f = family.name();
    let defs = SETS.iter().filter(|def| def.name == set);
    let mut out: Vec<String> = defs.map(|def| set_command(family, def)).collect();
    let rules = later_rules(family, set);
    out.extend(rules.iter().rev().map(|r| format!("nft 'insert rule {f} {TABLE} {chain} {}'", r.text)));
    out
}

/// The whole table in nft syntax, as commands a reviewer can paste.
pub fn setup_commands(family: Family) -> Vec<String> {
    let f = family.name();
    let mut out = vec![format!("nft 'add table {f} {TABLE}'")];
    out.extend(SETS.iter().map(|set| set_command(family, set)));
    for chain in chains(family) {
        match chain.hook {
            Some((hook, prio, kind)) => {
                let hook = ["prerouting", "input", "forward", "output", "postrouting"][hook as usize];
                out.push(format!(
                    "nft 'add chain {f} {TABLE} {} {{ type {kind} hook {hook} priority {prio}; policy accept; }}'",
                    chain.name
                ));
            }
            None => out.push(format!("nft 'add chain {f} {TABLE} {}'", chain.name)),
        }
    }
    for chain in chains(family) {
        for r in &chain.rules {
            out.push(format!("nft 'add rule {f} {TABLE} {} {}'", chain.name, r.text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_is_dnat_published_and_hairpin_elements_per_port() {
        let rule = FwRule::Publish {
            proto: Proto::Tcp,
            host_ip: None,
            first: 8000,
            last: 8001,
            to_ip: "172.25.0.2".parse().unwrap(),
            to_port: 80,
        };
        let els = elements(&rule);
        assert_eq!(
            els.iter().map(|e| e.set).collect::<Vec<_>>(),
            ["dnat_any", "published", "hairpin", "dnat_any", "published", "hairpin"]
        );
        assert_eq!(els[3].text, "tcp . 8001 : 172.25.0.2 . 81");
        assert_eq!(els[0].key, vec![6, 0, 0, 0, 0x1f, 0x40, 0, 0]);
        assert_eq!(els[0].data.as_ref().unwrap(), &vec![172, 25, 0, 2, 0, 80, 0, 0]);
        for set in SETS {
            let key_len: u32 = set.key.iter().map(|f| f.len(Family::V4)).sum();
            for e in els.iter().filter(|e| e.set == set.name) {
                assert_eq!(e.key.len() as u32, key_len, "{}", set.name);
            }
        }
    }

    #[test]
    fn a_masquerade_is_a_range_and_a_skip() {
        let rule = FwRule::Masquerade { source: "172.25.0.0/16".parse().unwrap(), out_not: Some("br-x".into()) };
        let els = elements(&rule);
        assert_eq!(els[0].key, vec![172, 25, 0, 0]);
        assert_eq!(els[0].end_marker, Some(vec![172, 26, 0, 0]));
        assert_eq!(els[1].key_end.as_ref().unwrap()[..4], [172, 25, 255, 255]);
        assert_eq!(els[1].text, "172.25.0.0/16 . \"br-x\"");
    }

    #[test]
    fn concatenated_types_put_the_first_field_highest() {
        assert_eq!(SetDef::type_id(&[Field::Proto, Field::Port], Family::V4), (12 << 6) | 13);
    }
}
