//! The iptables firewall backend. A namespace's rules are read once with
//! `iptables-save`; changes are checked against that view, queued, and
//! applied by [`FirewallBackend::flush`] as one `iptables-restore --noflush`
//! batch. Argv only, no shell. Runs in the calling thread's namespace.
//!
//! iptables cannot check and change in one step, so a run that changes rules
//! holds a lock file (one per network namespace, in /run/lock) from its first
//! change until its batch is applied: concurrent runs take turns, and no two
//! publish the same host port.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::backend::FirewallBackend;
use crate::error::{CapError, CapResult};
use crate::firewall::iptables::{self as render, CHAINS, Line, Table};
use crate::firewall::nft::Family;
use crate::firewall::parse_tag;
use crate::ops::{ChainPolicy, FwRule, Ns, RuleInfo, iptables_tool};

/// Drives the iptables binaries, with one pending batch per namespace.
#[derive(Debug, Default)]
pub struct Iptables {
    pending: Mutex<HashMap<Ns, Pending>>,
}

/// A namespace's rules as they will be after the queued batch, and the batch.
#[derive(Debug, Default)]
struct Pending {
    view: Saved,
    batch: BTreeMap<Table, Vec<String>>,
    /// Held from the first change until the batch is applied.
    lock: Option<Flock<File>>,
}

/// What `iptables-save` shows for the nat and filter tables.
#[derive(Debug, Default)]
struct Saved {
    chains: Vec<(Table, String)>,
    rules: Vec<Rule>,
}

/// A published host port: (protocol, host address, port).
type PortKey = (String, Option<String>, String);

/// A rule line with what netsh reads from it, parsed once.
#[derive(Debug)]
struct Rule {
    line: Line,
    /// (owner, id, rule) when netsh owns the rule.
    tag: Option<(String, String, FwRule)>,
    /// The host port a DNAT rule of netsh's holds.
    published: Option<PortKey>,
}

impl Rule {
    fn new(line: Line) -> Rule {
        let tag = comment_of(&line.spec).and_then(parse_tag);
        let published = published_key(&line.spec);
        Rule { line, tag, published }
    }
}

impl Saved {
    fn remove_rule(&mut self, table: Table, spec: &str) {
        self.rules.retain(|r| !(r.line.table == table && r.line.spec == spec));
    }

    fn has_chain(&self, table: Table, name: &str) -> bool {
        self.chains.iter().any(|(t, n)| *t == table && n == name)
    }

    fn has_rule(&self, table: Table, spec: &str) -> bool {
        self.rules.iter().any(|r| r.line.table == table && r.line.spec == spec)
    }

    /// Rules tagged by netsh, with their (owner, id).
    fn owned(&self) -> impl Iterator<Item = (&Rule, &str, &str)> {
        self.rules.iter().filter_map(|r| r.tag.as_ref().map(|(owner, id, _)| (r, owner.as_str(), id.as_str())))
    }
}

/// The comment of a rule line: a quoted string (iptables-save quotes one
/// with spaces) or a single word.
fn comment_of(spec: &str) -> Option<&str> {
    let rest = spec.split_once("--comment ")?.1;
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split_once('"').map(|(c, _)| c),
        None => rest.split_whitespace().next(),
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> CapResult<String> {
    let mut child = Command::new(super::system_tool(program))
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CapError::io(&e, format!("run {program} (is the iptables package installed?)")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(|e| CapError::io(&e, format!("write to {program}")))?;
    }
    let out = child.wait_with_output().map_err(|e| CapError::io(&e, format!("wait for {program}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(CapError::Failed(format!("{program} failed ({}): {}", out.status, stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn save() -> CapResult<Saved> {
    let text = run("iptables-save", &[], None)?;
    let mut saved = Saved::default();
    let mut table = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = match name {
                "nat" => Some(Table::Nat),
                "filter" => Some(Table::Filter),
                _ => None,
            };
        } else if let Some(t) = table {
            if let Some(chain) = line.strip_prefix(':') {
                let name = chain.split_whitespace().next().unwrap_or_default();
                saved.chains.push((t, name.to_string()));
            } else if let Some(spec) = line.strip_prefix("-A ") {
                saved.rules.push(Rule::new(Line { table: t, spec: spec.to_string() }));
            }
        }
    }
    Ok(saved)
}

/// The lock of the calling thread's network namespace, waited for (saying
/// so after a second).
fn take_lock() -> CapResult<Flock<File>> {
    let id =
        std::fs::metadata("/proc/thread-self/ns/net").map_err(|e| CapError::io(&e, "stat the network namespace"))?;
    let path = format!("/run/lock/netsh-iptables-{}-{}.lock", id.dev(), id.ino());
    let _ = std::fs::create_dir_all("/run/lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| CapError::io(&e, format!("open {path}")))?;
    let started = Instant::now();
    let mut warned = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                file = back;
                if !warned && started.elapsed() > Duration::from_secs(1) {
                    eprintln!("netsh: waiting for another netsh to finish changing iptables rules ({path})");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((_, e)) => return Err(CapError::os(e, format!("lock {path}"))),
        }
    }
}

/// Build an `iptables-restore` input from per-table command lines.
fn restore(batch: BTreeMap<Table, Vec<String>>) -> CapResult<()> {
    let mut input = String::new();
    for (table, lines) in batch.into_iter().filter(|(_, l)| !l.is_empty()) {
        input.push_str(&format!("*{}\n", table.as_str()));
        for line in lines {
            input.push_str(&line);
            input.push('\n');
        }
        input.push_str("COMMIT\n");
    }
    if input.is_empty() {
        return Ok(());
    }
    run("iptables-restore", &["--noflush", "--wait"], Some(&input)).map(drop)
}

/// The published (proto, host ip, port) keys of a DNAT line, if it is one.
fn published_key(spec: &str) -> Option<PortKey> {
    if !spec.starts_with("NETSH-PREROUTING ") || !spec.contains("-j DNAT") {
        return None;
    }
    let words: Vec<&str> = spec.split_whitespace().collect();
    let after =
        |flag: &str| words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).map(|s| s.to_string());
    Some((after("-p")?, after("-d"), after("--dport")?))
}

/// Refuse a publish whose host port another netsh rule already holds.
fn check_port_conflicts(saved: &Saved, id: &str, lines: &[Line]) -> CapResult<()> {
    for new in lines.iter().filter_map(|l| published_key(&l.spec)) {
        for (rule, owner, other) in saved.owned() {
            let Some(old) = &rule.published else {
                continue;
            };
            let same_ip = old.1.is_none() || new.1.is_none() || old.1 == new.1;
            if other != id && old.0 == new.0 && old.2 == new.2 && same_ip {
                return Err(CapError::Exists(format!(
                    "host port {}/{} is already published by {owner} (rule {other}); remove it first",
                    new.0, new.2
                )));
            }
        }
    }
    Ok(())
}

/// What iptables and ip6tables hold that netsh did not make, as commands
/// (`iptables -t filter -A FORWARD ...`, and policies other than ACCEPT):
/// whatever the tools can read here (none without them, or without root).
pub fn foreign_rules() -> Vec<String> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let tool = iptables_tool(v6);
        let Ok(saved) = run(&format!("{tool}-save"), &[], None) else { continue };
        let mut table = "";
        for line in saved.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = name;
            } else if let Some(chain) = line.strip_prefix(':') {
                let mut words = chain.split_whitespace();
                if let (Some(name), Some(policy)) = (words.next(), words.next())
                    && !matches!(policy, "ACCEPT" | "-")
                {
                    out.push(format!("{tool} -t {table} -P {name} {policy}"));
                }
            } else if line.starts_with("-A ") && !line.contains("NETSH-") && !line.contains("netsh:") {
                out.push(format!("{tool} -t {table} {line}"));
            }
        }
    }
    out
}

/// iptables' (or ip6tables') FORWARD policy: iptables' own chain, whichever
/// backend holds netsh's rules.
pub fn forward_policy(v6: bool) -> CapResult<ChainPolicy> {
    let program = iptables_tool(v6);
    let listed = run(program, &["-w", "-S", "FORWARD"], None)?;
    match listed.lines().next() {
        Some("-P FORWARD DROP") => Ok(ChainPolicy::Drop),
        Some("-P FORWARD ACCEPT") => Ok(ChainPolicy::Accept),
        other => Err(CapError::Failed(format!("{program} -S FORWARD began with {other:?}, not a policy"))),
    }
}

/// `iptables -P FORWARD ACCEPT|DROP`.
pub fn set_forward_policy(v6: bool, policy: ChainPolicy) -> CapResult<()> {
    run(iptables_tool(v6), &["-w", "-P", "FORWARD", policy.as_str()], None).map(drop)
}

/// Whether a rule names IPv6 addresses (which iptables, unlike ip6tables, cannot hold).
fn is_v6(rule: &FwRule) -> bool {
    match rule {
        FwRule::Masquerade { source, .. } | FwRule::Snat { source, .. } => source.is_ipv6(),
        FwRule::Publish { to_ip, .. } => to_ip.is_ipv6(),
        FwRule::LinkAccept { client, .. } => client.is_ipv6(),
        FwRule::ForwardAccept { .. } | FwRule::Isolate { .. } => false,
    }
}

impl Pending {
    fn push(&mut self, table: Table, line: String) {
        self.batch.entry(table).or_default().push(line);
    }

    /// Queue whatever netsh chains and jumps are missing.
    fn ensure_chains(&mut self) {
        for chain in CHAINS {
            if !self.view.has_chain(chain.table, chain.name) {
                self.push(chain.table, format!(":{} - [0:0]", chain.name));
                self.view.chains.push((chain.table, chain.name.to_string()));
            }
        }
        // Inserted at position 1 in reverse so that isolation precedes accepts.
        for chain in CHAINS.iter().rev() {
            if let Some(jump) = render::jump_spec(chain)
                && !self.view.has_rule(chain.table, &jump)
            {
                self.push(chain.table, format!("-I {}", jump.replacen(' ', " 1 ", 1)));
                self.view.rules.push(Rule::new(Line { table: chain.table, spec: jump }));
            }
        }
    }

    /// Queue removal of netsh's jumps and chains (when it owns no rule).
    fn drop_chains(&mut self) {
        for chain in CHAINS {
            if let Some(jump) = render::jump_spec(chain)
                && self.view.has_rule(chain.table, &jump)
            {
                self.push(chain.table, format!("-D {jump}"));
                self.view.remove_rule(chain.table, &jump);
            }
        }
        for chain in CHAINS {
            if self.view.has_chain(chain.table, chain.name) {
                self.push(chain.table, format!("-X {}", chain.name));
                self.view.chains.retain(|(t, n)| !(*t == chain.table && n == chain.name));
            }
        }
    }
}

impl Iptables {
    /// The pending state of `ns`, read from the kernel on first use.
    fn state<'a>(&self, map: &'a mut MutexGuard<'_, HashMap<Ns, Pending>>, ns: &Ns) -> CapResult<&'a mut Pending> {
        if !map.contains_key(ns) {
            map.insert(ns.clone(), Pending { view: save()?, batch: BTreeMap::new(), lock: None });
        }
        Ok(map.get_mut(ns).expect("inserted above"))
    }

    /// The state of `ns` for a change: under the namespace's lock, read
    /// again once the lock is taken (another run may have changed the rules).
    fn state_to_change<'a>(
        &self,
        map: &'a mut MutexGuard<'_, HashMap<Ns, Pending>>,
        ns: &Ns,
    ) -> CapResult<&'a mut Pending> {
        let state = self.state(map, ns)?;
        if state.lock.is_none() {
            state.lock = Some(take_lock()?);
            state.view = save()?;
        }
        Ok(state)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Ns, Pending>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl FirewallBackend for Iptables {
    fn add(&self, ns: &Ns, owner: &str, rule: &FwRule) -> CapResult<(String, bool)> {
        if is_v6(rule) {
            return Err(CapError::Invalid(format!(
                "the iptables backend handles IPv4 only; {rule} needs the nftables backend (--firewall nftables)"
            )));
        }
        let (id, lines) = render::render(owner, rule)?;
        let mut map = self.lock();
        let state = self.state_to_change(&mut map, ns)?;
        if state.view.owned().any(|(_, _, other)| other == id) {
            return Ok((id, false));
        }
        check_port_conflicts(&state.view, &id, &lines)?;
        state.ensure_chains();
        for line in lines {
            state.push(line.table, format!("-A {}", line.spec));
            state.view.rules.push(Rule::new(line));
        }
        Ok((id, true))
    }

    fn remove(&self, ns: &Ns, id: &str) -> CapResult<()> {
        let mut map = self.lock();
        let state = self.state_to_change(&mut map, ns)?;
        let doomed: Vec<Line> =
            state.view.owned().filter(|(_, _, other)| *other == id).map(|(r, _, _)| r.line.clone()).collect();
        if doomed.is_empty() {
            return Err(CapError::NotFound(format!("firewall rule {id} does not exist (see `netsh show`)")));
        }
        for line in doomed {
            state.push(line.table, format!("-D {}", line.spec));
            state.view.remove_rule(line.table, &line.spec);
        }
        if state.view.owned().next().is_none() {
            state.drop_chains();
        }
        Ok(())
    }

    fn list(&self, ns: &Ns) -> CapResult<Vec<RuleInfo>> {
        let mut map = self.lock();
        let state = self.state(&mut map, ns)?;
        let mut rules: Vec<RuleInfo> = Vec::new();
        for rule in &state.view.rules {
            let Some((owner, id, typed)) = &rule.tag else { continue };
            let command = render::commands(std::slice::from_ref(&rule.line)).remove(0);
            match rules.iter_mut().find(|r| &r.id == id) {
                Some(info) => info.commands.push(command),
                None => rules.push(RuleInfo {
                    id: id.clone(),
                    owner: owner.clone(),
                    rule: typed.clone(),
                    commands: vec![command],
                }),
            }
        }
        Ok(rules)
    }

    fn get(&self, ns: &Ns, id: &str) -> CapResult<Option<RuleInfo>> {
        Ok(self.list(ns)?.into_iter().find(|r| r.id == id))
    }

    /// Runs hold the lock from their first change, so no rule is removed under them.
    fn flush(&self, ns: &Ns) -> CapResult<Vec<String>> {
        let pending = self.lock().remove(ns);
        match pending {
            Some(p) => restore(p.batch).map(|()| Vec::new()),
            None => Ok(Vec::new()),
        }
    }

    /// netsh's chains are jumped from FORWARD itself: its accepts hold under any policy.
    fn forward_drops(&self, _ns: &Ns, _family: Family) -> CapResult<()> {
        Ok(())
    }

    /// netsh's chains are made afresh by any batch that finds one missing.
    fn missing_sets(&self, _ns: &Ns) -> CapResult<Vec<(Family, &'static str)>> {
        Ok(Vec::new())
    }

    fn pending(&self) -> Vec<Ns> {
        self.lock().iter().filter(|(_, p)| !p.batch.is_empty() || p.lock.is_some()).map(|(ns, _)| ns.clone()).collect()
    }
}
