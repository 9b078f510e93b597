//! Asking a person for missing grants, once for a whole run, on a terminal.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Grant, Need, user_file};

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Once,
    Always,
    Deny,
}

/// Set in a process that must never ask (the agent: its terminal, if it
/// has one, is not its callers').
static NEVER: AtomicBool = AtomicBool::new(false);

/// Never ask in this process.
pub fn never() {
    NEVER.store(true, Ordering::Relaxed);
}

/// Whether a person can be asked (stdin and stderr are terminals).
pub fn available() -> bool {
    !NEVER.load(Ordering::Relaxed) && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The grants to offer for `missing`: for each need, the recipe's own declared
/// grant that covers it (so "always" saves `link:br-*`, not `link:br-n10`),
/// else the narrowest grant for the need itself.
pub fn offer(missing: &[Need], declared: &[String]) -> Vec<String> {
    let declared: Vec<Grant> = declared.iter().filter_map(|g| g.parse().ok()).collect();
    let mut out: Vec<String> = Vec::new();
    for need in missing {
        let grant = declared.iter().find(|g| g.allows(need)).map(|g| g.to_string()).unwrap_or_else(|| need.to_string());
        if !out.contains(&grant) {
            out.push(grant);
        }
    }
    out
}

/// Read one line from the terminal without buffering past it, so lines the
/// user typed ahead stay for whoever reads next. `None` at end of input.
fn read_line() -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => return (!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()),
            Ok(_) if byte[0] == b'\n' => return Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Ask whether `principal` may have `grants`; an unknown answer asks again.
pub fn ask(principal: &str, grants: &[String]) -> Answer {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "netsh: {principal} needs {} grant(s) it was not given:", grants.len());
    for g in grants {
        let _ = writeln!(err, "  {g}");
    }
    loop {
        let _ = write!(err, "allow them [o]nce, [a]lways for this recipe, or [d]eny? ");
        let _ = err.flush();
        let Some(line) = read_line() else { return Answer::Deny };
        match line.trim() {
            "o" | "once" | "y" | "yes" => return Answer::Once,
            "a" | "always" => return Answer::Always,
            "d" | "deny" | "n" | "no" => return Answer::Deny,
            other => {
                let _ = writeln!(err, "netsh: {other:?} is not an answer; type o, a or d");
            }
        }
    }
}

/// Record an "always" answer in the user's policy file, pinned to `digest`.
pub fn pin(digest: &str, grants: &[String]) -> std::io::Result<PathBuf> {
    let path = user_file().ok_or_else(|| std::io::Error::other("no home directory for a policy file"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let list: Vec<String> = grants.iter().map(|g| format!("{g:?}")).collect();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    writeln!(file, "\n[[pin]]\nsha256 = \"{digest}\"\nallow = [{}]", list.join(", "))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_the_declared_scope_that_covers_each_need() {
        let missing = [Need::Link("br-n10".into()), Need::Link("br-n11".into()), Need::Netns("c1".into())];
        let declared = ["link:br-*".to_string(), "addr:10.0.0.0/8".to_string()];
        assert_eq!(offer(&missing, &declared), ["link:br-*", "netns:c1"]);
    }
}
