//! Running a recipe: journal, gate and audit around it; rollback when it
//! fails; every missing grant found at once when it is denied; `--confirm`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, EngineResult, GrantSpec, Recipe, render};
use crate::console::Console;
use crate::gate::Gate;
use crate::journal::RunLog;
use crate::policy::{Grant, Need, Policy, prompt};
use crate::runtime::{Call, CniRequest, CniResult, Limits, RunError};
use crate::stop::Stop;

/// What to run and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// A .wasm file or an installed plugin's name.
    pub target: PathBuf,
    /// What the recipe is given after `--`.
    pub args: Vec<String>,
    pub grants: GrantSpec,
    pub timeout: Duration,
    pub max_memory_mib: usize,
    /// Keep a failed run's changes instead of rolling them back.
    pub no_rollback: bool,
    /// Revert unless `netsh confirm` arrives within this long.
    pub confirm: Option<Duration>,
    /// A person at a terminal may be asked for missing grants.
    pub interactive: bool,
    /// Call the recipe's `cni` export with this instead of `run` with `args`.
    #[serde(skip)]
    pub cni: Option<CniRequest>,
    /// Refuse to run a recipe whose SHA-256 is not this.
    pub sha256: Option<String>,
}

impl RunSpec {
    /// A run of `target` with default limits and no grants.
    pub fn new(target: PathBuf, args: Vec<String>) -> RunSpec {
        let limits = Limits::default();
        RunSpec {
            target,
            args,
            grants: GrantSpec::default(),
            timeout: limits.timeout,
            max_memory_mib: limits.max_memory_mib,
            no_rollback: false,
            confirm: None,
            interactive: false,
            cni: None,
            sha256: None,
        }
    }

    /// The export the run calls.
    pub(crate) fn call(&self) -> Call {
        match &self.cni {
            Some(request) => Call::Cni(Box::new(request.clone())),
            None => Call::Run(self.args.clone()),
        }
    }

    fn limits(&self) -> Limits {
        Limits { timeout: self.timeout, max_memory_mib: self.max_memory_mib }
    }
}

/// How a run that succeeded ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run's id, unless it changed nothing (then nothing is kept).
    pub id: Option<String>,
    /// `finished`, `confirmed`, or `help` when only the usage was shown.
    pub state: String,
    /// A CNI call's result.
    #[serde(skip)]
    pub cni: Option<CniResult>,
}

impl RunReport {
    fn new(id: Option<String>, state: &str) -> RunReport {
        RunReport { id, state: state.into(), cni: None }
    }
}

/// Whether the arguments ask for the recipe's usage.
fn wants_help(args: &[String]) -> bool {
    let before_dashes = args.iter().take_while(|a| *a != "--");
    matches!(args, [only] if only == "help") || before_dashes.into_iter().any(|a| a == "--help" || a == "-h")
}

/// One attempt's outcome.
struct Attempt {
    log: Arc<RunLog>,
    gate: Gate,
    result: Result<Option<CniResult>, RunFailure>,
}

/// Why an attempt failed.
enum RunFailure {
    Recipe(RunError),
    Firewall(crate::error::CapError),
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunFailure::Recipe(e) => write!(f, "{e}"),
            RunFailure::Firewall(e) => write!(f, "applying the firewall batch failed: {e}"),
        }
    }
}

/// `--allow 'G' ...`, ready to paste.
pub fn allow_flags(grants: &[String]) -> String {
    grants.iter().map(|g| format!("--allow '{g}'")).collect::<Vec<_>>().join(" ")
}

impl Engine {
    /// Run a recipe. Output goes to `console`; `stop` ends the run between
    /// host calls (Ctrl-C, SIGTERM). A failed run is rolled back and its
    /// error returned after the rollback is reported.
    pub async fn run(&self, spec: &RunSpec, console: Arc<dyn Console>, stop: Stop) -> EngineResult<RunReport> {
        let mut policy = spec.grants.load(&*console)?;
        let recipe = self.load(&spec.target, console.clone()).await?;
        if let Some(pinned) = spec.sha256.as_ref().filter(|p| !p.eq_ignore_ascii_case(&recipe.info.sha256)) {
            return Err(EngineError::Failed(format!(
                "{} has SHA-256 {}, not the {pinned} it is pinned to; nothing was run",
                recipe.loaded.path, recipe.info.sha256
            )));
        }
        if wants_help(&spec.args) {
            console.out(render::usage(&recipe.info).as_bytes());
            return Ok(RunReport::new(None, "help"));
        }
        let attempt = self.attempt(&recipe, &policy, spec, console.clone(), stop.clone()).await?;
        let denied = attempt.result.is_err() && attempt.gate.was_denied() && stop.reason().is_none();
        if !denied {
            return self.conclude(&recipe, attempt, spec, console, stop).await;
        }
        // Roll the denied run back, then find every grant it lacks at once.
        self.finish_failed(&attempt, spec, &*console).await?;
        let missing = self.missing_grants(&recipe, &policy, spec).await;
        if missing.is_empty() {
            return Err(failure(&recipe, &attempt));
        }
        if !(spec.interactive && prompt::available()) {
            let needed: Vec<String> = missing.iter().map(Need::to_string).collect();
            console.errln(&format!(
                "netsh: {} needs {} grant(s) it was not given; rerun with:\n  {}",
                recipe.info.principal(),
                needed.len(),
                allow_flags(&needed)
            ));
            return Err(failure(&recipe, &attempt));
        }
        let offered = prompt::offer(&missing, &recipe.info.declared());
        let answer = prompt::ask(&recipe.info.principal(), &offered);
        if answer == prompt::Answer::Deny {
            return Err(failure(&recipe, &attempt));
        }
        if answer == prompt::Answer::Always {
            match prompt::pin(&recipe.info.sha256, &offered) {
                Ok(path) => console.errln(&format!("netsh: saved in {}", path.display())),
                Err(e) => console.errln(&format!("netsh: could not save the grants: {e}")),
            }
        }
        for g in &offered {
            let grant: Grant = g.parse().map_err(crate::policy::PolicyError::from)?;
            policy.remember(grant, "prompt");
        }
        let retry = self.attempt(&recipe, &policy, spec, console.clone(), stop.clone()).await?;
        self.conclude(&recipe, retry, spec, console, stop).await
    }

    /// Run the recipe once under a fresh journal.
    async fn attempt(
        &self,
        recipe: &Recipe,
        policy: &Policy,
        spec: &RunSpec,
        console: Arc<dyn Console>,
        stop: Stop,
    ) -> EngineResult<Attempt> {
        let principal = recipe.info.principal();
        let audit = self.writable_audit()?;
        let log = Arc::new(self.journal()?.begin(&principal)?);
        let gate = Gate::new(self.kernel(), principal)
            .with_policy(policy, Some(&recipe.info.sha256))
            .with_audit(audit)
            .with_run(log.clone())
            .with_stop(stop);
        let runtime = self.runtime()?;
        let ran = runtime.run(&recipe.loaded, spec.call(), gate.clone(), console, spec.limits()).await;
        // Queued firewall changes are applied even after a failure: they
        // mirror what the recipe did before it stopped, and rollback undoes them.
        let flushed = gate.flush().await;
        let result =
            ran.map_err(RunFailure::Recipe).and_then(|cni| flushed.map(|()| cni).map_err(RunFailure::Firewall));
        Ok(Attempt { log, gate, result })
    }

    /// After a failed attempt: roll back (or keep, with --no-rollback) and
    /// report. A run that changed nothing leaves no journal.
    async fn finish_failed(&self, attempt: &Attempt, spec: &RunSpec, console: &dyn Console) -> EngineResult<()> {
        let id = &attempt.log.id;
        let info = self.journal()?.load(id)?;
        if info.steps == 0 && info.unreadable.is_empty() {
            return Ok(attempt.log.discard()?);
        }
        if spec.no_rollback {
            attempt.log.end("failed-kept")?;
            console.errln(&format!(
                "netsh: --no-rollback: run {id} keeps its partial changes; `netsh undo {id}` reverts them"
            ));
            return Ok(());
        }
        let errors = self.revert_run(&attempt.log).await?;
        attempt.log.end(if errors.is_empty() { "rolled-back" } else { "rollback-incomplete" })?;
        report_rollback(console, id, &errors);
        Ok(())
    }

    /// Revert a run's journal with a trusted gate; returns the problems left.
    pub(crate) async fn revert_run(&self, log: &RunLog) -> EngineResult<Vec<String>> {
        let info = self.journal()?.load(&log.id)?;
        let mut errors = self.trusted_gate(&format!("rollback {}", log.id))?.revert(&info, log).await;
        if !info.unreadable.is_empty() {
            errors.push(format!(
                "journal line(s) {:?} could not be read: what they record was not undone",
                info.unreadable
            ));
        }
        Ok(errors)
    }

    /// End an attempt: success (maybe awaiting confirmation), or failure rolled back.
    async fn conclude(
        &self,
        recipe: &Recipe,
        attempt: Attempt,
        spec: &RunSpec,
        console: Arc<dyn Console>,
        stop: Stop,
    ) -> EngineResult<RunReport> {
        let cni = match &attempt.result {
            Ok(cni) => cni.clone(),
            Err(_) => {
                self.finish_failed(&attempt, spec, &*console).await?;
                return Err(failure(recipe, &attempt));
            }
        };
        let report = self.settle(attempt, spec, console, stop).await?;
        Ok(RunReport { cni, ..report })
    }

    /// A successful attempt: kept, or awaiting confirmation.
    async fn settle(
        &self,
        attempt: Attempt,
        spec: &RunSpec,
        console: Arc<dyn Console>,
        stop: Stop,
    ) -> EngineResult<RunReport> {
        let id = attempt.log.id.clone();
        if self.journal()?.load(&id)?.steps == 0 {
            attempt.log.discard()?;
            return Ok(RunReport::new(None, "finished"));
        }
        match spec.confirm {
            Some(deadline) if self.keeps_deadlines => {
                attempt.log.await_confirm(SystemTime::now() + deadline)?;
                console.errln(&format!(
                    "netsh: run {id} applied; run `netsh confirm {id}` within {deadline:?} to keep it (the agent reverts it otherwise)"
                ));
                Ok(RunReport::new(Some(id), "awaiting-confirm"))
            }
            Some(deadline) => self.await_confirmation(&attempt.log, deadline, &*console, &stop).await,
            None => {
                attempt.log.end("finished")?;
                Ok(RunReport::new(Some(id), "finished"))
            }
        }
    }

    /// `--confirm D`: keep the run only if `netsh confirm ID` arrives in time.
    async fn await_confirmation(
        &self,
        log: &RunLog,
        deadline: Duration,
        console: &dyn Console,
        stop: &Stop,
    ) -> EngineResult<RunReport> {
        let id = &log.id;
        log.await_confirm(SystemTime::now() + deadline)?;
        console.errln(&format!("netsh: run {id} applied; run `netsh confirm {id}` within {deadline:?} to keep it"));
        let journal = self.journal()?;
        let started = Instant::now();
        while started.elapsed() < deadline && stop.reason().is_none() {
            if journal.confirmed(id) {
                log.end("confirmed")?;
                console.errln(&format!("netsh: run {id} confirmed"));
                return Ok(RunReport::new(Some(id.clone()), "confirmed"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let errors = self.revert_run(log).await?;
        log.end("reverted-unconfirmed")?;
        report_rollback(console, id, &errors);
        Err(EngineError::Failed(format!("run {id} was not confirmed within {deadline:?} and was reverted")))
    }

    /// Every grant the run needs and lacks: a plan pass with the same policy.
    async fn missing_grants(&self, recipe: &Recipe, policy: &Policy, spec: &RunSpec) -> Vec<Need> {
        let quiet: Arc<dyn Console> = Arc::new(crate::console::Discard);
        match self.plan_recipe(recipe, policy, spec.call(), quiet).await {
            Ok(report) => report.grants.missing,
            Err(_) => Vec::new(),
        }
    }
}

/// The error a failed run returns (after its rollback was reported).
fn failure(recipe: &Recipe, attempt: &Attempt) -> EngineError {
    match &attempt.result {
        Err(RunFailure::Recipe(RunError::Usage(m))) => EngineError::Usage(format!("usage: {m}")),
        Err(RunFailure::Recipe(RunError::Cni { code, msg, details })) => {
            EngineError::Runtime(RunError::Cni { code: *code, msg: msg.clone(), details: details.clone() })
        }
        Err(e) => EngineError::Failed(format!("{} did not complete: {e}", recipe.loaded.path)),
        Ok(_) => EngineError::Failed("internal error: a successful run reported as failed".into()),
    }
}

/// Tell the user how a rollback or undo went.
pub fn report_rollback(console: &dyn Console, id: &str, errors: &[String]) {
    if errors.is_empty() {
        console.errln(&format!("netsh: run {id} rolled back"));
    } else {
        console.errln(&format!("netsh: run {id} rolled back with {} problem(s):", errors.len()));
        for e in errors {
            console.errln(&format!("  {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_recognised_before_a_double_dash() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wants_help(&args(&["--help"])));
        assert!(wants_help(&args(&["connect", "-h"])));
        assert!(wants_help(&args(&["help"])));
        assert!(!wants_help(&args(&["connect", "help"])));
        assert!(!wants_help(&args(&["exec", "--", "ls", "--help"])));
    }
}
