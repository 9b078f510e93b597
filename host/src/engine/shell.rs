//! The shell's commands, for every way they arrive (a terminal, `-c`, a
//! batch file): each line runs under the same grants, audit log and journal
//! as recipes (principal `repl`).

use std::io::Write;
use std::sync::Arc;

use super::grammar::{self, AuditQuery, COMMANDS, Line};
use super::run::{RunSpec, allow_flags, report_rollback};
use super::runs::parse_since;
use super::{Engine, EngineError, EngineResult, GrantSpec, render};
use crate::console::Console;
use crate::gate::Gate;
use crate::journal::RunLog;
use crate::ops::{Op, Reply};
use crate::policy::{self, Decision, Needs, Policy, prompt};
use crate::stop::Stop;

/// What a line asked the session to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Exit,
}

/// One shell, interactive or batch.
pub struct Session<'a> {
    engine: &'a Engine,
    grants: GrantSpec,
    policy: Policy,
    gate: Gate,
    console: Arc<dyn Console>,
    stop: Stop,
    interactive: bool,
    /// The run of the current batch and its gate (all lines share them).
    batch: Option<(Arc<RunLog>, Gate)>,
    /// The last command's run that changed something, for a bare `undo`.
    last_run: Option<String>,
    recording: Option<(String, Vec<String>)>,
    /// The exit code a batch ends with (a `plan` sets it).
    pub code: u8,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("interactive", &self.interactive).finish_non_exhaustive()
    }
}

impl<'a> Session<'a> {
    /// A session with `grants`; `interactive` when a person types the lines.
    pub fn new(
        engine: &'a Engine,
        grants: GrantSpec,
        console: Arc<dyn Console>,
        stop: Stop,
        interactive: bool,
    ) -> EngineResult<Session<'a>> {
        let policy = grants.load(&*console)?;
        let gate = engine.reader("repl").with_policy(&policy, None).with_audit(engine.writable_audit()?);
        Ok(Session {
            engine,
            grants,
            policy,
            gate,
            console,
            stop,
            interactive,
            batch: None,
            last_run: None,
            recording: None,
            code: 0,
        })
    }

    /// Journal every following line in one run (batch mode).
    pub fn begin_batch(&mut self) -> EngineResult<()> {
        let run = Arc::new(self.engine.journal()?.begin("repl")?);
        self.batch = Some((run.clone(), self.gate.clone().with_run(run)));
        Ok(())
    }

    /// End a batch: keep it, or roll everything back. Returns whether the
    /// rollback (if any) left nothing behind.
    pub async fn end_batch(&mut self, keep: bool) -> EngineResult<bool> {
        let Some((run, gate)) = self.batch.take() else { return Ok(true) };
        let flushed = gate.flush().await;
        if keep && flushed.is_ok() {
            self.end_run(&run, "finished")?;
            return Ok(true);
        }
        if self.engine.journal()?.load(&run.id)?.steps == 0 {
            run.discard()?;
            return Ok(true);
        }
        let errors = self.engine.revert_run(&run).await?;
        run.end(if errors.is_empty() { "rolled-back" } else { "rollback-incomplete" })?;
        report_rollback(&*self.console, &run.id, &errors);
        flushed?;
        Ok(errors.is_empty())
    }

    /// End a run; one that changed nothing is forgotten.
    fn end_run(&mut self, run: &RunLog, state: &str) -> EngineResult<()> {
        if self.engine.journal()?.load(&run.id)?.steps == 0 {
            return Ok(run.discard()?);
        }
        run.end(state)?;
        self.last_run = Some(run.id.clone());
        Ok(())
    }

    /// Run `argv` in namespace `name` through the gate (grants `netns:NAME`
    /// and `exec:NAME`, audited); its exit status.
    pub async fn exec(&mut self, name: String, argv: Vec<String>) -> EngineResult<i32> {
        let op = Op::NetnsExec { name, argv };
        self.missing(std::slice::from_ref(&op))?;
        match self.gate.call(op).await? {
            Reply::Exited(code) => Ok(code),
            other => Err(other.mismatch().into()),
        }
    }

    /// The grants in force.
    pub fn grants(&self) -> Vec<String> {
        self.gate.grants()
    }

    /// Run one line.
    pub async fn execute(&mut self, text: &str) -> EngineResult<Next> {
        let Some(line) = grammar::parse(text).map_err(EngineError::Usage)? else { return Ok(Next::Continue) };
        let record = matches!(line, Line::Ops(_) | Line::Run { .. });
        match line {
            Line::Ops(ops) => self.ops(ops, false, None).await?,
            Line::Json(ops) => self.ops(ops, true, None).await?,
            Line::OfFamily { ops, json, v6 } => self.ops(ops, json, Some(v6)).await?,
            Line::Show { ns, style } => {
                let views = self.engine.show(ns).await?;
                self.console.out(&show_text(&views, style));
            }
            Line::Run { target, args } => {
                let mut spec = RunSpec::new(target.into(), args.into_iter().skip_while(|a| a == "--").collect());
                spec.grants = self.grants.clone();
                spec.interactive = self.interactive;
                if let Some(id) = self.engine.run(&spec, self.console.clone(), self.stop.clone()).await?.id {
                    self.last_run = Some(id);
                }
            }
            Line::Plan { target, args } => {
                let args = args.into_iter().skip_while(|a| a == "--").collect();
                let plan = self.engine.plan(target.as_ref(), args, &self.grants, self.console.clone()).await?;
                self.console.out(render::plan_text(&plan).as_bytes());
                if let Some(e) = plan.error {
                    return Err(EngineError::Failed(e));
                }
                self.code = if plan.changes > 0 { 3 } else { 0 };
            }
            Line::Undo(id) => {
                let id = match id.or_else(|| self.last_run.take()) {
                    Some(id) => id,
                    None => {
                        return Err(EngineError::Usage(
                            "nothing to undo in this session; give a RUN-ID or `last`".into(),
                        ));
                    }
                };
                let report = self.engine.undo(&id, &*self.console).await?;
                self.console.outln(&undo_text(&report));
            }
            Line::Audit(q) => self.audit(q).await?,
            Line::Grants => {
                let grants = self.grants();
                if grants.is_empty() {
                    self.console
                        .outln("no grants: only reading is allowed (start with --allow GRANT, or answer the prompt)");
                }
                grants.iter().for_each(|g| self.console.outln(g));
            }
            Line::Note(note) => self.console.out(format!("{note}\n").as_bytes()),
            Line::Help(topic) => self.console.out(help(topic.as_deref())?.as_bytes()),
            Line::RecordStart(path) => {
                self.console.outln(&format!("recording successful commands to {path}"));
                self.recording = Some((path, Vec::new()));
            }
            Line::RecordStop => self.stop_recording()?,
            Line::Exit => return Ok(Next::Exit),
        }
        if record && let Some((_, lines)) = &mut self.recording {
            lines.push(text.trim().to_string());
        }
        Ok(Next::Continue)
    }

    async fn audit(&self, q: AuditQuery) -> EngineResult<()> {
        if q.verify {
            self.console.outln(&self.engine.verify_audit()?);
            return Ok(());
        }
        let since = q.since.as_deref().map(parse_since).transpose()?;
        let wanted = |e: &crate::audit::Entry| {
            q.run.as_ref().is_none_or(|r| &e.run == r)
                && since.is_none_or(|s| humantime::parse_rfc3339_weak(&e.time).is_ok_and(|t| t >= s))
        };
        self.engine.print_audit(&wanted, q.json, q.follow, &*self.console, &self.stop).await
    }

    /// Grants the line's ops lack; on a terminal, offer them once.
    /// A `netns` target as iproute2 reads it: a namespace name, else a
    /// process id, which must lead to a named namespace (grants name it).
    async fn named(&self, target: &str) -> EngineResult<String> {
        let Ok(pid) = target.parse::<u32>() else { return Ok(target.to_string()) };
        if let Reply::Bool(true) = self.gate.call(Op::NetnsExists { name: target.into() }).await? {
            return Ok(target.to_string());
        }
        match self.gate.call(Op::NetnsIdentify { pid }).await? {
            Reply::Names(names) if !names.is_empty() => Ok(names[0].clone()),
            Reply::Names(_) => Err(EngineError::Usage(format!(
                "process {pid}'s namespace has no name, and grants scope namespaces by name: `netns attach NAME {pid}` names it"
            ))),
            other => Err(other.mismatch().into()),
        }
    }

    fn missing(&mut self, ops: &[Op]) -> EngineResult<()> {
        let mut missing = Vec::new();
        for op in ops {
            if let Needs::All(needs) = policy::needs(op) {
                for need in needs {
                    if let Decision::Deny { need, .. } = self.policy.decide(std::slice::from_ref(&need))
                        && !self.policy.denies(&need)
                        && !missing.contains(&need.to_string())
                    {
                        missing.push(need.to_string());
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if !(self.interactive && prompt::available()) {
            self.console
                .errln(&format!("netsh: this command needs grants it was not given: {}", allow_flags(&missing)));
            return Ok(());
        }
        if prompt::ask("this command", &missing) != prompt::Answer::Deny {
            for g in &missing {
                self.policy.remember(g.parse().map_err(policy::PolicyError::from)?, "prompt");
            }
            self.gate = self.engine.reader("repl").with_policy(&self.policy, None).with_audit(self.engine.audit()?);
        }
        Ok(())
    }

    /// Capability calls: one journaled step (interactively, one run per
    /// line); replies as text, or as iproute2's JSON, of one IP family
    /// (`v6`) or both.
    async fn ops(&mut self, mut ops: Vec<Op>, json: bool, v6: Option<bool>) -> EngineResult<()> {
        for op in &mut ops {
            match op {
                Op::LinkSetNetns { target: Some(target), .. } => *target = self.named(target).await?,
                Op::LinkAddVeth { spec, .. } if spec.peer_ns.is_some() => {
                    spec.peer_ns = Some(self.named(spec.peer_ns.as_deref().unwrap_or_default()).await?);
                }
                Op::RoutingRuleDelete { .. } => *op = self.gate.exact(op.clone()).await?,
                _ => {}
            }
        }
        self.missing(&ops)?;
        let (run, gate, own) = match &self.batch {
            Some((run, gate)) => (run.clone(), gate.clone(), false),
            None => {
                let run = Arc::new(self.engine.journal()?.begin("repl")?);
                (run.clone(), self.gate.clone().with_run(run), true)
            }
        };
        let mut outcome = Ok(());
        for op in ops {
            let reply = gate.call(op).await.map(|reply| match v6 {
                Some(v6) => reply.of_family(v6),
                None => reply,
            });
            match reply {
                Ok(reply) if json => self.console.out(format!("{}\n", render::reply_json(&reply)).as_bytes()),
                Ok(reply) => self.console.out(render::reply(&reply).as_bytes()),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if !own {
            return Ok(outcome?);
        }
        let outcome = outcome.and(gate.flush().await);
        match outcome {
            Ok(()) => self.end_run(&run, "finished"),
            Err(e) => {
                let errors = self.engine.revert_run(&run).await?;
                if self.engine.journal()?.load(&run.id)?.steps == 0 {
                    run.discard()?;
                } else {
                    run.end(if errors.is_empty() { "rolled-back" } else { "rollback-incomplete" })?;
                    report_rollback(&*self.console, &run.id, &errors);
                }
                Err(e.into())
            }
        }
    }

    fn stop_recording(&mut self) -> EngineResult<()> {
        let (path, lines) =
            self.recording.take().ok_or_else(|| EngineError::Usage("not recording (record start FILE.nsh)".into()))?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&path)?;
            writeln!(file, "# recorded by netsh")?;
            lines.iter().try_for_each(|l| writeln!(file, "{l}"))
        };
        write().map_err(|e| EngineError::Failed(format!("cannot write {path}: {e}")))?;
        self.console.outln(&format!("{} command(s) saved to {path}; replay with `netsh batch {path}`", lines.len()));
        Ok(())
    }
}

/// `show` output, text or JSON.
pub fn show_text(topology: &super::show::Topology, style: super::show::Style) -> Vec<u8> {
    if style.json {
        format!("{}\n", serde_json::to_string_pretty(topology).unwrap_or_default()).into_bytes()
    } else {
        render::topology(topology, style).into_bytes()
    }
}

/// What `undo` says.
pub fn undo_text(report: &super::runs::UndoReport) -> String {
    if report.already {
        format!("run {} was already undone; nothing to do", report.id)
    } else {
        format!("run {} undone ({} change(s) reverted)", report.id, report.reverted)
    }
}

/// `help [COMMAND]`.
fn help(topic: Option<&str>) -> EngineResult<String> {
    let Some(name) = topic else {
        let mut out = String::from("commands (a leading `-n NS` runs one in namespace NS):\n");
        for c in COMMANDS {
            out.push_str(&format!("  {:<8} {}\n", c.name, c.summary));
        }
        out.push_str("help COMMAND shows its usage.\n");
        return Ok(out);
    };
    let c = COMMANDS.iter().find(|c| c.name == name).ok_or_else(|| {
        EngineError::Usage(match grammar::suggest(name) {
            Some(s) => format!("no command {name:?}; did you mean {s:?}?"),
            None => format!("no command {name:?}"),
        })
    })?;
    Ok(format!("{}: {}\nusage: {}\n", c.name, c.summary, c.usage.replace(" | ", "\n       ")))
}

impl Engine {
    /// Run `lines` (a batch file or `-c`) as one journaled run; stop at the
    /// first error and roll everything back unless `keep_going`. Returns the
    /// exit code (a `plan` line sets it).
    pub async fn batch(
        &self,
        grants: GrantSpec,
        source: &str,
        lines: &[&str],
        keep_going: bool,
        console: Arc<dyn Console>,
        stop: Stop,
    ) -> EngineResult<u8> {
        let mut session = Session::new(self, grants, console.clone(), stop, false)?;
        session.begin_batch()?;
        let mut failed = 0;
        for (i, line) in lines.iter().enumerate() {
            match session.execute(line).await {
                Ok(Next::Continue) => {}
                Ok(Next::Exit) => break,
                Err(e) => {
                    console.errln(&format!("{source}:{}: {e}", i + 1));
                    failed += 1;
                    if !keep_going {
                        let clean = session.end_batch(false).await?;
                        let what = if clean { "nothing was changed" } else { "the rollback left problems (above)" };
                        return Err(EngineError::Failed(format!("{source}: stopped at line {}; {what}", i + 1)));
                    }
                }
            }
        }
        session.end_batch(true).await?;
        if failed > 0 {
            return Err(EngineError::Failed(format!(
                "{source}: {failed} line(s) failed (--keep-going applied the rest)"
            )));
        }
        Ok(session.code)
    }

    /// Read this namespace and every named one (or only `ns`).
    pub async fn show(&self, ns: Option<String>) -> EngineResult<super::show::Topology> {
        // The resolver belongs to the whole picture, not to one namespace.
        let resolver = match ns {
            None => Some(crate::dns::lifecycle::status(self.state_dir()?)?),
            Some(_) => None,
        };
        let namespaces = super::show::read(&self.reader("cli"), ns).await?;
        Ok(super::show::Topology { firewall: self.kernel.firewall_kind(), resolver, namespaces })
    }
}
