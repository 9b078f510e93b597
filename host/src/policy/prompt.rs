//! The interactive prompt for a missing grant (only when stdin is a terminal).

use std::io::{BufRead, IsTerminal, Write};

use super::{Need, user_file};

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Once,
    Always,
    Deny,
}

/// Whether prompting is possible.
pub fn available() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Ask whether `principal` may have `need`.
pub fn ask(principal: &str, need: &Need, doing: &str) -> Answer {
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "netsh: {principal} wants {need} to run `{doing}`.\n  allow [o]nce, [a]lways for this recipe, or [d]eny? "
    );
    let _ = err.flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return Answer::Deny;
    }
    match line.trim() {
        "o" | "once" | "y" | "yes" => Answer::Once,
        "a" | "always" => Answer::Always,
        _ => Answer::Deny,
    }
}

/// Record an "always" answer in the user's policy file, pinned to `digest`.
pub fn pin(digest: &str, need: &Need) -> std::io::Result<()> {
    let Some(path) = user_file() else { return Ok(()) };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    writeln!(file, "\n[[pin]]\nsha256 = \"{digest}\"\nallow = [\"{need}\"]")
}
