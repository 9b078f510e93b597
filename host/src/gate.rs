//! The choke point: every capability call, from a recipe or the shell, passes
//! through [`Gate::call`] as a typed [`Op`]: the policy decides, the journal
//! writes the change's intent and inverse before it reaches the backend and
//! its outcome after, and the audit log records the decision and result.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::audit::{Audit, AuditError, Entry};
use crate::backend::Backend;
use crate::error::{CapError, CapResult};
use crate::journal::{Inverse, JournalError, RunInfo, RunLog};
use crate::ops::{EtcFile, Ns, Op, Reply};
use crate::policy::{self, Decision, Need, Needs, Policy};
use crate::stop::Stop;

/// Who is calling, under which policy, and where calls are recorded.
#[derive(Clone)]
pub struct Gate {
    backend: Arc<dyn Backend>,
    principal: String,
    policy: Arc<Policy>,
    audit: Option<Audit>,
    /// An append that fails is a warning, not an error (rollback, undo).
    audit_best_effort: bool,
    run: Option<Arc<RunLog>>,
    plan: Option<Arc<Mutex<PlanGrants>>>,
    /// Namespaces and links this run created: undoing their creation undoes
    /// every later change to them, so those changes need no inverse of their own.
    created: Arc<Mutex<HashSet<String>>>,
    /// Journal entries of this run's queued rule removals, by namespace and rule id.
    removals: Arc<Mutex<HashMap<(Ns, String), u32>>>,
    stop: Stop,
    /// Set once a call was denied: the engine then looks for every missing grant.
    denied: Arc<AtomicBool>,
}

/// What a plan found about grants: those used and those missing.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PlanGrants {
    pub used: BTreeSet<String>,
    /// Needs no grant allows, narrowest first.
    pub missing: Vec<Need>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("principal", &self.principal).finish_non_exhaustive()
    }
}

fn journal_error(e: JournalError) -> CapError {
    match e {
        JournalError::Io { path, err } => CapError::io(&err, format!("write the journal {path}")),
        other => CapError::Failed(other.to_string()),
    }
}

fn audit_error(e: AuditError) -> CapError {
    match e {
        AuditError::Io { path, err } => CapError::io(&err, format!("write the audit log {path}")),
        other => CapError::Failed(other.to_string()),
    }
}

impl Gate {
    /// A gate for `principal` that allows reads only (no grants yet).
    pub fn new(backend: Arc<dyn Backend>, principal: impl Into<String>) -> Self {
        Gate {
            backend,
            principal: principal.into(),
            policy: Arc::new(Policy::default()),
            audit: None,
            audit_best_effort: false,
            run: None,
            plan: None,
            created: Arc::default(),
            removals: Arc::default(),
            stop: Stop::default(),
            denied: Arc::default(),
        }
    }

    /// Plan: record missing grants instead of refusing, so the whole plan shows.
    pub fn planning(mut self, grants: Arc<Mutex<PlanGrants>>) -> Self {
        self.plan = Some(grants);
        self
    }

    /// Decide with `policy`, as it applies to the recipe with `digest`.
    pub fn with_policy(mut self, policy: &Policy, digest: Option<&str>) -> Self {
        self.policy = Arc::new(policy.for_digest(digest));
        self
    }

    /// Record mutating and denied calls in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Record in `audit`, but carry on (with a warning) when it cannot be written.
    pub fn with_audit_best_effort(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self.audit_best_effort = true;
        self
    }

    /// Journal every mutating call in `run`.
    pub fn with_run(mut self, run: Arc<RunLog>) -> Self {
        self.run = Some(run);
        self.created = Arc::default();
        self.removals = Arc::default();
        self.denied = Arc::default();
        self
    }

    /// Share `stop` with the runtime: once set, recipes' calls are refused.
    pub fn with_stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// The stop request this gate answers to.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Whether a call was denied.
    pub fn was_denied(&self) -> bool {
        self.denied.load(Ordering::Relaxed)
    }

    /// The grants in force, one line each.
    pub fn grants(&self) -> Vec<String> {
        self.policy.describe()
    }

    /// The run id recorded in the audit log.
    fn run_id(&self) -> &str {
        self.run.as_ref().map(|r| r.id.as_str()).unwrap_or("-")
    }

    /// Carry out one operation.
    pub async fn call(&self, op: Op) -> CapResult<Reply> {
        let op = self.exact(op).await?;
        let needs = match policy::needs(&op) {
            Needs::Nothing => return self.backend.apply(op).await,
            Needs::All(needs) => needs,
            Needs::RuleOf { ns, id } => self.rule_needs(ns, &id).await?,
        };
        let (needs, renamed) = self.under_every_name(needs).await?;
        if let Some(plan) = &self.plan {
            self.note_plan_grants(plan, &needs);
            return self.backend.apply(op).await;
        }
        let mut decision = self.policy.decide(&needs);
        if let Decision::Deny { reason, need } = &mut decision
            && let Some((other, name)) = renamed.iter().find(|(other, _)| need.namespace() == Some(other.as_str()))
        {
            reason.push_str(&format!(" ({name} is also named {other}: a grant must cover every name of a namespace)"));
        }
        if let Decision::Deny { reason, .. } = &decision {
            self.denied.store(true, Ordering::Relaxed);
            self.record(&op, &decision, Err(&CapError::Denied(reason.clone())), 0)?;
            return Err(CapError::Denied(reason.clone()));
        }
        let intent = match &self.run {
            Some(run) if !self.covered(&op) => match self.inverse(&op).await? {
                Some(inverse) => Some((run, run.intent(&op, inverse).map_err(journal_error)?)),
                None => None,
            },
            _ => None,
        };
        let started = Instant::now();
        let result = self.backend.apply(op.clone()).await;
        let took_us = started.elapsed().as_micros() as u64;
        tracing::debug!(principal = %self.principal, took_us, "{op}: {:?}", result.as_ref().err());
        // A rule that existed, a key that was there: nothing of ours to take back.
        let made = matches!(&result, Ok(reply) if reply.changed());
        // A write that got no answer may have happened: its intent stays
        // open, as a killed run's would, and its inverse only acts on what
        // the write left.
        let unanswered = matches!(result, Err(CapError::Unanswered(_)));
        if let Some((run, seq)) = intent.filter(|_| !unanswered) {
            run.outcome(seq, made).map_err(journal_error)?;
            if let (true, Op::FwRemove { ns, id }) = (made, &op) {
                self.removals.lock().unwrap_or_else(|p| p.into_inner()).insert((ns.clone(), id.clone()), seq);
            }
        }
        if made {
            self.note(&op);
        }
        self.record(&op, &decision, result.as_ref().map(drop), took_us)?;
        result
    }

    /// A namespace with several names is reached under each of them, so a
    /// need inside it holds under every one: no grant on one name reaches
    /// what another names.
    /// Also returns each other name added, with the name it stands beside.
    async fn under_every_name(&self, mut needs: Vec<Need>) -> CapResult<(Vec<Need>, Vec<(String, String)>)> {
        let mut spaces: Vec<String> = needs.iter().filter_map(|n| n.namespace().map(String::from)).collect();
        spaces.sort();
        spaces.dedup();
        let mut renamed = Vec::new();
        for ns in spaces {
            for other in self.other_names(&ns).await? {
                let moved: Vec<Need> =
                    needs.iter().filter(|n| n.namespace() == Some(&ns)).map(|n| n.under(&other)).collect();
                needs.extend(moved);
                renamed.push((other, ns.clone()));
            }
        }
        Ok((needs, renamed))
    }

    async fn other_names(&self, name: &str) -> CapResult<Vec<String>> {
        match self.read(Op::NetnsNames { name: name.to_string() }).await? {
            Reply::Names(names) => Ok(names),
            other => Err(other.mismatch()),
        }
    }

    /// Keep track of what this run created, and forget what it deleted again.
    fn note(&self, op: &Op) {
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        match op {
            Op::NetnsCreate { name } => drop(created.insert(ns_key(name))),
            Op::NetnsDelete { name } => drop(created.remove(&ns_key(name))),
            Op::LinkAddBridge { ns, name, .. } => drop(created.insert(link_key(ns, name))),
            Op::LinkAddVxlan { ns, spec } => drop(created.insert(link_key(ns, &spec.name))),
            Op::LinkAddMacvlan { ns, name, .. } => drop(created.insert(link_key(ns, name))),
            Op::LinkAddVeth { ns, spec } => {
                created.insert(link_key(ns, &spec.name));
                created.insert(link_key(spec.peer_ns.as_ref().map_or(ns, |_| &spec.peer_ns), &spec.peer));
            }
            Op::LinkDelete { ns, name } => drop(created.remove(&link_key(ns, name))),
            _ => {}
        }
    }

    /// Whether `op` only changes (or deletes) something this run created.
    fn covered(&self, op: &Op) -> bool {
        let created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        let in_created_ns = |ns: &Ns| ns.as_ref().is_some_and(|n| created.contains(&ns_key(n)));
        let link = |ns: &Ns, name: &str| in_created_ns(ns) || created.contains(&link_key(ns, name));
        match op {
            Op::LinkSetUp { ns, name, .. }
            | Op::LinkSetMtu { ns, name, .. }
            | Op::LinkSetMac { ns, name, .. }
            | Op::LinkSetAlias { ns, name, .. }
            | Op::LinkSetMaster { ns, name, .. }
            | Op::LinkDelete { ns, name } => link(ns, name),
            Op::AddrAdd { ns, dev, .. }
            | Op::AddrDelete { ns, dev, .. }
            | Op::NeighAdd { ns, dev, .. }
            | Op::NeighDelete { ns, dev, .. } => link(ns, dev),
            Op::FdbAdd { ns, entry } | Op::FdbDelete { ns, entry } => link(ns, &entry.dev),
            Op::RouteAdd { ns, .. }
            | Op::RouteDelete { ns, .. }
            | Op::RoutingRuleAdd { ns, .. }
            | Op::RoutingRuleDelete { ns, .. }
            | Op::FwSetForwardPolicy { ns, .. }
            | Op::SysctlSet { ns, .. } => in_created_ns(ns),
            Op::NetnsDelete { name }
            | Op::NetnsWriteEtc { name, .. }
            | Op::NetnsRemoveEtc { name, .. }
            | Op::HostsShare { name, .. } => created.contains(&ns_key(name)),
            _ => false,
        }
    }

    /// For a plan: which grants the needs use, which are missing.
    fn note_plan_grants(&self, plan: &Mutex<PlanGrants>, needs: &[Need]) {
        let mut plan = plan.lock().unwrap_or_else(|p| p.into_inner());
        for need in needs {
            match self.policy.decide(std::slice::from_ref(need)) {
                Decision::Allow(used) => plan.used.extend(used),
                Decision::Deny { need, .. } => {
                    if !plan.missing.contains(&need) {
                        plan.missing.push(need);
                    }
                }
            }
        }
    }

    /// Append the call's audit entry (built only when there is a log).
    fn record(&self, op: &Op, decision: &Decision, outcome: Result<(), &CapError>, duration_us: u64) -> CapResult<()> {
        let Some(audit) = &self.audit else { return Ok(()) };
        let mut entry = Entry::new(self.run_id(), &self.principal, op);
        match decision {
            Decision::Allow(grants) => (entry.decision, entry.grants) = ("allow".into(), grants.clone()),
            Decision::Deny { reason, .. } => (entry.decision, entry.reason) = ("deny".into(), Some(reason.clone())),
        }
        entry.result = match outcome {
            Ok(()) => "ok".into(),
            Err(CapError::Denied(_)) => "denied".into(),
            Err(e) => e.to_string(),
        };
        entry.duration_us = duration_us;
        match audit.append(entry).map_err(audit_error) {
            // Undo and rollback must finish even when the log cannot be written.
            Err(e) if self.audit_best_effort => {
                tracing::warn!("{e}; {op} was not recorded");
                Ok(())
            }
            other => other,
        }
    }

    /// What removing rule `id` needs: what adding it needed.
    async fn rule_needs(&self, ns: Ns, id: &str) -> CapResult<Vec<Need>> {
        let Some(rule) = self.rule(&ns, id).await? else {
            return Err(CapError::NotFound(format!("firewall rule {id} does not exist (see `netsh show`)")));
        };
        let mut needs = policy::rule_needs(&rule.rule);
        if let Some(ns) = ns {
            needs.insert(0, Need::Netns(ns));
        }
        Ok(needs)
    }

    /// A policy rule deletion's pattern (`rule del pref 400`) becomes the
    /// rule it selects now: the grants judge that rule, the journal can
    /// add it back, and the kernel deletes it or nothing.
    pub async fn exact(&self, op: Op) -> CapResult<Op> {
        let Op::RoutingRuleDelete { ns, rule: pattern } = op else { return Ok(op) };
        pattern.check()?;
        let rules = match self.read(Op::RoutingRuleList { ns: ns.clone() }).await? {
            Reply::RoutingRules(rules) => rules,
            other => return Err(other.mismatch()),
        };
        match rules.into_iter().find(|r| pattern.selects(r)) {
            Some(rule) => Ok(Op::RoutingRuleDelete { ns, rule }),
            None => Err(CapError::NotFound(format!("rule {pattern} does not exist (see `ip rule`)"))),
        }
    }

    async fn rule(&self, ns: &Ns, id: &str) -> CapResult<Option<crate::ops::RuleInfo>> {
        match self.backend.apply(Op::FwGet { ns: ns.clone(), id: id.into() }).await? {
            Reply::Rules(mut rules) => Ok(rules.pop()),
            other => Err(other.mismatch()),
        }
    }

    async fn read(&self, op: Op) -> CapResult<Reply> {
        self.backend.apply(op).await
    }

    /// How to take `op` back, read from the state before it runs; `None`
    /// when there is nothing to take back (the call will fail).
    async fn inverse(&self, op: &Op) -> CapResult<Option<Inverse>> {
        let undo = |op: Op| Ok(Some(Inverse::Undo(op)));
        let lost = |what: &str| Ok(Some(Inverse::Irreversible(format!("{op}: {what}"))));
        let link = |ns: &Ns, name: &str| Op::LinkGet { ns: ns.clone(), name: name.into() };
        match op {
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
            | Op::KvList { .. } => Ok(None),
            // A program's own effects are not netsh's to know or take back.
            Op::NetnsExec { .. } => Ok(None),
            Op::NetnsCreate { name } | Op::NetnsAttach { name, .. } => undo(Op::NetnsDelete { name: name.clone() }),
            Op::NetnsAlias { name, .. } => undo(Op::NetnsDelete { name: name.clone() }),
            // A name whose namespace has another is given back; the last one is the namespace.
            Op::NetnsDelete { name } => match self.other_names(name).await?.into_iter().next() {
                Some(of) => undo(Op::NetnsAlias { name: name.clone(), of }),
                None => lost("a deleted namespace cannot be brought back"),
            },
            Op::NetnsWriteEtc { name, file, .. } | Op::NetnsRemoveEtc { name, file } => {
                self.etc_inverse(name, *file).await
            }
            Op::HostsShare { name, .. } => self.etc_inverse(name, EtcFile::Hosts).await,
            Op::HostsAdd { group, line } => undo(Op::HostsRemove { group: group.clone(), line: line.clone() }),
            Op::HostsRemove { group, line } => undo(Op::HostsAdd { group: group.clone(), line: line.clone() }),
            // Undo takes a write back only while the key still holds what it wrote.
            Op::KvPut { key, value }
            | Op::KvPutLease { key, value, .. }
            | Op::KvCreate { key, value }
            | Op::KvSwap { key, value, .. } => self.kv_inverse(key, Some(value)).await,
            Op::KvDelete { key } => self.kv_inverse(key, None).await,
            Op::KvRevert { key, restore, .. } => self.kv_inverse(key, restore.as_ref()).await,
            Op::LinkAddBridge { ns, name, .. } => undo(Op::LinkDelete { ns: ns.clone(), name: name.clone() }),
            Op::LinkAddVeth { ns, spec } => undo(Op::LinkDelete { ns: ns.clone(), name: spec.name.clone() }),
            Op::LinkAddVxlan { ns, spec } => undo(Op::LinkDelete { ns: ns.clone(), name: spec.name.clone() }),
            Op::LinkAddMacvlan { ns, name, .. } => undo(Op::LinkDelete { ns: ns.clone(), name: name.clone() }),
            Op::NeighAdd { ns, dev, ip, .. } => undo(Op::NeighDelete { ns: ns.clone(), dev: dev.clone(), ip: *ip }),
            Op::NeighDelete { ns, dev, ip } => {
                match self.read(Op::NeighList { ns: ns.clone(), dev: Some(dev.clone()) }).await {
                    Ok(Reply::Neighs(found)) => match found.into_iter().find(|n| n.ip == *ip) {
                        Some(n) => undo(Op::NeighAdd { ns: ns.clone(), dev: dev.clone(), ip: *ip, mac: n.mac }),
                        None => Ok(None),
                    },
                    Ok(other) => Err(other.mismatch()),
                    Err(CapError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Op::FdbAdd { ns, entry } => undo(Op::FdbDelete { ns: ns.clone(), entry: entry.clone() }),
            Op::FdbDelete { ns, entry } => undo(Op::FdbAdd { ns: ns.clone(), entry: entry.clone() }),
            Op::LinkSetUp { ns, name, .. }
            | Op::LinkSetMaster { ns, name, .. }
            | Op::LinkSetMtu { ns, name, .. }
            | Op::LinkSetMac { ns, name, .. }
            | Op::LinkSetAlias { ns, name, .. } => {
                let old = match self.read(link(ns, name)).await {
                    Ok(Reply::Link(old)) => old,
                    Ok(other) => return Err(other.mismatch()),
                    Err(CapError::NotFound(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let (ns, name) = (ns.clone(), name.clone());
                undo(match op {
                    Op::LinkSetUp { .. } => Op::LinkSetUp { ns, name, up: old.up },
                    Op::LinkSetMaster { .. } => Op::LinkSetMaster { ns, name, master: old.master },
                    Op::LinkSetMtu { .. } => Op::LinkSetMtu { ns, name, mtu: old.mtu },
                    Op::LinkSetMac { .. } => Op::LinkSetMac { ns, name, mac: old.mac },
                    _ => Op::LinkSetAlias { ns, name, alias: old.alias.unwrap_or_default() },
                })
            }
            Op::LinkSetNetns { ns, name, target } => {
                undo(Op::LinkSetNetns { ns: target.clone(), name: name.clone(), target: ns.clone() })
            }
            Op::LinkRename { ns, name, new_name } => {
                undo(Op::LinkRename { ns: ns.clone(), name: new_name.clone(), new_name: name.clone() })
            }
            Op::LinkDelete { .. } => lost("a deleted link cannot be brought back"),
            Op::AddrAdd { ns, dev, cidr, .. } => undo(Op::AddrDelete { ns: ns.clone(), dev: dev.clone(), cidr: *cidr }),
            Op::AddrDelete { ns, dev, cidr } => {
                undo(Op::AddrAdd { ns: ns.clone(), dev: dev.clone(), cidr: *cidr, nodad: cidr.is_ipv6() })
            }
            Op::RouteAdd { ns, route } => undo(Op::RouteDelete { ns: ns.clone(), route: route.clone() }),
            // The route as the kernel holds it (its source, protocol, scope), not as the deletion names it.
            Op::RouteDelete { ns, route } => {
                let table = Some(route.table.unwrap_or(crate::ops::MAIN_TABLE));
                match self.read(Op::RouteList { ns: ns.clone(), table }).await {
                    Ok(Reply::Routes(routes)) => match routes.into_iter().find(|r| route.names(r)) {
                        Some(held) => undo(Op::RouteAdd { ns: ns.clone(), route: held }),
                        None => Ok(None),
                    },
                    Ok(other) => Err(other.mismatch()),
                    Err(CapError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            // Deleting a rule whose priority the kernel chose deletes the
            // first that looks the same: the one just added, or its equal.
            Op::RoutingRuleAdd { ns, rule } => undo(Op::RoutingRuleDelete { ns: ns.clone(), rule: rule.clone() }),
            // A deletion names the whole rule (see `exact`).
            Op::RoutingRuleDelete { ns, rule } => undo(Op::RoutingRuleAdd { ns: ns.clone(), rule: rule.clone() }),
            Op::SysctlSet { ns, key, .. } => match self.read(Op::SysctlGet { ns: ns.clone(), key: key.clone() }).await?
            {
                Reply::Text(value) => undo(Op::SysctlSet { ns: ns.clone(), key: key.clone(), value }),
                other => Err(other.mismatch()),
            },
            Op::FwAdd { ns, owner, rule } => {
                undo(Op::FwRemove { ns: ns.clone(), id: crate::firewall::rule_id(owner, rule) })
            }
            Op::FwSetForwardPolicy { ns, v6, .. } => {
                match self.read(Op::FwForwardPolicy { ns: ns.clone(), v6: *v6 }).await? {
                    Reply::Policy { policy, .. } => undo(Op::FwSetForwardPolicy { ns: ns.clone(), v6: *v6, policy }),
                    other => Err(other.mismatch()),
                }
            }
            Op::FwRemove { ns, id } => match self.rule(ns, id).await? {
                Some(r) => undo(Op::FwAdd { ns: ns.clone(), owner: r.owner, rule: r.rule }),
                None => Ok(None),
            },
        }
    }

    /// How to restore /etc/netns/NAME/FILE as it is now.
    async fn etc_inverse(&self, name: &str, file: EtcFile) -> CapResult<Option<Inverse>> {
        match self.read(Op::NetnsReadEtc { name: Some(name.to_string()), file }).await {
            Ok(Reply::Text(contents)) => {
                Ok(Some(Inverse::Undo(Op::NetnsWriteEtc { name: name.into(), file, contents })))
            }
            Err(CapError::NotFound(_)) => Ok(Some(Inverse::Undo(Op::NetnsRemoveEtc { name: name.into(), file }))),
            Err(e) => Err(e),
            Ok(other) => Err(other.mismatch()),
        }
    }

    /// How to take back a write that leaves `key` holding `written` (`None`: absent).
    async fn kv_inverse(&self, key: &str, written: Option<&String>) -> CapResult<Option<Inverse>> {
        match self.read(Op::KvGet { key: key.into() }).await? {
            Reply::Entry(old) => Ok(Some(Inverse::Undo(Op::KvRevert {
                key: key.into(),
                expect: written.cloned(),
                restore: old.map(|e| e.value),
            }))),
            other => Err(other.mismatch()),
        }
    }

    /// Apply what the backend queued during the run (firewall batches). A
    /// queued removal another run carried out first is no change of this
    /// run's: its journal says so, and its undo will not bring the rule back.
    pub async fn flush(&self) -> CapResult<()> {
        let removals = std::mem::take(&mut *self.removals.lock().unwrap_or_else(|p| p.into_inner()));
        let gone = self.backend.flush().await?;
        if let Some(run) = &self.run {
            for seq in gone.iter().filter_map(|key| removals.get(key)) {
                run.outcome(*seq, false).map_err(journal_error)?;
            }
        }
        Ok(())
    }

    /// Revert a run: its inverses in reverse order, each marked in `log` once
    /// done. Goes on after errors and returns them all; something already
    /// undone (gone, or back) counts as done.
    pub async fn revert(&self, run: &RunInfo, log: &RunLog) -> Vec<String> {
        let mut errors = Vec::new();
        let mut done = Vec::new();
        for step in run.undo_order() {
            match &step.inverse {
                Inverse::Undo(op) => match self.call(op.clone()).await {
                    Ok(_) | Err(CapError::NotFound(_)) | Err(CapError::Exists(_)) => done.push(step.seq),
                    Err(e) => errors.push(format!("{op}: {e}")),
                },
                Inverse::Irreversible(what) => errors.push(format!("cannot undo {what}")),
            }
        }
        // Firewall inverses are queued: only a committed batch counts as reverted.
        match self.flush().await {
            Ok(()) => {
                for seq in done {
                    if let Err(e) = log.reverted(seq) {
                        errors.push(format!("recording the undo: {e}"));
                        break;
                    }
                }
            }
            Err(e) => errors.push(format!("applying the firewall batch: {e}")),
        }
        errors
    }
}

fn ns_key(name: &str) -> String {
    format!("netns {name}")
}

fn link_key(ns: &Ns, name: &str) -> String {
    format!("link {}/{name}", ns.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use futures::future::BoxFuture;

    use super::*;
    use crate::journal::{Applied, Journal};

    /// A backend whose changes never finish, like a process killed in the middle of a call.
    struct Stuck;

    impl Backend for Stuck {
        fn apply(&self, _: Op) -> BoxFuture<'_, CapResult<Reply>> {
            futures::future::pending().boxed()
        }

        fn flush(&self) -> BoxFuture<'_, CapResult<Vec<(Ns, String)>>> {
            async { Ok(Vec::new()) }.boxed()
        }
    }

    /// A store that reads an absent key and answers writes with `write`.
    struct Store {
        write: CapError,
    }

    impl Backend for Store {
        fn apply(&self, op: Op) -> BoxFuture<'_, CapResult<Reply>> {
            let reply = match op {
                Op::KvGet { .. } => Ok(Reply::Entry(None)),
                _ => Err(self.write.clone()),
            };
            async { reply }.boxed()
        }

        fn flush(&self) -> BoxFuture<'_, CapResult<Vec<(Ns, String)>>> {
            async { Ok(Vec::new()) }.boxed()
        }
    }

    /// A gate with every grant, journaling into a fresh directory named `what`.
    fn journaled(backend: impl Backend + 'static, what: &str) -> (Gate, Journal, Arc<RunLog>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("netsh-gate-{what}-{}", std::process::id()));
        let journal = Journal::new(&dir);
        let run = Arc::new(journal.begin("test").unwrap());
        let policy = Policy::from_flags(&[], &[], true).unwrap();
        let gate = Gate::new(Arc::new(backend), "test").with_policy(&policy, None).with_run(run.clone());
        (gate, journal, run, dir)
    }

    #[tokio::test]
    async fn a_change_is_journaled_before_it_reaches_the_backend() {
        let (gate, journal, run, dir) = journaled(Stuck, "wal");
        let call = gate.call(Op::LinkAddBridge { ns: None, name: "br-x".into(), mtu: None });
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), call).await.is_err(), "the call hung");
        let info = journal.load(&run.id).unwrap();
        let step = info.undo_order().next().expect("the intent is in the journal");
        assert_eq!(step.applied, Applied::Unknown);
        assert_eq!(step.inverse, Inverse::Undo(Op::LinkDelete { ns: None, name: "br-x".into() }));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_write_without_an_answer_stays_to_undo_and_a_refused_one_does_not() {
        let put = Op::KvPut { key: "k".into(), value: "v".into() };
        let (gate, journal, run, dir) = journaled(Store { write: CapError::Unanswered("no answer".into()) }, "quiet");
        assert!(gate.call(put.clone()).await.is_err());
        let info = journal.load(&run.id).unwrap();
        let step = info.undo_order().next().expect("the unanswered write is kept to undo");
        assert_eq!(step.applied, Applied::Unknown);
        let revert = Op::KvRevert { key: "k".into(), expect: Some("v".into()), restore: None };
        assert_eq!(step.inverse, Inverse::Undo(revert));
        std::fs::remove_dir_all(dir).unwrap();

        let (gate, journal, run, dir) = journaled(Store { write: CapError::Failed("refused".into()) }, "refused");
        assert!(gate.call(put).await.is_err());
        assert!(journal.load(&run.id).unwrap().undo_order().next().is_none(), "a refused write is not undone");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
