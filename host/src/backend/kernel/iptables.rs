//! The iptables firewall backend: reads with `iptables-save`, writes every
//! change as one `iptables-restore --noflush` batch. Argv only, no shell.
//! Runs in the calling thread's network namespace.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::backend::FirewallBackend;
use crate::error::{CapError, CapResult};
use crate::firewall::{self, CHAINS, Line, Table};
use crate::ops::{FwRule, RuleInfo};

/// Drives the iptables binaries.
#[derive(Debug, Default)]
pub struct Iptables;

/// What `iptables-save` shows for the nat and filter tables.
#[derive(Debug, Default)]
struct Saved {
    chains: Vec<(Table, String)>,
    /// `-A CHAIN ...` rule lines, without the `-A `.
    rules: Vec<Line>,
}

impl Saved {
    fn has_chain(&self, table: Table, name: &str) -> bool {
        self.chains.iter().any(|(t, n)| *t == table && n == name)
    }

    fn has_rule(&self, table: Table, spec: &str) -> bool {
        self.rules.iter().any(|l| l.table == table && l.spec == spec)
    }

    /// Rules tagged by netsh, with their (owner, id).
    fn owned(&self) -> impl Iterator<Item = (&Line, &str, &str)> {
        self.rules.iter().filter_map(|l| {
            let (owner, id) = firewall::parse_tag(comment_of(&l.spec)?)?;
            Some((l, owner, id))
        })
    }
}

fn comment_of(spec: &str) -> Option<&str> {
    let rest = spec.split_once("--comment ")?.1;
    let word = rest.split_whitespace().next()?;
    Some(word.trim_matches('"'))
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> CapResult<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CapError::io(&e, format!("run {program} (is the iptables package installed?)")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(|e| CapError::io(&e, format!("write to {program}")))?;
    }
    let out = child.wait_with_output().map_err(|e| CapError::io(&e, format!("wait for {program}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(CapError::Os {
            code: out.status.code().unwrap_or(-1),
            message: format!("{program}: {}", stderr.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn save() -> CapResult<Saved> {
    let text = run("iptables-save", &[], None)?;
    let mut saved = Saved::default();
    let mut table = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = match name {
                "nat" => Some(Table::Nat),
                "filter" => Some(Table::Filter),
                _ => None,
            };
        } else if let Some(t) = table {
            if let Some(chain) = line.strip_prefix(':') {
                let name = chain.split_whitespace().next().unwrap_or_default();
                saved.chains.push((t, name.to_string()));
            } else if let Some(spec) = line.strip_prefix("-A ") {
                saved.rules.push(Line { table: t, spec: spec.to_string() });
            }
        }
    }
    Ok(saved)
}

/// Build an `iptables-restore` input from per-table command lines.
fn restore(batch: BTreeMap<Table, Vec<String>>) -> CapResult<()> {
    let mut input = String::new();
    for (table, lines) in batch.into_iter().filter(|(_, l)| !l.is_empty()) {
        input.push_str(&format!("*{}\n", table.as_str()));
        for line in lines {
            input.push_str(&line);
            input.push('\n');
        }
        input.push_str("COMMIT\n");
    }
    if input.is_empty() {
        return Ok(());
    }
    run("iptables-restore", &["--noflush"], Some(&input)).map(drop)
}

/// Lines creating whatever netsh chains and jumps are missing.
fn setup_lines(saved: &Saved, batch: &mut BTreeMap<Table, Vec<String>>) {
    for chain in CHAINS {
        if !saved.has_chain(chain.table, chain.name) {
            batch.entry(chain.table).or_default().push(format!(":{} - [0:0]", chain.name));
        }
    }
    // Inserted at position 1 in reverse so that isolation precedes accepts.
    for chain in CHAINS.iter().rev() {
        if let Some(jump) = firewall::jump_spec(chain) {
            if !saved.has_rule(chain.table, &jump) {
                batch.entry(chain.table).or_default().push(format!("-I {}", jump.replacen(' ', " 1 ", 1)));
            }
        }
    }
}

/// The published (proto, host ip, port) keys of a DNAT line, if it is one.
fn published_key(spec: &str) -> Option<(String, Option<String>, String)> {
    if !spec.starts_with("NETSH-PREROUTING ") || !spec.contains("-j DNAT") {
        return None;
    }
    let words: Vec<&str> = spec.split_whitespace().collect();
    let after =
        |flag: &str| words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).map(|s| s.to_string());
    Some((after("-p")?, after("-d"), after("--dport")?))
}

/// Refuse a publish whose host port another netsh rule already holds.
fn check_port_conflicts(saved: &Saved, id: &str, lines: &[Line]) -> CapResult<()> {
    for new in lines.iter().filter_map(|l| published_key(&l.spec)) {
        for (line, owner, other) in saved.owned() {
            let Some(old) = published_key(&line.spec) else {
                continue;
            };
            let same_ip = old.1.is_none() || new.1.is_none() || old.1 == new.1;
            if other != id && old.0 == new.0 && old.2 == new.2 && same_ip {
                return Err(CapError::Exists(format!(
                    "host port {}/{} is already published by {owner} (rule {other}); remove it first",
                    new.0, new.2
                )));
            }
        }
    }
    Ok(())
}

impl FirewallBackend for Iptables {
    fn add(&self, owner: &str, rule: &FwRule) -> CapResult<String> {
        let (id, lines) = firewall::render(owner, rule)?;
        let saved = save()?;
        if saved.owned().any(|(_, _, other)| other == id) {
            return Ok(id);
        }
        check_port_conflicts(&saved, &id, &lines)?;
        let mut batch = BTreeMap::new();
        setup_lines(&saved, &mut batch);
        for line in &lines {
            batch.entry(line.table).or_default().push(format!("-A {}", line.spec));
        }
        restore(batch)?;
        Ok(id)
    }

    fn remove(&self, id: &str) -> CapResult<()> {
        let saved = save()?;
        let mut batch: BTreeMap<Table, Vec<String>> = BTreeMap::new();
        let mut others = 0;
        for (line, _, other) in saved.owned() {
            if other == id {
                batch.entry(line.table).or_default().push(format!("-D {}", line.spec));
            } else {
                others += 1;
            }
        }
        if batch.is_empty() {
            return Err(CapError::NotFound(format!(
                "firewall rule {id} does not exist (see `netsh show --json` or firewall list)"
            )));
        }
        if others == 0 {
            teardown_lines(&saved, &mut batch);
        }
        restore(batch)
    }

    fn list(&self) -> CapResult<Vec<RuleInfo>> {
        let saved = save()?;
        let mut rules: Vec<RuleInfo> = Vec::new();
        for (line, owner, id) in saved.owned() {
            let command = firewall::commands(std::slice::from_ref(line)).remove(0);
            match rules.iter_mut().find(|r| r.id == id) {
                Some(rule) => rule.commands.push(command),
                None => rules.push(RuleInfo { id: id.into(), owner: owner.into(), commands: vec![command] }),
            }
        }
        Ok(rules)
    }
}

/// Lines removing netsh's jumps and chains once it owns no rule.
fn teardown_lines(saved: &Saved, batch: &mut BTreeMap<Table, Vec<String>>) {
    for chain in CHAINS {
        if let Some(jump) = firewall::jump_spec(chain) {
            if saved.has_rule(chain.table, &jump) {
                batch.entry(chain.table).or_default().push(format!("-D {jump}"));
            }
        }
    }
    for chain in CHAINS {
        if saved.has_chain(chain.table, chain.name) {
            batch.entry(chain.table).or_default().push(format!("-X {}", chain.name));
        }
    }
}
