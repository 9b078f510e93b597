//! Typed operations: every capability call becomes one [`Op`] before it
//! reaches a backend, and every backend answers with a [`Reply`].

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// A namespace selector: `None` is the namespace netsh runs in.
pub type Ns = Option<String>;

/// Files under /etc/netns/NAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcFile {
    /// `hosts`
    Hosts,
    /// `resolv.conf`
    ResolvConf,
    /// `hostname`
    Hostname,
}

impl EtcFile {
    /// The file's name under /etc.
    pub fn file_name(self) -> &'static str {
        match self {
            EtcFile::Hosts => "hosts",
            EtcFile::ResolvConf => "resolv.conf",
            EtcFile::Hostname => "hostname",
        }
    }
}

/// A veth pair created in one kernel call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethSpec {
    /// Name of the end created in the call's namespace.
    pub name: String,
    /// Name of the other end.
    pub peer: String,
    /// Namespace for the peer (`None`: same as `name`).
    pub peer_ns: Ns,
    /// The peer's MAC address (`None`: random).
    #[serde(default)]
    pub peer_mac: Option<String>,
    /// Bridge to attach `name` to.
    pub master: Option<String>,
    /// Bring `name` up.
    pub up: bool,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Hairpin mode on the bridge port (with a master).
    #[serde(default)]
    pub hairpin: bool,
}

/// A VXLAN device created in one kernel call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanSpec {
    pub name: String,
    /// The VXLAN network identifier (24 bits).
    pub vni: u32,
    /// UDP destination port (4789 is IANA's).
    pub port: u16,
    /// Source address of the encapsulated packets.
    pub local: Option<IpAddr>,
    /// Underlay interface the packets leave by.
    pub dev: Option<String>,
    /// Learn remote MACs from received packets (off: only static FDB entries).
    pub learning: bool,
    /// Answer ARP and neighbour solicitations from the device's static neighbour entries.
    pub proxy: bool,
    pub mtu: Option<u32>,
    /// Bridge to attach the device to.
    pub master: Option<String>,
    pub up: bool,
}

/// A neighbour entry (`ip neigh`): `ip` is reached at `mac` on `dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neigh {
    pub dev: String,
    pub ip: IpAddr,
    pub mac: String,
    /// `permanent`, `reachable`, `stale`, ... (entries netsh adds are permanent).
    pub state: String,
}

/// One direction of a tracked connection: addresses, and ports where the
/// protocol has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// A connection the kernel tracks (`conntrack -L`): the original direction
/// and the reply it expects, which NAT shows in (a masqueraded source is the
/// reply's destination).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub proto: String,
    /// Seconds before it expires.
    pub timeout: u64,
    /// TCP's state (`ESTABLISHED`, `TIME_WAIT`, ...).
    pub state: Option<String>,
    pub original: Tuple,
    pub reply: Tuple,
    /// `ASSURED`, `UNREPLIED`.
    pub flags: Vec<String>,
}

/// A forwarding database entry (`bridge fdb`): frames for `mac` leave by
/// `dev`, towards the remote VXLAN endpoint `dst` when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fdb {
    pub dev: String,
    pub mac: String,
    pub dst: Option<IpAddr>,
}

/// One interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    pub kind: String,
    pub mtu: u32,
    pub up: bool,
    pub oper_state: String,
    pub master: Option<String>,
    pub mac: String,
    pub addresses: Vec<IpNetwork>,
    pub alias: Option<String>,
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrInfo {
    pub dev: String,
    pub cidr: IpNetwork,
}

/// A route, in the main table unless `table` names another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Destination; a zero-length prefix is the default route.
    pub dest: IpNetwork,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub onlink: bool,
    pub metric: Option<u32>,
    /// The preferred source address (`src IP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// A table other than main (254).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Who made it (`proto`, a number of [`ROUTE_PROTOS`]), when not static.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
    /// How far it reaches (`scope`, a number of [`ROUTE_SCOPES`]), when not
    /// the usual one ([`RouteSpec::usual_scope`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

/// Route protocols by name, as iproute2's rt_protos names them.
pub const ROUTE_PROTOS: &[(u8, &str)] = &[
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (16, "dhcp"),
    (12, "bird"),
    (42, "babel"),
    (186, "bgp"),
    (188, "ospf"),
    (189, "rip"),
];

/// The protocol netsh's routes get unless told: static.
pub const STATIC_PROTO: u8 = 4;

/// Route scopes by name, as iproute2's rt_scopes names them.
pub const ROUTE_SCOPES: &[(u8, &str)] = &[(0, "global"), (200, "site"), (253, "link"), (254, "host"), (255, "nowhere")];

impl RouteSpec {
    /// Whether `held`, a route the kernel lists, is the one this deletion
    /// names: same destination and table, and whatever else it sets.
    pub fn names(&self, held: &RouteSpec) -> bool {
        fn same<T: PartialEq>(named: &Option<T>, held: &Option<T>) -> bool {
            named.is_none() || named == held
        }
        self.dest == held.dest
            && self.table == held.table
            && same(&self.via, &held.via)
            && same(&self.dev, &held.dev)
            && same(&self.metric, &held.metric)
            && same(&self.src, &held.src)
            && same(&self.proto, &held.proto)
            && same(&self.scope, &held.scope)
    }

    /// The scope the route gets unless told: for IPv4, link without a
    /// gateway and global with one; IPv6 routes are all global.
    pub fn usual_scope(&self) -> u8 {
        if self.via.is_some() || self.dest.is_ipv6() { 0 } else { 253 }
    }
}

/// A number's name in `names`, else the number.
pub fn number_name(names: &[(u8, &str)], number: u8) -> String {
    names.iter().find(|(n, _)| *n == number).map_or_else(|| number.to_string(), |(_, name)| name.to_string())
}

/// A name of `names` or a number.
pub fn named_number(names: &[(u8, &str)], word: &str) -> Option<u8> {
    names.iter().find(|(_, name)| *name == word).map(|(n, _)| *n).or_else(|| word.parse().ok())
}

/// The main routing table's number.
pub const MAIN_TABLE: u32 = 254;
/// The table of the host's own and broadcast addresses.
pub const LOCAL_TABLE: u32 = 255;
/// The table the last default rule looks up (empty unless filled).
pub const DEFAULT_TABLE: u32 = 253;

/// A policy routing rule (`ip rule`): which packets it selects and what it
/// does with them. As a deletion's pattern, an unset field matches any value
/// (the default: every IPv4 rule).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    /// Order of evaluation, lowest first; unset on add lets the kernel choose
    /// one just after the first rule.
    pub priority: Option<u32>,
    /// The family, IPv6 or IPv4; `from`/`to` must agree with it.
    pub v6: bool,
    pub from: Option<IpNetwork>,
    pub to: Option<IpNetwork>,
    /// Packets arriving on this interface (`iif`).
    pub iif: Option<String>,
    /// Packets bound to this interface (`oif`).
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
    /// Unset only in a deletion's pattern.
    pub action: Option<RuleAction>,
}

/// What a policy rule does with the packets it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Route by this table.
    Lookup(u32),
    /// Drop silently.
    Blackhole,
    /// Drop with "network unreachable".
    Unreachable,
    /// Drop with "administratively prohibited".
    Prohibit,
}

impl RoutingRule {
    /// Whether the kernel would take `self`, as a deletion's pattern, to
    /// mean `rule`: every field the pattern sets is equal.
    pub fn selects(&self, rule: &RoutingRule) -> bool {
        fn same<T: PartialEq>(pattern: &Option<T>, value: &Option<T>) -> bool {
            pattern.is_none() || pattern == value
        }
        self.v6 == rule.v6
            && same(&self.priority, &rule.priority)
            && same(&self.from, &rule.from)
            && same(&self.to, &rule.to)
            && same(&self.iif, &rule.iif)
            && same(&self.oif, &rule.oif)
            && same(&self.fwmark, &rule.fwmark)
            && same(&self.action, &rule.action)
    }

    /// Refuse a rule whose addresses are not of its family.
    pub fn check(&self) -> Result<(), crate::error::CapError> {
        match self.from.iter().chain(&self.to).find(|net| net.is_ipv6() != self.v6) {
            Some(net) => Err(crate::error::CapError::Invalid(format!(
                "rule {self}: {net} is not an {} prefix (ip -6 rule is for IPv6)",
                if self.v6 { "IPv6" } else { "IPv4" }
            ))),
            None => Ok(()),
        }
    }

    /// [`check`](Self::check) for a rule to add: it must say what it does.
    pub fn check_new(&self) -> Result<(), crate::error::CapError> {
        self.check()?;
        match self.action {
            Some(_) => Ok(()),
            None => Err(crate::error::CapError::Invalid(format!(
                "rule {self}: say what it does (lookup TABLE, blackhole, unreachable or prohibit)"
            ))),
        }
    }

    /// One of the rules every namespace starts with (local, main, default lookups).
    pub fn is_builtin(&self) -> bool {
        let plain = self.from.is_none() && self.to.is_none() && self.iif.is_none() && self.oif.is_none();
        let builtin = match (self.priority, self.action) {
            (Some(0), Some(RuleAction::Lookup(LOCAL_TABLE))) => true,
            (Some(32766), Some(RuleAction::Lookup(MAIN_TABLE))) => true,
            (Some(32767), Some(RuleAction::Lookup(DEFAULT_TABLE))) => !self.v6,
            _ => false,
        };
        plain && self.fwmark.is_none() && builtin
    }
}

/// A table's name as iproute2 prints it: main, local, default, or the number.
pub fn table_name(table: u32) -> String {
    match table {
        MAIN_TABLE => "main".into(),
        LOCAL_TABLE => "local".into(),
        DEFAULT_TABLE => "default".into(),
        n => n.to_string(),
    }
}

/// `[pref N] from all|PREFIX [to PREFIX] [iif IF] [oif IF] [fwmark 0xN] lookup T|blackhole|...`,
/// as `ip rule add` takes it.
impl fmt::Display for RoutingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(priority) = self.priority {
            write!(f, "pref {priority} ")?;
        }
        match self.from {
            Some(from) => write!(f, "from {from}")?,
            None => write!(f, "from all")?,
        }
        if let Some(to) = self.to {
            write!(f, " to {to}")?;
        }
        if let Some(iif) = &self.iif {
            write!(f, " iif {iif}")?;
        }
        if let Some(oif) = &self.oif {
            write!(f, " oif {oif}")?;
        }
        if let Some(mark) = self.fwmark {
            write!(f, " fwmark {mark:#x}")?;
        }
        match self.action {
            Some(RuleAction::Lookup(table)) => write!(f, " lookup {}", table_name(table)),
            Some(RuleAction::Blackhole) => write!(f, " blackhole"),
            Some(RuleAction::Unreachable) => write!(f, " unreachable"),
            Some(RuleAction::Prohibit) => write!(f, " prohibit"),
            None => Ok(()),
        }
    }
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// How a macvlan device shares its parent (`type macvlan mode M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    Private,
    Vepa,
    Bridge,
    Passthru,
}

impl MacvlanMode {
    /// iproute2's word for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Passthru => "passthru",
        }
    }
}

impl std::str::FromStr for MacvlanMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "private" => Ok(MacvlanMode::Private),
            "vepa" => Ok(MacvlanMode::Vepa),
            "bridge" => Ok(MacvlanMode::Bridge),
            "passthru" => Ok(MacvlanMode::Passthru),
            other => Err(format!("macvlan mode {other:?}: use private, vepa, bridge or passthru")),
        }
    }
}

/// What an isolation rule drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Between this bridge and every other bridge isolated this way.
    Networks,
    /// Between the bridge's own ports.
    Ports,
    /// Between the bridge and any other interface.
    External,
}

impl Isolation {
    /// `networks`, `ports` or `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Networks => "networks",
            Isolation::Ports => "ports",
            Isolation::External => "external",
        }
    }
}

/// A firewall rule netsh can own; rendered to iptables by the firewall backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FwRule {
    /// SNAT to the outgoing interface's address for `source`, except out of `out_not`.
    Masquerade { source: IpNetwork, out_not: Option<String> },
    /// DNAT host ports `first..=last` to `to_ip:to_port..`.
    Publish { proto: Proto, host_ip: Option<IpAddr>, first: u16, last: u16, to_ip: IpAddr, to_port: u16 },
    /// Accept forwarding from `input` to `output` (and return traffic).
    ForwardAccept { input: Option<String>, output: Option<String> },
    /// Drop forwarding to or from `bridge` as `mode` says.
    Isolate { bridge: String, mode: Isolation },
    /// Source NAT for `source` leaving by `out` (any interface: `None`), to
    /// address `to`, or to the outgoing interface's address (masquerade) when
    /// `to` is `None`: `iptables -t nat -A POSTROUTING -s SOURCE [-o OUT]
    /// -j SNAT --to-source TO | -j MASQUERADE`.
    Snat { source: IpNetwork, out: Option<String>, to: Option<IpAddr> },
    /// Accept `client` -> `server` on ports `first..=last` within `bridge`,
    /// and the server's replies, ahead of isolation (Docker's `--link`
    /// exception under `--icc=false`).
    LinkAccept { bridge: String, client: IpAddr, server: IpAddr, proto: Proto, first: u16, last: u16 },
}

/// What a built-in chain does with packets no rule took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainPolicy {
    Accept,
    Drop,
}

impl ChainPolicy {
    /// `ACCEPT` or `DROP`, as iptables writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainPolicy::Accept => "ACCEPT",
            ChainPolicy::Drop => "DROP",
        }
    }
}

/// A later set that an existing table of netsh's lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutGap {
    pub v6: bool,
    pub set: String,
}

/// `iptables` or `ip6tables`.
pub fn iptables_tool(v6: bool) -> &'static str {
    if v6 { "ip6tables" } else { "iptables" }
}

/// `PORT` or `FIRST-LAST`.
pub fn parse_ports(text: &str) -> Option<(u16, u16)> {
    match text.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => text.parse().ok().map(|p| (p, p)),
    }
}

/// A publish rule's host address as given: an unspecified one (`0.0.0.0`,
/// `::`) means every address, so the rule names none.
pub fn published_on(ip: IpAddr) -> Option<IpAddr> {
    (!ip.is_unspecified()).then_some(ip)
}

/// A rule netsh owns, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub id: String,
    pub owner: String,
    pub rule: FwRule,
    /// The rule as the active backend's commands (`iptables ...` or `nft ...` lines).
    pub commands: Vec<String>,
}

/// One capability call, in typed form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    NetnsCreate {
        name: String,
    },
    NetnsDelete {
        name: String,
    },
    NetnsList,
    NetnsExists {
        name: String,
    },
    NetnsAttach {
        name: String,
        pid: u32,
    },
    /// Give the namespace named `of` a second name (Docker's `--net container:`).
    NetnsAlias {
        name: String,
        of: String,
    },
    /// The other names of the namespace `name` leads to.
    NetnsNames {
        name: String,
    },
    /// Tracked connections (`conntrack -L`).
    ConntrackList {
        ns: Ns,
    },
    /// The names of process `pid`'s namespace (`ip netns identify PID`).
    NetnsIdentify {
        pid: u32,
    },
    /// Run a program in a named namespace with its /etc/netns files, like
    /// `ip netns exec`; the reply is its exit status.
    NetnsExec {
        name: String,
        argv: Vec<String>,
    },
    NetnsWriteEtc {
        name: String,
        file: EtcFile,
        contents: String,
    },
    NetnsReadEtc {
        name: Option<String>,
        file: EtcFile,
    },
    /// Remove /etc/netns/NAME/FILE (used when undoing a write).
    NetnsRemoveEtc {
        name: String,
        file: EtcFile,
    },
    LinkAddBridge {
        ns: Ns,
        name: String,
        mtu: Option<u32>,
    },
    LinkAddVeth {
        ns: Ns,
        spec: VethSpec,
    },
    /// A macvlan device on `parent`: `ip link add link PARENT name NAME type macvlan mode M`.
    LinkAddMacvlan {
        ns: Ns,
        name: String,
        parent: String,
        mode: MacvlanMode,
    },
    LinkAddVxlan {
        ns: Ns,
        spec: VxlanSpec,
    },
    LinkSetUp {
        ns: Ns,
        name: String,
        up: bool,
    },
    LinkSetMaster {
        ns: Ns,
        name: String,
        master: Option<String>,
    },
    LinkSetNetns {
        ns: Ns,
        name: String,
        target: Ns,
    },
    /// `ip link set NAME address MAC` (a lowercase `aa:bb:cc:dd:ee:ff`).
    LinkSetMac {
        ns: Ns,
        name: String,
        mac: String,
    },
    LinkSetMtu {
        ns: Ns,
        name: String,
        mtu: u32,
    },
    LinkSetAlias {
        ns: Ns,
        name: String,
        alias: String,
    },
    LinkRename {
        ns: Ns,
        name: String,
        new_name: String,
    },
    LinkDelete {
        ns: Ns,
        name: String,
    },
    LinkGet {
        ns: Ns,
        name: String,
    },
    LinkList {
        ns: Ns,
    },
    AddrAdd {
        ns: Ns,
        dev: String,
        cidr: IpNetwork,
        /// IPv6 without duplicate address detection: usable at once (`nodad`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        nodad: bool,
    },
    AddrDelete {
        ns: Ns,
        dev: String,
        cidr: IpNetwork,
    },
    AddrList {
        ns: Ns,
        dev: Option<String>,
    },
    RouteAdd {
        ns: Ns,
        route: RouteSpec,
    },
    RouteDelete {
        ns: Ns,
        route: RouteSpec,
    },
    /// Routes of the main table (`table` none), of table N, or of every
    /// table but local (`Some(0)`, as `ip route show table all`).
    RouteList {
        ns: Ns,
        table: Option<u32>,
    },
    /// The route the kernel would take to `dest` (`ip route get DEST [from SRC]`).
    RouteGet {
        ns: Ns,
        dest: IpAddr,
        from: Option<IpAddr>,
    },
    /// A policy routing rule (`ip rule add`).
    RoutingRuleAdd {
        ns: Ns,
        rule: RoutingRule,
    },
    /// Remove the first rule, in priority order, that `rule` selects.
    RoutingRuleDelete {
        ns: Ns,
        rule: RoutingRule,
    },
    /// Every policy rule of both families (`ip rule` + `ip -6 rule`).
    RoutingRuleList {
        ns: Ns,
    },
    /// A permanent neighbour entry (fails if one exists for the address).
    NeighAdd {
        ns: Ns,
        dev: String,
        ip: IpAddr,
        mac: String,
    },
    NeighDelete {
        ns: Ns,
        dev: String,
        ip: IpAddr,
    },
    NeighList {
        ns: Ns,
        dev: Option<String>,
    },
    /// Append a permanent FDB entry on the device itself (`self`).
    FdbAdd {
        ns: Ns,
        entry: Fdb,
    },
    FdbDelete {
        ns: Ns,
        entry: Fdb,
    },
    FdbList {
        ns: Ns,
        dev: Option<String>,
    },
    SysctlGet {
        ns: Ns,
        key: String,
    },
    SysctlSet {
        ns: Ns,
        key: String,
        value: String,
    },
    FwAdd {
        ns: Ns,
        owner: String,
        rule: FwRule,
    },
    FwRemove {
        ns: Ns,
        id: String,
    },
    /// iptables' FORWARD policy for IPv4 or IPv6 (`iptables -P FORWARD DROP`):
    /// under DROP only what a rule accepts is forwarded.
    FwSetForwardPolicy {
        ns: Ns,
        v6: bool,
        policy: ChainPolicy,
    },
    /// The FORWARD policy of one family (`Reply::Policy`).
    FwForwardPolicy {
        ns: Ns,
        v6: bool,
    },
    /// The sets netsh's own nftables tables lack because an older netsh made
    /// them (`Reply::Gaps`; none for iptables or a missing table).
    FwLayoutGaps {
        ns: Ns,
    },
    /// Firewall state netsh did not make (other nf_tables tables, iptables
    /// rules and policies), as commands to read, never to change.
    FwForeignList {
        ns: Ns,
    },
    /// One rule by id (`Reply::Rules` with zero or one rule).
    FwGet {
        ns: Ns,
        id: String,
    },
    FwList {
        ns: Ns,
    },
    /// A host port no socket holds for `host_ip`, from the ephemeral range.
    FwFreePort {
        ns: Ns,
        proto: Proto,
        host_ip: Option<IpAddr>,
    },
    /// Append a line to the shared hosts file of `group` (unless it is there).
    HostsAdd {
        group: String,
        line: String,
    },
    /// Remove a line from the shared hosts file of `group`.
    HostsRemove {
        group: String,
        line: String,
    },
    /// Make /etc/netns/NAME/hosts the shared hosts file of `group`.
    HostsShare {
        name: String,
        group: String,
    },
    KvGet {
        key: String,
    },
    KvList {
        prefix: String,
    },
    KvPut {
        key: String,
        value: String,
    },
    /// Write a key that expires `ttl_secs` seconds from now unless written again.
    KvPutLease {
        key: String,
        value: String,
        ttl_secs: u32,
    },
    /// Write only if absent.
    KvCreate {
        key: String,
        value: String,
    },
    /// Write only if the key's version is `version` (0: absent).
    KvSwap {
        key: String,
        version: u64,
        value: String,
    },
    KvDelete {
        key: String,
    },
    /// Undo's form of a write: only if `key` still holds `expect` (`None`:
    /// absent), set it to `restore` (`None`: remove it).
    KvRevert {
        key: String,
        expect: Option<String>,
        restore: Option<String>,
    },
}

/// What a backend answers to an [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Done,
    Bool(bool),
    Text(String),
    Names(Vec<String>),
    Link(Box<LinkInfo>),
    Links(Vec<LinkInfo>),
    Addrs(Vec<AddrInfo>),
    Routes(Vec<RouteSpec>),
    RoutingRules(Vec<RoutingRule>),
    Neighs(Vec<Neigh>),
    Fdb(Vec<Fdb>),
    Flows(Vec<Flow>),
    Rules(Vec<RuleInfo>),
    /// Lines of text, one per item.
    Lines(Vec<String>),
    /// Sets an existing table lacks.
    Gaps(Vec<LayoutGap>),
    /// A FORWARD policy.
    Policy {
        v6: bool,
        policy: ChainPolicy,
    },
    /// A firewall rule's id, and whether the call added it (false: it existed).
    Rule {
        id: String,
        added: bool,
    },
    /// Whether a hosts-file line was added or removed (false: nothing to do).
    Edited(bool),
    Entry(Option<crate::kv::Entry>),
    Entries(Vec<crate::kv::Entry>),
    /// A key-value write's new version, or `None` if a condition kept it from happening.
    Written(Option<u64>),
    /// A program's exit status (128 + N when signal N ended it).
    Exited(i32),
    Port(u16),
}

impl Reply {
    /// Whether a mutating call changed anything (a rule that existed, a
    /// create that found the key, an edit with nothing to do did not).
    pub fn changed(&self) -> bool {
        !matches!(self, Reply::Rule { added: false, .. } | Reply::Edited(false) | Reply::Written(None))
    }

    /// A listing's items of one IP family (`ip -6 route`); other replies as they are.
    pub fn of_family(self, v6: bool) -> Reply {
        let ours = |ip: &IpAddr| ip.is_ipv6() == v6;
        match self {
            Reply::Link(mut l) => {
                l.addresses.retain(|a| ours(&a.ip()));
                Reply::Link(l)
            }
            Reply::Links(mut links) => {
                links.iter_mut().for_each(|l| l.addresses.retain(|a| ours(&a.ip())));
                Reply::Links(links)
            }
            Reply::Addrs(addrs) => Reply::Addrs(addrs.into_iter().filter(|a| ours(&a.cidr.ip())).collect()),
            Reply::Routes(routes) => Reply::Routes(routes.into_iter().filter(|r| ours(&r.dest.ip())).collect()),
            Reply::RoutingRules(rules) => Reply::RoutingRules(rules.into_iter().filter(|r| r.v6 == v6).collect()),
            Reply::Neighs(neighs) => Reply::Neighs(neighs.into_iter().filter(|n| ours(&n.ip)).collect()),
            Reply::Flows(flows) => Reply::Flows(flows.into_iter().filter(|f| ours(&f.original.src)).collect()),
            other => other,
        }
    }

    /// The error for a backend answering with the wrong kind of reply: a host bug.
    pub fn mismatch(self) -> crate::error::CapError {
        crate::error::CapError::Failed(format!("internal error: unexpected reply {self:?}"))
    }
}

impl Op {
    /// Whether it lists links, addresses, routes, neighbours or fdb entries
    /// (what `ip -j` shows as JSON).
    pub fn is_listing(&self) -> bool {
        matches!(
            self,
            Op::LinkGet { .. }
                | Op::LinkList { .. }
                | Op::AddrList { .. }
                | Op::RouteList { .. }
                | Op::RouteGet { .. }
                | Op::RoutingRuleList { .. }
                | Op::NeighList { .. }
                | Op::FdbList { .. }
                | Op::ConntrackList { .. }
        )
    }

    /// Whether the operation changes state (reads need no grant and no journal).
    pub fn is_mutation(&self) -> bool {
        match self {
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
            | Op::KvList { .. } => false,
            Op::NetnsCreate { .. }
            | Op::NetnsDelete { .. }
            | Op::NetnsAttach { .. }
            | Op::NetnsAlias { .. }
            | Op::NetnsExec { .. }
            | Op::NetnsWriteEtc { .. }
            | Op::NetnsRemoveEtc { .. }
            | Op::LinkAddBridge { .. }
            | Op::LinkAddVeth { .. }
            | Op::LinkAddVxlan { .. }
            | Op::LinkAddMacvlan { .. }
            | Op::LinkSetUp { .. }
            | Op::LinkSetMaster { .. }
            | Op::LinkSetNetns { .. }
            | Op::LinkSetMtu { .. }
            | Op::LinkSetMac { .. }
            | Op::LinkSetAlias { .. }
            | Op::LinkRename { .. }
            | Op::LinkDelete { .. }
            | Op::AddrAdd { .. }
            | Op::AddrDelete { .. }
            | Op::RouteAdd { .. }
            | Op::RouteDelete { .. }
            | Op::RoutingRuleAdd { .. }
            | Op::RoutingRuleDelete { .. }
            | Op::NeighAdd { .. }
            | Op::NeighDelete { .. }
            | Op::FdbAdd { .. }
            | Op::FdbDelete { .. }
            | Op::SysctlSet { .. }
            | Op::FwAdd { .. }
            | Op::FwRemove { .. }
            | Op::FwSetForwardPolicy { .. }
            | Op::HostsAdd { .. }
            | Op::HostsRemove { .. }
            | Op::HostsShare { .. }
            | Op::KvPut { .. }
            | Op::KvPutLease { .. }
            | Op::KvCreate { .. }
            | Op::KvSwap { .. }
            | Op::KvDelete { .. }
            | Op::KvRevert { .. } => true,
        }
    }
}

/// `-n NS ` prefix for ip commands.
fn ip_ns(ns: &Ns) -> String {
    ns.as_ref().map(|n| format!("-n {n} ")).unwrap_or_default()
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dest.prefix() == 0 {
            write!(f, "default")?;
        } else {
            write!(f, "{}", self.dest)?;
        }
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if self.onlink {
            write!(f, " onlink")?;
        }
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        if let Some(src) = self.src {
            write!(f, " src {src}")?;
        }
        if let Some(table) = self.table {
            write!(f, " table {table}")?;
        }
        if let Some(proto) = self.proto {
            write!(f, " proto {}", number_name(ROUTE_PROTOS, proto))?;
        }
        if let Some(scope) = self.scope {
            write!(f, " scope {}", number_name(ROUTE_SCOPES, scope))?;
        }
        Ok(())
    }
}

/// `NAME type vxlan id VNI dstport PORT ...`, as `ip link add` takes it.
impl fmt::Display for VxlanSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(mtu) = self.mtu {
            write!(f, " mtu {mtu}")?;
        }
        if let Some(master) = &self.master {
            write!(f, " master {master}")?;
        }
        if self.up {
            write!(f, " up")?;
        }
        write!(f, " type vxlan id {} dstport {}", self.vni, self.port)?;
        if let Some(local) = self.local {
            write!(f, " local {local}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if !self.learning {
            write!(f, " nolearning")?;
        }
        if self.proxy {
            write!(f, " proxy")?;
        }
        Ok(())
    }
}

/// `MAC dev DEV [dst IP]`, as `bridge fdb` takes it.
impl fmt::Display for Fdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dev {}", self.mac, self.dev)?;
        match self.dst {
            Some(dst) => write!(f, " dst {dst}"),
            None => Ok(()),
        }
    }
}

/// Renders the equivalent iproute2 / sysctl / iptables-ish command.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::NetnsCreate { name } => write!(f, "ip netns add {name}"),
            Op::NetnsDelete { name } => write!(f, "ip netns del {name}"),
            Op::NetnsList => write!(f, "ip netns list"),
            Op::NetnsExists { name } => write!(f, "test -e /run/netns/{name}"),
            Op::NetnsAttach { name, pid } => write!(f, "ip netns attach {name} {pid}"),
            Op::NetnsAlias { name, of } => write!(f, "ip netns alias {name} {of}"),
            Op::NetnsNames { name } => write!(f, "ip netns names {name}"),
            Op::NetnsIdentify { pid } => write!(f, "ip netns identify {pid}"),
            Op::ConntrackList { ns: None } => write!(f, "conntrack -L"),
            Op::ConntrackList { ns: Some(ns) } => write!(f, "ip netns exec {ns} conntrack -L"),
            Op::NetnsExec { name, argv } => write!(f, "ip netns exec {name} {}", shell_words(argv)),
            Op::NetnsWriteEtc { name, file, contents } => {
                write!(f, "write /etc/netns/{name}/{} ({} bytes)", file.file_name(), contents.len())
            }
            Op::NetnsRemoveEtc { name, file } => write!(f, "rm /etc/netns/{name}/{}", file.file_name()),
            Op::NetnsReadEtc { name, file } => match name {
                Some(name) => write!(f, "cat /etc/netns/{name}/{}", file.file_name()),
                None => write!(f, "cat /etc/{}", file.file_name()),
            },
            Op::LinkAddBridge { ns, name, mtu } => {
                write!(f, "ip {}link add {name} type bridge", ip_ns(ns))?;
                match mtu {
                    Some(mtu) => write!(f, " && ip {}link set {name} mtu {mtu}", ip_ns(ns)),
                    None => Ok(()),
                }
            }
            Op::LinkAddVeth { ns, spec } => {
                write!(f, "ip {}link add {}", ip_ns(ns), spec.name)?;
                if let Some(mtu) = spec.mtu {
                    write!(f, " mtu {mtu}")?;
                }
                if let Some(master) = &spec.master {
                    write!(f, " master {master}")?;
                }
                if spec.up {
                    write!(f, " up")?;
                }
                write!(f, " type veth peer {}", spec.peer)?;
                if let Some(mac) = &spec.peer_mac {
                    write!(f, " address {mac}")?;
                }
                if let Some(peer_ns) = &spec.peer_ns {
                    write!(f, " netns {peer_ns}")?;
                }
                if spec.hairpin && spec.master.is_some() {
                    write!(f, " && ip {}link set {} type bridge_slave hairpin on", ip_ns(ns), spec.name)?;
                }
                Ok(())
            }
            Op::LinkAddVxlan { ns, spec } => write!(f, "ip {}link add {spec}", ip_ns(ns)),
            Op::LinkAddMacvlan { ns, name, parent, mode } => {
                write!(f, "ip {}link add link {parent} name {name} type macvlan mode {}", ip_ns(ns), mode.as_str())
            }
            Op::LinkSetUp { ns, name, up } => {
                write!(f, "ip {}link set {name} {}", ip_ns(ns), if *up { "up" } else { "down" })
            }
            Op::LinkSetMaster { ns, name, master } => match master {
                Some(m) => write!(f, "ip {}link set {name} master {m}", ip_ns(ns)),
                None => write!(f, "ip {}link set {name} nomaster", ip_ns(ns)),
            },
            Op::LinkSetNetns { ns, name, target } => match target {
                Some(t) => write!(f, "ip {}link set {name} netns {t}", ip_ns(ns)),
                None => write!(f, "ip {}link set {name} netns 1", ip_ns(ns)),
            },
            Op::LinkSetMac { ns, name, mac } => write!(f, "ip {}link set {name} address {mac}", ip_ns(ns)),
            Op::LinkSetMtu { ns, name, mtu } => {
                write!(f, "ip {}link set {name} mtu {mtu}", ip_ns(ns))
            }
            Op::LinkSetAlias { ns, name, alias } => write!(f, "ip {}link set {name} alias {alias:?}", ip_ns(ns)),
            Op::LinkRename { ns, name, new_name } => {
                write!(f, "ip {}link set {name} name {new_name}", ip_ns(ns))
            }
            Op::LinkDelete { ns, name } => write!(f, "ip {}link del {name}", ip_ns(ns)),
            Op::LinkGet { ns, name } => write!(f, "ip {}addr show {name}", ip_ns(ns)),
            Op::LinkList { ns } => write!(f, "ip {}addr show", ip_ns(ns)),
            Op::AddrAdd { ns, dev, cidr, nodad } => {
                write!(f, "ip {}addr add {cidr} dev {dev}{}", ip_ns(ns), if *nodad { " nodad" } else { "" })
            }
            Op::AddrDelete { ns, dev, cidr } => {
                write!(f, "ip {}addr del {cidr} dev {dev}", ip_ns(ns))
            }
            Op::AddrList { ns, dev } => match dev {
                Some(dev) => write!(f, "ip {}addr show dev {dev}", ip_ns(ns)),
                None => write!(f, "ip {}addr show", ip_ns(ns)),
            },
            Op::RouteAdd { ns, route } => write!(f, "ip {}route add {route}", ip_ns(ns)),
            Op::RouteDelete { ns, route } => write!(f, "ip {}route del {route}", ip_ns(ns)),
            Op::RouteList { ns, table: None } => write!(f, "ip {}route show", ip_ns(ns)),
            Op::RouteList { ns, table: Some(0) } => write!(f, "ip {}route show table all", ip_ns(ns)),
            Op::RouteList { ns, table: Some(t) } => write!(f, "ip {}route show table {t}", ip_ns(ns)),
            Op::RouteGet { ns, dest, from } => {
                write!(f, "ip {}route get {dest}", ip_ns(ns))?;
                from.map_or(Ok(()), |from| write!(f, " from {from}"))
            }
            Op::RoutingRuleAdd { ns, rule } => write!(f, "ip {}{}rule add {rule}", family(rule.v6), ip_ns(ns)),
            Op::RoutingRuleDelete { ns, rule } => write!(f, "ip {}{}rule del {rule}", family(rule.v6), ip_ns(ns)),
            Op::RoutingRuleList { ns } => write!(f, "ip {0}rule show; ip -6 {0}rule show", ip_ns(ns)),
            Op::NeighAdd { ns, dev, ip, mac } => {
                write!(f, "ip {}neigh add {ip} lladdr {mac} dev {dev} nud permanent", ip_ns(ns))
            }
            Op::NeighDelete { ns, dev, ip } => write!(f, "ip {}neigh del {ip} dev {dev}", ip_ns(ns)),
            Op::NeighList { ns, dev } => match dev {
                Some(dev) => write!(f, "ip {}neigh show dev {dev}", ip_ns(ns)),
                None => write!(f, "ip {}neigh show", ip_ns(ns)),
            },
            Op::FdbAdd { ns, entry } => write!(f, "bridge {}fdb append {entry} self permanent", ip_ns(ns)),
            Op::FdbDelete { ns, entry } => write!(f, "bridge {}fdb del {entry} self", ip_ns(ns)),
            Op::FdbList { ns, dev } => match dev {
                Some(dev) => write!(f, "bridge {}fdb show dev {dev}", ip_ns(ns)),
                None => write!(f, "bridge {}fdb show", ip_ns(ns)),
            },
            Op::SysctlGet { ns, key } => write!(f, "{}sysctl -n {key}", netns_exec(ns)),
            Op::SysctlSet { ns, key, value } => {
                write!(f, "{}sysctl -w {key}={value}", netns_exec(ns))
            }
            Op::FwAdd { ns, owner, rule } => write!(f, "{}netsh fw add {owner} {rule}", netns_exec(ns)),
            Op::FwRemove { ns, id } => write!(f, "{}netsh fw rm {id}", netns_exec(ns)),
            Op::FwGet { ns, id } => write!(f, "{}netsh fw get {id}", netns_exec(ns)),
            Op::FwSetForwardPolicy { ns, v6, policy } => {
                write!(f, "{}{} -P FORWARD {}", netns_exec(ns), iptables_tool(*v6), policy.as_str())
            }
            Op::FwForwardPolicy { ns, v6 } => write!(f, "{}{} -S FORWARD 1", netns_exec(ns), iptables_tool(*v6)),
            Op::FwLayoutGaps { ns } => {
                write!(f, "{}nft list sets table ip netsh; nft list sets table ip6 netsh", netns_exec(ns))
            }
            Op::FwForeignList { ns } => {
                write!(f, "{0}nft list tables; {0}iptables-save; {0}ip6tables-save", netns_exec(ns))
            }
            Op::FwList { ns } => write!(f, "{}netsh fw ls", netns_exec(ns)),
            Op::FwFreePort { ns, proto, host_ip } => {
                write!(f, "{}netsh fw free-port {}", netns_exec(ns), proto.as_str())?;
                host_ip.map_or(Ok(()), |ip| write!(f, " {ip}"))
            }
            Op::HostsAdd { group, line } => write!(f, "echo {line:?} >> /etc/netns/.hosts/{group}"),
            Op::HostsRemove { group, line } => write!(f, "sed -i '/^{line}$/d' /etc/netns/.hosts/{group}"),
            Op::HostsShare { name, group } => write!(f, "ln -sf ../.hosts/{group} /etc/netns/{name}/hosts"),
            Op::KvGet { key } => write!(f, "netsh kv get {key}"),
            Op::KvList { prefix } => write!(f, "netsh kv ls {prefix}"),
            Op::KvPut { key, value } => write!(f, "netsh kv put {key} {value:?}"),
            Op::KvPutLease { key, value, ttl_secs } => write!(f, "netsh kv put {key} {value:?} ttl {ttl_secs}"),
            Op::KvCreate { key, value } => write!(f, "netsh kv create {key} {value:?}"),
            Op::KvSwap { key, version, value } => write!(f, "netsh kv swap {key} {version} {value:?}"),
            Op::KvDelete { key } => write!(f, "netsh kv del {key}"),
            Op::KvRevert { key, expect, restore } => {
                match restore {
                    Some(old) => write!(f, "netsh kv put {key} {old:?}")?,
                    None => write!(f, "netsh kv del {key}")?,
                }
                match expect {
                    Some(value) => write!(f, " (if it still holds {value:?})"),
                    None => write!(f, " (if it is still absent)"),
                }
            }
        }
    }
}

/// `-6 ` for IPv6 rules, which carry no address to tell the family by.
fn family(v6: bool) -> &'static str {
    if v6 { "-6 " } else { "" }
}

/// `ip netns exec NS ` prefix for commands that are not netlink-aware.
fn netns_exec(ns: &Ns) -> String {
    ns.as_ref().map(|n| format!("ip netns exec {n} ")).unwrap_or_default()
}

/// Words as a shell would need them: quoted when they hold anything but
/// plain characters.
fn shell_words(words: &[String]) -> String {
    let plain = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    let quote = |w: &String| if plain(w) { w.clone() } else { format!("'{}'", w.replace('\'', "'\\''")) };
    words.iter().map(quote).collect::<Vec<_>>().join(" ")
}
