//! The `netsh` binary: parse the command line, hand the command to the agent
//! when one listens, else run it here; print errors.

mod front;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use netsh::agent::{self, Forwarded, Place, Request, ToAgent};
use netsh::backend::kernel::{FirewallKind, Kernel};
use netsh::console::{Console, Terminal};
use netsh::engine::{Engine, EngineError};
use netsh::ops::Op;
use netsh::stop::{Stop, StopReason};

use front::cli::{self, AuditArgs, Cli, Command, RunArgs};

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away
    // (`netsh audit | head`) instead of failing to print.
    // SAFETY: called before any thread exists; SIG_DFL installs no handler code.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    if front::cni::invoked() {
        return front::cni::main();
    }
    let argv: Vec<String> = std::env::args().collect();
    let cli = match parse(&argv, &Terminal) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    if let Some(Command::Dns(dns)) = &cli.command {
        return ExitCode::from(front::dns::main(&state_dir(cli.state_dir.clone()), dns, &Terminal));
    }
    if matches!(cli.command, Some(Command::Agent { .. })) {
        init_tracing(cli.verbose);
        return front::agent::main(cli);
    }
    let input = match cli.no_agent {
        true => Input::Stdin,
        false => match forward(&argv, &cli) {
            Route::Done(code) => return ExitCode::from(code),
            Route::Here(input) => input,
        },
    };
    ExitCode::from(run_here(cli, input))
}

/// Parse `argv`; on a usage error (or `--help`), print clap's text to
/// `console` and return the exit code.
pub fn parse(argv: &[String], console: &dyn Console) -> Result<Cli, u8> {
    match Cli::try_parse_from(argv) {
        Ok(mut cli) => {
            cli.grants = front::cli::GrantArgs::collect(argv);
            Ok(cli)
        }
        Err(e) => Err(usage_error(e, argv, console)),
    }
}

/// Print clap's error, with a hint when recipe arguments lack their `--`.
fn usage_error(e: clap::Error, argv: &[String], console: &dyn Console) -> u8 {
    let text = e.render().ansi().to_string();
    if !e.use_stderr() {
        console.out(text.as_bytes());
        return 0;
    }
    console.err(text.as_bytes());
    let runs_recipe = argv.iter().any(|a| a == "run" || a == "plan");
    if e.kind() == clap::error::ErrorKind::UnknownArgument && runs_recipe && !argv.iter().any(|a| a == "--") {
        console.errln("hint: a recipe's own arguments go after `--`: netsh run FILE [OPTIONS] -- ARGS...");
    }
    2
}

/// Where the command's input comes from.
#[derive(Debug)]
pub enum Input {
    /// This process's stdin.
    Stdin,
    /// Text a caller of the agent read from its stdin.
    Text(String),
}

impl Input {
    /// All of it.
    pub fn read(self) -> std::io::Result<String> {
        match self {
            Input::Text(text) => Ok(text),
            Input::Stdin => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                Ok(text)
            }
        }
    }
}

/// Whether the command reads stdin: commands piped into `netsh`, `batch -`.
fn reads_stdin(cli: &Cli) -> bool {
    match &cli.command {
        None => cli.commands.is_none(),
        Some(Command::Batch { file, .. }) => file.as_os_str() == "-",
        Some(_) => false,
    }
}

/// Whether the agent can run the command: not when a person at this
/// terminal could be asked for grants, not the interactive shell, a sandbox
/// (this process's own namespaces) or a log followed until Ctrl-C.
fn agent_can_run(cli: &Cli) -> bool {
    if netsh::policy::prompt::available() {
        return false;
    }
    match &cli.command {
        None => cli.commands.is_some() || !std::io::stdin().is_terminal(),
        Some(Command::Run(RunArgs { sandbox, .. })) => !sandbox,
        // The program's stdio is this terminal's, not the agent's.
        Some(Command::Exec { .. }) => false,
        Some(Command::Audit(AuditArgs { follow, .. })) => !follow,
        Some(_) => true,
    }
}

/// What became of a command offered to the agent.
enum Route {
    /// The agent ran it: its exit code.
    Done(u8),
    /// Run it here, with this input (stdin may already have been read).
    Here(Input),
}

/// Hand the command to the agent when one listens and can run it.
fn forward(argv: &[String], cli: &Cli) -> Route {
    let socket = &cli.agent_socket;
    if !agent_can_run(cli) || !socket.exists() {
        return Route::Here(Input::Stdin);
    }
    let stdin = match reads_stdin(cli) {
        true => match Input::Stdin.read() {
            Ok(text) => Some(text),
            Err(e) => {
                eprintln!("netsh: error: cannot read stdin: {e}");
                return Route::Done(1);
            }
        },
        false => None,
    };
    let here = |stdin: Option<String>| Route::Here(stdin.map_or(Input::Stdin, Input::Text));
    let (Ok(cwd), Ok(place)) = (std::env::current_dir(), Place::current()) else { return here(stdin) };
    let request = Request {
        argv: argv.to_vec(),
        cwd,
        stdin: stdin.clone(),
        state_dir: state_dir(cli.state_dir.clone()),
        user_policy: netsh::policy::user_file(),
        firewall: cli.firewall.unwrap_or_else(FirewallKind::detect),
        kv: cli.kv.clone(),
        place,
        cni: None,
    };
    match agent::forward(socket, request, &Terminal, send_interrupts) {
        Ok(Forwarded::Exit(code)) => Route::Done(code),
        Ok(Forwarded::Local(why)) => {
            if let (Some(why), true) = (why, cli.verbose) {
                eprintln!("netsh: the agent at {} declined ({why}); running here", socket.display());
            }
            here(stdin)
        }
        Err(e) => {
            eprintln!("netsh: error: talking to the agent at {}: {e}", socket.display());
            Route::Done(1)
        }
    }
}

/// Relay Ctrl-C, SIGTERM and SIGHUP to the agent as an interrupt of the command.
fn send_interrupts(mut stream: std::os::unix::net::UnixStream) {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    if signals.thread_block().is_err() {
        return;
    }
    let _ = std::thread::Builder::new().name("netsh-signals".into()).spawn(move || {
        while signals.wait().is_ok() {
            if agent::write_frame(&mut stream, &ToAgent::Interrupt).is_err() {
                return;
            }
        }
    });
}

/// Run the command in this process.
fn run_here(cli: Cli, input: Input) -> u8 {
    init_tracing(cli.verbose);
    let sandbox = matches!(&cli.command, Some(Command::Run(RunArgs { sandbox: true, .. })));
    // Must happen before any thread exists, so every later thread inherits it.
    if sandbox && let Err(e) = netsh::sandbox::enter() {
        eprintln!("netsh: error: {e}");
        return 1;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netsh: error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    // A sandbox's changes vanish with it: so do its journal and audit log.
    let state = if sandbox { netsh::sandbox::state_dir() } else { state_dir(cli.state_dir.clone()) };
    let firewall = cli.firewall.unwrap_or_else(FirewallKind::detect);
    let kernel = match Kernel::configured(firewall, cli.kv.as_deref()) {
        Ok(kernel) => kernel,
        Err(e) => {
            eprintln!("netsh: error: {e}");
            return 2;
        }
    };
    let engine = Engine::new(state, kernel);
    let console: Arc<dyn Console> = Arc::new(Terminal);
    let code = runtime.block_on(async {
        let stop = Stop::default();
        watch_signals(&stop);
        execute(&engine, cli, console, stop, input, sandbox).await
    });
    if sandbox {
        netsh::sandbox::discard_state();
    }
    code
}

/// Carry out a parsed command and print its error; returns the exit code.
/// The agent runs commands through this too.
pub async fn execute(
    engine: &Engine,
    cli: Cli,
    console: Arc<dyn Console>,
    stop: Stop,
    input: Input,
    sandbox: bool,
) -> u8 {
    match front_end(engine, cli, console.clone(), stop, input, sandbox).await {
        Ok(code) => code,
        Err(e) => {
            console.errln(&format!("netsh: error: {e:#}"));
            e.downcast_ref::<EngineError>().map_or(1, EngineError::exit_code)
        }
    }
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
async fn front_end(
    engine: &Engine,
    cli: Cli,
    console: Arc<dyn Console>,
    stop: Stop,
    input: Input,
    sandbox: bool,
) -> anyhow::Result<u8> {
    if sandbox {
        // A fresh namespace starts with lo down; recipes and demos expect it up.
        engine.trusted_gate("sandbox")?.call(Op::LinkSetUp { ns: None, name: "lo".into(), up: true }).await?;
    }
    if cli.command.is_some() {
        let code = cli::dispatch(engine, cli, console.clone(), stop, input).await;
        if sandbox {
            console.outln("--- sandbox topology (discarded on exit) ---");
            console.out(&netsh::engine::shell::show_text(&engine.show(None).await?, Default::default()));
        }
        return Ok(code?);
    }
    engine.report_interrupted(&*console);
    if let Some(commands) = &cli.commands {
        return Ok(cli::batch(engine, &cli.grants, "-c", commands, false, console, stop).await?);
    }
    if matches!(input, Input::Stdin) && std::io::stdin().is_terminal() {
        front::shell::repl(engine, cli.grants.spec(), console, stop, engine.state_dir()?).await?;
        return Ok(0);
    }
    let text = input.read()?;
    Ok(cli::batch(engine, &cli.grants, "stdin", &text, false, console, stop).await?)
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "netsh=debug" } else { "netsh=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}

/// /var/lib/netsh as root, else $XDG_STATE_HOME/netsh (~/.local/state/netsh).
pub fn state_dir(flag: Option<PathBuf>) -> PathBuf {
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
