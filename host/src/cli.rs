//! Command-line interface (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// netsh: build container and lab networks with sandboxed, reviewable WebAssembly recipes.
#[derive(Debug, Parser)]
#[command(name = "netsh", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    /// Log every capability call (same as RUST_LOG=netsh=debug).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Where the audit log and run journals live [default: /var/lib/netsh as
    /// root, else $XDG_STATE_HOME/netsh].
    #[arg(long, global = true, value_name = "DIR", env = "NETSH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Run these REPL commands (separated by ';' or newlines) and exit.
    #[arg(short = 'c', value_name = "COMMANDS", conflicts_with = "command")]
    pub commands: Option<String>,
    /// Grants for the shell and `-c` (same as `netsh run`).
    #[command(flatten)]
    pub grants: GrantArgs,
    /// Without a command: the interactive shell on a terminal.
    #[command(subcommand)]
    pub command: Option<Command>,
}

const EXAMPLES: &str = "Examples:
  netsh --allow 'link:br-*'                      # the interactive shell (on a terminal)
  netsh --allow 'link:br-*' -c 'link add br-x type bridge; link set br-x up'
  netsh run --sandbox --allow-all recipes/netns-bridge.wasm -- --count 3
  netsh run --allow link:br-* --allow addr:172.25.0.0/16 recipes/docker-bridge.wasm -- create mynet
  netsh inspect recipes/docker-bridge.wasm      # the grants a recipe asks for
  netsh runs; netsh undo RUN-ID                  # revert a finished run
  netsh audit --since 1h; netsh audit verify
  netsh show --json";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a recipe: netsh run FILE [OPTIONS] [-- ARGS...]
    Run(RunArgs),
    /// Run a file of shell commands (# comments); stops at the first error and
    /// rolls the whole file back unless --keep-going.
    Batch {
        file: PathBuf,
        /// Apply the remaining lines after an error.
        #[arg(long)]
        keep_going: bool,
        #[command(flatten)]
        grants: GrantArgs,
    },
    /// Show what a recipe would do, as ip/iptables commands, without changing
    /// anything; exit 0 if nothing would change, 2 if something would.
    Plan(PlanArgs),
    /// Print a recipe's manifest (name, usage, requested grants) and sha256.
    Inspect {
        /// The recipe (.wasm component).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the audit log, or check its hash chain with `audit verify`.
    Audit(AuditArgs),
    /// List runs and their state (finished, rolled back, interrupted, ...).
    Runs {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revert a run: apply the inverse of each of its changes, last first.
    Undo {
        /// The run id (see `netsh runs`).
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
    /// An installed plugin: `netsh NAME ARGS...` runs it with the grants of the policy files.
    #[command(external_subcommand)]
    External(Vec<String>),
    /// Show namespaces, links, addresses, routes and netsh's firewall rules.
    Show {
        /// Only this named namespace.
        #[arg(short = 'n', long = "netns", value_name = "NS")]
        netns: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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
    Info { name: String },
    /// Uninstall a plugin.
    Rm { name: String },
}

/// Options of `netsh plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The recipe (.wasm component).
    pub file: PathBuf,
    #[command(flatten)]
    pub grants: GrantArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Arguments passed to the recipe (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Options of `netsh audit`.
#[derive(Debug, Parser)]
#[command(name = "audit")]
pub struct AuditArgs {
    /// `verify`: check the hash chain and name the first bad line.
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

/// Where grants come from.
#[derive(Debug, Clone, Default, Args)]
pub struct GrantArgs {
    /// Grant a permission, e.g. link:br-*, addr:172.25.0.0/16, publish:tcp/8000-8100 (repeatable).
    #[arg(long = "allow", value_name = "GRANT")]
    pub allow: Vec<String>,
    /// Refuse a permission even if something else grants it (repeatable; always wins).
    #[arg(long = "deny", value_name = "GRANT")]
    pub deny: Vec<String>,
    /// Grant everything not denied (prints a warning).
    #[arg(long)]
    pub allow_all: bool,
    /// Read grants from this TOML file instead of /etc/netsh/policy.toml and
    /// ~/.config/netsh/policy.toml.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// Options of `netsh run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The recipe: a .wasm component, or the name of an installed plugin.
    pub file: PathBuf,
    #[command(flatten)]
    pub grants: GrantArgs,
    /// Keep a failed run's partial changes (for debugging) instead of rolling back.
    #[arg(long)]
    pub no_rollback: bool,
    /// Revert the run unless `netsh confirm RUN-ID` arrives within D (e.g. 30s).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub confirm: Option<Duration>,
    /// Run inside a throwaway network + mount namespace, print the resulting
    /// topology, then discard it; the caller's network is untouched.
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

/// Parse "10s", "500ms", "2m", "1h" or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!("unknown unit {unit:?} in {text:?}; use ms, s, m or h"));
        }
    };
    if secs <= 0.0 || !secs.is_finite() {
        return Err(format!("duration {text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse "64M", "64MiB", "1G", "512K" or plain MiB into MiB.
pub fn parse_mib(text: &str) -> Result<usize, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: usize = num.parse().map_err(|_| format!("{text:?} is not a size like 64M or 1G"))?;
    let mib = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => value,
        "g" | "gb" | "gib" => value * 1024,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use M or G")),
    };
    if mib == 0 {
        return Err("memory limit must be at least 1 MiB".into());
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_mib("64M").unwrap(), 64);
        assert_eq!(parse_mib("64MiB").unwrap(), 64);
        assert_eq!(parse_mib("1G").unwrap(), 1024);
        assert_eq!(parse_mib("16").unwrap(), 16);
        assert!(parse_mib("0").is_err());
        assert!(parse_mib("12T").is_err());
    }

    #[test]
    fn run_args_after_double_dash() {
        let cli =
            Cli::try_parse_from(["netsh", "run", "x.wasm", "--sandbox", "--", "create", "--subnet", "10.0.0.0/24"])
                .unwrap();
        match cli.command {
            Some(Command::Run(r)) => {
                assert!(r.sandbox);
                assert_eq!(r.args, ["create", "--subnet", "10.0.0.0/24"]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
