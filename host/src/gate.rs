//! The choke point: every capability call, from a recipe or the CLI, passes
//! through [`Gate::call`] as a typed [`Op`]: the policy decides, the audit
//! log records, the journal keeps the inverse, then the backend acts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::audit::{Audit, Entry};
use crate::backend::Backend;
use crate::error::{CapError, CapResult};
use crate::journal::{Inverse, RunInfo, RunLog};
use crate::ops::{Op, Reply};
use crate::policy::{self, Decision, Need, Needs, Policy, prompt};

/// Who is calling, under which policy, and where calls are recorded.
#[derive(Clone)]
pub struct Gate {
    backend: Arc<dyn Backend>,
    principal: String,
    digest: Option<String>,
    policy: Arc<Mutex<Policy>>,
    prompt: bool,
    audit: Option<Audit>,
    run: Option<Arc<RunLog>>,
    plan: Option<Arc<Mutex<PlanGrants>>>,
    /// Namespaces and links this run created: undoing their creation undoes
    /// every later change to them, so those changes need no inverse of their own.
    created: Arc<Mutex<HashSet<String>>>,
}

/// What a plan found about grants: those used and those missing.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PlanGrants {
    pub used: std::collections::BTreeSet<String>,
    pub missing: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("principal", &self.principal).finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate for `principal` that allows reads only (no grants yet).
    pub fn new(backend: Arc<dyn Backend>, principal: impl Into<String>) -> Self {
        Gate {
            backend,
            principal: principal.into(),
            digest: None,
            policy: Arc::new(Mutex::new(Policy::default())),
            prompt: false,
            audit: None,
            run: None,
            plan: None,
            created: Arc::default(),
        }
    }

    /// Plan: record missing grants instead of refusing, so the whole plan shows.
    pub fn planning(mut self, grants: Arc<Mutex<PlanGrants>>) -> Self {
        self.plan = Some(grants);
        self
    }

    /// Decide with `policy`; ask on the terminal for missing grants when `prompt`.
    pub fn with_policy(mut self, policy: Policy, digest: Option<&str>, prompt: bool) -> Self {
        self.policy = Arc::new(Mutex::new(policy.for_digest(digest)));
        self.digest = digest.map(String::from);
        self.prompt = prompt;
        self
    }

    /// Record mutating and denied calls in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Journal the inverse of every mutating call in `run`.
    pub fn with_run(mut self, run: Arc<RunLog>) -> Self {
        self.run = Some(run);
        self.created = Arc::default();
        self
    }

    /// The grants in force, one line each.
    pub fn grants(&self) -> Vec<String> {
        self.policy.lock().unwrap_or_else(|p| p.into_inner()).describe()
    }

    /// The run id recorded in the audit log.
    fn run_id(&self) -> &str {
        self.run.as_ref().map(|r| r.id.as_str()).unwrap_or("-")
    }

    /// Carry out one operation.
    pub async fn call(&self, op: Op) -> CapResult<Reply> {
        let needs = match policy::needs(&op) {
            Needs::Nothing => return self.backend.apply(op).await,
            Needs::All(needs) => needs,
            Needs::RuleOf { ns, id } => self.rule_needs(ns, &id).await?,
        };
        if let Some(plan) = &self.plan {
            self.note_plan_grants(plan, &needs);
            return self.backend.apply(op).await;
        }
        let decision = self.decide(&needs, &op);
        if let Decision::Deny { reason, .. } = &decision {
            self.record(&op, &decision, Err(&CapError::Denied(reason.clone())), 0)?;
            return Err(CapError::Denied(reason.clone()));
        }
        let inverse = match &self.run {
            Some(_) if !self.covered(&op) => self.inverse(&op).await?,
            _ => None,
        };
        let started = Instant::now();
        let result = self.backend.apply(op.clone()).await;
        let took_us = started.elapsed().as_micros() as u64;
        tracing::debug!(principal = %self.principal, took_us, "{op}: {:?}", result.as_ref().err());
        let inverse = inverse.or_else(|| inverse_after(&op, &result));
        if let (Ok(_), Some(run), Some(inverse)) = (&result, &self.run, inverse) {
            run.step(&op, inverse).map_err(|e| CapError::Os { code: 0, message: e.to_string() })?;
            self.note_created(&op);
        }
        self.record(&op, &decision, result.as_ref().map(drop), took_us)?;
        result
    }

    /// Remember objects `op` created (namespaces made by netsh, links).
    fn note_created(&self, op: &Op) {
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        match op {
            Op::NetnsCreate { name } => drop(created.insert(ns_key(name))),
            Op::LinkAddBridge { ns, name, .. } => drop(created.insert(link_key(ns.as_deref(), name))),
            Op::LinkAddVeth { ns, spec } => {
                created.insert(link_key(ns.as_deref(), &spec.name));
                created.insert(link_key(spec.peer_ns.as_ref().or(ns.as_ref()).map(String::as_str), &spec.peer));
            }
            _ => {}
        }
    }

    /// Whether `op` only changes something this run created.
    fn covered(&self, op: &Op) -> bool {
        let created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        let in_created_ns = |ns: &crate::ops::Ns| ns.as_ref().is_some_and(|n| created.contains(&ns_key(n)));
        let link =
            |ns: &crate::ops::Ns, name: &str| in_created_ns(ns) || created.contains(&link_key(ns.as_deref(), name));
        match op {
            Op::LinkSetUp { ns, name, .. }
            | Op::LinkSetMtu { ns, name, .. }
            | Op::LinkSetAlias { ns, name, .. }
            | Op::LinkSetMaster { ns, name, .. } => link(ns, name),
            Op::AddrAdd { ns, dev, .. } | Op::AddrDelete { ns, dev, .. } => link(ns, dev),
            Op::RouteAdd { ns, .. } | Op::RouteDelete { ns, .. } | Op::SysctlSet { ns, .. } => in_created_ns(ns),
            Op::NetnsWriteEtc { name, .. } | Op::NetnsRemoveEtc { name, .. } => created.contains(&ns_key(name)),
            _ => false,
        }
    }

    /// For a plan: which grants the needs use, which are missing.
    fn note_plan_grants(&self, plan: &Mutex<PlanGrants>, needs: &[Need]) {
        let policy = self.policy.lock().unwrap_or_else(|p| p.into_inner());
        let mut plan = plan.lock().unwrap_or_else(|p| p.into_inner());
        for need in needs {
            match policy.decide(std::slice::from_ref(need)) {
                Decision::Allow(used) => plan.used.extend(used),
                Decision::Deny { need, .. } => {
                    plan.missing.insert(need.to_string());
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
        audit.append(entry).map_err(|e| CapError::Os { code: 0, message: e.to_string() })
    }

    /// The policy's decision, asking on the terminal for a missing grant.
    fn decide(&self, needs: &[Need], op: &Op) -> Decision {
        let mut policy = self.policy.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let decision = policy.decide(needs);
            let Decision::Deny { need, reason } = &decision else { return decision };
            if !self.prompt || reason.contains("denied by") {
                return decision;
            }
            let Ok(grant) = need.to_string().parse() else { return decision };
            match prompt::ask(&self.principal, need, &op.to_string()) {
                prompt::Answer::Deny => return decision,
                prompt::Answer::Once => policy.remember(grant, "prompt"),
                prompt::Answer::Always => {
                    if let Some(digest) = &self.digest
                        && let Err(e) = prompt::pin(digest, need)
                    {
                        eprintln!("netsh: could not save the grant: {e}");
                    }
                    policy.remember(grant, "prompt");
                }
            }
        }
    }

    /// What removing rule `id` needs: what adding it needed.
    async fn rule_needs(&self, ns: crate::ops::Ns, id: &str) -> CapResult<Vec<Need>> {
        let rules = match self.backend.apply(Op::FwList { ns: ns.clone() }).await? {
            Reply::Rules(rules) => rules,
            other => return Err(other.mismatch()),
        };
        let rule = rules
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| CapError::NotFound(format!("firewall rule {id} does not exist")))?;
        let mut needs = policy::command_needs(&rule.commands);
        if let Some(ns) = ns {
            needs.insert(0, Need::Netns(ns));
        }
        Ok(needs)
    }

    async fn read(&self, op: Op) -> CapResult<Reply> {
        self.backend.apply(op).await
    }

    /// How to take `op` back, read from the state before it runs.
    async fn inverse(&self, op: &Op) -> CapResult<Option<Inverse>> {
        let undo = |op: Op| Ok(Some(Inverse::Undo(op)));
        let lost = |what: &str| Ok(Some(Inverse::Irreversible(format!("{op}: {what}"))));
        let link = |ns: &crate::ops::Ns, name: &str| Op::LinkGet { ns: ns.clone(), name: name.into() };
        match op {
            Op::NetnsList
            | Op::NetnsExists { .. }
            | Op::NetnsReadEtc { .. }
            | Op::LinkGet { .. }
            | Op::LinkList { .. }
            | Op::AddrList { .. }
            | Op::RouteList { .. }
            | Op::SysctlGet { .. }
            | Op::FwList { .. } => Ok(None),
            Op::NetnsCreate { name } | Op::NetnsAttach { name, .. } => undo(Op::NetnsDelete { name: name.clone() }),
            Op::NetnsDelete { .. } => lost("a deleted namespace cannot be brought back"),
            Op::NetnsWriteEtc { name, file, .. } | Op::NetnsRemoveEtc { name, file } => {
                match self.read(Op::NetnsReadEtc { name: Some(name.clone()), file: *file }).await {
                    Ok(Reply::Text(contents)) => undo(Op::NetnsWriteEtc { name: name.clone(), file: *file, contents }),
                    Err(CapError::NotFound(_)) => undo(Op::NetnsRemoveEtc { name: name.clone(), file: *file }),
                    Err(e) => Err(e),
                    Ok(_) => Ok(None),
                }
            }
            Op::LinkAddBridge { ns, name, .. } => undo(Op::LinkDelete { ns: ns.clone(), name: name.clone() }),
            Op::LinkAddVeth { ns, spec } => undo(Op::LinkDelete { ns: ns.clone(), name: spec.name.clone() }),
            Op::LinkSetUp { ns, name, .. }
            | Op::LinkSetMaster { ns, name, .. }
            | Op::LinkSetMtu { ns, name, .. }
            | Op::LinkSetAlias { ns, name, .. } => {
                let Reply::Link(old) = self.read(link(ns, name)).await? else { return Ok(None) };
                let (ns, name) = (ns.clone(), name.clone());
                undo(match op {
                    Op::LinkSetUp { .. } => Op::LinkSetUp { ns, name, up: old.up },
                    Op::LinkSetMaster { .. } => Op::LinkSetMaster { ns, name, master: old.master },
                    Op::LinkSetMtu { .. } => Op::LinkSetMtu { ns, name, mtu: old.mtu },
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
            Op::AddrAdd { ns, dev, cidr } => undo(Op::AddrDelete { ns: ns.clone(), dev: dev.clone(), cidr: *cidr }),
            Op::AddrDelete { ns, dev, cidr } => undo(Op::AddrAdd { ns: ns.clone(), dev: dev.clone(), cidr: *cidr }),
            Op::RouteAdd { ns, route } => undo(Op::RouteDelete { ns: ns.clone(), route: route.clone() }),
            Op::RouteDelete { ns, route } => undo(Op::RouteAdd { ns: ns.clone(), route: route.clone() }),
            Op::SysctlSet { ns, key, .. } => match self.read(Op::SysctlGet { ns: ns.clone(), key: key.clone() }).await?
            {
                Reply::Text(value) => undo(Op::SysctlSet { ns: ns.clone(), key: key.clone(), value }),
                _ => Ok(None),
            },
            // Known only from the reply: see `inverse_after`.
            Op::FwAdd { .. } => Ok(None),
            Op::FwRemove { .. } => lost("a removed firewall rule is not restored"),
        }
    }

    /// Apply what the backend queued during the run (firewall batches).
    pub async fn flush(&self) -> CapResult<()> {
        self.backend.flush().await
    }

    /// Revert a run: its inverses in reverse order. Goes on after errors and
    /// returns them all; something already undone counts as done.
    pub async fn revert(&self, run: &RunInfo) -> Vec<String> {
        let mut errors = Vec::new();
        for inverse in run.undo_order() {
            match inverse {
                Inverse::Undo(op) => match self.call(op.clone()).await {
                    Ok(_) | Err(CapError::NotFound(_)) | Err(CapError::Exists(_)) => {}
                    Err(e) => errors.push(format!("{op}: {e}")),
                },
                Inverse::Irreversible(what) => errors.push(format!("cannot undo {what}")),
            }
        }
        if let Err(e) = self.flush().await {
            errors.push(format!("applying the firewall batch: {e}"));
        }
        errors
    }
}

fn ns_key(name: &str) -> String {
    format!("netns {name}")
}

fn link_key(ns: Option<&str>, name: &str) -> String {
    format!("link {}/{name}", ns.unwrap_or(""))
}

/// Inverses only the reply tells: removing a firewall rule the call added.
fn inverse_after(op: &Op, result: &CapResult<Reply>) -> Option<Inverse> {
    match (op, result) {
        (Op::FwAdd { ns, .. }, Ok(Reply::Rule { id, added: true })) => {
            Some(Inverse::Undo(Op::FwRemove { ns: ns.clone(), id: id.clone() }))
        }
        _ => None,
    }
}
