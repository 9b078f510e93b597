//! The command line: clap's argument types and the dispatch of each
//! subcommand to the engine; what comes back is rendered, nothing more.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use netsh::backend::kernel::FirewallKind;
use netsh::console::Console;
use netsh::engine::render;
use netsh::engine::run::RunSpec;
use netsh::engine::runs::{RunFilter, parse_since};
use netsh::engine::shell::{Session, show_text, undo_text};
use netsh::engine::{Engine, EngineError, EngineResult, GrantSpec};
use netsh::plugins::Plugin;
use netsh::stop::Stop;
use netsh::units::{parse_duration, parse_mib};

use crate::Input;

/// netsh: build container and lab networks with sandboxed, reviewable WebAssembly recipes.
#[derive(Debug, Parser)]
#[command(name = "netsh", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    /// Log every capability call (same as RUST_LOG=netsh=debug).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Where the audit log, run journals and plugins live [default: /var/lib/netsh as
    /// root, else $XDG_STATE_HOME/netsh].
    #[arg(long, global = true, value_name = "DIR", env = "NETSH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Firewall backend: nftables (in-process, the default where the kernel has
    /// nf_tables) or iptables (iptables-restore).
    #[arg(long, global = true, value_name = "BACKEND", env = "NETSH_FIREWALL", value_parser = clap::value_parser!(FirewallKind))]
    pub firewall: Option<FirewallKind>,
    /// Where recipes keep state shared between hosts: etcd://HOST:2379[,HOST:2379...]
    /// [default: the embedded store in the state directory]. Keys under netsh/
    /// (this host's resolver records) always stay in the embedded store.
    #[arg(long, global = true, value_name = "URL", env = "NETSH_KV")]
    pub kv: Option<String>,
    /// Run here even when an agent listens (see `netsh agent`).
    #[arg(long, global = true)]
    pub no_agent: bool,
    /// The agent's socket: commands go to the agent when it answers there.
    #[arg(long, global = true, value_name = "PATH", env = "NETSH_AGENT_SOCKET", default_value = netsh::agent::DEFAULT_SOCKET)]
    pub agent_socket: PathBuf,
    /// Run these shell commands (separated by ';' or newlines) and exit.
    #[arg(short = 'c', value_name = "COMMANDS", conflicts_with = "command", allow_hyphen_values = true)]
    pub commands: Option<String>,
    #[command(flatten)]
    pub grants: GrantArgs,
    /// Without a command: the interactive shell on a terminal, or commands read from stdin.
    #[command(subcommand)]
    pub command: Option<Command>,
}

const EXAMPLES: &str = "Examples:
  netsh --allow 'link:br-*'                      # the interactive shell (on a terminal)
  netsh --allow 'link:br-*' -c 'link add br-x type bridge; link set br-x up'
  echo 'netns ls' | netsh                        # commands from stdin
  netsh run --sandbox --allow-all recipes/netns-bridge.wasm -- --count 3
  netsh run --allow 'link:br-*' --allow addr:172.25.0.0/16 recipes/docker-bridge.wasm -- create mynet
  netsh inspect recipes/docker-bridge.wasm      # the grants a recipe asks for
  netsh runs; netsh undo RUN-ID; netsh undo last # revert a finished run
  netsh audit --since 1h; netsh audit verify
  netsh show --json

Grant flags (--allow, --deny, --allow-all, --policy) may come before or after the subcommand.

Exit codes: 0 success; 1 failure (a failed run is rolled back); 2 usage error (netsh's or
a recipe's); 3 `plan`: the recipe would change something.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a recipe: netsh run FILE [OPTIONS] [-- ARGS...]
    Run(RunArgs),
    /// Run a file of shell commands (# comments; `-` reads stdin); stops at the
    /// first error and rolls the whole file back unless --keep-going.
    Batch {
        file: PathBuf,
        /// Apply the remaining lines after an error.
        #[arg(long)]
        keep_going: bool,
    },
    /// Show what a recipe would do, as commands, without changing anything;
    /// exit 0 if nothing would change, 3 if something would, 1 if it would fail.
    Plan(PlanArgs),
    /// Print a recipe's manifest (name, usage, requested grants) and sha256.
    Inspect {
        /// The recipe (.wasm component) or an installed plugin's name.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the audit log, or check its MACs, chain and head with `audit verify`.
    Audit(AuditArgs),
    /// List runs and their state (finished, rolled back, interrupted, ...).
    Runs(RunsArgs),
    /// Revert a run: apply the inverse of each of its changes, last first (`last`: the newest).
    Undo {
        /// The run id (see `netsh runs`), or `last`.
        run: String,
    },
    /// Keep a run started with `--confirm`, before its deadline.
    Confirm {
        /// The run id printed by `netsh run --confirm`.
        run: String,
    },
    /// Install, list, inspect and remove recipes run by name (`netsh NAME ARGS`).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// An installed plugin: `netsh NAME ARGS...` runs it with the grants given and the policy files'.
    #[command(external_subcommand)]
    External(Vec<String>),
    /// Serve netsh commands from a long-lived process (root only): other
    /// `netsh` commands hand their work to it, sparing each the start-up,
    /// and `--confirm` deadlines outlive the terminal that asked for them.
    #[command(after_help = "Example: an overlay host that follows the other hosts' changes, GRANTS being the\n\
        --allow flags `netsh inspect recipes/overlay.wasm` prints:\n  \
        netsh --kv etcd://10.0.0.5:2379 agent --sync \"overlay/=run GRANTS recipes/overlay.wasm -- sync\"")]
    Agent {
        /// Watch the shared store (--kv etcd://...) under PREFIX and run the
        /// netsh COMMAND (words, double quotes group) at start and after every
        /// change there, one run at a time; changes that arrive during a run
        /// are folded into one more run.
        #[arg(long, value_name = "PREFIX=COMMAND")]
        sync: Vec<String>,
    },
    /// Run a program in a named namespace with its /etc/netns files, like
    /// `ip netns exec` (needs the grants netns:NS and exec:NS); exits with
    /// the program's status.
    #[command(after_help = "Example:\n  netsh --allow netns:web --allow exec:web exec web -- ping -c1 db")]
    Exec {
        /// The namespace (a container's name).
        netns: String,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// The DNS resolver of container networks: `dns status`, `dns stop`, `dns serve`.
    #[command(subcommand)]
    Dns(DnsCommand),
    /// Show namespaces, links, addresses, routes, policy routing rules, netsh's firewall rules and
    /// (read-only) the firewall rules netsh did not make.
    Show {
        /// Only this named namespace.
        #[arg(short = 'n', long = "netns", value_name = "NS")]
        netns: Option<String>,
        /// Print JSON instead of text (always everything).
        #[arg(long)]
        json: bool,
        /// Links and rules only, one line each, like `ip -br`.
        #[arg(short = 'b', long)]
        brief: bool,
        /// IPv6 link-local addresses and routes, and the built-in policy rules, too (hidden by default).
        #[arg(short = 'a', long)]
        all: bool,
    },
}

/// `netsh dns ...`: the resolver recipes' networks get names from. Recipes
/// declare zones and names in the key-value store (`kv:netsh/dns/*`); the
/// first zone starts the resolver, the last one's removal stops it.
#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Whether the resolver runs, where it listens, its zones and upstreams.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop the resolver (the next change of a zone starts it again).
    Stop,
    /// Run the resolver in the foreground (netsh starts it by itself when a
    /// zone appears; this is for debugging). Exits after the last zone goes.
    Serve,
}

/// `netsh plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a recipe under a name (default: its manifest name); its sha256 is recorded.
    Add {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// List installed plugins.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin's manifest, digest and file.
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Uninstall a plugin.
    Rm { name: String },
}

/// Options of `netsh plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The recipe (.wasm component) or an installed plugin's name.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Arguments passed to the recipe (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Options of `netsh audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// `verify`: check the MACs, the chain and the head record; name the first problem.
    #[arg(value_parser = ["verify"])]
    pub action: Option<String>,
    /// Only this run.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Only entries newer than this: an RFC 3339 time or an age such as 10m, 2h.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keep printing new entries as they are written.
    #[arg(long)]
    pub follow: bool,
}

/// Options of `netsh runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs in this state (finished, rolled-back, interrupted, undone, ...).
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Only runs whose principal starts with this (a recipe name, `repl`).
    #[arg(long, value_name = "NAME")]
    pub principal: Option<String>,
    /// Only runs started after this: an RFC 3339 time or an age such as 1h.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Remove the journals of ended runs (kept: running, interrupted, awaiting confirmation).
    #[arg(long)]
    pub prune: bool,
    /// With --prune: only runs older than this, e.g. 7d.
    #[arg(long, value_name = "AGE", requires = "prune", value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where grants come from; accepted before or after the subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct GrantArgs {
    /// Grant a permission, e.g. link:br-*, addr:172.25.0.0/16, publish:tcp/8000-8100 (repeatable).
    #[arg(long = "allow", value_name = "GRANT", global = true)]
    pub allow: Vec<String>,
    /// Refuse a permission even if something else grants it (repeatable; always wins).
    #[arg(long = "deny", value_name = "GRANT", global = true)]
    pub deny: Vec<String>,
    /// Grant everything not denied (prints a warning).
    #[arg(long, global = true)]
    pub allow_all: bool,
    /// Read grants from this TOML file instead of /etc/netsh/policy.toml and
    /// ~/.config/netsh/policy.toml.
    #[arg(long, value_name = "FILE", global = true)]
    pub policy: Option<PathBuf>,
}

impl GrantArgs {
    /// Every grant flag on the command line, wherever it stands (before or
    /// after the subcommand): clap keeps only the last position's values.
    /// Recipe arguments after `--` and the text of `-c` are not looked at.
    pub fn collect(argv: &[String]) -> GrantArgs {
        let mut grants = GrantArgs::default();
        let mut words = argv.iter().skip(1);
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (word.as_str(), None),
            };
            let mut value = || inline.clone().or_else(|| words.next().cloned());
            match flag {
                "--" => break,
                "-c" => drop(words.next()),
                "--allow" => grants.allow.extend(value()),
                "--deny" => grants.deny.extend(value()),
                "--policy" => grants.policy = value().map(PathBuf::from),
                "--allow-all" => grants.allow_all = true,
                _ => {}
            }
        }
        grants
    }

    /// The engine's form.
    pub fn spec(&self) -> GrantSpec {
        GrantSpec {
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            allow_all: self.allow_all,
            policy: self.policy.clone(),
            system_only: false,
        }
    }
}

/// Options of `netsh run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The recipe: a .wasm component, or the name of an installed plugin.
    pub file: PathBuf,
    /// Keep a failed run's partial changes (for debugging) instead of rolling back.
    #[arg(long)]
    pub no_rollback: bool,
    /// Revert the run unless `netsh confirm RUN-ID` arrives within D (e.g. 30s).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub confirm: Option<Duration>,
    /// Run inside a throwaway network + mount namespace, print the resulting
    /// topology, then discard it; the caller's network and netsh's state are untouched.
    #[arg(long)]
    pub sandbox: bool,
    /// Time limit for the recipe (computing and waiting on calls), e.g. 10s, 500ms, 2m.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Memory cap for the recipe, e.g. 64M, 1G (plain numbers are MiB).
    #[arg(long, value_name = "M", default_value = "64M", value_parser = parse_mib)]
    pub max_memory: usize,
    /// Arguments passed to the recipe (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

impl RunArgs {
    /// The engine's form, with `grants`.
    pub fn spec(&self, grants: &GrantArgs) -> RunSpec {
        RunSpec {
            target: self.file.clone(),
            args: self.args.clone(),
            grants: grants.spec(),
            timeout: self.timeout,
            max_memory_mib: self.max_memory,
            no_rollback: self.no_rollback,
            confirm: self.confirm,
            interactive: true,
            cni: None,
            sha256: None,
        }
    }
}

/// Read a batch file, or the input for `-`.
fn read_batch(file: &std::path::Path, input: Input) -> EngineResult<String> {
    let read = if file == std::path::Path::new("-") { input.read() } else { std::fs::read_to_string(file) };
    read.map_err(|e| EngineError::Failed(format!("cannot read {}: {e}", file.display())))
}

/// Run batch text (a file, stdin or `-c`).
pub async fn batch(
    engine: &Engine,
    grants: &GrantArgs,
    source: &str,
    text: &str,
    keep_going: bool,
    console: Arc<dyn Console>,
    stop: Stop,
) -> EngineResult<u8> {
    let lines: Vec<&str> = if source == "-c" { text.split([';', '\n']).collect() } else { text.lines().collect() };
    engine.batch(grants.spec(), source, &lines, keep_going, console, stop).await
}

/// Carry out one subcommand; returns the exit code.
pub async fn dispatch(
    engine: &Engine,
    cli: Cli,
    console: Arc<dyn Console>,
    stop: Stop,
    input: Input,
) -> EngineResult<u8> {
    let grants = cli.grants;
    let Some(command) = cli.command else {
        // Handled by main (shell, -c, stdin).
        return Ok(0);
    };
    if !matches!(command, Command::Undo { .. } | Command::Runs(_)) {
        engine.report_interrupted(&*console);
    }
    match command {
        Command::Run(args) => engine.run(&args.spec(&grants), console, stop).await.map(|_| 0),
        Command::Batch { file, keep_going } => {
            let text = read_batch(&file, input)?;
            batch(engine, &grants, &file.display().to_string(), &text, keep_going, console, stop).await
        }
        Command::Plan(args) => {
            let plan = engine.plan(&args.file, args.args, &grants.spec(), console.clone()).await?;
            if args.json {
                console.outln(&serde_json::to_string_pretty(&render::plan_json(&plan)).unwrap_or_default());
            } else {
                console.out(render::plan_text(&plan).as_bytes());
            }
            match plan.error {
                Some(e) => Err(EngineError::Failed(e)),
                None => Ok(if plan.changes > 0 { 3 } else { 0 }),
            }
        }
        Command::Inspect { file, json } => {
            let recipe = engine.load(&file, console.clone()).await?;
            if json {
                console.outln(&serde_json::to_string_pretty(&render::recipe_json(&recipe.info)).unwrap_or_default());
            } else {
                console.out(render::inspect(&recipe.info, &file.display().to_string()).as_bytes());
            }
            Ok(0)
        }
        Command::Audit(args) => audit(engine, args, &*console, &stop).await.map(|()| 0),
        Command::Runs(args) => runs(engine, args, &*console).map(|()| 0),
        Command::Undo { run } => {
            let report = engine.undo(&run, &*console).await?;
            console.outln(&undo_text(&report));
            Ok(0)
        }
        Command::Confirm { run } => {
            engine.confirm(&run)?;
            console.outln(&format!("run {run} confirmed"));
            Ok(0)
        }
        Command::Plugin(cmd) => plugin(engine, cmd, console).await.map(|()| 0),
        Command::External(words) => external(engine, &grants, words, console, stop).await,
        Command::Exec { netns, command } => {
            netsh::names::check_netns(&netns)?;
            let interactive = netsh::policy::prompt::available();
            let mut session = Session::new(engine, grants.spec(), console, stop, interactive)?;
            let code = session.exec(netns, command).await?;
            Ok(u8::try_from(code).unwrap_or(255))
        }
        Command::Show { netns, json, brief, all } => {
            let style = netsh::engine::show::Style { json, brief, all };
            console.out(&show_text(&engine.show(netns).await?, style));
            Ok(0)
        }
        Command::Agent { .. } | Command::Dns(_) => {
            Err(EngineError::Usage("`netsh agent` and `netsh dns` run only as commands of their own".into()))
        }
    }
}

/// `netsh NAME ARGS`: an installed plugin, or a suggestion.
async fn external(
    engine: &Engine,
    grants: &GrantArgs,
    words: Vec<String>,
    console: Arc<dyn Console>,
    stop: Stop,
) -> EngineResult<u8> {
    let (name, args) = words.split_first().ok_or_else(|| EngineError::Usage("missing plugin name".into()))?;
    if engine.plugins()?.get(name).is_err() {
        let mut known: Vec<String> =
            <Cli as clap::CommandFactory>::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
        known.extend(engine.plugins()?.index()?.into_keys());
        let hint = netsh::engine::grammar::closest(name, known.iter().map(String::as_str))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(EngineError::Usage(format!(
            "unknown command {name:?}: not a netsh command nor an installed plugin{hint} (see `netsh --help`, `netsh plugin ls`)"
        )));
    }
    let mut spec = RunSpec::new(PathBuf::from(name), args.to_vec());
    spec.grants = grants.spec();
    spec.interactive = true;
    engine.run(&spec, console, stop).await.map(|_| 0)
}

async fn audit(engine: &Engine, args: AuditArgs, console: &dyn Console, stop: &Stop) -> EngineResult<()> {
    if args.action.as_deref() == Some("verify") {
        console.outln(&engine.verify_audit()?);
        return Ok(());
    }
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let wanted = |e: &netsh::audit::Entry| {
        args.run.as_ref().is_none_or(|r| &e.run == r)
            && since.is_none_or(|s| humantime::parse_rfc3339_weak(&e.time).is_ok_and(|t| t >= s))
    };
    engine.print_audit(&wanted, args.json, args.follow, console, stop).await
}

fn runs(engine: &Engine, args: RunsArgs, console: &dyn Console) -> EngineResult<()> {
    if args.prune {
        let removed = engine.prune(args.older_than)?;
        console.outln(&format!("{removed} ended run(s) pruned"));
        return Ok(());
    }
    let filter = RunFilter {
        state: args.state,
        principal: args.principal,
        since: args.since.as_deref().map(parse_since).transpose()?,
    };
    let rows = engine.runs(&filter)?;
    if args.json {
        console.outln(&serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else {
        console.out(render::runs_table(&rows).as_bytes());
    }
    Ok(())
}

async fn plugin(engine: &Engine, cmd: PluginCommand, console: Arc<dyn Console>) -> EngineResult<()> {
    let store = engine.plugins()?;
    match cmd {
        PluginCommand::Add { file, name } => {
            let recipe = engine.load(&file, console.clone()).await?;
            let wasm = netsh::runtime::read_wasm(&file)?;
            let name = name.unwrap_or_else(|| recipe.info.name.clone());
            let sha = recipe.info.sha256.clone();
            let plugin =
                Plugin { recipe: recipe.info, added: humantime::format_rfc3339_seconds(SystemTime::now()).to_string() };
            let short = netsh::names::short_digest;
            match store.add(&name, &wasm, plugin)? {
                Some(old) if old.recipe.sha256 != sha => {
                    console.outln(&format!("{name} updated: sha256 {} -> {}", short(&old.recipe.sha256), short(&sha)))
                }
                _ => console.outln(&format!("{name} installed: sha256 {sha}")),
            }
            console.outln(&format!(
                "run it with `netsh {name} ARGS...`; pin its grants in a policy file with sha256 = \"{sha}\""
            ));
        }
        PluginCommand::Ls { json } => {
            let index = store.index()?;
            if json {
                console.outln(&serde_json::to_string_pretty(&index).unwrap_or_default());
            } else if index.is_empty() {
                console.outln("no plugins installed (netsh plugin add FILE)");
            } else {
                for (name, p) in &index {
                    let r = &p.recipe;
                    console.outln(&format!(
                        "{name:<20} {:<8} {}  {}",
                        r.version,
                        netsh::names::short_digest(&r.sha256),
                        r.summary
                    ));
                }
            }
        }
        PluginCommand::Info { name, json } => {
            let p = store.get(&name)?;
            if json {
                let mut value = serde_json::to_value(&p).unwrap_or_default();
                value["file"] = serde_json::json!(store.blob(&p.recipe.sha256));
                console.outln(&serde_json::to_string_pretty(&value).unwrap_or_default());
            } else {
                console.out(render::inspect(&p.recipe, &name).as_bytes());
                console.outln(&format!("file:   {}\nadded:  {}", store.blob(&p.recipe.sha256).display(), p.added));
            }
        }
        PluginCommand::Rm { name } => {
            store.remove(&name)?;
            console.outln(&format!("{name} removed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_args_after_double_dash_and_grants_anywhere() {
        let argv: Vec<String> = [
            "netsh",
            "--allow",
            "link:a",
            "run",
            "x.wasm",
            "--sandbox",
            "--allow=link:b",
            "--",
            "create",
            "--allow",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cli = Cli::try_parse_from(&argv).unwrap();
        assert_eq!(GrantArgs::collect(&argv).allow, ["link:a", "link:b"]);
        match cli.command {
            Some(Command::Run(r)) => {
                assert!(r.sandbox);
                assert_eq!(r.args, ["create", "--allow", "x"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["netsh", "-c", "-n c1 link ls"]).unwrap();
        assert_eq!(cli.commands.as_deref(), Some("-n c1 link ls"));
    }
}
