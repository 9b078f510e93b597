//! `netsh agent`: the long-lived front end. It listens on a root-only unix
//! socket and runs each command it accepts exactly as `netsh` would run it
//! in-process (the same parser, engine calls and output), one at a time,
//! keeping the engine, compiled recipes and netlink sockets between them;
//! and it keeps the deadlines of runs started with `--confirm`.

use std::cell::{Cell, RefCell};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use netsh::agent::{self, FrameConsole, FromAgent, Place, Request, ToAgent};
use netsh::backend::kernel::{FirewallKind, Kernel};
use netsh::console::Console;
use netsh::engine::Engine;
use netsh::stop::{Stop, StopReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf, UCred};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::UnboundedReceiver;

use super::cli::Cli;
use crate::{Input, execute, parse, state_dir};

/// How often deadlines of `--confirm` runs are looked at.
const DEADLINE_TICK: Duration = Duration::from_millis(100);

/// What the agent keeps between commands.
struct Agent {
    engine: Engine,
    state_dir: PathBuf,
    firewall: FirewallKind,
    kv: Option<String>,
    place: Place,
    /// One command at a time: a run's firewall changes are batched in the
    /// shared kernel backend until the run ends.
    busy: tokio::sync::Mutex<()>,
    /// The command in flight, stopped on SIGTERM.
    current: RefCell<Option<Stop>>,
    stopping: Cell<bool>,
}

/// Run the agent until SIGTERM or SIGINT.
pub fn main(cli: Cli) -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("netsh: error: the agent runs as root: it carries out root's netsh commands");
        return ExitCode::FAILURE;
    }
    netsh::policy::prompt::never();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netsh: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    match runtime.block_on(local.run_until(serve(cli))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netsh: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let state = state_dir(cli.state_dir.clone());
    let firewall = cli.firewall.unwrap_or_else(FirewallKind::detect);
    let engine = Engine::new(state.clone(), Kernel::configured(firewall, cli.kv.as_deref())?).keeping_deadlines();
    engine.state_dir()?;
    let agent = Rc::new(Agent {
        engine,
        state_dir: canonical(&state),
        firewall,
        kv: cli.kv.clone(),
        place: Place::current()?,
        busy: tokio::sync::Mutex::new(()),
        current: RefCell::new(None),
        stopping: Cell::new(false),
    });
    let syncs = sync_specs(&cli)?;
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let watcher = match (&cli.kv, syncs.is_empty()) {
        (_, true) => None,
        (Some(url), false) => Some(netsh::kv::etcd::Etcd::new(url)?),
        (None, false) => anyhow::bail!("--sync watches the shared store: give it with --kv etcd://HOST:2379"),
    };
    if let Some(store) = &watcher {
        for (i, sync) in syncs.iter().enumerate() {
            let changed = changed.clone();
            store.watch(&sync.prefix, move || changed.send(i).is_ok());
        }
    }
    let (listener, made) = listen(&cli.agent_socket)?;
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    eprintln!(
        "netsh agent: listening on {} (state {}, firewall {})",
        cli.agent_socket.display(),
        state.display(),
        firewall.as_str()
    );
    let mut tick = tokio::time::interval(DEADLINE_TICK);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => drop(tokio::task::spawn_local(serve_one(agent.clone(), stream))),
                Err(e) => eprintln!("netsh agent: accept: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => keep_deadlines(&agent).await,
            Some(first) = changes.recv() => {
                let mut due = vec![first];
                while let Ok(more) = changes.try_recv() {
                    due.push(more);
                }
                due.sort_unstable();
                due.dedup();
                for i in due {
                    run_sync(&agent, &syncs[i]).await;
                }
            }
        }
    }
    eprintln!("netsh agent: stopping; the command in flight (if any) is stopped and rolled back");
    agent.stopping.set(true);
    if let Some(stop) = agent.current.borrow().as_ref() {
        stop.request(StopReason::Interrupted);
    }
    // Every command queued before this lock was asked for has ended.
    let _last = agent.busy.lock().await;
    if made {
        let _ = std::fs::remove_file(&cli.agent_socket);
    }
    Ok(())
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// The socket handed over by systemd (socket activation), else a new one at
/// `path` (root-only); whether this process made the socket file.
fn listen(path: &Path) -> anyhow::Result<(UnixListener, bool)> {
    if let Some(listener) = activated()? {
        return Ok((listener, false));
    }
    if let Some(dir) = path.parent() {
        netsh::trust::ensure_dir(dir).map_err(|e| anyhow::anyhow!("agent socket directory: {e}"))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!("{} exists and is not a socket; remove it or choose --agent-socket", path.display());
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("an agent already listens on {}", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, true))
}

/// The listening socket systemd passed as fd 3 (LISTEN_PID, LISTEN_FDS).
fn activated() -> anyhow::Result<Option<UnixListener>> {
    let for_me = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    if !for_me || std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0) < 1 {
        return Ok(None);
    }
    // SAFETY: systemd passes fd 3 open and owned by this process when LISTEN_PID names it.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) };
    listener.set_nonblocking(true)?;
    Ok(Some(UnixListener::from_std(listener)?))
}

/// A `--sync PREFIX=COMMAND`: what to watch, what to run.
struct Sync {
    prefix: String,
    argv: Vec<String>,
}

fn sync_specs(cli: &Cli) -> anyhow::Result<Vec<Sync>> {
    let Some(super::cli::Command::Agent { sync }) = &cli.command else { return Ok(Vec::new()) };
    sync.iter()
        .map(|spec| {
            let (prefix, command) = spec
                .split_once('=')
                .filter(|(p, c)| !p.is_empty() && !c.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("--sync {spec:?}: use PREFIX=COMMAND, e.g. overlay/=run ... -- sync"))?;
            let argv = std::iter::once("netsh".to_string()).chain(netsh::engine::grammar::words(command)).collect();
            Ok(Sync { prefix: prefix.to_string(), argv })
        })
        .collect()
}

/// Run a `--sync` command after a change under its prefix.
async fn run_sync(agent: &Agent, sync: &Sync) {
    let _turn = agent.busy.lock().await;
    if agent.stopping.get() {
        return;
    }
    let console: Arc<dyn Console> = Arc::new(netsh::console::Terminal);
    let started = std::time::Instant::now();
    let code = match parse(&sync.argv, &*console) {
        Ok(cli) => execute(&agent.engine, cli, console, Stop::default(), Input::Text(String::new()), false).await,
        Err(code) => code,
    };
    eprintln!(
        "netsh agent: {} changed: `{}` exited {code} after {} ms",
        sync.prefix,
        sync.argv[1..].join(" "),
        started.elapsed().as_millis()
    );
}

/// Settle `--confirm` deadlines between commands.
async fn keep_deadlines(agent: &Agent) {
    let Ok(_turn) = agent.busy.try_lock() else { return };
    for line in agent.engine.keep_deadlines().await {
        eprintln!("netsh agent: {line}");
    }
}

/// One connection: one request, its output, its exit code.
async fn serve_one(agent: Rc<Agent>, stream: UnixStream) {
    let caller = stream.peer_cred().ok();
    let (mut from, to) = stream.into_split();
    let (queue, frames) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::task::spawn_local(write_frames(to, frames));
    let console = Arc::new(FrameConsole::new(queue));
    if let Ok(Ok(Some(ToAgent::Request(request)))) =
        tokio::time::timeout(Duration::from_secs(10), read_message(&mut from)).await
    {
        handle(&agent, *request, caller, &console, from).await;
    }
    console.close();
    let _ = writer.await;
}

async fn handle(
    agent: &Agent,
    request: Request,
    caller: Option<UCred>,
    console: &Arc<FrameConsole>,
    from: OwnedReadHalf,
) {
    let uid = caller.map(|c| c.uid());
    if uid != Some(0) {
        let who = uid.map_or("an unknown user".to_string(), |u| format!("uid {u}"));
        console.send(FromAgent::Refused(format!("the netsh agent serves root only, and this caller is {who}")));
        return;
    }
    if let Some(why) = agent.declines(&request) {
        console.send(FromAgent::Declined(why));
        return;
    }
    let _turn = wait_turn(agent, &**console).await;
    if agent.stopping.get() {
        console.send(FromAgent::Declined("the agent is stopping".into()));
        return;
    }
    console.send(FromAgent::Accepted);
    let stop = Stop::default();
    agent.current.replace(Some(stop.clone()));
    let watcher = tokio::task::spawn_local(watch_interrupts(from, stop.clone()));
    let started = std::time::Instant::now();
    let command = match &request.cni {
        Some(env) => format!("cni {}", env.iter().find(|(k, _)| k == "CNI_COMMAND").map_or("", |(_, v)| v.as_str())),
        None => request.argv.get(1..).unwrap_or_default().join(" "),
    };
    let code = run(agent, request, console.clone(), stop).await;
    watcher.abort();
    let pid = caller.and_then(|c| c.pid()).map_or("?".to_string(), |p| p.to_string());
    eprintln!("netsh agent: pid {pid}: `{command}` exited {code} after {} ms", started.elapsed().as_millis());
    agent.current.replace(None);
    console.send(FromAgent::Exit(code));
}

impl Agent {
    /// Why the caller must run `request` itself, if it must.
    fn declines(&self, request: &Request) -> Option<String> {
        if request.place != self.place {
            return Some("the caller is in another network, mount or PID namespace".into());
        }
        if canonical(&request.state_dir) != self.state_dir {
            return Some(format!(
                "the caller uses state directory {}, the agent {}",
                request.state_dir.display(),
                self.state_dir.display()
            ));
        }
        // A CNI call reads the system policy only, whoever's $HOME.
        if request.cni.is_none() && request.user_policy != netsh::policy::user_file() {
            return Some("the caller reads another user policy file ($HOME or $XDG_CONFIG_HOME differ)".into());
        }
        if request.kv != self.kv {
            let name = |kv: &Option<String>| kv.clone().unwrap_or_else(|| "the embedded store".into());
            return Some(format!(
                "the caller uses key-value store {}, the agent {}",
                name(&request.kv),
                name(&self.kv)
            ));
        }
        if request.firewall != self.firewall {
            return Some(format!(
                "the caller asks for the {} firewall backend, the agent runs {}",
                request.firewall.as_str(),
                self.firewall.as_str()
            ));
        }
        None
    }
}

/// Wait for the command before to end; say so after a second.
async fn wait_turn<'a>(agent: &'a Agent, console: &dyn Console) -> tokio::sync::MutexGuard<'a, ()> {
    let turn = agent.busy.lock();
    tokio::pin!(turn);
    match tokio::time::timeout(Duration::from_secs(1), &mut turn).await {
        Ok(guard) => guard,
        Err(_) => {
            console.errln("netsh: waiting for the agent to finish another command");
            turn.await
        }
    }
}

/// Run one command line as `netsh` would.
async fn run(agent: &Agent, request: Request, console: Arc<FrameConsole>, stop: Stop) -> u8 {
    if let Some(env) = request.cni {
        let (out, code) = super::cni::answer_for_agent(&agent.engine, env, request.stdin.unwrap_or_default()).await;
        console.send(FromAgent::Out(out));
        return code;
    }
    if let Err(e) = std::env::set_current_dir(&request.cwd) {
        let console: &dyn Console = &*console;
        console.errln(&format!("netsh: error: the agent cannot enter {}: {e}", request.cwd.display()));
        return 1;
    }
    let cli = match parse(&request.argv, &*console) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let input = Input::Text(request.stdin.unwrap_or_default());
    execute(&agent.engine, cli, console, stop, input, false).await
}

/// Stop the command when its caller relays a signal; a caller that goes
/// away lets the command finish.
async fn watch_interrupts(mut from: OwnedReadHalf, stop: Stop) {
    while let Ok(Some(message)) = read_message::<ToAgent>(&mut from).await {
        if matches!(message, ToAgent::Interrupt) {
            stop.request(StopReason::Interrupted);
        }
    }
}

async fn read_message<T: serde::de::DeserializeOwned>(from: &mut OwnedReadHalf) -> std::io::Result<Option<T>> {
    let mut header = [0u8; 4];
    match from.read_exact(&mut header).await {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        other => drop(other?),
    }
    let mut body = vec![0; agent::body_len(header)?];
    from.read_exact(&mut body).await?;
    agent::decode(&body).map(Some)
}

async fn write_frames(mut to: OwnedWriteHalf, mut frames: UnboundedReceiver<FromAgent>) {
    while let Some(frame) = frames.recv().await {
        let Ok(bytes) = agent::encode(&frame) else { continue };
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
}
