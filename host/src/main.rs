//! The `netsh` binary: parses the command line and reports errors in one line.

mod cli;
mod repl;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Parser;
use netsh::audit::{Audit, Entry};
use netsh::backend::kernel::Kernel;
use netsh::backend::model::Model;
use netsh::gate::{Gate, PlanGrants};
use netsh::journal::{Journal, RunInfo};
use netsh::ops::Op;
use netsh::policy::{self, Policy, prompt};
use netsh::runtime::{Cache, Limits, Loaded, Manifest, RunError, Runtime};
use netsh::{sandbox, show};

use cli::{AuditArgs, Cli, Command, GrantArgs, PlanArgs, PluginCommand, RunArgs};
use netsh::plugins::{Plugin, Store};

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away
    // (`netsh audit | head`) instead of failing to print.
    // SAFETY: called before any thread exists; SIG_DFL installs no handler code.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // Must happen before any thread exists, so every later thread inherits it.
    if let Some(Command::Run(RunArgs { sandbox: true, .. })) = &cli.command
        && let Err(e) = sandbox::enter()
    {
        eprintln!("netsh: error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netsh: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx { kernel: Arc::new(Kernel::default()), state: state_dir(cli.state_dir) };
    let work = async {
        match (cli.command, cli.commands) {
            (Some(command), _) => dispatch(&ctx, command).await,
            (None, Some(commands)) => {
                let lines: Vec<&str> = commands.split([';', '\n']).collect();
                repl::batch(&ctx, cli.grants, "-c", &lines, false).await.map(|()| ExitCode::SUCCESS)
            }
            (None, None) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                repl::front::repl(&ctx, cli.grants).await.map(|()| ExitCode::SUCCESS)
            }
            (None, None) => bail!("no command given and stdin is not a terminal; see `netsh --help`"),
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netsh: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "netsh=debug" } else { "netsh=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().init();
}

/// /var/lib/netsh as root, else $XDG_STATE_HOME/netsh (~/.local/state/netsh).
fn state_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/netsh");
        }
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir)
            .join("netsh")
    })
}

/// What every command shares.
struct Ctx {
    kernel: Arc<Kernel>,
    state: PathBuf,
}

impl Ctx {
    fn journal(&self) -> Journal {
        Journal::new(&self.state)
    }

    fn audit(&self) -> Audit {
        Audit::new(&self.state)
    }

    fn plugins(&self) -> Store {
        Store::new(&self.state)
    }

    /// A recipe path, or an installed plugin's stored file.
    fn resolve(&self, file: &Path) -> Result<PathBuf> {
        if file.exists() || file.components().count() > 1 || file.extension().is_some() {
            return Ok(file.to_path_buf());
        }
        let name = file.display().to_string();
        let store = self.plugins();
        let plugin = store.get(&name)?;
        let now = store.current_digest(&plugin)?;
        if now != plugin.sha256 {
            eprintln!(
                "netsh: warning: plugin {name}'s file changed since it was added (sha256 {} -> {}); grants pinned to the old digest do not apply",
                &plugin.sha256[..12],
                &now[..12]
            );
        }
        Ok(store.blob(&plugin.sha256))
    }

    /// A gate that may do anything (undo, rollback, sandbox set-up), audited.
    fn trusted_gate(&self, principal: &str) -> Gate {
        let all = Policy::from_flags(&[], &[], true).expect("no grants to parse");
        Gate::new(self.kernel.clone(), principal).with_policy(all, None, false).with_audit(self.audit())
    }
}

async fn dispatch(ctx: &Ctx, command: Command) -> Result<ExitCode> {
    if !matches!(command, Command::Undo { .. } | Command::Runs { .. }) {
        report_interrupted(ctx);
    }
    if let Command::Plan(args) = command {
        return plan(ctx, args).await;
    }
    match command {
        Command::Plan(_) => unreachable!("handled above"),
        Command::Plugin(cmd) => plugin(ctx, cmd).await,
        Command::Batch { file, keep_going, grants } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let lines: Vec<&str> = text.lines().collect();
            repl::batch(ctx, grants, &file.display().to_string(), &lines, keep_going).await
        }
        Command::External(words) => {
            let (name, args) = words.split_first().context("missing plugin name")?;
            let run_args = RunArgs {
                file: PathBuf::from(name),
                grants: GrantArgs { allow: Vec::new(), deny: Vec::new(), allow_all: false, policy: None },
                no_rollback: false,
                confirm: None,
                sandbox: false,
                timeout: Limits::default().timeout,
                max_memory: Limits::default().max_memory_mib,
                args: args.to_vec(),
            };
            if ctx.plugins().get(name).is_err() {
                bail!("unknown command {name:?}: not a netsh command nor an installed plugin (see `netsh --help`, `netsh plugin ls`)");
            }
            run(ctx, run_args).await
        }
        Command::Run(args) => run(ctx, args).await,
        Command::Inspect { file, json } => inspect(ctx, &file, json).await,
        Command::Show { netns, json } => {
            let views = show::read(&Gate::new(ctx.kernel.clone(), "cli"), netns).await?;
            print_views(&views, json)
        }
        Command::Audit(args) => audit(ctx, args).await,
        Command::Runs { json } => runs(ctx, json),
        Command::Undo { run } => undo(ctx, &run).await,
        Command::Confirm { run } => {
            ctx.journal().confirm(&run)?;
            println!("run {run} confirmed");
            Ok(())
        }
    }
    .map(|()| ExitCode::SUCCESS)
}

/// `netsh plan`: run the recipe against the model backend.
async fn plan(ctx: &Ctx, args: PlanArgs) -> Result<ExitCode> {
    let policy = load_policy(&args.grants)?;
    let (runtime, loaded, manifest) = load(ctx, &args.file).await?;
    let runtime = runtime.stdout_to_stderr();
    let model = Arc::new(Model::new(ctx.kernel.clone()));
    let grants = Arc::new(std::sync::Mutex::new(PlanGrants::default()));
    let gate = Gate::new(model.clone(), format!("plan {}@{}", manifest.name, &loaded.sha256[..12]))
        .with_policy(policy, Some(&loaded.sha256), false)
        .planning(grants.clone());
    let result = runtime.run(&loaded, args.args, gate, Limits::default()).await;
    let planned = model.planned();
    let grants = grants.lock().map(|g| g.clone()).unwrap_or_default();
    let changes = planned.iter().filter(|p| p.changes).count();
    if args.json {
        let ops: Vec<_> = planned
            .iter()
            .map(|p| serde_json::json!({"call": p.op, "cmd": p.op.to_string(), "changes": p.changes}))
            .collect();
        let out = serde_json::json!({
            "recipe": manifest.name, "sha256": loaded.sha256, "ops": ops, "changes": changes,
            "grants_used": grants.used, "grants_missing": grants.missing,
            "error": result.as_ref().err().map(|e| e.to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for p in &planned {
            let note = if p.changes { "" } else { "    # no change" };
            println!("{}{note}", p.op);
        }
        println!("\n{changes} change(s)");
        println!("grants used:    {}", grants.used.iter().cloned().collect::<Vec<_>>().join(" "));
        let missing: Vec<String> = grants.missing.iter().map(|g| format!("--allow '{g}'")).collect();
        println!("grants missing: {}", if missing.is_empty() { "none".into() } else { missing.join(" ") });
    }
    result.with_context(|| format!("{} would fail", loaded.path))?;
    Ok(if changes > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Tell the user about runs whose process died with changes applied.
fn report_interrupted(ctx: &Ctx) {
    for run in ctx.journal().unfinished().unwrap_or_default().iter().filter(|r| r.abandoned() && r.steps > 0) {
        eprintln!(
            "netsh: run {} ({}) was interrupted with {} change(s) applied; `netsh undo {}` reverts them",
            run.id, run.principal, run.steps, run.id
        );
    }
}

fn print_views(views: &[show::NsView], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(views)?);
    } else {
        print!("{}", show::render(views));
    }
    Ok(())
}

fn load_policy(args: &GrantArgs) -> Result<Policy> {
    let mut policy = Policy::from_flags(&args.allow, &args.deny, args.allow_all)?;
    let files = match &args.policy {
        Some(file) => vec![file.clone()],
        None => policy::default_files(),
    };
    for file in files {
        policy.add_file(&file)?;
    }
    if policy.allows_all() {
        eprintln!("netsh: warning: --allow-all grants everything not denied to this recipe");
    }
    Ok(policy)
}

/// Load a recipe and read its manifest.
async fn load(ctx: &Ctx, file: &Path) -> Result<(Runtime, Loaded, Manifest)> {
    let runtime = Runtime::new(Cache::from_env())?;
    let loaded = runtime.load(&ctx.resolve(file)?)?;
    let manifest = runtime.describe(&loaded, Gate::new(ctx.kernel.clone(), "inspect")).await?;
    Ok((runtime, loaded, manifest))
}

async fn run(ctx: &Ctx, args: RunArgs) -> Result<()> {
    let policy = load_policy(&args.grants)?;
    let (runtime, loaded, manifest) = load(ctx, &args.file).await?;
    let principal = format!("{}@{}", manifest.name, &loaded.sha256[..12]);
    // A sandbox's changes vanish with it: its journal must not outlive it.
    let journal_dir = if args.sandbox {
        std::env::temp_dir().join(format!("netsh-sandbox-{}", std::process::id()))
    } else {
        ctx.state.clone()
    };
    let journal = Journal::new(&journal_dir);
    let run_log = Arc::new(journal.begin(&principal)?);
    let gate = Gate::new(ctx.kernel.clone(), principal.clone())
        .with_policy(policy, Some(&loaded.sha256), prompt::available())
        .with_audit(ctx.audit())
        .with_run(run_log.clone());
    if args.sandbox {
        // A fresh namespace starts with lo down; recipes and demos expect it up.
        ctx.trusted_gate("sandbox").call(Op::LinkSetUp { ns: None, name: "lo".into(), up: true }).await?;
    }
    let limits = Limits { timeout: args.timeout, max_memory_mib: args.max_memory };
    let result = tokio::select! {
        r = runtime.run(&loaded, args.args, gate.clone(), limits) => r,
        _ = tokio::signal::ctrl_c() => Err(RunError::Interrupted),
    };
    // Queued firewall changes are applied even after a failure: they mirror
    // what the recipe did (and undid) before it stopped.
    let flushed = gate.flush().await;
    let outcome = result
        .with_context(|| format!("{} did not complete", loaded.path))
        .and_then(|()| flushed.context("applying the firewall batch failed"));
    let finished = match outcome {
        Err(e) if args.no_rollback => {
            run_log.end("failed-kept")?;
            eprintln!(
                "netsh: --no-rollback: run {} keeps its partial changes; `netsh undo {0}` reverts them",
                run_log.id
            );
            Err(e)
        }
        Err(e) => {
            let errors = rollback(ctx, &journal, &run_log.id).await;
            run_log.end(if errors.is_empty() { "rolled-back" } else { "rollback-incomplete" })?;
            report_rollback(&run_log.id, &errors);
            Err(e)
        }
        Ok(()) => match args.confirm {
            Some(deadline) => await_confirmation(ctx, &journal, &run_log.id, deadline).await,
            None => run_log.end("finished").map_err(Into::into),
        },
    };
    if args.sandbox {
        println!("--- sandbox topology (discarded on exit) ---");
        print_views(&show::read(&gate, None).await?, false)?;
        let _ = std::fs::remove_dir_all(&journal_dir);
    }
    finished
}

async fn rollback(ctx: &Ctx, journal: &Journal, id: &str) -> Vec<String> {
    match journal.load(id) {
        Ok(info) => ctx.trusted_gate(&format!("rollback {id}")).revert(&info).await,
        Err(e) => vec![e.to_string()],
    }
}

fn report_rollback(id: &str, errors: &[String]) {
    if errors.is_empty() {
        eprintln!("netsh: run {id} rolled back");
    } else {
        eprintln!("netsh: run {id} rolled back with {} problem(s):", errors.len());
        for e in errors {
            eprintln!("  {e}");
        }
    }
}

/// `--confirm D`: keep the run only if `netsh confirm ID` arrives in time.
async fn await_confirmation(ctx: &Ctx, journal: &Journal, id: &str, deadline: Duration) -> Result<()> {
    eprintln!("netsh: run {id} applied; run `netsh confirm {id}` within {deadline:?} to keep it");
    let started = Instant::now();
    while started.elapsed() < deadline {
        if journal.confirmed(id) {
            journal.end(id, "confirmed")?;
            eprintln!("netsh: run {id} confirmed");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let errors = rollback(ctx, journal, id).await;
    journal.end(id, "reverted-unconfirmed")?;
    report_rollback(id, &errors);
    bail!("run {id} was not confirmed within {deadline:?} and was reverted")
}

async fn undo(ctx: &Ctx, id: &str) -> Result<()> {
    let journal = ctx.journal();
    let info = journal.load(id)?;
    if info.state.is_none() && !info.abandoned() {
        bail!("run {id} is still running (pid {}); stop it first", info.pid);
    }
    let errors = ctx.trusted_gate(&format!("undo {id}")).revert(&info).await;
    journal.end(id, if errors.is_empty() { "undone" } else { "undo-incomplete" })?;
    if errors.is_empty() {
        println!("run {id} undone ({} change(s) reverted)", info.steps);
        return Ok(());
    }
    for e in &errors {
        eprintln!("  {e}");
    }
    bail!("run {id} undone with {} problem(s)", errors.len())
}

fn state_of(run: &RunInfo) -> String {
    match &run.state {
        Some(s) => s.clone(),
        None if run.abandoned() => "interrupted".into(),
        None => "running".into(),
    }
}

fn runs(ctx: &Ctx, json: bool) -> Result<()> {
    let runs = ctx.journal().list()?;
    if json {
        let rows: Vec<_> = runs
            .iter()
            .map(|r| serde_json::json!({"id": r.id, "principal": r.principal, "started": r.started, "state": state_of(r), "steps": r.steps}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<22} {:<20} {:>5}  {:<26} PRINCIPAL", "RUN", "STATE", "STEPS", "STARTED");
    for r in &runs {
        println!("{:<22} {:<20} {:>5}  {:<26} {}", r.id, state_of(r), r.steps, r.started, r.principal);
    }
    Ok(())
}

fn parse_since(text: &str) -> Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    let age = humantime::parse_duration(text)
        .with_context(|| format!("--since {text:?} is neither a time nor an age like 10m"))?;
    Ok(SystemTime::now() - age)
}

fn show_entry(e: &Entry, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(e)?);
    } else {
        let why = e.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
        println!("{} {} {} {:<5} {} -> {}{}", e.time, e.run, e.principal, e.decision, e.cmd, e.result, why);
    }
    Ok(())
}

async fn audit(ctx: &Ctx, args: AuditArgs) -> Result<()> {
    let log = ctx.audit();
    if args.action.as_deref() == Some("verify") {
        return match log.verify() {
            Ok(n) => {
                println!("{}: {n} line(s), chain intact", log.path().display());
                Ok(())
            }
            Err(e) => bail!("{}: {e}", log.path().display()),
        };
    }
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let wanted = |e: &Entry| {
        args.run.as_ref().is_none_or(|r| &e.run == r)
            && since.is_none_or(|s| humantime::parse_rfc3339_weak(&e.time).is_ok_and(|t| t >= s))
    };
    let mut shown = 0;
    loop {
        let entries = log.entries()?;
        for e in entries.iter().skip(shown).filter(|e| wanted(e)) {
            show_entry(e, args.json)?;
        }
        shown = entries.len();
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn inspect(ctx: &Ctx, file: &Path, json: bool) -> Result<()> {
    let (_, loaded, manifest) = load(ctx, file).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&manifest_json(&manifest, &loaded.sha256))?);
        return Ok(());
    }
    println!("{} {} — {}", manifest.name, manifest.version, manifest.summary);
    println!("sha256: {}", loaded.sha256);
    println!("\nusage:\n{}", indent(&manifest.usage));
    println!("\ngrants requested:");
    for g in &manifest.grants {
        println!("  {:<28} {}", g.grant, g.reason);
    }
    let allow: Vec<String> = manifest.grants.iter().map(|g| format!("--allow '{}'", g.grant)).collect();
    println!("\nto grant all of them: netsh run {} {}", allow.join(" "), file.display());
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

fn manifest_json(m: &Manifest, sha256: &str) -> serde_json::Value {
    serde_json::json!({
        "name": m.name,
        "version": m.version,
        "summary": m.summary,
        "usage": m.usage,
        "sha256": sha256,
        "grants": m.grants.iter().map(|g| serde_json::json!({"grant": g.grant, "reason": g.reason})).collect::<Vec<_>>(),
    })
}

async fn plugin(ctx: &Ctx, cmd: PluginCommand) -> Result<()> {
    let store = ctx.plugins();
    match cmd {
        PluginCommand::Add { file, name } => {
            let (_, loaded, manifest) = load(ctx, &file).await?;
            let wasm = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let name = name.unwrap_or_else(|| manifest.name.clone());
            let plugin = Plugin {
                sha256: loaded.sha256.clone(),
                version: manifest.version.clone(),
                summary: manifest.summary.clone(),
                usage: manifest.usage.clone(),
                grants: manifest.grants.iter().map(|g| (g.grant.clone(), g.reason.clone())).collect(),
                added: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            };
            match store.add(&name, &wasm, plugin)? {
                Some(old) if old.sha256 != loaded.sha256 => {
                    println!("{name} updated: sha256 {} -> {}", &old.sha256[..12], &loaded.sha256[..12])
                }
                _ => println!("{name} installed: sha256 {}", loaded.sha256),
            }
            println!(
                "run it with `netsh {name} ARGS...`; pin its grants in a policy file with sha256 = \"{}\"",
                loaded.sha256
            );
        }
        PluginCommand::Ls { json } => {
            let index = store.index()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&index)?);
            } else {
                for (name, p) in &index {
                    println!("{name:<20} {:<8} {}  {}", p.version, &p.sha256[..12], p.summary);
                }
            }
        }
        PluginCommand::Info { name } => {
            let p = store.get(&name)?;
            println!(
                "{name} {} — {}\nsha256: {}\nfile:   {}\nadded:  {}",
                p.version,
                p.summary,
                p.sha256,
                store.blob(&p.sha256).display(),
                p.added
            );
            println!("\nusage:\n{}\n\ngrants requested:", indent(&p.usage));
            for (grant, reason) in &p.grants {
                println!("  {grant:<28} {reason}");
            }
        }
        PluginCommand::Rm { name } => {
            store.remove(&name)?;
            println!("{name} removed");
        }
    }
    Ok(())
}
