//! The nftables firewall backend, in-process over netlink. Each rule is a
//! few set elements (see [`crate::firewall::nft`]); adding one checks its key
//! with a targeted lookup and queues the elements; a run's changes go to the
//! kernel as one batch, committed whole or not at all. A host port taken
//! by another run at the same moment fails that batch with EEXIST: exactly one
//! DNAT element per port, without a lock.

mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use netlink_sys::Socket;

use crate::backend::FirewallBackend;
use crate::error::{CapError, CapResult};
use crate::firewall::nft::{self, Element, Family, SETS};
use crate::firewall::{check_owner, check_rule, parse_tag, rule_id, tag};
use crate::ops::{FwRule, Ns, RuleInfo};
use wire::{Batch, Cmd, flags};

/// Drives nf_tables with one socket and one pending batch per namespace.
#[derive(Debug, Default)]
pub struct Nftables {
    spaces: Mutex<HashMap<Ns, Space>>,
}

/// A namespace's socket and what the current run queued there.
struct Space {
    socket: Socket,
    seq: u32,
    /// Tables checked this run: whether they exist.
    tables: HashMap<Family, bool>,
    adds: Queue,
    removes: Queue,
}

/// Rules queued for the batch, in order, found by id (and the DNAT keys
/// they take) in constant time: a run may queue thousands.
#[derive(Debug, Default)]
struct Queue {
    items: Vec<Option<Queued>>,
    by_id: HashMap<String, usize>,
    ports: HashMap<(Family, &'static str, Vec<u8>), String>,
}

impl Queue {
    fn push(&mut self, q: Queued) {
        for el in nft::elements(&q.rule).into_iter().filter(|e| e.set.starts_with("dnat_")) {
            self.ports.insert((q.family(), el.set, el.key), q.owner.clone());
        }
        self.by_id.insert(q.id.clone(), self.items.len());
        self.items.push(Some(q));
    }

    fn get(&self, id: &str) -> Option<&Queued> {
        self.by_id.get(id).and_then(|i| self.items[*i].as_ref())
    }

    fn take(&mut self, id: &str) -> Option<Queued> {
        let q = self.items[self.by_id.remove(id)?].take()?;
        for el in nft::elements(&q.rule) {
            self.ports.remove(&(q.family(), el.set, el.key));
        }
        Some(q)
    }

    /// Who holds a DNAT key of `family` among the queued rules.
    fn port_holder(&self, family: Family, set: &'static str, key: &[u8]) -> Option<&str> {
        self.ports.get(&(family, set, key.to_vec())).map(String::as_str)
    }

    fn iter(&self) -> impl Iterator<Item = &Queued> {
        self.items.iter().flatten()
    }

    fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn clear(&mut self) {
        *self = Queue::default();
    }
}

impl std::fmt::Debug for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space")
            .field("adds", &self.adds.by_id.len())
            .field("removes", &self.removes.by_id.len())
            .finish()
    }
}

/// A rule queued for the batch.
#[derive(Debug, Clone)]
struct Queued {
    id: String,
    owner: String,
    rule: FwRule,
}

impl Queued {
    fn families(&self) -> &'static [Family] {
        Family::of(&self.rule)
    }

    /// The family whose table is asked about the rule (the first it is in).
    fn family(&self) -> Family {
        self.families()[0]
    }

    fn info(&self) -> RuleInfo {
        let tag = tag(&self.owner, &self.id, &self.rule);
        let elements = nft::rule_elements(&self.id, &self.rule);
        RuleInfo {
            id: self.id.clone(),
            owner: self.owner.clone(),
            rule: self.rule.clone(),
            commands: self.families().iter().flat_map(|f| nft::element_commands(*f, &elements, &tag)).collect(),
        }
    }
}

fn os(err: std::io::Error, doing: impl std::fmt::Display) -> CapError {
    CapError::io(&err, doing)
}

impl Space {
    fn open() -> CapResult<Space> {
        let socket = wire::open().map_err(|e| os(e, "open an nf_tables netlink socket"))?;
        Ok(Space { socket, seq: 1, tables: HashMap::new(), adds: Queue::default(), removes: Queue::default() })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Whether the family's table exists (asked once per run).
    fn table(&mut self, family: Family) -> CapResult<bool> {
        if let Some(known) = self.tables.get(&family) {
            return Ok(*known);
        }
        let seq = self.next_seq();
        let exists = wire::table_exists(&self.socket, seq, family)
            .map_err(|e| os(e, format!("look up table {} netsh", family.name())))?;
        self.tables.insert(family, exists);
        Ok(exists)
    }

    /// The later sets (with their chains) that queued adds use and that an
    /// existing table (not one being created) lacks, in layout order.
    fn upgrades(&mut self, create: &HashSet<Family>) -> CapResult<Vec<(Family, &'static str, &'static str)>> {
        let mut used: Vec<(Family, &'static str)> = Vec::new();
        for q in self.adds.iter() {
            for el in nft::elements(&q.rule) {
                for family in q.families() {
                    if !create.contains(family) && !used.contains(&(*family, el.set)) {
                        used.push((*family, el.set));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (set, chain) in nft::LATER_SETS {
            for family in [Family::V4, Family::V6] {
                if !used.contains(&(family, set)) {
                    continue;
                }
                let seq = self.next_seq();
                let present = wire::set_exists(&self.socket, seq, family, set)
                    .map_err(|e| os(e, format!("look up set {} netsh {set}", family.name())))?;
                if !present {
                    out.push((family, set, chain));
                }
            }
        }
        Ok(out)
    }

    /// The userdata of element `key` of `set`, if present.
    fn lookup(&mut self, family: Family, set: &str, key: &[u8]) -> CapResult<Option<Vec<u8>>> {
        if !self.table(family)? {
            return Ok(None);
        }
        let seq = self.next_seq();
        let found = wire::get_elements(&self.socket, seq, family, set, Some(key))
            .map_err(|e| os(e, format!("look up an element of {} netsh {set}", family.name())))?;
        Ok(found.into_iter().next().map(|(_, user)| user))
    }

    /// The rule with this id, from the kernel's index.
    fn indexed(&mut self, id: &str) -> CapResult<Option<Queued>> {
        for family in [Family::V4, Family::V6] {
            if let Some(user) = self.lookup(family, "rules", &nft::ifname_bytes(id))? {
                let comment = wire::comment_of(&user).unwrap_or_default();
                let (owner, found, rule) = parse_tag(&comment).ok_or_else(|| {
                    CapError::Failed(format!(
                        "netsh rule {id} has an unreadable comment {comment:?} in table {} netsh",
                        family.name()
                    ))
                })?;
                return Ok(Some(Queued { id: found, owner, rule }));
            }
        }
        Ok(None)
    }

    /// Drop queued removals of rules no longer in the kernel (asking afresh);
    /// returns their ids.
    fn forget_removed(&mut self) -> CapResult<Vec<String>> {
        self.tables.clear();
        let ids: Vec<String> = self.removes.iter().map(|q| q.id.clone()).collect();
        let mut forgot = Vec::new();
        for id in ids {
            if self.indexed(&id)?.is_none() {
                self.removes.take(&id);
                forgot.push(id);
            }
        }
        Ok(forgot)
    }

    /// Every rule in the kernel's index.
    fn all(&mut self) -> CapResult<Vec<Queued>> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            if !self.table(family)? {
                continue;
            }
            let seq = self.next_seq();
            let found = wire::get_elements(&self.socket, seq, family, "rules", None)
                .map_err(|e| os(e, format!("list {} netsh rules", family.name())))?;
            for (_, user) in found {
                let Some((owner, id, rule)) = wire::comment_of(&user).as_deref().and_then(parse_tag) else { continue };
                // A rule of both families is listed once, from its first table.
                if Family::of(&rule)[0] == family {
                    out.push(Queued { id, owner, rule });
                }
            }
        }
        Ok(out)
    }

    /// Refuse a publish whose host port another rule holds (in the kernel or queued).
    fn check_ports(&mut self, new: &Queued) -> CapResult<()> {
        let FwRule::Publish { proto, first, .. } = &new.rule else { return Ok(()) };
        let family = new.family();
        let dnats: Vec<Element> = nft::elements(&new.rule).into_iter().filter(|e| e.set.starts_with("dnat_")).collect();
        for (port, el) in (*first..).zip(&dnats) {
            let holder = match self.adds.port_holder(family, el.set, &el.key) {
                Some(owner) => Some(owner.to_string()),
                None => self.lookup(family, el.set, &el.key)?.map(|user| {
                    wire::comment_of(&user)
                        .as_deref()
                        .and_then(parse_tag)
                        .map(|(o, _, _)| o)
                        .unwrap_or_else(|| "another rule".into())
                }),
            };
            if let Some(owner) = holder {
                return Err(CapError::Exists(format!(
                    "host port {}/{port} is already published by {owner}; remove it first",
                    proto.as_str()
                )));
            }
        }
        Ok(())
    }
}

/// Queue the messages that make (or unmake) one rule's elements, in each of its families.
fn push_rule(batch: &mut Batch, q: &Queued, add: bool) {
    q.families().iter().for_each(|family| push_family_rule(batch, *family, q, add));
}

fn push_family_rule(batch: &mut Batch, family: Family, q: &Queued, add: bool) {
    let tag = tag(&q.owner, &q.id, &q.rule);
    for el in nft::rule_elements(&q.id, &q.rule) {
        let comment = nft::commented(&el).then_some(tag.as_str());
        let attrs = wire::elements(&el, comment);
        let what = format!(
            "{} element {{ {} }} of {} netsh {}",
            if add { "add" } else { "delete" },
            el.text,
            family.name(),
            el.set
        );
        if add {
            batch.push(Cmd::NewSetElem, family, flags::CREATE | flags::EXCL, &attrs, what);
        } else {
            batch.push(Cmd::DelSetElem, family, 0, &attrs, what);
        }
    }
}

/// Bring a table an older netsh made up to date: a set added to the layout
/// since, and its rules, first in their chain.
fn push_upgrade(batch: &mut Batch, family: Family, set: &'static str, chain: &'static str) {
    let (i, def) = SETS.iter().enumerate().find(|(_, s)| s.name == set).expect("later sets are in SETS");
    batch.push(
        Cmd::NewSet,
        family,
        flags::CREATE | flags::EXCL,
        &wire::set(def, family, i as u32 + 1),
        format!("upgrade table {} netsh: create set {set}", family.name()),
    );
    // Without APPEND a rule goes first: push the last one first.
    for rule in nft::later_rules(family, set).iter().rev() {
        let what = format!("add rule {} netsh {chain} {} (first)", family.name(), rule.text);
        batch.push(Cmd::NewRule, family, flags::CREATE, &wire::rule(chain, &rule.exprs), what);
    }
}

/// Queue the creation of a family's whole table: sets, chains, rules.
fn push_table(batch: &mut Batch, family: Family) {
    batch.push(
        Cmd::NewTable,
        family,
        flags::CREATE | flags::EXCL,
        &wire::table(),
        format!("create table {} netsh", family.name()),
    );
    for (i, set) in SETS.iter().enumerate() {
        let attrs = wire::set(set, family, i as u32 + 1);
        batch.push(
            Cmd::NewSet,
            family,
            flags::CREATE,
            &attrs,
            format!("create set {} netsh {}", family.name(), set.name),
        );
    }
    let chains = nft::chains(family);
    for chain in &chains {
        batch.push(
            Cmd::NewChain,
            family,
            flags::CREATE,
            &wire::chain(chain),
            format!("create chain {} netsh {}", family.name(), chain.name),
        );
    }
    for chain in &chains {
        for rule in &chain.rules {
            let what = format!("add rule {} netsh {} {}", family.name(), chain.name, rule.text);
            batch.push(Cmd::NewRule, family, flags::CREATE | flags::APPEND, &wire::rule(chain.name, &rule.exprs), what);
        }
    }
}

impl Nftables {
    fn lock(&self) -> MutexGuard<'_, HashMap<Ns, Space>> {
        self.spaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the namespace's state, opening its socket (in the calling
    /// thread's namespace, which `in_netns` made `ns`) on first use.
    fn with<T>(&self, ns: &Ns, f: impl FnOnce(&mut Space) -> CapResult<T>) -> CapResult<T> {
        let mut spaces = self.lock();
        if !spaces.contains_key(ns) {
            spaces.insert(ns.clone(), Space::open()?);
        }
        f(spaces.get_mut(ns).expect("inserted above"))
    }

    /// Build and commit the batch; a table another run created meanwhile is
    /// not created again, a rule another run removed meanwhile is not removed
    /// again. Returns the ids of those rules.
    fn commit(space: &mut Space) -> CapResult<Vec<String>> {
        let mut gone = Vec::new();
        let mut create: HashSet<Family> = HashSet::new();
        let families: HashSet<Family> = space.adds.iter().flat_map(|q| q.families().iter().copied()).collect();
        for family in families {
            if !space.table(family)? {
                create.insert(family);
            }
        }
        let mut upgrade = space.upgrades(&create)?;
        for _ in 0..3 {
            let mut batch = Batch::new(space.next_seq());
            for family in [Family::V4, Family::V6] {
                if create.contains(&family) {
                    push_table(&mut batch, family);
                }
            }
            // Later sets last first, so that their rules end up in layout order.
            for &(family, set, chain) in upgrade.iter().rev() {
                push_upgrade(&mut batch, family, set, chain);
            }
            space.adds.iter().for_each(|q| push_rule(&mut batch, q, true));
            space.removes.iter().for_each(|q| push_rule(&mut batch, q, false));
            if batch.is_empty() {
                return Ok(gone);
            }
            space.seq += batch.what.len() as u32 + 2;
            match batch.commit(&space.socket) {
                Ok(()) => {
                    create.iter().for_each(|f| compat::install(*f));
                    return Ok(gone);
                }
                Err((e, what)) if e.raw_os_error() == Some(nix::libc::EEXIST) && what.starts_with("create table") => {
                    create.clear();
                    upgrade = space.upgrades(&create)?;
                }
                // Another run upgraded the table meanwhile.
                Err((e, what)) if e.raw_os_error() == Some(nix::libc::EEXIST) && what.starts_with("upgrade table") => {
                    space.tables.clear();
                    upgrade = space.upgrades(&create)?;
                }
                // Another run removed a rule this one removes (two teardowns
                // of one container): what is gone counts as removed.
                Err((e, what)) if e.raw_os_error() == Some(nix::libc::ENOENT) && what.starts_with("delete element") => {
                    let forgot = space.forget_removed()?;
                    if forgot.is_empty() {
                        return Err(os(e, format!("nf_tables refused to {what}; nothing of this batch was applied")));
                    }
                    gone.extend(forgot);
                }
                Err((e, what)) if e.raw_os_error() == Some(nix::libc::EEXIST) => {
                    return Err(CapError::Exists(format!(
                        "{what}: it exists already (another run made the same change at the same time); nothing of this batch was applied"
                    )));
                }
                Err((e, what)) => {
                    return Err(os(e, format!("nf_tables refused to {what}; nothing of this batch was applied")));
                }
            }
        }
        Err(CapError::Failed("table netsh or its rules changed under this batch three times; run again".into()))
    }

    /// Remove a family's table once it holds no rule, leaving nothing behind.
    fn drop_if_empty(space: &mut Space, family: Family) -> CapResult<()> {
        space.tables.clear();
        if !space.table(family)? {
            return Ok(());
        }
        let busy =
            wire::has_elements(family, "rules").map_err(|e| os(e, format!("list {} netsh rules", family.name())))?;
        if busy {
            return Ok(());
        }
        let mut batch = Batch::new(space.next_seq());
        batch.push(Cmd::DelTable, family, 0, &wire::table(), format!("delete table {} netsh", family.name()));
        space.seq += 3;
        match batch.commit(&space.socket) {
            Ok(()) => {
                compat::remove(family);
                Ok(())
            }
            // A rule added meanwhile keeps the table busy: that is fine.
            Err((e, _)) if matches!(e.raw_os_error(), Some(nix::libc::EBUSY) | Some(nix::libc::ENOENT)) => Ok(()),
            Err((e, what)) => Err(os(e, what)),
        }
    }
}

impl FirewallBackend for Nftables {
    fn add(&self, ns: &Ns, owner: &str, rule: &FwRule) -> CapResult<(String, bool)> {
        check_owner(owner)?;
        check_rule(rule)?;
        let new = Queued { id: rule_id(owner, rule), owner: owner.into(), rule: rule.clone() };
        self.with(ns, |space| {
            if space.adds.get(&new.id).is_some() {
                return Ok((new.id, false));
            }
            if space.removes.take(&new.id).is_some() {
                return Ok((new.id, true));
            }
            if space.table(new.family())? && space.lookup(new.family(), "rules", &nft::ifname_bytes(&new.id))?.is_some()
            {
                return Ok((new.id, false));
            }
            space.check_ports(&new)?;
            let id = new.id.clone();
            space.adds.push(new);
            Ok((id, true))
        })
    }

    fn remove(&self, ns: &Ns, id: &str) -> CapResult<()> {
        self.with(ns, |space| {
            if space.adds.take(id).is_some() {
                return Ok(());
            }
            if space.removes.get(id).is_some() {
                return Err(CapError::NotFound(format!("firewall rule {id} is already being removed")));
            }
            match space.indexed(id)? {
                Some(q) => {
                    space.removes.push(q);
                    Ok(())
                }
                None => Err(CapError::NotFound(format!("firewall rule {id} does not exist (see `netsh show`)"))),
            }
        })
    }

    fn get(&self, ns: &Ns, id: &str) -> CapResult<Option<RuleInfo>> {
        self.with(ns, |space| {
            if let Some(q) = space.adds.get(id) {
                return Ok(Some(q.info()));
            }
            if space.removes.get(id).is_some() {
                return Ok(None);
            }
            Ok(space.indexed(id)?.map(|q| q.info()))
        })
    }

    fn list(&self, ns: &Ns) -> CapResult<Vec<RuleInfo>> {
        self.with(ns, |space| {
            let mut rules: Vec<Queued> = space.all()?;
            rules.retain(|r| space.removes.get(&r.id).is_none());
            rules.extend(space.adds.iter().cloned());
            Ok(rules.iter().map(Queued::info).collect())
        })
    }

    fn flush(&self, ns: &Ns) -> CapResult<Vec<String>> {
        let mut spaces = self.lock();
        let Some(space) = spaces.get_mut(ns) else { return Ok(Vec::new()) };
        let result = Self::commit(space);
        let emptied: HashSet<Family> = space.removes.iter().flat_map(|q| q.families().iter().copied()).collect();
        space.adds.clear();
        space.removes.clear();
        let dropped = match &result {
            Ok(_) => emptied.into_iter().try_for_each(|f| Self::drop_if_empty(space, f)),
            Err(_) => Ok(()),
        };
        space.tables.clear();
        // A socket keeps its namespace alive: only netsh's own keeps one between runs.
        if ns.is_some() {
            spaces.remove(ns);
        }
        dropped.and(result)
    }

    fn missing_sets(&self, ns: &Ns) -> CapResult<Vec<(Family, &'static str)>> {
        self.with(ns, |space| {
            let mut missing = Vec::new();
            for family in [Family::V4, Family::V6] {
                if !space.table(family)? {
                    continue;
                }
                for (set, _) in nft::LATER_SETS {
                    let seq = space.next_seq();
                    let present = wire::set_exists(&space.socket, seq, family, set)
                        .map_err(|e| os(e, format!("look up set {} netsh {set}", family.name())))?;
                    if !present {
                        missing.push((family, set));
                    }
                }
            }
            Ok(missing)
        })
    }

    fn forward_drops(&self, ns: &Ns, family: Family) -> CapResult<()> {
        self.with(ns, |space| {
            if space.table(family)? {
                compat::install(family);
            }
            Ok(())
        })
    }

    fn pending(&self) -> Vec<Ns> {
        self.lock()
            .iter()
            .filter(|(_, s)| !s.adds.is_empty() || !s.removes.is_empty())
            .map(|(ns, _)| ns.clone())
            .collect()
    }
}

/// The nf_tables tables netsh did not make, as `nft table FAMILY NAME`
/// (none where nf_tables cannot be read).
pub fn foreign_tables() -> Vec<String> {
    let Ok(socket) = wire::open() else { return Vec::new() };
    let Ok(tables) = wire::tables(&socket, 1) else { return Vec::new() };
    let ours =
        |family: u8, name: &str| name == nft::TABLE && [Family::V4, Family::V6].iter().any(|f| f.nfproto() == family);
    tables
        .into_iter()
        .filter(|(family, name)| !ours(*family, name))
        .map(|(family, name)| {
            let family = match family {
                1 => "inet",
                2 => "ip",
                3 => "arp",
                5 => "netdev",
                7 => "bridge",
                10 => "ip6",
                _ => "unknown",
            };
            format!("nft table {family} {name}")
        })
        .collect()
}

/// Packets netsh accepts must also pass iptables' FORWARD chain when its
/// policy is DROP (Docker, firewalld-free hosts hardened by hand): a table's
/// creation then inserts one rule there accepting netsh's mark, and its
/// removal takes it out. Best effort: without iptables there is nothing to pass.
mod compat {
    use std::process::{Command, Stdio};

    use crate::firewall::nft::{ACCEPT_MARK, Family};

    fn tool(family: Family) -> &'static str {
        match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    fn args(verb: &str) -> Vec<String> {
        let mark = format!("{ACCEPT_MARK:#x}/{ACCEPT_MARK:#x}");
        [
            verb,
            "FORWARD",
            "-m",
            "mark",
            "--mark",
            &mark,
            "-m",
            "comment",
            "--comment",
            "netsh:accept-mark",
            "-j",
            "ACCEPT",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn run(family: Family, args: &[String]) -> bool {
        Command::new(super::super::system_tool(tool(family)))
            .arg("-w")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Whether iptables' FORWARD chain drops by default.
    fn drops(family: Family) -> bool {
        Command::new(super::super::system_tool(tool(family)))
            .args(["-w", "-S", "FORWARD"])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().next() == Some("-P FORWARD DROP"))
    }

    /// After creating a table.
    pub fn install(family: Family) {
        if drops(family) && !run(family, &args("-C")) {
            run(family, &args("-I"));
        }
    }

    /// After deleting a table.
    pub fn remove(family: Family) {
        if run(family, &args("-C")) {
            run(family, &args("-D"));
        }
    }
}
