//! Runs after the fact: list and prune them, undo one, confirm one, report
//! the ones a killed process left behind; the audit log.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Engine, EngineError, EngineResult, render};
use crate::audit::Entry;
use crate::console::Console;
use crate::journal::RunInfo;
use crate::stop::Stop;

/// A run as `netsh runs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRow {
    pub id: String,
    pub principal: String,
    pub started: String,
    pub state: String,
    pub steps: usize,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub state: Option<String>,
    pub principal: Option<String>,
    pub since: Option<SystemTime>,
}

/// A run's state as shown: its final state, or what it is doing now.
pub fn state_of(run: &RunInfo) -> String {
    match &run.state {
        Some(s) => s.clone(),
        None if run.abandoned() => "interrupted".into(),
        None if run.awaiting_confirm.is_some() => "awaiting-confirm".into(),
        None => "running".into(),
    }
}

/// Parse an RFC 3339 time or an age such as `10m` into a point in time.
pub fn parse_since(text: &str) -> EngineResult<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    let age = humantime::parse_duration(text).map_err(|_| {
        EngineError::Usage(format!("{text:?} is neither a time (2026-12-01T10:00:00) nor an age like 10m"))
    })?;
    Ok(SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH))
}

fn started_at(run: &RunInfo) -> SystemTime {
    humantime::parse_rfc3339_weak(&run.started).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// States a run is kept in only for the record.
fn ended(state: &str) -> bool {
    !matches!(state, "running" | "interrupted" | "awaiting-confirm")
}

/// How an undo went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndoReport {
    pub id: String,
    /// Changes taken back now.
    pub reverted: usize,
    /// The run had been undone before: nothing was done.
    pub already: bool,
}

impl Engine {
    /// Runs matching `filter`, oldest first.
    pub fn runs(&self, filter: &RunFilter) -> EngineResult<Vec<RunRow>> {
        let rows = self.journal()?.list()?.into_iter().filter_map(|run| {
            let state = state_of(&run);
            let keep = filter.state.as_ref().is_none_or(|s| *s == state)
                && filter.principal.as_ref().is_none_or(|p| run.principal.starts_with(p.as_str()))
                && filter.since.is_none_or(|t| started_at(&run) >= t);
            keep.then_some(RunRow {
                id: run.id,
                principal: run.principal,
                started: run.started,
                state,
                steps: run.steps,
            })
        });
        Ok(rows.collect())
    }

    /// Forget ended runs (older than `older_than`, if given); returns how many.
    /// Running, interrupted and unconfirmed runs are kept: they may need undo.
    pub fn prune(&self, older_than: Option<Duration>) -> EngineResult<usize> {
        let journal = self.journal()?;
        let cutoff = older_than.map(|d| SystemTime::now().checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH));
        let mut removed = 0;
        for run in journal.list()? {
            if ended(&state_of(&run)) && cutoff.is_none_or(|c| started_at(&run) < c) {
                journal.remove(&run.id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The newest run that changed something and is not undone (`undo last`).
    pub fn last_run(&self) -> EngineResult<String> {
        let runs = self.journal()?.list()?;
        runs.into_iter()
            .rev()
            .find(|r| {
                r.steps > 0 && !r.fully_reverted() && !matches!(state_of(r).as_str(), "running" | "awaiting-confirm")
            })
            .map(|r| r.id)
            .ok_or_else(|| EngineError::Failed("no run left to undo (see `netsh runs`)".into()))
    }

    /// Revert a finished or interrupted run: each change not yet taken back,
    /// last first. A second undo does nothing; unreadable journal lines are
    /// reported and the run is not called undone.
    pub async fn undo(&self, id: &str, console: &dyn Console) -> EngineResult<UndoReport> {
        let id = if id == "last" { self.last_run()? } else { id.to_string() };
        let journal = self.journal()?;
        let info = journal.load(&id)?;
        if info.state.is_none() && !info.abandoned() {
            return Err(EngineError::Failed(format!("run {id} is still running (pid {}); stop it first", info.pid)));
        }
        if info.fully_reverted() && info.unreadable.is_empty() {
            return Ok(UndoReport { id, reverted: 0, already: true });
        }
        let pending = info.undo_order().count();
        let log = journal.reopen(&id)?;
        let errors = self.revert_run(&log).await?;
        log.end(if errors.is_empty() { "undone" } else { "undo-incomplete" })?;
        if errors.is_empty() {
            return Ok(UndoReport { id, reverted: pending, already: false });
        }
        for e in &errors {
            console.errln(&format!("  {e}"));
        }
        Err(EngineError::Failed(format!("run {id} undone with {} problem(s)", errors.len())))
    }

    /// Keep a run that waits for confirmation (`netsh confirm ID`).
    pub fn confirm(&self, id: &str) -> EngineResult<()> {
        let journal = self.journal()?;
        let info = journal.load(id)?;
        match (&info.state, &info.awaiting_confirm) {
            (Some(state), _) => Err(EngineError::Failed(format!("run {id} is {state}: there is nothing to confirm"))),
            (None, None) => Err(EngineError::Failed(format!("run {id} was not started with --confirm"))),
            (None, Some(_)) if info.abandoned() => Err(EngineError::Failed(format!(
                "run {id} waited for confirmation, but its process is gone and its changes are still in place; `netsh undo {id}` reverts them"
            ))),
            (None, Some(_)) => Ok(journal.confirm(id)?),
        }
    }

    /// Settle `--confirm` deadlines, for the process that keeps them (the
    /// agent): adopt waiting runs whose keeper died, end the confirmed ones,
    /// revert those whose deadline passed. Returns one line per run settled.
    pub async fn keep_deadlines(&self) -> Vec<String> {
        let Ok(journal) = self.journal() else { return Vec::new() };
        let me = std::process::id();
        let mut settled = Vec::new();
        for run in journal.unfinished().unwrap_or_default() {
            let Some(until) = run.awaiting_confirm.as_deref() else { continue };
            if run.pid != me && !run.abandoned() {
                continue; // a `netsh run --confirm` process waits for it itself
            }
            let Ok(log) = journal.reopen(&run.id) else { continue };
            if run.pid != me && log.adopt().is_err() {
                continue;
            }
            let id = &run.id;
            let due = humantime::parse_rfc3339_weak(until).map_or(true, |t| t <= SystemTime::now());
            let outcome = if journal.confirmed(id) {
                log.end("confirmed").map(|()| format!("run {id} confirmed"))
            } else if due {
                match self.revert_run(&log).await {
                    Ok(errors) if errors.is_empty() => log
                        .end("reverted-unconfirmed")
                        .map(|()| format!("run {id} was not confirmed in time and was reverted")),
                    Ok(errors) => log.end("reverted-unconfirmed").map(|()| {
                        format!("run {id} was not confirmed in time; reverting it left problems: {}", errors.join("; "))
                    }),
                    Err(e) => Ok(format!("run {id} was not confirmed in time, but cannot be reverted: {e}")),
                }
            } else {
                continue;
            };
            settled.push(outcome.unwrap_or_else(|e| format!("run {id}: {e}")));
        }
        settled
    }

    /// Runs whose process died with changes applied.
    pub fn interrupted(&self) -> Vec<RunInfo> {
        let Ok(journal) = self.journal() else { return Vec::new() };
        journal.unfinished().unwrap_or_default().into_iter().filter(|r| r.abandoned() && r.steps > 0).collect()
    }

    /// Tell the user about interrupted runs (every command does, but undo and runs).
    pub fn report_interrupted(&self, console: &dyn Console) {
        for run in self.interrupted() {
            console.errln(&format!(
                "netsh: run {} ({}) was interrupted with {} change(s) applied; `netsh undo {}` reverts them",
                run.id, run.principal, run.steps, run.id
            ));
        }
    }

    /// Print the audit log's entries matching `wanted`; with `follow`, keep
    /// printing new ones until `stop`.
    pub async fn print_audit(
        &self,
        wanted: &dyn Fn(&Entry) -> bool,
        json: bool,
        follow: bool,
        console: &dyn Console,
        stop: &Stop,
    ) -> EngineResult<()> {
        let log = self.audit()?;
        let mut shown = 0;
        loop {
            let entries = log.entries()?;
            for e in entries.iter().skip(shown).filter(|e| wanted(e)) {
                console.outln(&render::audit_entry(e, json));
            }
            shown = entries.len();
            if !follow || stop.reason().is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Check the audit log: its chain, MACs and head.
    pub fn verify_audit(&self) -> EngineResult<String> {
        let log = self.audit()?;
        match log.verify() {
            Ok(n) => {
                Ok(format!("{}: {n} line(s), chain intact and complete up to its head record", log.path().display()))
            }
            Err(e) => Err(EngineError::Failed(format!("{}: {e}", log.path().display()))),
        }
    }
}
