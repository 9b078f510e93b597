//! The `netsh` binary: parse the command line, pick a front end, print errors.

mod front;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use netsh::backend::kernel::{FirewallKind, Kernel};
use netsh::console::{Console, Terminal};
use netsh::engine::{Engine, EngineError};
use netsh::ops::Op;
use netsh::stop::{Stop, StopReason};

use front::cli::{self, Cli, Command, RunArgs};

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away
    // (`netsh audit | head`) instead of failing to print.
    // SAFETY: called before any thread exists; SIG_DFL installs no handler code.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let argv: Vec<String> = std::env::args().collect();
    let mut cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    cli.grants = front::cli::GrantArgs::collect(&argv);
    init_tracing(cli.verbose);
    let sandbox = matches!(&cli.command, Some(Command::Run(RunArgs { sandbox: true, .. })));
    // Must happen before any thread exists, so every later thread inherits it.
    if sandbox && let Err(e) = netsh::sandbox::enter() {
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
    // A sandbox's changes vanish with it: so do its journal and audit log.
    let state = if sandbox { netsh::sandbox::state_dir() } else { state_dir(cli.state_dir.clone()) };
    let firewall = cli.firewall.unwrap_or_else(FirewallKind::detect);
    let engine = Engine::new(state, Kernel::new(firewall));
    let console: Arc<dyn Console> = Arc::new(Terminal);
    let result = runtime.block_on(front_end(&engine, cli, console, sandbox));
    if sandbox {
        netsh::sandbox::discard_state();
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("netsh: error: {e:#}");
            ExitCode::from(e.downcast_ref::<EngineError>().map_or(1, EngineError::exit_code))
        }
    }
}

/// Print clap's error, with a hint when recipe arguments lack their `--`.
fn usage_error(e: clap::Error) -> ExitCode {
    let _ = e.print();
    let args: Vec<String> = std::env::args().collect();
    let runs_recipe = args.iter().any(|a| a == "run" || a == "plan");
    if e.kind() == clap::error::ErrorKind::UnknownArgument && runs_recipe && !args.iter().any(|a| a == "--") {
        eprintln!("hint: a recipe's own arguments go after `--`: netsh run FILE [OPTIONS] -- ARGS...");
    }
    ExitCode::from(if e.use_stderr() { 2 } else { 0 })
}

/// Ask a run to stop at Ctrl-C or SIGTERM.
fn watch_signals(stop: &Stop) {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let stop = stop.clone();
        if let Ok(mut signals) = signal(kind) {
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    stop.request(StopReason::Interrupted);
                }
            });
        }
    }
}

/// The shell on a terminal, `-c`, stdin, or a subcommand.
async fn front_end(engine: &Engine, cli: Cli, console: Arc<dyn Console>, sandbox: bool) -> anyhow::Result<u8> {
    let stop = Stop::default();
    watch_signals(&stop);
    if sandbox {
        // A fresh namespace starts with lo down; recipes and demos expect it up.
        engine.trusted_gate("sandbox")?.call(Op::LinkSetUp { ns: None, name: "lo".into(), up: true }).await?;
    }
    if cli.command.is_some() {
        let code = cli::dispatch(engine, cli, console.clone(), stop).await;
        if sandbox {
            console.outln("--- sandbox topology (discarded on exit) ---");
            console.out(&netsh::engine::shell::show_text(&engine.show(None).await?, false));
        }
        return Ok(code?);
    }
    engine.report_interrupted(&*console);
    if let Some(commands) = &cli.commands {
        return Ok(cli::batch(engine, &cli.grants, "-c", commands, false, console, stop).await?);
    }
    if std::io::stdin().is_terminal() {
        front::shell::repl(engine, cli.grants.spec(), console, stop, engine.state_dir()?).await?;
        return Ok(0);
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(cli::batch(engine, &cli.grants, "stdin", &text, false, console, stop).await?)
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "netsh=debug" } else { "netsh=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
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
            .unwrap_or_else(|| PathBuf::from("."))
            .join("netsh")
    })
}
