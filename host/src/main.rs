//! The `netsh` binary: parses the command line and reports errors in one line.

mod cli;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use netsh::backend::kernel::Kernel;
use netsh::gate::Gate;
use netsh::ops::Op;
use netsh::runtime::{Cache, Limits, Manifest, Runtime};
use netsh::{sandbox, show};

use cli::{Cli, Command, RunArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // Must happen before any thread exists, so every later thread inherits it.
    if let Command::Run(RunArgs { sandbox: true, .. }) = &cli.command {
        if let Err(e) = sandbox::enter() {
            eprintln!("netsh: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netsh: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
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

async fn dispatch(command: Command) -> Result<()> {
    let kernel: Arc<Kernel> = Arc::new(Kernel::default());
    match command {
        Command::Run(args) => run(kernel, args).await,
        Command::Inspect { file, json } => inspect(kernel, &file, json).await,
        Command::Show { netns, json } => {
            let views = show::read(&Gate::new(kernel, "cli"), netns).await?;
            print_views(&views, json)
        }
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

async fn run(kernel: Arc<Kernel>, args: RunArgs) -> Result<()> {
    let runtime = Runtime::new(Cache::from_env())?;
    let loaded = runtime.load(&args.file)?;
    let gate = Gate::new(kernel.clone(), format!("{}@{}", loaded.path, &loaded.sha256[..12]));
    if args.sandbox {
        // A fresh namespace starts with lo down; recipes and demos expect it up.
        gate.call(Op::LinkSetUp { ns: None, name: "lo".into(), up: true }).await?;
    }
    let limits = Limits { timeout: args.timeout, max_memory_mib: args.max_memory };
    let result = runtime.run(&loaded, args.args, gate.clone(), limits).await;
    // Queued firewall changes are applied even after a failure: they mirror
    // what the recipe did (and undid) before it stopped.
    let flushed = gate.flush().await;
    if args.sandbox {
        println!("--- sandbox topology (discarded on exit) ---");
        print_views(&show::read(&gate, None).await?, false)?;
    }
    result.with_context(|| format!("{} did not complete", loaded.path))?;
    flushed.context("applying the firewall batch failed")
}

async fn inspect(kernel: Arc<Kernel>, file: &std::path::Path, json: bool) -> Result<()> {
    let runtime = Runtime::new(Cache::from_env())?;
    let loaded = runtime.load(file)?;
    let manifest = runtime.describe(&loaded, Gate::new(kernel, "inspect")).await?;
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
