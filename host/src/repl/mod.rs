//! The interactive shell and batch mode: the same capabilities as recipes,
//! under the same grants, audit log and journal (principal `repl`).

pub mod front;
pub mod parse;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use netsh::gate::Gate;
use netsh::journal::RunLog;
use netsh::ops::{Op, Reply};
use netsh::policy::prompt;
use netsh::show;

use crate::cli::{AuditArgs, GrantArgs, PlanArgs, RunArgs};
use crate::{Ctx, load_policy};
use parse::{COMMANDS, Line};

/// What a line asked the session to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Exit,
}

/// One REPL or batch session.
pub struct Session<'a> {
    ctx: &'a Ctx,
    grants: GrantArgs,
    gate: Gate,
    /// The run of the current batch and its gate (all lines share them); `None` interactively.
    batch: Option<(Arc<RunLog>, Gate)>,
    /// The last interactive command's run, for a bare `undo`.
    last_run: Option<String>,
    recording: Option<(String, Vec<String>)>,
}

fn print_reply(reply: Reply) {
    match reply {
        Reply::Done | Reply::Rule { .. } => {}
        Reply::Bool(b) => println!("{b}"),
        Reply::Text(t) => println!("{t}"),
        Reply::Names(names) => names.iter().for_each(|n| println!("{n}")),
        Reply::Link(l) => print!("{}", show::render_links(std::slice::from_ref(&l))),
        Reply::Links(links) => print!("{}", show::render_links(&links)),
        Reply::Addrs(addrs) => addrs.iter().for_each(|a| println!("{} {}", a.dev, a.cidr)),
        Reply::Routes(routes) => routes.iter().for_each(|r| println!("{r}")),
        Reply::Rules(rules) => {
            for r in rules {
                println!("{} ({})", r.id, r.owner);
                r.commands.iter().for_each(|c| println!("  {c}"));
            }
        }
    }
}

impl<'a> Session<'a> {
    /// A session with the grants of `grants` (flags and policy files).
    pub fn new(ctx: &'a Ctx, grants: GrantArgs, interactive: bool) -> Result<Session<'a>> {
        let policy = load_policy(&grants)?;
        let gate = Gate::new(ctx.kernel.clone(), "repl")
            .with_policy(policy, None, interactive && prompt::available())
            .with_audit(ctx.audit());
        Ok(Session { ctx, grants, gate, batch: None, last_run: None, recording: None })
    }

    /// Journal every following line in one run (batch mode).
    pub fn begin_batch(&mut self) -> Result<()> {
        let run = Arc::new(self.ctx.journal().begin("repl")?);
        self.batch = Some((run.clone(), self.gate.clone().with_run(run)));
        Ok(())
    }

    /// End a batch: keep it, or roll everything back.
    pub async fn end_batch(&mut self, keep: bool) -> Result<()> {
        let Some((run, _)) = self.batch.take() else { return Ok(()) };
        self.gate.flush().await?;
        if keep {
            run.end("finished")?;
            return Ok(());
        }
        let errors = crate::rollback(self.ctx, &self.ctx.journal(), &run.id).await;
        run.end(if errors.is_empty() { "rolled-back" } else { "rollback-incomplete" })?;
        crate::report_rollback(&run.id, &errors);
        Ok(())
    }

    /// Run one line.
    pub async fn execute(&mut self, text: &str) -> Result<Next> {
        let Some(line) = parse::parse(text).map_err(|e| anyhow!(e))? else { return Ok(Next::Continue) };
        let record = matches!(line, Line::Ops(_) | Line::Run { .. });
        match line {
            Line::Ops(ops) => self.ops(ops).await?,
            Line::Show { ns, json } => crate::print_views(&show::read(&self.gate, ns).await?, json)?,
            Line::Run { target, args } => {
                let args = args.into_iter().skip_while(|a| a == "--").collect();
                crate::run(self.ctx, self.run_args(target, args)).await?
            }
            Line::Plan { target, args } => {
                let args = args.into_iter().skip_while(|a| a == "--").collect();
                let plan = PlanArgs { file: target.into(), grants: self.grants.clone(), json: false, args };
                crate::plan(self.ctx, plan).await?;
            }
            Line::Undo(id) => {
                let id =
                    id.or_else(|| self.last_run.take()).context("nothing to undo in this session; give a RUN-ID")?;
                crate::undo(self.ctx, &id).await?
            }
            Line::Audit(args) => {
                let args = AuditArgs::try_parse_from(std::iter::once("audit".to_string()).chain(args))?;
                crate::audit(self.ctx, args).await?
            }
            Line::Grants => {
                let grants = self.gate.grants();
                if grants.is_empty() {
                    println!("no grants: only reading is allowed (start with --allow GRANT, or answer the prompt)");
                }
                grants.iter().for_each(|g| println!("{g}"));
            }
            Line::Help(topic) => help(topic.as_deref())?,
            Line::RecordStart(path) => {
                self.recording = Some((path.clone(), Vec::new()));
                println!("recording successful commands to {path}");
            }
            Line::RecordStop => self.stop_recording()?,
            Line::Exit => return Ok(Next::Exit),
        }
        if record && let Some((_, lines)) = &mut self.recording {
            lines.push(text.trim().to_string());
        }
        Ok(Next::Continue)
    }

    fn run_args(&self, target: String, args: Vec<String>) -> RunArgs {
        RunArgs {
            file: target.into(),
            grants: self.grants.clone(),
            no_rollback: false,
            confirm: None,
            sandbox: false,
            timeout: netsh::runtime::Limits::default().timeout,
            max_memory: netsh::runtime::Limits::default().max_memory_mib,
            args,
        }
    }

    /// Capability calls: one journaled step (interactively, one run per line).
    async fn ops(&mut self, ops: Vec<Op>) -> Result<()> {
        let (run, gate, own) = match &self.batch {
            Some((run, gate)) => (run.clone(), gate.clone(), false),
            None => {
                let run = Arc::new(self.ctx.journal().begin("repl")?);
                (run.clone(), self.gate.clone().with_run(run), true)
            }
        };
        let mut outcome = Ok(());
        for op in ops {
            match gate.call(op).await {
                Ok(reply) => print_reply(reply),
                Err(e) => {
                    outcome = Err(anyhow!(e));
                    break;
                }
            }
        }
        if !own {
            return outcome;
        }
        let flushed = gate.flush().await;
        let outcome = outcome.and(flushed.map_err(|e| anyhow!(e)));
        if outcome.is_err() {
            let errors = crate::rollback(self.ctx, &self.ctx.journal(), &run.id).await;
            run.end(if errors.is_empty() { "rolled-back" } else { "rollback-incomplete" })?;
            crate::report_rollback(&run.id, &errors);
        } else {
            run.end("finished")?;
            self.last_run = Some(run.id.clone());
        }
        outcome
    }

    fn stop_recording(&mut self) -> Result<()> {
        let (path, lines) = self.recording.take().context("not recording (record start FILE.nsh)")?;
        let mut file = std::fs::File::create(&path).with_context(|| format!("cannot write {path}"))?;
        writeln!(file, "# recorded by netsh")?;
        lines.iter().try_for_each(|l| writeln!(file, "{l}"))?;
        println!("{} command(s) saved to {path}; replay with `netsh batch {path}`", lines.len());
        Ok(())
    }
}

/// `help [COMMAND]`.
fn help(topic: Option<&str>) -> Result<()> {
    match topic {
        None => {
            println!("commands (a leading `-n NS` runs one in namespace NS):");
            for c in COMMANDS {
                println!("  {:<8} {}", c.name, c.summary);
            }
            println!("help COMMAND shows its usage.");
        }
        Some(name) => {
            let c = COMMANDS.iter().find(|c| c.name == name).ok_or_else(|| match parse::suggest(name) {
                Some(s) => anyhow!("no command {name:?}; did you mean {s:?}?"),
                None => anyhow!("no command {name:?}"),
            })?;
            println!("{}: {}\nusage: {}", c.name, c.summary, c.usage.replace(" | ", "\n       "));
            // Commands shared with the command line show the same help as `netsh NAME --help`.
            let mut cli = <crate::cli::Cli as clap::CommandFactory>::command();
            if let Some(sub) = cli.find_subcommand_mut(name) {
                println!("\n{}", sub.render_long_help());
            }
        }
    }
    Ok(())
}

/// Run `lines` (from a batch file or `-c`) in one journaled run; stop at the
/// first error and roll everything back unless `keep_going`.
pub async fn batch(ctx: &Ctx, grants: GrantArgs, source: &str, lines: &[&str], keep_going: bool) -> Result<()> {
    let mut session = Session::new(ctx, grants, false)?;
    session.begin_batch()?;
    let mut failed = 0;
    for (i, line) in lines.iter().enumerate() {
        match session.execute(line).await {
            Ok(Next::Continue) => {}
            Ok(Next::Exit) => break,
            Err(e) => {
                eprintln!("{source}:{}: {e:#}", i + 1);
                failed += 1;
                if !keep_going {
                    session.end_batch(false).await?;
                    bail!("{source}: stopped at line {}; nothing was changed", i + 1);
                }
            }
        }
    }
    session.end_batch(true).await?;
    if failed > 0 {
        bail!("{source}: {failed} line(s) failed (--keep-going applied the rest)");
    }
    Ok(())
}
