//! The REPL grammar, close to iproute2: one line becomes a [`Line`].
//! Capability commands become typed [`Op`]s, the same the recipes produce.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::iptables_lines::Spelled;
use crate::names;
use crate::ops::{
    ChainPolicy, DEFAULT_TABLE, Fdb, FwRule, LOCAL_TABLE, MAIN_TABLE, Ns, Op, Proto, ROUTE_PROTOS, ROUTE_SCOPES,
    RouteSpec, RoutingRule, RuleAction, VethSpec, VxlanSpec, named_number,
};

/// One REPL command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Capability calls, run in order as one journaled step.
    Ops(Vec<Op>),
    /// A listing shown as iproute2's `-j` JSON.
    Json(Vec<Op>),
    /// A listing of one IP family (`ip -6 route`), as text or JSON.
    OfFamily {
        ops: Vec<Op>,
        json: bool,
        v6: bool,
    },
    Show {
        ns: Option<String>,
        style: super::show::Style,
    },
    Run {
        target: String,
        args: Vec<String>,
    },
    Plan {
        target: String,
        args: Vec<String>,
    },
    Undo(Option<String>),
    /// A line that needs nothing done, and why (a pasted rule netsh's own already covers).
    Note(String),
    Audit(AuditQuery),
    Grants,
    Help(Option<String>),
    RecordStart(String),
    RecordStop,
    Exit,
}

/// What `audit` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub verify: bool,
    pub run: Option<String>,
    pub since: Option<String>,
    pub json: bool,
    pub follow: bool,
}

/// A command the REPL knows: name, usage, what it does.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub usage: &'static str,
    pub summary: &'static str,
}

/// Every command, for help, completion and typo suggestions.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "netns",
        usage: "netns add|del NAME | netns attach NAME PID | netns alias NAME TARGET | netns identify PID | netns exec NAME CMD [ARGS...] | netns ls",
        summary: "named network namespaces",
    },
    Spec {
        name: "link",
        usage: "link add NAME type bridge|veth [peer P [netns NS|PID]]|vxlan id VNI [dstport P] [local IP] [dev IF] [nolearning] [proxy] | link add link PARENT name NAME type macvlan [mode private|vepa|bridge|passthru] | link set [dev] NAME [up|down] [master BR|nomaster] [netns NS|PID] [mtu N] [address MAC] | link del NAME | link ls [NAME]",
        summary: "interfaces",
    },
    Spec {
        name: "addr",
        usage: "addr add CIDR dev IF [nodad] | addr del CIDR dev IF | addr ls [dev IF]",
        summary: "interface addresses",
    },
    Spec {
        name: "route",
        usage: "route add|del default|CIDR [via IP] [dev IF] [onlink] [metric N] [src IP] [table N] [proto NAME|N] [scope global|link|host|N] | route ls [table N|main|all] | route get IP [from IP]",
        summary: "routes (the main table unless table names another)",
    },
    Spec {
        name: "rule",
        usage: "rule add|del [pref N] [from all|CIDR] [to CIDR] [iif IF] [oif IF] [fwmark N] [lookup TABLE|blackhole|unreachable|prohibit] | rule ls  (-6 rule ... for IPv6 rules that name no address)",
        summary: "policy routing: which table routes the packets a rule selects (lookup main unless told)",
    },
    Spec {
        name: "neigh",
        usage: "neigh add IP lladdr MAC dev IF [nud permanent] | neigh del IP dev IF | neigh ls [dev IF]",
        summary: "permanent neighbour (ARP/NDP) entries",
    },
    Spec {
        name: "fdb",
        usage: "fdb append MAC dev IF [dst IP] | fdb del MAC dev IF [dst IP] | fdb ls [dev IF]",
        summary: "forwarding database entries (`bridge fdb`, VXLAN destinations)",
    },
    Spec {
        name: "nat",
        usage: "nat masquerade CIDR [out-not IF | out IF] | nat snat CIDR to IP [out IF]",
        summary: "source NAT for a network: masquerade (-j MASQUERADE [-o IF]) or to an address (-j SNAT --to-source)",
    },
    Spec {
        name: "publish",
        usage: "publish tcp|udp [HOSTIP:]PORT[-END] to IP:PORT",
        summary: "DNAT host ports (owner repl)",
    },
    Spec {
        name: "fw",
        usage: "fw ls | fw others | fw rm ID | fw free-port tcp|udp [HOSTIP] | fw forward [in IF] [out IF] | [-4|-6] fw policy [forward accept|drop]  (the tutorials' iptables -P FORWARD, -A FORWARD -j ACCEPT, SNAT, MASQUERADE and DNAT lines work too)",
        summary: "netsh's firewall rules (others: what netsh did not make, read-only); a host port free to publish; accept forwarding (and its replies); iptables' FORWARD policy",
    },
    Spec {
        name: "conntrack",
        usage: "conntrack ls | conntrack -L",
        summary: "connections the kernel tracks, with the addresses NAT gave their replies",
    },
    Spec {
        name: "sysctl",
        usage: "sysctl get KEY | sysctl set KEY VALUE  (sysctl -w KEY=VALUE and sysctl KEY work too)",
        summary: "kernel parameters under net.*",
    },
    Spec {
        name: "kv",
        usage: "kv get KEY | kv ls [PREFIX] | kv put KEY VALUE [ttl SECONDS] | kv rm KEY",
        summary: "netsh's key-value store",
    },
    Spec {
        name: "show",
        usage: "show [NS] [-br|--brief] [-a|--all] [--json]",
        summary: "topology of this namespace and the named ones (-br: links and rules; -a: IPv6 link-local and built-in ip rules too)",
    },
    Spec { name: "run", usage: "run FILE|PLUGIN [ARGS...]", summary: "run a recipe with this session's grants" },
    Spec { name: "plan", usage: "plan FILE|PLUGIN [ARGS...]", summary: "what a recipe would do" },
    Spec { name: "undo", usage: "undo [RUN-ID]", summary: "revert a run; without an id, the last command" },
    Spec {
        name: "audit",
        usage: "audit [verify] [--run ID] [--since T] [--json] [--follow]",
        summary: "the audit log",
    },
    Spec { name: "grants", usage: "grants", summary: "what this session may do" },
    Spec {
        name: "record",
        usage: "record start FILE.nsh | record stop",
        summary: "save successful commands as a batch file",
    },
    Spec { name: "help", usage: "help [COMMAND]", summary: "this list, or one command" },
    Spec { name: "exit", usage: "exit", summary: "leave (Ctrl-D too)" },
];

/// Owner label of firewall rules made from the REPL.
pub const OWNER: &str = "repl";

/// Split a line into words (double quotes group words).
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(current);
    }
    out
}

/// The closest command name, for "did you mean".
pub fn suggest(word: &str) -> Option<&'static str> {
    closest(word, COMMANDS.iter().map(|c| c.name))
}

/// The candidate within two edits of `word`, nearest first, for "did you mean".
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates.map(|c| (distance(word, c), c)).filter(|(d, _)| *d <= 2).min().map(|(_, n)| n)
}

/// Levenshtein distance.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

type Result<T> = std::result::Result<T, String>;

/// Cursor over a command's words.
struct Words<'a> {
    words: &'a [String],
    at: usize,
    usage: &'static str,
    /// `-6` (true) or `-4` (false) before the command, and whether it used it.
    v6: Option<bool>,
    v6_used: bool,
}

impl<'a> Words<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str> {
        let w = self.words.get(self.at).ok_or_else(|| format!("missing {what}; usage: {}", self.usage))?;
        self.at += 1;
        Ok(w)
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.at).map(String::as_str)
    }

    /// Consume `word` if it comes next (an optional keyword such as `dev`).
    fn skip(&mut self, word: &str) -> bool {
        let next = self.peek() == Some(word);
        self.at += usize::from(next);
        next
    }

    fn rest(&mut self) -> Vec<String> {
        let rest = self.words[self.at..].to_vec();
        self.at = self.words.len();
        rest
    }

    fn done(&self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(extra) => Err(format!("unexpected {extra:?}; usage: {}", self.usage)),
        }
    }

    fn ifname(&mut self, what: &str) -> Result<String> {
        let name = self.next(what)?;
        names::check_ifname(name).map_err(|e| e.to_string())?;
        Ok(name.to_string())
    }

    fn netns(&mut self) -> Result<String> {
        let name = self.next("namespace name")?;
        names::check_netns(name).map_err(|e| e.to_string())?;
        Ok(name.to_string())
    }

    fn cidr(&mut self) -> Result<IpNetwork> {
        let text = self.next("CIDR")?;
        text.parse().map_err(|_| format!("{text:?} is not a CIDR like 172.17.0.2/16"))
    }

    fn ip(&mut self) -> Result<IpAddr> {
        let text = self.next("IP address")?;
        text.parse().map_err(|_| format!("{text:?} is not an IP address"))
    }

    /// The family `-4`/`-6` named, for a command it applies to.
    fn family(&mut self) -> Option<bool> {
        self.v6_used = true;
        self.v6
    }

    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T> {
        let text = self.next(what)?;
        text.parse().map_err(|_| format!("{what} {text:?} is not a valid number"))
    }
}

/// Parse one line; `None` for a blank line or a comment.
pub fn parse(line: &str) -> Result<Option<Line>> {
    let line = line.split_once('#').map_or(line, |(code, _)| code);
    let words = match super::iptables_lines::spelled(pasted(words(line))?)? {
        Spelled::Words(words) => words,
        Spelled::Note(note) => return Ok(Some(Line::Note(note))),
    };
    let Flags { words: all, json, v6 } = iproute2_spelling(words)?;
    if all.is_empty() {
        return Ok(None);
    }
    let (ns, start) = match all.first().map(String::as_str) {
        Some("-n") => {
            let name = all.get(1).ok_or("-n needs a namespace name")?;
            names::check_netns(name).map_err(|e| e.to_string())?;
            (Some(name.clone()), 2)
        }
        _ => (None, 0),
    };
    let words = &all[start..];
    let name = words.first().ok_or("-n NS needs a command after it")?;
    let spec = COMMANDS.iter().find(|c| c.name == name).ok_or_else(|| match suggest(name) {
        Some(s) => format!("unknown command {name:?}; did you mean {s:?}? (help lists commands)"),
        None => format!("unknown command {name:?} (help lists commands)"),
    })?;
    let mut w = Words { words, at: 1, usage: spec.usage, v6, v6_used: false };
    let parsed = command(spec.name, &ns, &mut w)?;
    w.done()?;
    if ns.is_some() && !matches!(parsed, Line::Ops(_) | Line::Show { .. }) {
        return Err(format!("-n does not apply to {name}"));
    }
    let listing = matches!(&parsed, Line::Ops(ops) if !ops.is_empty() && ops.iter().all(Op::is_listing));
    match (v6.filter(|_| !w.v6_used), listing, parsed) {
        (Some(v6), true, Line::Ops(ops)) => Ok(Some(Line::OfFamily { ops, json, v6 })),
        (_, true, Line::Ops(ops)) if json => Ok(Some(Line::Json(ops))),
        _ if json => Err("-j applies to listings (ip -j link, ip -j addr, ip -j route, ip -j neigh)".into()),
        (Some(v6), _, parsed) => check_family(v6, &parsed).map(|()| Some(parsed)),
        (None, _, parsed) => Ok(Some(parsed)),
    }
}

/// `-4`/`-6` on a command that takes the family from its addresses: they
/// must agree.
fn check_family(v6: bool, line: &Line) -> Result<()> {
    let family = |op: &Op| match op {
        Op::AddrAdd { cidr, .. } | Op::AddrDelete { cidr, .. } => Some(cidr.is_ipv6()),
        Op::RouteAdd { route, .. } | Op::RouteDelete { route, .. } => Some(route.dest.is_ipv6()),
        Op::NeighAdd { ip, .. } | Op::NeighDelete { ip, .. } => Some(ip.is_ipv6()),
        _ => None,
    };
    let flag = if v6 { "-6" } else { "-4" };
    match line {
        Line::Ops(ops) if !ops.is_empty() && ops.iter().all(|op| family(op) == Some(v6)) => Ok(()),
        Line::Ops(ops) if ops.iter().all(|op| family(op).is_some()) => {
            Err(format!("{flag} does not match the address family of {}", ops[0]))
        }
        _ => Err(format!(
            "{flag} applies to listings and to adding and deleting addresses, routes, neighbours and rules"
        )),
    }
}

/// A tutorial's line as the shell reads it: without a leading `sudo` (netsh
/// runs as root already), and `nsenter --net=/run/netns/NS CMD` as `netns
/// exec NS CMD`.
fn pasted(mut words: Vec<String>) -> Result<Vec<String>> {
    if words.len() > 1 && words[0] == "sudo" {
        words.remove(0);
    }
    if words.first().map(String::as_str) != Some("nsenter") {
        return Ok(words);
    }
    let (path, command) = match words.get(1).map(String::as_str) {
        Some("--net") => (words.get(2).cloned().unwrap_or_default(), 3),
        Some(flag) => (flag.strip_prefix("--net=").unwrap_or_default().to_string(), 2),
        None => (String::new(), 2),
    };
    let name = path
        .strip_prefix("/run/netns/")
        .or_else(|| path.strip_prefix("/var/run/netns/"))
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or("nsenter: netsh spells nsenter --net=/run/netns/NS CMD (netns exec NS CMD); other namespaces have no name to grant")?;
    let mut exec = vec!["netns".to_string(), "exec".into(), name.to_string()];
    exec.extend(words.into_iter().skip(command));
    Ok(exec)
}

/// A line's words with iproute2's options taken out.
struct Flags {
    words: Vec<String>,
    /// `-j`: print a listing as JSON.
    json: bool,
    /// `-6` (true) or `-4` (false).
    v6: Option<bool>,
}

/// Lines pasted from iproute2 tutorials: a leading `ip`, `-netns NS` for
/// `-n NS`, `-br` (listings are one line per object already), `-j` (JSON),
/// `-4`/`-6`, objects by prefix (`a`, `l`, `r`, `ru`, `address`),
/// `show`/`list` for `ls`, and a bare object (`ip a`, `link`) lists.
fn iproute2_spelling(mut words: Vec<String>) -> Result<Flags> {
    if words.len() > 1 && (words[0] == "ip" || words[0] == "bridge" && words[1] == "fdb") {
        words.remove(0);
    }
    let (mut json, mut v6, mut at) = (false, None, 0);
    while let Some(flag) = words.get(at).filter(|w| w.starts_with('-')) {
        match flag.as_str() {
            "-n" | "-netns" => at += 2,
            "-br" | "-brief" => {
                words.remove(at);
            }
            "-j" | "-json" => {
                json = true;
                words.remove(at);
            }
            "-4" | "-6" => {
                v6 = Some(flag == "-6");
                words.remove(at);
            }
            other => {
                return Err(format!(
                    "ip option {other} is not supported here (-n NS, -4, -6, -br and -j are); listings are one line per object already"
                ));
            }
        }
    }
    Ok(Flags { words: object_spelling(words), json, v6 })
}

/// The object words of [`iproute2_spelling`]: `ip a` is `addr ls`.
fn object_spelling(mut words: Vec<String>) -> Vec<String> {
    let object = match words.first().map(String::as_str) {
        Some("-n" | "-netns") => {
            words[0] = "-n".into();
            2
        }
        _ => 0,
    };
    let Some(word) = words.get(object) else { return words };
    let full = ["link", "address", "route", "rule", "neighbour"].iter().find(|full| full.starts_with(word.as_str()));
    let object_name = match (word.as_str(), full) {
        ("netns", _) => "netns",
        ("fdb", _) => "fdb",
        ("neighbor", _) | (_, Some(&"neighbour")) => "neigh",
        (_, Some(&"address")) => "addr",
        (_, Some(full)) => full,
        _ => return words,
    };
    words[object] = object_name.into();
    match words.get(object + 1).map(String::as_str) {
        None => words.push("ls".into()),
        Some("show" | "list" | "lst" | "sh") => words[object + 1] = "ls".into(),
        Some(_) => {}
    }
    words
}

fn command(name: &str, ns: &Ns, w: &mut Words) -> Result<Line> {
    let ops = |v: Vec<Op>| Ok(Line::Ops(v));
    match name {
        "netns" => match w.next("add, del, attach, alias, identify, exec or ls")? {
            "add" => ops(vec![Op::NetnsCreate { name: w.netns()? }]),
            "del" | "delete" => ops(vec![Op::NetnsDelete { name: w.netns()? }]),
            "attach" => {
                let name = w.netns()?;
                ops(vec![Op::NetnsAttach { name, pid: w.number("PID")? }])
            }
            "alias" => {
                let name = w.netns()?;
                ops(vec![Op::NetnsAlias { name, of: w.netns()? }])
            }
            "identify" => ops(vec![Op::NetnsIdentify { pid: w.number("PID")? }]),
            "exec" => {
                let name = w.netns()?;
                let argv: Vec<String> = w.rest().into_iter().skip_while(|a| a == "--").collect();
                if argv.is_empty() {
                    return Err(format!("missing CMD; usage: {}", w.usage));
                }
                ops(vec![Op::NetnsExec { name, argv }])
            }
            "ls" | "list" => ops(vec![Op::NetnsList]),
            other => Err(format!("netns {other:?}: use add, del, attach, alias, identify, exec or ls")),
        },
        "link" => link(ns, w),
        "addr" => match w.next("add, del or ls")? {
            verb @ ("add" | "del") => {
                let cidr = w.cidr()?;
                if w.next("dev")? != "dev" {
                    return Err(format!("usage: {}", w.usage));
                }
                let dev = w.ifname("interface")?;
                let ns = ns.clone();
                if verb == "del" {
                    return ops(vec![Op::AddrDelete { ns, dev, cidr }]);
                }
                let nodad = w.peek() == Some("nodad");
                if nodad {
                    w.next("nodad")?;
                }
                ops(vec![Op::AddrAdd { ns, dev, cidr, nodad }])
            }
            "ls" | "show" => {
                let dev = match w.peek() {
                    Some("dev") => {
                        w.next("dev")?;
                        Some(w.ifname("interface")?)
                    }
                    _ => None,
                };
                ops(vec![Op::AddrList { ns: ns.clone(), dev }])
            }
            other => Err(format!("addr {other:?}: use add, del or ls")),
        },
        "route" => route(ns, w),
        "rule" => routing_rule(ns, w),
        "neigh" => neigh(ns, w),
        "fdb" => fdb(ns, w),
        "nat" => {
            let rule = nat(w)?;
            ops(vec![Op::FwAdd { ns: ns.clone(), owner: OWNER.into(), rule }])
        }
        "publish" => publish(ns, w),
        "conntrack" => match w.next("ls or -L")? {
            "ls" | "-L" | "list" => ops(vec![Op::ConntrackList { ns: ns.clone() }]),
            other => Err(format!("conntrack {other:?}: use ls (or -L)")),
        },
        "fw" => match w.next("ls, others, rm, free-port, forward or policy")? {
            "forward" => {
                let (mut input, mut output) = (None, None);
                while let Some(word) = w.peek() {
                    w.next("")?;
                    match word {
                        "in" => input = Some(w.ifname("interface")?),
                        "out" => output = Some(w.ifname("interface")?),
                        other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
                    }
                }
                if input.is_none() && output.is_none() {
                    return Err("fw forward needs in IF, out IF or both (accepting everything is no rule)".into());
                }
                let rule = FwRule::ForwardAccept { input, output };
                ops(vec![Op::FwAdd { ns: ns.clone(), owner: OWNER.into(), rule }])
            }
            "policy" => forward_policy(ns, w),
            "ls" => ops(vec![Op::FwList { ns: ns.clone() }]),
            "others" => ops(vec![Op::FwForeignList { ns: ns.clone() }]),
            "rm" => ops(vec![Op::FwRemove { ns: ns.clone(), id: w.next("rule id")?.into() }]),
            "free-port" => {
                let proto = proto(w)?;
                let host_ip = match w.peek() {
                    Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| format!("{ip:?} is not an IP address"))?),
                    None => None,
                };
                host_ip.map(|_| w.next("host IP")).transpose()?;
                ops(vec![Op::FwFreePort { ns: ns.clone(), proto, host_ip }])
            }
            other => Err(format!("fw {other:?}: use ls, others, rm, free-port, forward or policy")),
        },
        "sysctl" => match w.next("get or set")? {
            "get" | "-n" => ops(vec![Op::SysctlGet { ns: ns.clone(), key: key(w)? }]),
            "set" => {
                let key = key(w)?;
                ops(vec![Op::SysctlSet { ns: ns.clone(), key, value: w.next("value")?.into() }])
            }
            // sysctl(8)'s own spellings: `sysctl -w KEY=VALUE`, `sysctl KEY=VALUE`, `sysctl KEY`.
            "-w" => sysctl_assignment(ns, w.next("KEY=VALUE")?),
            word if word.contains('=') => sysctl_assignment(ns, word),
            word if !word.starts_with('-') => {
                names::sysctl_path(word).map_err(|e| e.to_string())?;
                ops(vec![Op::SysctlGet { ns: ns.clone(), key: word.into() }])
            }
            other => Err(format!("sysctl {other:?}: use get or set (or sysctl -w KEY=VALUE)")),
        },
        "kv" => match w.next("get, ls, put or rm")? {
            "get" => ops(vec![Op::KvGet { key: w.next("key")?.into() }]),
            "ls" | "list" => {
                let prefix = if w.peek().is_some() { w.next("prefix")?.to_string() } else { String::new() };
                ops(vec![Op::KvList { prefix }])
            }
            "put" => {
                let key = w.next("key")?.to_string();
                let value = w.next("value")?.to_string();
                match w.peek() {
                    Some("ttl") => {
                        w.next("ttl")?;
                        let ttl_secs: u32 = w.number("seconds")?;
                        if ttl_secs == 0 {
                            return Err("ttl must be at least 1 second".into());
                        }
                        ops(vec![Op::KvPutLease { key, value, ttl_secs }])
                    }
                    _ => ops(vec![Op::KvPut { key, value }]),
                }
            }
            "rm" | "del" | "delete" => ops(vec![Op::KvDelete { key: w.next("key")?.into() }]),
            other => Err(format!("kv {other:?}: use get, ls, put or rm")),
        },
        "show" => {
            let mut show_ns = ns.clone();
            let mut style = super::show::Style::default();
            while let Some(word) = w.peek() {
                w.next("")?;
                match word {
                    "--json" => style.json = true,
                    "-br" | "--brief" => style.brief = true,
                    "-a" | "--all" => style.all = true,
                    name => {
                        names::check_netns(name).map_err(|e| e.to_string())?;
                        show_ns = Some(name.into());
                    }
                }
            }
            Ok(Line::Show { ns: show_ns, style })
        }
        "run" => Ok(Line::Run { target: w.next("FILE or PLUGIN")?.into(), args: w.rest() }),
        "plan" => Ok(Line::Plan { target: w.next("FILE or PLUGIN")?.into(), args: w.rest() }),
        "undo" => Ok(Line::Undo(w.peek().map(String::from).inspect(|_| w.at += 1))),
        "audit" => audit(w),
        "grants" => Ok(Line::Grants),
        "help" => Ok(Line::Help(w.peek().map(String::from).inspect(|_| w.at += 1))),
        "record" => match w.next("start or stop")? {
            "start" => Ok(Line::RecordStart(w.next("FILE.nsh")?.into())),
            "stop" => Ok(Line::RecordStop),
            other => Err(format!("record {other:?}: use start FILE.nsh or stop")),
        },
        "exit" | "quit" => Ok(Line::Exit),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn audit(w: &mut Words) -> Result<Line> {
    let mut q = AuditQuery::default();
    while let Some(word) = w.peek() {
        w.next("")?;
        match word {
            "verify" => q.verify = true,
            "--run" => q.run = Some(w.next("run id")?.into()),
            "--since" => q.since = Some(w.next("time or age")?.into()),
            "--json" => q.json = true,
            "--follow" => q.follow = true,
            other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
        }
    }
    Ok(Line::Audit(q))
}

/// `KEY=VALUE`, as `sysctl -w` takes it.
fn sysctl_assignment(ns: &Ns, word: &str) -> Result<Line> {
    let (key, value) = word.split_once('=').ok_or_else(|| format!("sysctl -w {word:?}: use KEY=VALUE"))?;
    names::sysctl_path(key).map_err(|e| e.to_string())?;
    Ok(Line::Ops(vec![Op::SysctlSet { ns: ns.clone(), key: key.into(), value: value.into() }]))
}

fn key(w: &mut Words) -> Result<String> {
    let key = w.next("KEY")?;
    names::sysctl_path(key).map_err(|e| e.to_string())?;
    Ok(key.into())
}

fn link(ns: &Ns, w: &mut Words) -> Result<Line> {
    match w.next("add, set, del or ls")? {
        "add" => {
            if w.peek() == Some("type") {
                return Err("name the link (link add veth0 type veth peer veth1): netsh does not let the kernel pick names, which grants could not scope".into());
            }
            // iproute2 writes `link add link PARENT name NAME type macvlan`; `link add NAME link PARENT` works too.
            let mut parent = None;
            if w.peek() == Some("link") {
                w.next("link")?;
                parent = Some(w.ifname("parent interface")?);
                if w.next("name")? != "name" {
                    return Err(format!("usage: {}", w.usage));
                }
            }
            let name = w.ifname("interface name")?;
            if parent.is_none() && w.peek() == Some("link") {
                w.next("link")?;
                parent = Some(w.ifname("parent interface")?);
            }
            if w.next("type")? != "type" {
                return Err(format!("usage: {}", w.usage));
            }
            match w.next("bridge, veth, vxlan or macvlan")? {
                "macvlan" => macvlan(ns, name, parent, w),
                kind @ ("vxlan" | "bridge" | "veth") if parent.is_some() => {
                    Err(format!("link PARENT applies to macvlan devices, not {kind}"))
                }
                "vxlan" => vxlan(ns, name, w),
                "bridge" => Ok(Line::Ops(vec![Op::LinkAddBridge { ns: ns.clone(), name, mtu: None }])),
                "veth" => {
                    let mut peer = format!("{name}-peer");
                    let mut peer_ns = None;
                    while let Some(word) = w.peek() {
                        w.next("")?;
                        match word {
                            "peer" => {
                                if w.peek() == Some("name") {
                                    w.next("")?;
                                }
                                peer = w.ifname("peer name")?;
                            }
                            "netns" => peer_ns = Some(w.netns()?),
                            other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
                        }
                    }
                    let spec = VethSpec {
                        name,
                        peer,
                        peer_ns,
                        peer_mac: None,
                        master: None,
                        up: false,
                        mtu: None,
                        hairpin: false,
                    };
                    Ok(Line::Ops(vec![Op::LinkAddVeth { ns: ns.clone(), spec }]))
                }
                other => Err(format!("link type {other:?} is not one netsh makes: use bridge, veth, vxlan or macvlan")),
            }
        }
        "set" => {
            w.skip("dev");
            let name = w.ifname("interface name")?;
            let mut ops = Vec::new();
            let mut moved_to = None;
            while let Some(word) = w.peek() {
                w.next("")?;
                let ns = ns.clone();
                let name = name.clone();
                match word {
                    "up" => ops.push(Op::LinkSetUp { ns, name, up: true }),
                    "down" => ops.push(Op::LinkSetUp { ns, name, up: false }),
                    "master" => ops.push(Op::LinkSetMaster { ns, name, master: Some(w.ifname("bridge")?) }),
                    "nomaster" => ops.push(Op::LinkSetMaster { ns, name, master: None }),
                    "mtu" => ops.push(Op::LinkSetMtu { ns, name, mtu: w.number("mtu")? }),
                    "address" => ops.push(Op::LinkSetMac { ns, name, mac: mac(w)? }),
                    "netns" => moved_to = Some(w.netns()?),
                    other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
                }
            }
            // Like iproute2, the move happens last so the other changes apply where the link is now.
            if let Some(target) = moved_to {
                ops.push(Op::LinkSetNetns { ns: ns.clone(), name: name.clone(), target: Some(target) });
            }
            if ops.is_empty() {
                return Err(format!("link set {name}: nothing to change; usage: {}", w.usage));
            }
            Ok(Line::Ops(ops))
        }
        "del" | "delete" => {
            w.skip("dev");
            let name = w.ifname("interface name")?;
            // `ip link delete br0 type bridge`: the type says nothing more.
            if w.skip("type") {
                w.next("type")?;
            }
            Ok(Line::Ops(vec![Op::LinkDelete { ns: ns.clone(), name }]))
        }
        "ls" | "show" => {
            w.skip("dev");
            match w.peek() {
                Some(_) => Ok(Line::Ops(vec![Op::LinkGet { ns: ns.clone(), name: w.ifname("interface name")? }])),
                None => Ok(Line::Ops(vec![Op::LinkList { ns: ns.clone() }])),
            }
        }
        other => Err(format!("link {other:?}: use add, set, del or ls")),
    }
}

/// `nat masquerade CIDR [out-not IF | out IF]`, `nat snat CIDR to IP [out IF]`.
fn nat(w: &mut Words) -> Result<FwRule> {
    let verb = w.next("masquerade or snat")?;
    let source = w.cidr()?;
    let to = match verb {
        "masquerade" => None,
        "snat" => {
            if w.next("to")? != "to" {
                return Err(format!("usage: {}", w.usage));
            }
            let text = w.next("IP")?;
            Some(text.parse::<IpAddr>().map_err(|_| format!("{text:?} is not an IP address"))?)
        }
        other => return Err(format!("nat {other:?}: use masquerade or snat")),
    };
    let rule = match (w.peek(), to) {
        (Some("out-not"), None) => {
            w.next("out-not")?;
            FwRule::Masquerade { source, out_not: Some(w.ifname("interface")?) }
        }
        (Some("out"), to) => {
            w.next("out")?;
            FwRule::Snat { source, out: Some(w.ifname("interface")?), to }
        }
        (_, None) => FwRule::Masquerade { source, out_not: None },
        (_, to) => FwRule::Snat { source, out: None, to },
    };
    crate::firewall::check_rule(&rule).map_err(|e| e.to_string())?;
    Ok(rule)
}

/// `... type macvlan [mode private|vepa|bridge|passthru]` (vepa, the kernel's default).
fn macvlan(ns: &Ns, name: String, parent: Option<String>, w: &mut Words) -> Result<Line> {
    let parent = parent
        .ok_or_else(|| format!("a macvlan device needs its parent: link add link PARENT name {name} type macvlan"))?;
    let mode = match w.peek() {
        Some("mode") => {
            w.next("mode")?;
            w.next("mode")?.parse()?
        }
        _ => crate::ops::MacvlanMode::Vepa,
    };
    Ok(Line::Ops(vec![Op::LinkAddMacvlan { ns: ns.clone(), name, parent, mode }]))
}

/// `... type vxlan id VNI [dstport P] [local IP] [dev IF] [nolearning] [proxy]`.
fn vxlan(ns: &Ns, name: String, w: &mut Words) -> Result<Line> {
    let mut spec = VxlanSpec {
        name,
        vni: 0,
        port: 4789,
        local: None,
        dev: None,
        learning: true,
        proxy: false,
        mtu: None,
        master: None,
        up: false,
    };
    while let Some(word) = w.peek() {
        w.next("")?;
        match word {
            "id" | "vni" => spec.vni = w.number("VXLAN id")?,
            "dstport" => spec.port = w.number("port")?,
            "local" => spec.local = Some(w.ip()?),
            "dev" => spec.dev = Some(w.ifname("interface")?),
            "nolearning" => spec.learning = false,
            "learning" => spec.learning = true,
            "proxy" => spec.proxy = true,
            other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
        }
    }
    if spec.vni == 0 || spec.vni >= 1 << 24 {
        return Err("a vxlan link needs `id VNI` (1-16777215)".into());
    }
    Ok(Line::Ops(vec![Op::LinkAddVxlan { ns: ns.clone(), spec }]))
}

/// An optional trailing `dev IF`.
fn optional_dev(w: &mut Words) -> Result<Option<String>> {
    match w.peek() {
        Some("dev") => {
            w.next("dev")?;
            Ok(Some(w.ifname("interface")?))
        }
        _ => Ok(None),
    }
}

/// A MAC address in the kernel's notation.
fn mac(w: &mut Words) -> Result<String> {
    let text = w.next("MAC address")?;
    names::parse_mac(text).map(|m| names::format_mac(&m)).map_err(|e| e.to_string())
}

/// `neigh add IP lladdr MAC dev IF [nud permanent] | neigh del IP dev IF | neigh ls [dev IF]`.
fn neigh(ns: &Ns, w: &mut Words) -> Result<Line> {
    let ns = ns.clone();
    match w.next("add, del or ls")? {
        "ls" => Ok(Line::Ops(vec![Op::NeighList { ns, dev: optional_dev(w)? }])),
        verb @ ("add" | "del" | "delete") => {
            let ip = w.ip()?;
            let (mut dev, mut lladdr) = (None, None);
            while let Some(word) = w.peek() {
                w.next("")?;
                match word {
                    "lladdr" if verb == "add" => lladdr = Some(mac(w)?),
                    "dev" => dev = Some(w.ifname("interface")?),
                    "nud" if verb == "add" && w.peek() == Some("permanent") => {
                        w.next("")?;
                    }
                    other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
                }
            }
            let dev = dev.ok_or_else(|| format!("missing dev IF; usage: {}", w.usage))?;
            match (verb, lladdr) {
                ("add", Some(mac)) => Ok(Line::Ops(vec![Op::NeighAdd { ns, dev, ip, mac }])),
                ("add", None) => Err(format!("missing lladdr MAC; usage: {}", w.usage)),
                _ => Ok(Line::Ops(vec![Op::NeighDelete { ns, dev, ip }])),
            }
        }
        other => Err(format!("neigh {other:?}: use add, del or ls")),
    }
}

/// `fdb append|add MAC dev IF [dst IP] [self] [permanent] | fdb del ... | fdb ls [dev IF]`.
fn fdb(ns: &Ns, w: &mut Words) -> Result<Line> {
    let ns = ns.clone();
    let verb = w.next("append, del or ls")?;
    if verb == "ls" {
        return Ok(Line::Ops(vec![Op::FdbList { ns, dev: optional_dev(w)? }]));
    }
    if !matches!(verb, "append" | "add" | "del" | "delete") {
        return Err(format!("fdb {verb:?}: use append, del or ls"));
    }
    let mac = mac(w)?;
    let (mut dev, mut dst) = (None, None);
    while let Some(word) = w.peek() {
        w.next("")?;
        match word {
            "dev" => dev = Some(w.ifname("interface")?),
            "dst" => dst = Some(w.ip()?),
            "self" | "permanent" => {}
            other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
        }
    }
    let dev = dev.ok_or_else(|| format!("missing dev IF; usage: {}", w.usage))?;
    let entry = Fdb { dev, mac, dst };
    Ok(Line::Ops(vec![match verb {
        "append" | "add" => Op::FdbAdd { ns, entry },
        _ => Op::FdbDelete { ns, entry },
    }]))
}

fn route(ns: &Ns, w: &mut Words) -> Result<Line> {
    let verb = w.next("add, del or ls")?;
    if verb == "get" {
        let dest = w.ip()?;
        let from = if w.skip("from") { Some(w.ip()?) } else { None };
        return Ok(Line::Ops(vec![Op::RouteGet { ns: ns.clone(), dest, from }]));
    }
    if matches!(verb, "ls" | "show") {
        let table = match w.peek() {
            Some("table") => {
                w.next("table")?;
                Some(table_number(w.next("table number or all")?, true)?)
            }
            _ => None,
        };
        return Ok(Line::Ops(vec![Op::RouteList { ns: ns.clone(), table }]));
    }
    if !matches!(verb, "add" | "del") {
        return Err(format!("route {verb:?}: use add, del, ls or get"));
    }
    let dest_text = w.peek().unwrap_or("");
    let dest: Option<IpNetwork> = if dest_text == "default" {
        w.next("")?;
        None
    } else {
        Some(w.cidr()?)
    };
    let mut route = RouteSpec {
        dest: IpNetwork::V4(Ipv4Addr::UNSPECIFIED.into()),
        via: None,
        dev: None,
        onlink: false,
        metric: None,
        src: None,
        table: None,
        proto: None,
        scope: None,
    };
    while let Some(word) = w.peek() {
        w.next("")?;
        match word {
            "via" => route.via = Some(w.ip()?),
            "dev" => route.dev = Some(w.ifname("interface")?),
            "onlink" => route.onlink = true,
            "metric" => route.metric = Some(w.number("metric")?),
            "src" => route.src = Some(w.ip()?),
            "table" => route.table = Some(table_number(w.next("table")?, false)?).filter(|t| *t != MAIN_TABLE),
            "proto" | "protocol" => route.proto = Some(route_number(w, ROUTE_PROTOS, "protocol")?),
            "scope" => route.scope = Some(route_number(w, ROUTE_SCOPES, "scope")?),
            other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
        }
    }
    route.dest = match dest {
        Some(d) => d,
        None => {
            let any = if w.family().unwrap_or(false) || route.via.is_some_and(|v| v.is_ipv6()) {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            IpNetwork::new(any, 0).map_err(|e| e.to_string())?
        }
    };
    if route.via.is_none() && route.dev.is_none() {
        return Err("a route needs via IP or dev IF".into());
    }
    if let Some(bad) = route.via.iter().chain(&route.src).find(|ip| ip.is_ipv6() != route.dest.is_ipv6()) {
        return Err(format!("{bad} and the destination {} are of different IP versions", route.dest));
    }
    let ns = ns.clone();
    Ok(Line::Ops(vec![if verb == "add" { Op::RouteAdd { ns, route } } else { Op::RouteDelete { ns, route } }]))
}

/// `fw policy` (both families' FORWARD policies) and `fw policy forward
/// accept|drop` (both, or the family `-4`/`-6` names).
fn forward_policy(ns: &Ns, w: &mut Words) -> Result<Line> {
    let families = match w.family() {
        Some(v6) => vec![v6],
        None => vec![false, true],
    };
    let ns = ns.clone();
    let Some(chain) = w.peek() else {
        return Ok(Line::Ops(families.into_iter().map(|v6| Op::FwForwardPolicy { ns: ns.clone(), v6 }).collect()));
    };
    w.next("")?;
    if !chain.eq_ignore_ascii_case("forward") {
        return Err(format!(
            "fw policy {chain:?}: netsh sets the FORWARD chain's policy (fw policy forward accept|drop)"
        ));
    }
    let policy = match w.next("accept or drop")?.to_ascii_lowercase().as_str() {
        "accept" => ChainPolicy::Accept,
        "drop" => ChainPolicy::Drop,
        other => return Err(format!("policy {other:?}: use accept or drop")),
    };
    Ok(Line::Ops(families.into_iter().map(|v6| Op::FwSetForwardPolicy { ns: ns.clone(), v6, policy }).collect()))
}

/// `rule add|del SELECTOR... [ACTION]` and `rule ls`, as `ip rule` takes them.
fn routing_rule(ns: &Ns, w: &mut Words) -> Result<Line> {
    let verb = w.next("add, del or ls")?;
    let ns = ns.clone();
    let adding = match verb {
        "ls" => return Ok(Line::Ops(vec![Op::RoutingRuleList { ns }])),
        "add" => true,
        "del" | "delete" => false,
        other => return Err(format!("rule {other:?}: use add, del or ls")),
    };
    let mut rule = RoutingRule::default();
    while let Some(word) = w.peek() {
        w.next("")?;
        match word {
            "pref" | "preference" | "priority" | "order" => rule.priority = Some(w.number("priority")?),
            "from" if w.peek() == Some("all") => drop(w.next("all")),
            "from" => rule.from = Some(w.cidr()?),
            "to" if w.peek() == Some("all") => drop(w.next("all")),
            "to" => rule.to = Some(w.cidr()?),
            "iif" | "dev" => rule.iif = Some(w.ifname("interface")?),
            "oif" => rule.oif = Some(w.ifname("interface")?),
            "fwmark" => rule.fwmark = Some(mark(w.next("mark")?)?),
            "lookup" | "table" => rule.action = Some(RuleAction::Lookup(rule_table(w.next("table")?)?)),
            "blackhole" => rule.action = Some(RuleAction::Blackhole),
            "unreachable" => rule.action = Some(RuleAction::Unreachable),
            "prohibit" => rule.action = Some(RuleAction::Prohibit),
            other => return Err(format!("unexpected {other:?}; usage: {}", w.usage)),
        }
    }
    let named = rule.from.iter().chain(&rule.to).map(IpNetwork::is_ipv6).next();
    rule.v6 = match (w.family(), named) {
        (Some(flag), Some(by_address)) if flag != by_address => {
            return Err(format!("-{} does not match the rule's addresses", if flag { 6 } else { 4 }));
        }
        (flag, by_address) => flag.or(by_address).unwrap_or(false),
    };
    rule.check().map_err(|e| e.to_string())?;
    Ok(Line::Ops(vec![if adding {
        // `ip rule add` without an action looks up main.
        rule.action.get_or_insert(RuleAction::Lookup(MAIN_TABLE));
        Op::RoutingRuleAdd { ns, rule }
    } else {
        Op::RoutingRuleDelete { ns, rule }
    }]))
}

/// A rule may look up any table, local and default too.
fn rule_table(word: &str) -> Result<u32> {
    match word {
        "local" | "255" => Ok(LOCAL_TABLE),
        "default" => Ok(DEFAULT_TABLE),
        other => table_number(other, false),
    }
}

/// A firewall mark: decimal or `0x` hexadecimal.
fn mark(text: &str) -> Result<u32> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("fwmark {text:?}: use a number such as 1 or 0x10"))
}

/// A route protocol or scope: a name iproute2 knows, or a number.
fn route_number(w: &mut Words, names: &[(u8, &str)], what: &str) -> Result<u8> {
    let word = w.next(what)?;
    named_number(names, word).ok_or_else(|| {
        let known: Vec<&str> = names.iter().map(|(_, name)| *name).collect();
        format!("{what} {word:?}: use {} or a number up to 255", known.join(", "))
    })
}

/// A routing table: a number, `main`, or (for listings, `all_ok`) `all` (0).
fn table_number(word: &str, all_ok: bool) -> Result<u32> {
    match word {
        "main" => Ok(MAIN_TABLE),
        "all" if all_ok => Ok(0),
        n => match n.parse::<u32>() {
            Ok(t) if t > 0 && t != 255 => Ok(t),
            _ => Err(format!(
                "table {n:?}: use a number from 1 to 2^32-1 (not 255, local), main{}",
                if all_ok { " or all" } else { "" }
            )),
        },
    }
}

fn proto(w: &mut Words) -> Result<Proto> {
    match w.next("tcp or udp")? {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        other => Err(format!("protocol {other:?}: use tcp or udp")),
    }
}

fn publish(ns: &Ns, w: &mut Words) -> Result<Line> {
    let proto = proto(w)?;
    let host = w.next("[HOSTIP:]PORT[-END]")?;
    let (host_ip, ports) = match host.rsplit_once(':') {
        Some((ip, ports)) => {
            (crate::ops::published_on(ip.parse().map_err(|_| format!("{ip:?} is not an IP address"))?), ports)
        }
        None => (None, host),
    };
    let port = |t: &str| t.parse::<u16>().map_err(|_| format!("{t:?} is not a port"));
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if first > last {
        return Err(format!("port range {first}-{last} is reversed"));
    }
    if w.next("to")? != "to" {
        return Err(format!("usage: {}", w.usage));
    }
    let dest = w.next("IP:PORT")?;
    let (to_ip, to_port) = dest.rsplit_once(':').ok_or_else(|| format!("{dest:?} is not IP:PORT"))?;
    let rule = FwRule::Publish {
        proto,
        host_ip,
        first,
        last,
        to_ip: to_ip.parse().map_err(|_| format!("{to_ip:?} is not an IP address"))?,
        to_port: port(to_port)?,
    };
    Ok(Line::Ops(vec![Op::FwAdd { ns: ns.clone(), owner: OWNER.into(), rule }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(line: &str) -> Vec<Op> {
        match parse(line) {
            Ok(Some(Line::Ops(ops))) => ops,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    fn err(line: &str) -> String {
        parse(line).expect_err(line)
    }

    #[test]
    fn overlay_lines_from_iproute2() {
        assert!(matches!(&ops("ip link add vx0 type vxlan id 42 dstport 4789 local 10.0.0.1 nolearning proxy")[..],
            [Op::LinkAddVxlan { spec, .. }] if spec.vni == 42 && !spec.learning && spec.proxy && spec.local.is_some()));
        assert!(matches!(&ops("ip neigh add 10.0.9.3 lladdr 02:AA:00:00:00:01 dev vx0 nud permanent")[..],
            [Op::NeighAdd { mac, dev, .. }] if mac == "02:aa:00:00:00:01" && dev == "vx0"));
        assert!(matches!(&ops("ip n")[..], [Op::NeighList { dev: None, .. }]));
        assert!(matches!(&ops("bridge fdb append 02:aa:00:00:00:01 dev vx0 dst 192.168.50.12 self permanent")[..],
            [Op::FdbAdd { entry, .. }] if entry.dst.is_some()));
        assert!(matches!(&ops("fdb ls dev vx0")[..], [Op::FdbList { dev: Some(_), .. }]));
        for bad in
            ["link add vx0 type vxlan", "neigh add 10.0.0.1 dev vx0", "fdb append 02:aa dev vx0", "neigh del 10.0.0.1"]
        {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn routing_rules() {
        let rule = |line: &str| match &ops(line)[..] {
            [Op::RoutingRuleAdd { rule, .. } | Op::RoutingRuleDelete { rule, .. }] => rule.clone(),
            other => panic!("{other:?}"),
        };
        let r = rule("ip rule add from 10.1.0.0/24 lookup 100 pref 1000");
        assert_eq!(r.to_string(), "pref 1000 from 10.1.0.0/24 lookup 100");
        assert_eq!(rule("ip ru add to 10.2.0.0/16 iif br0").to_string(), "from all to 10.2.0.0/16 iif br0 lookup main");
        assert_eq!(rule("rule add fwmark 0x10 table 7 oif eth1").to_string(), "from all oif eth1 fwmark 0x10 lookup 7");
        assert_eq!(rule("rule add from all prohibit").action, Some(RuleAction::Prohibit));
        let v6 = rule("ip -6 rule add lookup 100");
        assert!(v6.v6 && v6.from.is_none());
        assert!(rule("rule add from fd00::/64 blackhole").v6);
        let del = rule("ip rule del pref 1000");
        assert_eq!((del.priority, del.action, del.v6), (Some(1000), None, false));
        assert_eq!(ops("ip rule"), [Op::RoutingRuleList { ns: None }]);
        assert_eq!(ops("-n c1 rule show"), [Op::RoutingRuleList { ns: Some("c1".into()) }]);
        assert!(err("ip -4 rule add from fd00::/64 lookup 1").contains("does not match"));
        assert!(err("rule add from 10.0.0.0/8 to fd00::/8").contains("not an IPv4 prefix"));
        assert!(err("rule add fwmark x lookup 1").contains("fwmark"));
        assert!(err("rule add lookup 0").contains("table"));
        assert!(err("rule add via 10.0.0.1").contains("unexpected"));
        assert!(matches!(parse("ip -6 rule"), Ok(Some(Line::OfFamily { v6: true, json: false, .. }))));
    }

    #[test]
    fn forward_policy_lines() {
        let set = |v6, policy| Op::FwSetForwardPolicy { ns: None, v6, policy };
        assert_eq!(ops("iptables -P FORWARD DROP"), [set(false, ChainPolicy::Drop)]);
        assert_eq!(ops("ip6tables -P FORWARD ACCEPT"), [set(true, ChainPolicy::Accept)]);
        assert_eq!(ops("fw policy forward drop"), [set(false, ChainPolicy::Drop), set(true, ChainPolicy::Drop)]);
        assert_eq!(ops("-6 fw policy"), [Op::FwForwardPolicy { ns: None, v6: true }]);
        assert!(matches!(&ops("-n c1 fw policy")[..], [Op::FwForwardPolicy { ns: Some(_), .. }, _]));
        assert!(err("iptables -P INPUT DROP").contains("FORWARD chain"));
        assert!(err("iptables -P FORWARD REJECT").contains("accept or drop"));
        let forward = FwRule::ForwardAccept { input: Some("br0".into()), output: None };
        assert_eq!(
            ops("iptables -A FORWARD -i br0 -j ACCEPT"),
            [Op::FwAdd { ns: None, owner: OWNER.into(), rule: forward }]
        );
        assert!(matches!(parse("iptables -A FORWARD -m state --state ESTABLISHED -j ACCEPT"), Ok(Some(Line::Note(_)))));
    }

    #[test]
    fn tutorial_spellings_of_link_and_sysctl() {
        let set = |key: &str, value: &str| Op::SysctlSet { ns: None, key: key.into(), value: value.into() };
        assert_eq!(ops("sysctl -w net.ipv4.ip_forward=1"), [set("net.ipv4.ip_forward", "1")]);
        assert_eq!(ops("sysctl net.ipv4.ip_forward=0"), [set("net.ipv4.ip_forward", "0")]);
        assert_eq!(
            ops("sysctl -n net.ipv4.ip_forward"),
            [Op::SysctlGet { ns: None, key: "net.ipv4.ip_forward".into() }]
        );
        assert!(err("sysctl -w kernel.panic=1").contains("net"));
        assert!(matches!(&ops("ip link set dev br0 up")[..], [Op::LinkSetUp { name, up: true, .. }] if name == "br0"));
        assert_eq!(ops("ip link show dev veth0"), [Op::LinkGet { ns: None, name: "veth0".into() }]);
        assert_eq!(ops("ip link delete br0 type bridge"), [Op::LinkDelete { ns: None, name: "br0".into() }]);
        assert!(err("ip link add type veth").contains("name the link"));
    }

    #[test]
    fn pasted_sudo_and_nsenter() {
        assert_eq!(ops("sudo ip netns add c1"), [Op::NetnsCreate { name: "c1".into() }]);
        let exec =
            |argv: &[&str]| Op::NetnsExec { name: "netns0".into(), argv: argv.iter().map(|a| a.to_string()).collect() };
        assert_eq!(ops("sudo nsenter --net=/run/netns/netns0 ip neigh"), [exec(&["ip", "neigh"])]);
        assert_eq!(
            ops("nsenter --net /var/run/netns/netns0 ping -c 2 10.0.0.1"),
            [exec(&["ping", "-c", "2", "10.0.0.1"])]
        );
        assert!(err("nsenter -t 42 -n ip a").contains("--net=/run/netns/NS"));
        assert!(err("nsenter --net=/run/netns/netns0").contains("missing CMD"));
    }

    #[test]
    fn route_lookups() {
        let get = |dest: &str, from: Option<&str>| Op::RouteGet {
            ns: None,
            dest: dest.parse().expect("IP"),
            from: from.map(|f| f.parse().expect("IP")),
        };
        assert_eq!(ops("ip route get 10.0.0.1"), [get("10.0.0.1", None)]);
        assert_eq!(ops("ip r get 10.0.0.1 from 10.1.0.2"), [get("10.0.0.1", Some("10.1.0.2"))]);
        assert!(matches!(parse("ip -j route get fd00::1"), Ok(Some(Line::Json(_)))));
        assert!(err("ip route get 10.0.0.0/8").contains("not an IP address"));
    }

    #[test]
    fn families() {
        assert!(
            matches!(&ops("ip -6 route add default dev eth0")[..], [Op::RouteAdd { route, .. }] if route.dest.is_ipv6())
        );
        assert!(matches!(&ops("ip -6 addr add fd00::1/64 dev eth0")[..], [Op::AddrAdd { .. }]));
        assert!(err("ip -4 route add fd00::/64 dev eth0").contains("does not match"));
        assert!(err("ip -6 route add default via 10.0.0.1").contains("different IP versions"));
        assert!(matches!(parse("ip -4 -j a"), Ok(Some(Line::OfFamily { v6: false, json: true, .. }))));
        assert!(err("ip -6 link add br0 type bridge").contains("applies to"));
    }

    #[test]
    fn every_form() {
        assert_eq!(ops("netns add c1"), [Op::NetnsCreate { name: "c1".into() }]);
        assert_eq!(ops("fw free-port udp"), [Op::FwFreePort { ns: None, proto: Proto::Udp, host_ip: None }]);
        assert!(matches!(&ops("fw free-port tcp 127.0.0.1")[..], [Op::FwFreePort { host_ip: Some(_), .. }]));
        assert!(parse("fw free-port sctp").is_err() && parse("fw free-port tcp nowhere").is_err());
        let forward = FwRule::ForwardAccept { input: Some("br0".into()), output: Some("uplink".into()) };
        assert_eq!(ops("fw forward in br0 out uplink"), [Op::FwAdd { ns: None, owner: OWNER.into(), rule: forward }]);
        assert!(parse("fw forward").is_err());
        assert_eq!(ops("kv ls"), [Op::KvList { prefix: String::new() }]);
        assert_eq!(ops("kv ls docker-bridge/"), [Op::KvList { prefix: "docker-bridge/".into() }]);
        assert_eq!(ops("kv put a b"), [Op::KvPut { key: "a".into(), value: "b".into() }]);
        assert_eq!(ops("kv rm a"), [Op::KvDelete { key: "a".into() }]);
        assert!(err("kv put a").contains("missing value"));
        assert!(err("kv ls a b").contains("unexpected"));
        assert_eq!(ops("netns del c1"), [Op::NetnsDelete { name: "c1".into() }]);
        assert_eq!(ops("netns ls"), [Op::NetnsList]);
        assert_eq!(ops("netns alias c2 c1"), [Op::NetnsAlias { name: "c2".into(), of: "c1".into() }]);
        assert_eq!(ops("netns identify 42"), [Op::NetnsIdentify { pid: 42 }]);
        assert_eq!(ops("route ls table all"), [Op::RouteList { ns: None, table: Some(0) }]);
        match &ops("route add 10.9.0.0/24 dev eth0 src 10.0.0.2 table 100")[..] {
            [Op::RouteAdd { route, .. }] => {
                assert_eq!(route.to_string(), "10.9.0.0/24 dev eth0 src 10.0.0.2 table 100")
            }
            other => panic!("{other:?}"),
        }
        match &ops("ip route add 10.9.0.0/24 dev eth0 proto bird scope host")[..] {
            [Op::RouteAdd { route, .. }] => assert_eq!(route.to_string(), "10.9.0.0/24 dev eth0 proto bird scope host"),
            other => panic!("{other:?}"),
        }
        assert!(err("route add 10.9.0.0/24 dev eth0 proto 256").contains("protocol \"256\""));
        assert!(parse("route ls table local").is_err() && parse("route add default dev eth0 table all").is_err());
        assert_eq!(ops("-n c1 conntrack -L"), [Op::ConntrackList { ns: Some("c1".into()) }]);
        let macvlan = Op::LinkAddMacvlan {
            ns: None,
            name: "mv0".into(),
            parent: "eth0".into(),
            mode: crate::ops::MacvlanMode::Bridge,
        };
        assert_eq!(ops("link add link eth0 name mv0 type macvlan mode bridge"), [macvlan.clone()]);
        assert_eq!(ops("link add mv0 link eth0 type macvlan mode bridge"), [macvlan]);
        let snat = |text: &str| match &ops(text)[..] {
            [Op::FwAdd { rule, .. }] => rule.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(snat("nat masquerade 10.0.0.0/24 out eth0"), "snat 10.0.0.0/24 eth0 masquerade");
        assert_eq!(snat("nat snat 10.0.0.0/24 to 192.0.2.1"), "snat 10.0.0.0/24 * 192.0.2.1");
        assert_eq!(snat("nat masquerade 10.0.0.0/24 out-not br0"), "masquerade 10.0.0.0/24 !br0");
        assert!(matches!(&ops("link add br0 type bridge")[..], [Op::LinkAddBridge { name, .. }] if name == "br0"));
        let veth = ops("link add veth1 type veth peer eth0 netns c1");
        assert!(
            matches!(&veth[..], [Op::LinkAddVeth { spec, .. }] if spec.peer == "eth0" && spec.peer_ns.as_deref() == Some("c1"))
        );
        let set = ops("link set veth1 master br0 up mtu 1400");
        assert_eq!(set.len(), 3);
        assert!(matches!(&ops("link set eth0 netns c1 up")[..], [Op::LinkSetUp { .. }, Op::LinkSetNetns { .. }]));
        assert!(matches!(&ops("link set x nomaster")[..], [Op::LinkSetMaster { master: None, .. }]));
        assert!(matches!(&ops("link del br0")[..], [Op::LinkDelete { .. }]));
        assert!(matches!(&ops("addr add 172.17.0.1/16 dev br0")[..], [Op::AddrAdd { nodad: false, .. }]));
        assert!(matches!(&ops("addr add fd00::1/64 dev br0 nodad")[..], [Op::AddrAdd { nodad: true, .. }]));
        assert!(matches!(&ops("-n c1 addr del 172.17.0.2/16 dev eth0")[..], [Op::AddrDelete { ns: Some(_), .. }]));
        let r = ops("-n c1 route add default via 172.17.0.1");
        assert!(matches!(&r[..], [Op::RouteAdd { ns: Some(n), route }] if n == "c1" && route.dest.prefix() == 0));
        assert!(
            matches!(&ops("route add 10.0.0.0/8 dev br0 onlink metric 5")[..], [Op::RouteAdd { route, .. }] if route.onlink && route.metric == Some(5))
        );
        assert!(
            matches!(&ops("route del default via fd00::1")[..], [Op::RouteDelete { route, .. }] if route.dest.is_ipv6())
        );
        assert!(matches!(&ops("nat masquerade 172.17.0.0/16 out-not br0")[..], [Op::FwAdd { .. }]));
        assert!(matches!(
            &ops("publish tcp 8080 to 172.17.0.2:80")[..],
            [Op::FwAdd { rule: FwRule::Publish { first: 8080, .. }, .. }]
        ));
        assert!(matches!(
            &ops("publish udp 127.0.0.1:53-54 to 172.17.0.2:53")[..],
            [Op::FwAdd { rule: FwRule::Publish { last: 54, .. }, .. }]
        ));
        assert!(matches!(
            &ops("publish tcp 0.0.0.0:8080 to 172.17.0.2:80")[..],
            [Op::FwAdd { rule: FwRule::Publish { host_ip: None, .. }, .. }]
        ));
        assert!(matches!(&ops("fw rm abc")[..], [Op::FwRemove { .. }]));
        assert!(matches!(&ops("sysctl set net.ipv4.ip_forward 1")[..], [Op::SysctlSet { .. }]));
        let json = super::super::show::Style { json: true, ..Default::default() };
        assert_eq!(parse("show c1 --json").unwrap(), Some(Line::Show { ns: Some("c1".into()), style: json }));
        let brief_all = super::super::show::Style { brief: true, all: true, ..Default::default() };
        assert_eq!(parse("show -br -a").unwrap(), Some(Line::Show { ns: None, style: brief_all }));
        assert_eq!(
            parse("run x.wasm -- a b").unwrap(),
            Some(Line::Run { target: "x.wasm".into(), args: vec!["--".into(), "a".into(), "b".into()] })
        );
        assert_eq!(parse("undo").unwrap(), Some(Line::Undo(None)));
        assert_eq!(parse("undo 2026-x").unwrap(), Some(Line::Undo(Some("2026-x".into()))));
        assert_eq!(parse("record start s.nsh").unwrap(), Some(Line::RecordStart("s.nsh".into())));
        assert_eq!(parse("  # just a comment").unwrap(), None);
        assert_eq!(parse("exit").unwrap(), Some(Line::Exit));
    }

    #[test]
    fn iproute2_spellings() {
        let same = [
            ("ip link add br0 type bridge", "link add br0 type bridge"),
            ("ip a", "addr ls"),
            ("ip addr show", "addr ls"),
            ("ip address show dev eth0", "addr ls dev eth0"),
            ("ip l", "link ls"),
            ("ip r", "route ls"),
            ("ip route list", "route ls"),
            ("ip -n c1 a add 10.0.0.2/24 dev eth0", "-n c1 addr add 10.0.0.2/24 dev eth0"),
            ("ip -netns c1 r", "-n c1 route ls"),
            ("ip -br a", "addr ls"),
            ("ip -n c1 -br l", "-n c1 link ls"),
            ("ip netns", "netns ls"),
            ("link", "link ls"),
        ];
        for (pasted, ours) in same {
            assert_eq!(parse(pasted), parse(ours), "{pasted}");
            assert!(parse(ours).is_ok(), "{ours}");
        }
    }

    #[test]
    fn json_listings() {
        for line in ["ip -j a", "ip -j -n c1 route", "ip -n c1 -json link show", "ip -br -j neigh"] {
            assert!(matches!(parse(line), Ok(Some(Line::Json(ops))) if ops.iter().all(Op::is_listing)), "{line}");
        }
    }

    #[test]
    fn malformed_forms_explain_themselves() {
        for (line, expected) in [
            ("lnk add x type bridge", "did you mean \"link\""),
            ("netns frob", "use add, del, attach, alias, identify, exec or ls"),
            ("netns exec c1", "missing CMD"),
            ("ip -s link", "ip option -s is not supported"),
            ("ip -j link add x type bridge", "-j applies to listings"),
            ("link add x type tun", "use bridge, veth, vxlan or macvlan"),
            ("link add link eth0 name v0 type vlan id 5", "\"vlan\" is not one netsh makes"),
            ("link add a234567890123456 type bridge", "at most 15"),
            ("addr add 10.0.0.300/24 dev x", "is not a CIDR"),
            ("addr add 10.0.0.1/24 x", "usage: addr"),
            ("route add 10.0.0.0/8", "needs via IP or dev IF"),
            ("publish tcp 9000-8000 to 1.2.3.4:80", "reversed"),
            ("publish sctp 1 to 1.2.3.4:80", "use tcp or udp"),
            ("sysctl set kernel.pid_max 1", "not under net"),
            ("link set x", "nothing to change"),
            ("netns add c1 extra", "unexpected \"extra\""),
            ("-n", "needs a namespace"),
            ("-n c1 run x", "-n does not apply"),
        ] {
            let e = err(line);
            assert!(e.contains(expected), "{line:?}: {e}");
        }
    }

    #[test]
    fn parser_never_panics() {
        // A deterministic property test over generated lines built from the grammar's own words.
        let vocab = [
            "netns",
            "link",
            "addr",
            "route",
            "nat",
            "publish",
            "fw",
            "sysctl",
            "kv",
            "show",
            "run",
            "undo",
            "add",
            "del",
            "set",
            "type",
            "bridge",
            "veth",
            "peer",
            "master",
            "up",
            "down",
            "mtu",
            "dev",
            "via",
            "default",
            "to",
            "tcp",
            "udp",
            "-n",
            "c1",
            "10.0.0.1/24",
            "1.2.3.4:80",
            "8000-9000",
            "\"",
            "#",
            "",
            "x",
            "65536",
            "-1",
            "net.ipv4.ip_forward",
            "a234567890123456",
            "::1",
            "record",
            "start",
            "help",
        ];
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            let mut line = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for k in 0..(seed % 8) {
                let pick = ((seed >> (k * 5)) % vocab.len() as u64) as usize;
                line.push_str(vocab[pick]);
                line.push(' ');
            }
            let _ = parse(&line);
        }
    }
}
