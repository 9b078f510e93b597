//! The in-memory model backend behind `netsh plan`: seeded lazily from a
//! read of the real state, it carries operations out on a copy and records
//! them, with the same replies and errors as the kernel backend.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;

use super::Backend;
use crate::error::{CapError, CapResult};
use crate::firewall::{self, FirewallKind};
use crate::kv::Entry;
use crate::ops::{
    AddrInfo, ChainPolicy, DEFAULT_TABLE, EtcFile, Fdb, LOCAL_TABLE, LayoutGap, LinkInfo, MAIN_TABLE, Neigh, Ns, Op,
    Reply, RouteSpec, RoutingRule, RuleAction, RuleInfo,
};

/// One planned operation and whether it changes anything.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Planned {
    pub op: Op,
    pub changes: bool,
    /// The commands that would do it, ready to paste (firewall rules in the
    /// active backend's syntax, with its table or chains first when missing).
    pub commands: Vec<String>,
}

/// A namespace's links, routes and rules.
#[derive(Debug, Clone, Default)]
struct Space {
    links: Vec<LinkInfo>,
    routes: Vec<RouteSpec>,
    /// Policy routing rules, in the kernel's order (by priority).
    routing: Vec<RoutingRule>,
    rules: Vec<RuleInfo>,
    neighs: Vec<Neigh>,
    fdb: Vec<Fdb>,
    /// Families whose table (or chains) the plan already set up.
    setup: Vec<crate::firewall::nft::Family>,
    /// Later sets the real tables lack; the plan's first rule using one upgrades it.
    gaps: Vec<LayoutGap>,
}

#[derive(Debug)]
struct World {
    names: Option<BTreeSet<String>>,
    /// Keys the plan wrote (`None`: deleted), over the real store.
    kv: HashMap<String, Option<Entry>>,
    kv_version: u64,
    firewall: FirewallKind,
    spaces: HashMap<Ns, Space>,
    etc: HashMap<(String, String), String>,
    /// Second names the plan gave: (alias, name it was given to).
    aliases: Vec<(String, String)>,
    sysctls: HashMap<(Ns, String), String>,
    /// FORWARD policies the plan set, by (namespace, IPv6).
    forward_policies: HashMap<(Ns, bool), ChainPolicy>,
    next_index: u32,
    planned: Vec<Planned>,
}

/// Plans against a copy of what `real` shows.
pub struct Model {
    real: Arc<dyn Backend>,
    firewall: FirewallKind,
    world: Mutex<World>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").finish_non_exhaustive()
    }
}

fn not_found(what: String) -> CapError {
    CapError::NotFound(format!("{what} does not exist"))
}

fn label(ns: &Ns, name: &str) -> String {
    match ns {
        Some(ns) => format!("link {name} in namespace {ns}"),
        None => format!("link {name}"),
    }
}

impl Model {
    /// A model that reads unseen state from `real`.
    /// A model that reads unseen state from `real` and writes firewall
    /// commands for `firewall`.
    pub fn new(real: Arc<dyn Backend>, firewall: FirewallKind) -> Model {
        let world = World {
            names: None,
            kv: HashMap::new(),
            kv_version: 0,
            firewall,
            spaces: HashMap::new(),
            etc: HashMap::new(),
            aliases: Vec::new(),
            sysctls: HashMap::new(),
            forward_policies: HashMap::new(),
            next_index: 10_000,
            planned: Vec::new(),
        };
        Model { real, firewall, world: Mutex::new(world) }
    }

    /// The operations planned so far.
    pub fn planned(&self) -> Vec<Planned> {
        self.lock().planned.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn names(&self) -> CapResult<BTreeSet<String>> {
        if let Some(names) = self.lock().names.clone() {
            return Ok(names);
        }
        let Reply::Names(names) = self.real.apply(Op::NetnsList).await? else { return Ok(BTreeSet::new()) };
        let names: BTreeSet<String> = names.into_iter().collect();
        self.lock().names = Some(names.clone());
        Ok(names)
    }

    /// The other names of `name`: the real ones and those the plan gave.
    async fn other_names(&self, name: &str) -> CapResult<Reply> {
        let mut names = match self.real.apply(Op::NetnsNames { name: name.to_string() }).await? {
            Reply::Names(names) => names,
            other => return Err(other.mismatch()),
        };
        for (alias, of) in &self.lock().aliases {
            let other = if alias == name {
                of
            } else if of == name {
                alias
            } else {
                continue;
            };
            if !names.contains(other) {
                names.push(other.clone());
            }
        }
        Ok(Reply::Names(names))
    }

    /// Make sure `ns` is loaded; a namespace the plan created starts empty but for lo.
    async fn load(&self, ns: &Ns) -> CapResult<()> {
        if self.lock().spaces.contains_key(ns) {
            return Ok(());
        }
        if let Some(name) = ns
            && !self.names().await?.contains(name)
        {
            return Err(CapError::NotFound(format!("namespace {name} does not exist (see `ip netns list`)")));
        }
        let links = match self.real.apply(Op::LinkList { ns: ns.clone() }).await? {
            Reply::Links(l) => l,
            _ => Vec::new(),
        };
        let routes = match self.real.apply(Op::RouteList { ns: ns.clone(), table: Some(0) }).await? {
            Reply::Routes(r) => r,
            _ => Vec::new(),
        };
        let routing = match self.real.apply(Op::RoutingRuleList { ns: ns.clone() }).await? {
            Reply::RoutingRules(r) => r,
            _ => Vec::new(),
        };
        let gaps = match self.real.apply(Op::FwLayoutGaps { ns: ns.clone() }).await {
            Ok(Reply::Gaps(g)) => g,
            _ => Vec::new(),
        };
        let rules = match self.real.apply(Op::FwList { ns: ns.clone() }).await {
            Ok(Reply::Rules(r)) => r,
            _ => Vec::new(),
        };
        let neighs = match self.real.apply(Op::NeighList { ns: ns.clone(), dev: None }).await? {
            Reply::Neighs(n) => n,
            _ => Vec::new(),
        };
        let fdb = match self.real.apply(Op::FdbList { ns: ns.clone(), dev: None }).await? {
            Reply::Fdb(f) => f,
            _ => Vec::new(),
        };
        self.lock()
            .spaces
            .insert(ns.clone(), Space { links, routes, routing, rules, neighs, fdb, setup: Vec::new(), gaps });
        Ok(())
    }

    /// A sysctl's value: planned, or read from the kernel.
    async fn sysctl(&self, ns: &Ns, key: &str) -> CapResult<String> {
        let cached = self.lock().sysctls.get(&(ns.clone(), key.to_string())).cloned();
        if let Some(v) = cached {
            return Ok(v);
        }
        match self.real.apply(Op::SysctlGet { ns: ns.clone(), key: key.into() }).await {
            Ok(Reply::Text(v)) => Ok(v),
            Ok(_) => Ok(String::new()),
            // A namespace or interface that exists only in the plan has default values.
            Err(CapError::NotFound(_)) => Ok("0".into()),
            Err(e) => Err(e),
        }
    }

    /// A FORWARD policy: planned, or read from the host.
    async fn forward_policy(&self, ns: &Ns, v6: bool) -> CapResult<ChainPolicy> {
        if let Some(policy) = self.lock().forward_policies.get(&(ns.clone(), v6)) {
            return Ok(*policy);
        }
        match self.real.apply(Op::FwForwardPolicy { ns: ns.clone(), v6 }).await {
            Ok(Reply::Policy { policy, .. }) => Ok(policy),
            Ok(other) => Err(other.mismatch()),
            // A namespace that exists only in the plan starts accepting.
            Err(CapError::NotFound(_)) => Ok(ChainPolicy::Accept),
            Err(e) => Err(e),
        }
    }

    async fn run(&self, op: Op) -> CapResult<Reply> {
        if let Op::NetnsList
        | Op::NetnsExists { .. }
        | Op::NetnsCreate { .. }
        | Op::NetnsAttach { .. }
        | Op::NetnsAlias { .. }
        | Op::NetnsExec { .. }
        | Op::NetnsDelete { .. }
        | Op::NetnsWriteEtc { .. }
        | Op::NetnsRemoveEtc { .. } = op
        {
            self.names().await?;
        }
        if let Op::NetnsNames { name } = &op {
            return self.other_names(name).await;
        }
        for ns in namespaces_of(&op) {
            self.load(&ns).await?;
        }
        let before = match &op {
            Op::SysctlSet { ns, key, .. } | Op::SysctlGet { ns, key } => Some(self.sysctl(ns, key).await?),
            _ => None,
        };
        let policy = match &op {
            Op::FwSetForwardPolicy { ns, v6, .. } | Op::FwForwardPolicy { ns, v6 } => {
                Some(self.forward_policy(ns, *v6).await?)
            }
            _ => None,
        };
        let real_etc = match &op {
            Op::NetnsReadEtc { name, file } if !self.lock().etc.contains_key(&etc_key(name.as_deref(), *file)) => {
                Some(self.real.apply(op.clone()).await)
            }
            _ => None,
        };
        if let Op::KvList { prefix } = &op {
            return self.kv_list(prefix).await;
        }
        if let Op::FwFreePort { .. }
        | Op::NetnsIdentify { .. }
        | Op::ConntrackList { .. }
        | Op::FwForeignList { .. }
        | Op::FwLayoutGaps { .. }
        | Op::RouteGet { .. } = &op
        {
            return self.real.apply(op).await;
        }
        let kv_before = match &op {
            Op::KvGet { key }
            | Op::KvPut { key, .. }
            | Op::KvPutLease { key, .. }
            | Op::KvCreate { key, .. }
            | Op::KvSwap { key, .. }
            | Op::KvDelete { key }
            | Op::KvRevert { key, .. } => Some(self.kv_entry(key).await?),
            _ => None,
        };
        let mut world = self.lock();
        let removed = match &op {
            Op::FwRemove { ns, id } => world.space(ns).rules.iter().find(|r| r.id == *id).cloned(),
            _ => None,
        };
        let (reply, changes) = world.apply(&op, Seen { sysctl: before, policy, etc: real_etc, kv: kv_before })?;
        if op.is_mutation() {
            let commands = world.commands(self.firewall, &op, removed.as_ref());
            world.planned.push(Planned { op, changes, commands });
        }
        Ok(reply)
    }
}

/// What the model read from the real system before applying an op.
struct Seen {
    /// A sysctl's current value.
    sysctl: Option<String>,
    /// A FORWARD policy's current value.
    policy: Option<ChainPolicy>,
    /// The real /etc file, for a read the plan has not written.
    etc: Option<CapResult<Reply>>,
    /// A key's current entry (planned or real).
    kv: Option<Option<Entry>>,
}

impl Model {
    /// A key as the plan sees it: written by the plan, else the real store's.
    async fn kv_entry(&self, key: &str) -> CapResult<Option<Entry>> {
        if let Some(planned) = self.lock().kv.get(key) {
            return Ok(planned.clone());
        }
        match self.real.apply(Op::KvGet { key: key.into() }).await? {
            Reply::Entry(e) => Ok(e),
            other => Err(other.mismatch()),
        }
    }

    /// The real store's entries under `prefix`, with the plan's writes over them.
    async fn kv_list(&self, prefix: &str) -> CapResult<Reply> {
        let real = match self.real.apply(Op::KvList { prefix: prefix.into() }).await? {
            Reply::Entries(e) => e,
            other => return Err(other.mismatch()),
        };
        let world = self.lock();
        let mut merged: std::collections::BTreeMap<String, Entry> =
            real.into_iter().map(|e| (e.key.clone(), e)).collect();
        for (key, planned) in world.kv.iter().filter(|(k, _)| k.starts_with(prefix)) {
            match planned {
                Some(e) => merged.insert(key.clone(), e.clone()),
                None => merged.remove(key),
            };
        }
        Ok(Reply::Entries(merged.into_values().collect()))
    }
}

fn etc_key(name: Option<&str>, file: EtcFile) -> (String, String) {
    (name.unwrap_or("").to_string(), file.file_name().to_string())
}

impl Space {
    /// The commands that give an older table the later sets `rule` uses
    /// (each once per plan).
    fn upgrade(&mut self, family: firewall::nft::Family, rule: &crate::ops::FwRule) -> Vec<String> {
        let v6 = family == firewall::nft::Family::V6;
        let mut out = Vec::new();
        for element in firewall::nft::elements(rule) {
            let Some(at) = self.gaps.iter().position(|g| g.v6 == v6 && g.set == element.set) else { continue };
            self.gaps.remove(at);
            let later = firewall::nft::LATER_SETS.iter().find(|(set, _)| *set == element.set);
            if let Some((set, chain)) = later {
                out.extend(firewall::nft::upgrade_commands(family, set, chain));
            }
        }
        out
    }
}

/// The policy rules a new namespace starts with: local, main (and for IPv4, default).
fn builtin_rules() -> Vec<RoutingRule> {
    let rule = |v6, priority, table| RoutingRule {
        priority: Some(priority),
        v6,
        action: Some(RuleAction::Lookup(table)),
        ..RoutingRule::default()
    };
    vec![
        rule(false, 0, LOCAL_TABLE),
        rule(false, 32766, MAIN_TABLE),
        rule(false, 32767, DEFAULT_TABLE),
        rule(true, 0, LOCAL_TABLE),
        rule(true, 32766, MAIN_TABLE),
    ]
}

/// The priority the kernel gives `rule`: its own, or one less than the
/// family's second rule's (0 when that is 0 or missing).
fn priority_for(routing: &[RoutingRule], rule: &RoutingRule) -> u32 {
    rule.priority.unwrap_or_else(|| {
        let second = routing.iter().filter(|r| r.v6 == rule.v6).nth(1).and_then(|r| r.priority);
        second.map_or(0, |p| p.saturating_sub(1))
    })
}

/// Namespaces an operation reads or changes (beyond the namespace list).
fn namespaces_of(op: &Op) -> Vec<Ns> {
    match op {
        Op::LinkAddVeth { ns, spec } => {
            let mut v = vec![ns.clone()];
            if spec.peer_ns.is_some() {
                v.push(spec.peer_ns.clone());
            }
            v
        }
        Op::LinkSetNetns { ns, target, .. } => vec![ns.clone(), target.clone()],
        Op::LinkAddBridge { ns, .. }
        | Op::LinkAddVxlan { ns, .. }
        | Op::LinkAddMacvlan { ns, .. }
        | Op::NeighAdd { ns, .. }
        | Op::NeighDelete { ns, .. }
        | Op::NeighList { ns, .. }
        | Op::FdbAdd { ns, .. }
        | Op::FdbDelete { ns, .. }
        | Op::FdbList { ns, .. }
        | Op::LinkSetUp { ns, .. }
        | Op::LinkSetMaster { ns, .. }
        | Op::LinkSetMtu { ns, .. }
        | Op::LinkSetMac { ns, .. }
        | Op::LinkSetAlias { ns, .. }
        | Op::LinkRename { ns, .. }
        | Op::LinkDelete { ns, .. }
        | Op::LinkGet { ns, .. }
        | Op::LinkList { ns }
        | Op::AddrAdd { ns, .. }
        | Op::AddrDelete { ns, .. }
        | Op::AddrList { ns, .. }
        | Op::RouteAdd { ns, .. }
        | Op::RouteDelete { ns, .. }
        | Op::RouteList { ns, .. }
        | Op::RoutingRuleAdd { ns, .. }
        | Op::RoutingRuleDelete { ns, .. }
        | Op::RoutingRuleList { ns }
        | Op::FwAdd { ns, .. }
        | Op::FwRemove { ns, .. }
        | Op::FwGet { ns, .. }
        | Op::FwSetForwardPolicy { ns, .. }
        | Op::FwForwardPolicy { ns, .. }
        | Op::FwList { ns } => vec![ns.clone()],
        Op::FwFreePort { .. } | Op::FwForeignList { .. } | Op::FwLayoutGaps { .. } | Op::RouteGet { .. } => Vec::new(),
        Op::HostsAdd { .. }
        | Op::HostsRemove { .. }
        | Op::HostsShare { .. }
        | Op::KvGet { .. }
        | Op::KvList { .. }
        | Op::KvPut { .. }
        | Op::KvPutLease { .. }
        | Op::KvCreate { .. }
        | Op::KvSwap { .. }
        | Op::KvDelete { .. }
        | Op::KvRevert { .. } => Vec::new(),
        Op::SysctlGet { .. }
        | Op::SysctlSet { .. }
        | Op::NetnsCreate { .. }
        | Op::NetnsDelete { .. }
        | Op::NetnsList
        | Op::NetnsExists { .. }
        | Op::NetnsAttach { .. }
        | Op::NetnsNames { .. }
        | Op::NetnsIdentify { .. }
        | Op::ConntrackList { .. }
        | Op::NetnsExec { .. }
        | Op::NetnsWriteEtc { .. }
        | Op::NetnsReadEtc { .. }
        | Op::NetnsRemoveEtc { .. } => Vec::new(),
        Op::NetnsAlias { of, .. } => vec![Some(of.clone())],
    }
}

impl World {
    /// The commands that carry `op` out; a namespace's first rule brings the
    /// backend's table or chains with it.
    fn commands(&mut self, kind: FirewallKind, op: &Op, removed: Option<&RuleInfo>) -> Vec<String> {
        let exec = |ns: &Ns, c: String| match ns {
            Some(n) => format!("ip netns exec {n} {c}"),
            None => c,
        };
        match (op, removed) {
            (Op::FwAdd { ns, owner, rule }, _) => {
                let mut out = Vec::new();
                let space = self.space(ns);
                for family in crate::firewall::nft::Family::of(rule) {
                    // The family's first rule (this one) brings its table.
                    let first =
                        space.rules.iter().filter(|r| crate::firewall::nft::Family::of(&r.rule).contains(family));
                    if first.count() == 1 && !space.setup.contains(family) {
                        space.setup.push(*family);
                        out.extend(firewall::setup_commands(kind, *family));
                    }
                    out.extend(space.upgrade(*family, rule));
                }
                out.extend(firewall::add_commands(kind, owner, rule));
                out.into_iter().map(|c| exec(ns, c)).collect()
            }
            (Op::FwRemove { ns, .. }, Some(r)) => {
                firewall::remove_commands(kind, &r.owner, &r.rule).into_iter().map(|c| exec(ns, c)).collect()
            }
            _ => vec![op.to_string()],
        }
    }

    fn kv_write(&mut self, key: &str, value: &str) -> Reply {
        self.kv_version += 1;
        let version = (1 << 62) + self.kv_version;
        self.kv.insert(key.into(), Some(Entry { key: key.into(), value: value.into(), version }));
        Reply::Written(Some(version))
    }

    fn space(&mut self, ns: &Ns) -> &mut Space {
        self.spaces.entry(ns.clone()).or_default()
    }

    fn link(&mut self, ns: &Ns, name: &str) -> CapResult<&mut LinkInfo> {
        self.space(ns).links.iter_mut().find(|l| l.name == name).ok_or_else(|| not_found(label(ns, name)))
    }

    fn new_link(&mut self, name: &str, kind: &str, mtu: u32) -> LinkInfo {
        self.next_index += 1;
        LinkInfo {
            name: name.into(),
            index: self.next_index,
            kind: kind.into(),
            mtu,
            up: false,
            oper_state: "down".into(),
            master: None,
            mac: String::new(),
            addresses: Vec::new(),
            alias: None,
        }
    }

    fn add_link(&mut self, ns: &Ns, link: LinkInfo) -> CapResult<()> {
        if self.space(ns).links.iter().any(|l| l.name == link.name) {
            return Err(CapError::Exists(format!("{} already exists", label(ns, &link.name))));
        }
        self.space(ns).links.push(link);
        Ok(())
    }

    fn names(&mut self) -> &mut BTreeSet<String> {
        self.names.get_or_insert_with(BTreeSet::new)
    }

    /// Apply `op`; returns the reply and whether anything changed.
    fn apply(&mut self, op: &Op, seen: Seen) -> CapResult<(Reply, bool)> {
        let Seen { sysctl: sysctl_before, policy: policy_before, etc: real_etc, kv: kv_before } = seen;
        let done = |changed: bool| Ok((Reply::Done, changed));
        match op {
            Op::NetnsList => Ok((Reply::Names(self.names().iter().cloned().collect()), false)),
            Op::NetnsExists { name } => Ok((Reply::Bool(self.names().contains(name)), false)),
            // What a program would do is unknown: a plan counts it as a change.
            Op::NetnsExec { name, .. } => match self.names().contains(name) {
                true => Ok((Reply::Exited(0), true)),
                false => Err(CapError::NotFound(format!("namespace {name} does not exist"))),
            },
            Op::NetnsCreate { name } | Op::NetnsAttach { name, .. } => {
                if !self.names().insert(name.clone()) {
                    return Err(CapError::Exists(format!("namespace {name} already exists")));
                }
                let lo = LinkInfo { kind: "loopback".into(), ..self.new_link("lo", "loopback", 65536) };
                let routing = builtin_rules();
                self.spaces.insert(Some(name.clone()), Space { links: vec![lo], routing, ..Space::default() });
                done(true)
            }
            // The plan gives a second name a copy of the namespace as it is now.
            Op::NetnsAlias { name, of } => {
                if !self.names().contains(of) {
                    return Err(CapError::NotFound(format!("namespace {of} does not exist (see `ip netns list`)")));
                }
                if !self.names().insert(name.clone()) {
                    return Err(CapError::Exists(format!("namespace {name} already exists")));
                }
                let space = self.spaces.get(&Some(of.clone())).cloned().unwrap_or_default();
                self.spaces.insert(Some(name.clone()), space);
                self.aliases.push((name.clone(), of.clone()));
                done(true)
            }
            Op::NetnsDelete { name } => {
                if !self.names().remove(name) {
                    return Err(CapError::NotFound(format!("namespace {name} does not exist (see `ip netns list`)")));
                }
                self.spaces.remove(&Some(name.clone()));
                self.aliases.retain(|(alias, of)| alias != name && of != name);
                done(true)
            }
            Op::NetnsWriteEtc { name, file, contents } => {
                if !self.names().contains(name) {
                    return Err(CapError::NotFound(format!("namespace {name} does not exist")));
                }
                let old = self.etc.insert(etc_key(Some(name), *file), contents.clone());
                done(old.as_ref() != Some(contents))
            }
            Op::NetnsRemoveEtc { name, file } => done(self.etc.remove(&etc_key(Some(name), *file)).is_some()),
            Op::NetnsReadEtc { name, file } => match self.etc.get(&etc_key(name.as_deref(), *file)) {
                Some(text) => Ok((Reply::Text(text.clone()), false)),
                None => real_etc
                    .unwrap_or_else(|| Err(not_found(format!("/etc/netns file {}", file.file_name()))))
                    .map(|r| (r, false)),
            },
            Op::LinkAddBridge { ns, name, mtu } => {
                let link = self.new_link(name, "bridge", mtu.unwrap_or(1500));
                self.add_link(ns, link).map(|()| (Reply::Done, true))
            }
            Op::LinkAddVeth { ns, spec } => {
                let peer_ns = spec.peer_ns.clone().or_else(|| ns.clone());
                if spec.master.as_ref().is_some_and(|m| !self.space(ns).links.iter().any(|l| &l.name == m)) {
                    return Err(not_found(label(ns, spec.master.as_deref().unwrap_or_default())));
                }
                let mtu = spec.mtu.unwrap_or(1500);
                let mut end = self.new_link(&spec.name, "veth", mtu);
                end.master = spec.master.clone();
                end.up = spec.up;
                let mut peer = self.new_link(&spec.peer, "veth", mtu);
                if let Some(mac) = &spec.peer_mac {
                    peer.mac = mac.clone();
                }
                if self.space(&peer_ns).links.iter().any(|l| l.name == spec.peer) {
                    return Err(CapError::Exists(format!("{} already exists", label(&peer_ns, &spec.peer))));
                }
                self.add_link(ns, end)?;
                self.space(&peer_ns).links.push(peer);
                done(true)
            }
            Op::LinkAddMacvlan { ns, name, parent, .. } => {
                let mtu = self.link(ns, parent)?.mtu;
                let link = self.new_link(name, "macvlan", mtu);
                self.add_link(ns, link).map(|()| (Reply::Done, true))
            }
            Op::LinkAddVxlan { ns, spec } => {
                for other in spec.dev.iter().chain(&spec.master) {
                    self.link(ns, other)?;
                }
                let mut link = self.new_link(&spec.name, "vxlan", spec.mtu.unwrap_or(1450));
                link.master = spec.master.clone();
                link.up = spec.up;
                self.add_link(ns, link).map(|()| (Reply::Done, true))
            }
            Op::NeighAdd { ns, dev, ip, mac } => {
                self.link(ns, dev)?;
                let space = self.space(ns);
                if space.neighs.iter().any(|n| n.dev == *dev && n.ip == *ip) {
                    return Err(CapError::Exists(format!("neighbour entry {ip} on {} already exists", label(ns, dev))));
                }
                space.neighs.push(Neigh { dev: dev.clone(), ip: *ip, mac: mac.clone(), state: "permanent".into() });
                done(true)
            }
            Op::NeighDelete { ns, dev, ip } => {
                self.link(ns, dev)?;
                let space = self.space(ns);
                let before = space.neighs.len();
                space.neighs.retain(|n| !(n.dev == *dev && n.ip == *ip));
                if space.neighs.len() == before {
                    return Err(not_found(format!("neighbour entry {ip} on {}", label(ns, dev))));
                }
                done(true)
            }
            Op::NeighList { ns, dev } => {
                let found = self.space(ns).neighs.iter().filter(|n| dev.as_ref().is_none_or(|d| *d == n.dev)).cloned();
                Ok((Reply::Neighs(found.collect()), false))
            }
            Op::FdbAdd { ns, entry } => {
                self.link(ns, &entry.dev)?;
                let space = self.space(ns);
                if space.fdb.contains(entry) {
                    return Err(CapError::Exists(format!("FDB entry {entry} already exists")));
                }
                space.fdb.push(entry.clone());
                done(true)
            }
            Op::FdbDelete { ns, entry } => {
                self.link(ns, &entry.dev)?;
                let space = self.space(ns);
                let before = space.fdb.len();
                space.fdb.retain(|f| f != entry);
                if space.fdb.len() == before {
                    return Err(not_found(format!("FDB entry {entry}")));
                }
                done(true)
            }
            Op::FdbList { ns, dev } => {
                let found = self.space(ns).fdb.iter().filter(|f| dev.as_ref().is_none_or(|d| *d == f.dev)).cloned();
                Ok((Reply::Fdb(found.collect()), false))
            }
            Op::LinkSetUp { ns, name, up } => {
                let link = self.link(ns, name)?;
                let changed = link.up != *up;
                link.up = *up;
                done(changed)
            }
            Op::LinkSetMaster { ns, name, master } => {
                if let Some(m) = master {
                    self.link(ns, m)?;
                }
                let link = self.link(ns, name)?;
                let changed = link.master != *master;
                link.master = master.clone();
                done(changed)
            }
            Op::LinkSetMac { ns, name, mac } => {
                crate::names::parse_mac(mac)?;
                let link = self.link(ns, name)?;
                let changed = link.mac != *mac;
                link.mac = mac.clone();
                done(changed)
            }
            Op::LinkSetMtu { ns, name, mtu } => {
                let link = self.link(ns, name)?;
                let changed = link.mtu != *mtu;
                link.mtu = *mtu;
                done(changed)
            }
            Op::LinkSetAlias { ns, name, alias } => {
                let link = self.link(ns, name)?;
                let new = (!alias.is_empty()).then(|| alias.clone());
                let changed = link.alias != new;
                link.alias = new;
                done(changed)
            }
            Op::LinkRename { ns, name, new_name } => {
                if self.space(ns).links.iter().any(|l| &l.name == new_name) {
                    return Err(CapError::Exists(format!("{} already exists", label(ns, new_name))));
                }
                self.link(ns, name)?.name = new_name.clone();
                done(true)
            }
            Op::LinkSetNetns { ns, name, target } => {
                let link = self.link(ns, name)?.clone();
                self.space(ns).links.retain(|l| l.name != *name);
                self.add_link(target, LinkInfo { master: None, ..link })?;
                done(true)
            }
            Op::LinkDelete { ns, name } => {
                self.link(ns, name)?;
                let space = self.space(ns);
                space.links.retain(|l| l.name != *name);
                space.neighs.retain(|n| n.dev != *name);
                space.fdb.retain(|f| f.dev != *name);
                for port in space.links.iter_mut().filter(|l| l.master.as_deref() == Some(name.as_str())) {
                    port.master = None;
                }
                done(true)
            }
            Op::LinkGet { ns, name } => Ok((Reply::Link(Box::new(self.link(ns, name)?.clone())), false)),
            Op::LinkList { ns } => Ok((Reply::Links(self.space(ns).links.clone()), false)),
            Op::AddrAdd { ns, dev, cidr, .. } => {
                let link = self.link(ns, dev)?;
                if link.addresses.contains(cidr) {
                    return Err(CapError::Exists(format!("address {cidr} on {} already exists", label(ns, dev))));
                }
                link.addresses.push(*cidr);
                done(true)
            }
            Op::AddrDelete { ns, dev, cidr } => {
                let link = self.link(ns, dev)?;
                let before = link.addresses.len();
                link.addresses.retain(|a| a != cidr);
                if link.addresses.len() == before {
                    return Err(not_found(format!("address {cidr} on {}", label(ns, dev))));
                }
                done(true)
            }
            Op::AddrList { ns, dev } => {
                let addrs = self
                    .space(ns)
                    .links
                    .iter()
                    .filter(|l| dev.as_ref().is_none_or(|d| *d == l.name))
                    .flat_map(|l| l.addresses.iter().map(|c| AddrInfo { dev: l.name.clone(), cidr: *c }))
                    .collect();
                Ok((Reply::Addrs(addrs), false))
            }
            Op::RouteAdd { ns, route } => {
                let space = self.space(ns);
                if space.routes.iter().any(|r| r.dest == route.dest && r.metric == route.metric) {
                    return Err(CapError::Exists(format!("route {route} already exists")));
                }
                space.routes.push(route.clone());
                done(true)
            }
            Op::RouteDelete { ns, route } => {
                let space = self.space(ns);
                let before = space.routes.len();
                space.routes.retain(|r| !(r.dest == route.dest && (route.via.is_none() || r.via == route.via)));
                if space.routes.len() == before {
                    return Err(not_found(format!("route {route}")));
                }
                done(true)
            }
            Op::RouteList { ns, table } => {
                let wanted = |r: &&RouteSpec| *table == Some(0) || r.table == table.filter(|t| *t != MAIN_TABLE);
                Ok((Reply::Routes(self.space(ns).routes.iter().filter(wanted).cloned().collect()), false))
            }
            Op::RoutingRuleAdd { ns, rule } => {
                rule.check_new()?;
                let routing = &mut self.space(ns).routing;
                let rule = RoutingRule { priority: Some(priority_for(routing, rule)), ..rule.clone() };
                if routing.contains(&rule) {
                    return Err(CapError::Exists(format!("rule {rule} already exists")));
                }
                let at = routing.iter().take_while(|r| r.priority <= rule.priority).count();
                routing.insert(at, rule);
                done(true)
            }
            Op::RoutingRuleDelete { ns, rule } => {
                rule.check()?;
                let routing = &mut self.space(ns).routing;
                let at =
                    routing.iter().position(|r| rule.selects(r)).ok_or_else(|| not_found(format!("rule {rule}")))?;
                routing.remove(at);
                done(true)
            }
            Op::RoutingRuleList { ns } => Ok((Reply::RoutingRules(self.space(ns).routing.clone()), false)),
            Op::FwForwardPolicy { v6, .. } => {
                Ok((Reply::Policy { v6: *v6, policy: policy_before.unwrap_or(ChainPolicy::Accept) }, false))
            }
            Op::FwSetForwardPolicy { ns, v6, policy } => {
                self.forward_policies.insert((ns.clone(), *v6), *policy);
                done(policy_before != Some(*policy))
            }
            Op::SysctlGet { .. } => Ok((Reply::Text(sysctl_before.unwrap_or_default()), false)),
            Op::SysctlSet { ns, key, value } => {
                self.sysctls.insert((ns.clone(), key.clone()), value.clone());
                done(sysctl_before.as_deref() != Some(value.as_str()))
            }
            Op::FwAdd { ns, owner, rule } => {
                firewall::check_owner(owner)?;
                firewall::check_rule(rule)?;
                let id = firewall::rule_id(owner, rule);
                let commands = firewall::add_commands(self.firewall, owner, rule);
                let space = self.space(ns);
                if space.rules.iter().any(|r| r.id == id) {
                    return Ok((Reply::Rule { id, added: false }, false));
                }
                space.rules.push(RuleInfo { id: id.clone(), owner: owner.clone(), rule: rule.clone(), commands });
                Ok((Reply::Rule { id, added: true }, true))
            }
            Op::FwRemove { ns, id } => {
                let space = self.space(ns);
                let before = space.rules.len();
                space.rules.retain(|r| r.id != *id);
                if space.rules.len() == before {
                    return Err(not_found(format!("firewall rule {id}")));
                }
                done(true)
            }
            Op::FwGet { ns, id } => {
                let found = self.space(ns).rules.iter().filter(|r| r.id == *id).cloned().collect();
                Ok((Reply::Rules(found), false))
            }
            Op::FwList { ns } => Ok((Reply::Rules(self.space(ns).rules.clone()), false)),
            Op::HostsAdd { .. } | Op::HostsRemove { .. } => Ok((Reply::Edited(true), true)),
            Op::HostsShare { name, .. } => {
                if !self.names().contains(name) {
                    return Err(CapError::NotFound(format!("namespace {name} does not exist")));
                }
                done(true)
            }
            Op::KvList { .. } => Err(CapError::Failed("internal error: the model lists keys before applying".into())),
            Op::NetnsNames { .. } => {
                Err(CapError::Failed("internal error: the model merges namespace names before applying".into()))
            }
            Op::FwFreePort { .. }
            | Op::NetnsIdentify { .. }
            | Op::ConntrackList { .. }
            | Op::FwForeignList { .. }
            | Op::FwLayoutGaps { .. }
            | Op::RouteGet { .. } => {
                Err(CapError::Failed(format!("internal error: the model asks the kernel for {op}")))
            }
            Op::KvGet { .. } => Ok((Reply::Entry(kv_before.flatten()), false)),
            Op::KvPut { key, value } | Op::KvPutLease { key, value, .. } => Ok((self.kv_write(key, value), true)),
            Op::KvCreate { key, value } | Op::KvSwap { key, value, .. } => {
                let current = kv_before.flatten();
                let expected = match op {
                    Op::KvSwap { version, .. } => *version,
                    _ => 0,
                };
                if current.map_or(0, |e| e.version) != expected {
                    return Ok((Reply::Written(None), false));
                }
                Ok((self.kv_write(key, value), true))
            }
            Op::KvDelete { key } => {
                let existed = kv_before.flatten().is_some();
                self.kv.insert(key.clone(), None);
                Ok((Reply::Edited(existed), existed))
            }
            Op::KvRevert { key, expect, restore } => {
                let current = kv_before.flatten();
                let holds = current.as_ref().map(|e| &e.value) == expect.as_ref();
                if !holds || (current.is_none() && restore.is_none()) {
                    return Ok((Reply::Edited(false), false));
                }
                match restore {
                    Some(old) => drop(self.kv_write(key, old)),
                    None => drop(self.kv.insert(key.clone(), None)),
                }
                Ok((Reply::Edited(true), true))
            }
        }
    }
}

impl Backend for Model {
    fn apply(&self, op: Op) -> BoxFuture<'_, CapResult<Reply>> {
        self.run(op).boxed()
    }

    fn flush(&self) -> BoxFuture<'_, CapResult<Vec<(Ns, String)>>> {
        async { Ok(Vec::new()) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host with no links, routes or firewall rules: only the built-in policy rules.
    struct Fresh;

    impl Backend for Fresh {
        fn apply(&self, op: Op) -> BoxFuture<'_, CapResult<Reply>> {
            let reply = match op {
                Op::RoutingRuleList { .. } => Reply::RoutingRules(builtin_rules()),
                Op::NetnsList => Reply::Names(Vec::new()),
                Op::LinkList { .. } => Reply::Links(Vec::new()),
                Op::RouteList { .. } => Reply::Routes(Vec::new()),
                Op::NeighList { .. } => Reply::Neighs(Vec::new()),
                Op::FdbList { .. } => Reply::Fdb(Vec::new()),
                _ => Reply::Rules(Vec::new()),
            };
            async move { Ok(reply) }.boxed()
        }

        fn flush(&self) -> BoxFuture<'_, CapResult<Vec<(Ns, String)>>> {
            async { Ok(Vec::new()) }.boxed()
        }
    }

    fn lookup(from: &str, table: u32) -> RoutingRule {
        RoutingRule {
            from: Some(from.parse().expect("CIDR")),
            action: Some(RuleAction::Lookup(table)),
            ..builtin_rules()[0].clone()
        }
    }

    #[tokio::test]
    async fn rules_get_the_kernel_s_priorities_and_deletion_takes_the_first_match() {
        let model = Model::new(Arc::new(Fresh), FirewallKind::Nftables);
        let add = |rule: RoutingRule| model.apply(Op::RoutingRuleAdd { ns: None, rule });
        add(RoutingRule { priority: None, ..lookup("10.1.0.0/24", 100) }).await.expect("added");
        add(RoutingRule { priority: None, ..lookup("10.2.0.0/24", 100) }).await.expect("added");
        let err = add(RoutingRule { priority: Some(32765), ..lookup("10.1.0.0/24", 100) }).await.expect_err("twice");
        assert!(matches!(err, CapError::Exists(_)), "{err}");
        let pattern = RoutingRule { priority: None, from: None, ..lookup("0.0.0.0/0", 100) };
        model.apply(Op::RoutingRuleDelete { ns: None, rule: pattern }).await.expect("deleted");
        let Ok(Reply::RoutingRules(rules)) = model.apply(Op::RoutingRuleList { ns: None }).await else { panic!() };
        let shown: Vec<String> = rules.iter().filter(|r| !r.v6).map(|r| r.to_string()).collect();
        assert_eq!(
            shown,
            [
                "pref 0 from all lookup local",
                "pref 32765 from 10.1.0.0/24 lookup 100",
                "pref 32766 from all lookup main",
                "pref 32767 from all lookup default"
            ]
        );
        let none = RoutingRule { priority: Some(7), ..lookup("10.1.0.0/24", 100) };
        assert!(matches!(
            model.apply(Op::RoutingRuleDelete { ns: None, rule: none }).await,
            Err(CapError::NotFound(_))
        ));
    }
}
