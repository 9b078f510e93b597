//! Helpers for netsh's end-to-end tests.
//!
//! Every kernel-touching test runs a bash script in a child process under
//! `unshare --net --mount` with private tmpfs mounts on /run/netns and
//! /etc/netns: the test harness itself never changes namespace, and the
//! machine's own interfaces, routes and firewall are never touched.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The netsh binary under test (`$NETSH_BIN`, else target/release/netsh).
pub fn netsh() -> PathBuf {
    std::env::var_os("NETSH_BIN").map(PathBuf::from).unwrap_or_else(|| root().join("target/release/netsh"))
}

/// What a sandboxed script did.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panic with the whole output unless the script succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "script failed\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Panic with the whole output unless stdout holds every line of `expected`.
    pub fn assert_has(&self, expected: &[&str]) -> &Self {
        for line in expected {
            assert!(self.stdout.contains(line), "missing {line:?} in\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        }
        self
    }
}

/// Bash run before every script: strict mode, private namespace dirs, lo up,
/// and helpers (`snapshot`, `expect_fail`).
const PRELUDE: &str = r#"
set -euo pipefail
work=$(mktemp -d)
# The DNS resolver a docker-bridge network starts outlives netsh's runs: stop it.
trap '"$NETSH" dns stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cd "$work"
mkdir -p /run/netns /etc/netns
mount -t tmpfs tmpfs /run/netns
mount -t tmpfs tmpfs /etc/netns
ip link set lo up
# The namespace's state as text, for before/after comparisons. With the
# iptables backend, iptables-nft keeps the built-in chains it made on first
# use: what iptables users see (iptables-save) is compared, not nft's view.
# A namespace keeps the id the kernel gave it when a veth end first went in.
snapshot() {
  { ip -o link | sed -E 's/^[0-9]+: //; s/ link-netns[^ ]+//; s/ state [A-Z]+//'; ip netns list | sed 's/ (id: [0-9]*)//'; ip route; ip -6 route; iptables-save | grep -v '^#' || true
    [ "${NETSH_FIREWALL:-nftables}" = iptables ] || nft list ruleset; } 2>&1
}
# Docker-style helpers: make_outside, serve, fetch, stop_servers.
source "$TESTSH"
# The host's own rules, which netsh must leave alone (and which load the tables).
iptables -t nat -A POSTROUTING -s 10.99.0.0/16 -j ACCEPT
iptables -A INPUT -i lo -j ACCEPT
# Succeed once the snapshot equals $1, within 5 s (a deleted namespace's
# veths are removed by the kernel asynchronously, as after `ip netns del`).
settled_to() {
  for _ in $(seq 50); do [ "$(snapshot)" = "$1" ] && return 0; sleep 0.1; done
  diff <(echo "$1") <(snapshot); return 1
}
# Run a command that must fail, and print its stderr.
expect_fail() {
  if out=$("$@" 2>&1); then echo "UNEXPECTED SUCCESS: $* -> $out"; exit 1; fi
  echo "$out"
}
export NETSH_STATE_DIR="$work/state"
# The grants docker-bridge asks for, with any subnet.
DB_GRANTS="--allow link:br-* --allow link:docker0 --allow link:veth* --allow link:*/eth* --allow link:*/lo --allow netns:*
  --allow addr:0.0.0.0/0 --allow route:0.0.0.0/0 --allow nat:0.0.0.0/0 --allow publish:1-65535
  --allow addr:::/0 --allow route:::/0 --allow nat:::/0 --allow sysctl:net.ipv6.conf.all.forwarding
  --allow sysctl:net.ipv4.ip_forward --allow sysctl:net.ipv4.conf.*.route_localnet --allow kv:docker-bridge/* --allow kv:netsh/dns/*"
set -f  # the grants' globs are for netsh, not the shell
DB="$NETSH run $DB_GRANTS $RECIPES/docker-bridge.wasm --"
# The firewall backend under test, and DNAT entries as the kernel holds them.
FW=${NETSH_FIREWALL:-nftables}
dnat_entries() {
  if [ "$FW" = iptables ]; then
    iptables -t nat -S NETSH-PREROUTING 2>/dev/null | grep -- '-j DNAT' | sed -E 's/.*--dport ([0-9]+) .*--to-destination ([^ ]+).*/\1 \2/' || true
  else
    for map in dnat_any dnat_addr; do
      nft -j list map ip netsh $map 2>/dev/null | python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    for e in item.get("map", {}).get("elem", []):
        key = e[0]["elem"]["val"] if "elem" in e[0] else e[0]
        key, to = key["concat"], e[1]["concat"]
        print(key[-1], "%s:%s" % (to[0], to[1]))' || true
    done
  fi
}
# The grants a recipe declares (`netsh inspect`), as --allow flags.
grants_of() {
  $NETSH inspect --json "$1" | python3 -c 'import json,sys; print(" ".join("--allow " + g["grant"] for g in json.load(sys.stdin)["grants"]))'
}
"#;

/// Run `script` with bash in a fresh network + mount namespace, bounded to
/// `limit_secs`. `$NETSH`, `$RECIPES` and `$GUESTS` point at the artifacts;
/// `$DB` runs the docker-bridge recipe with the grants it asks for;
/// `$NETSH_STATE_DIR` (audit log, journals) is private to the script.
pub fn sandboxed(script: &str, limit_secs: u32) -> Outcome {
    sandboxed_on(Firewall::Nftables, script, limit_secs)
}

/// The firewall backends a test can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    Nftables,
    Iptables,
}

impl Firewall {
    /// Both, for tests that must pass on either.
    pub const BOTH: [Firewall; 2] = [Firewall::Nftables, Firewall::Iptables];

    fn name(self) -> &'static str {
        match self {
            Firewall::Nftables => "nftables",
            Firewall::Iptables => "iptables",
        }
    }
}

/// [`sandboxed`], with netsh using the `firewall` backend (`$FW` in the script).
pub fn sandboxed_on(firewall: Firewall, script: &str, limit_secs: u32) -> Outcome {
    sandbox(&["--net", "--mount"], firewall, script, limit_secs)
}

/// [`sandboxed`] in a PID namespace of its own too (a fresh /proc): every
/// process the script leaves (a container runtime's monitors) is killed
/// with it.
pub fn sandboxed_with_pids(script: &str, limit_secs: u32) -> Outcome {
    sandbox(
        &["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"],
        Firewall::Nftables,
        script,
        limit_secs,
    )
}

fn sandbox(namespaces: &[&str], firewall: Firewall, script: &str, limit_secs: u32) -> Outcome {
    let root = root();
    let out = Command::new("timeout")
        .arg(limit_secs.to_string())
        .arg("unshare")
        .args(namespaces)
        .args(["--propagation", "private", "--", "bash", "-c"])
        .arg(format!("{PRELUDE}\n{script}"))
        .env("NETSH", netsh())
        .env("RECIPES", root.join("recipes"))
        .env("GUESTS", root.join("target/wasm32-wasip2/guest"))
        .env("TESTSH", root.join("tests/sh/net.sh"))
        .env("TESTDIR", root.join("tests/sh"))
        .env("NETSH_FIREWALL", firewall.name())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run unshare (util-linux) and bash");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
