//! Where a run's output goes: the process's own stdout and stderr, or a
//! caller far away (the agent streams it back over its socket).

use std::io::Write;
use std::sync::Arc;

/// A sink for standard output and standard error.
pub trait Console: Send + Sync {
    /// Write to standard output.
    fn out(&self, bytes: &[u8]);
    /// Write to standard error.
    fn err(&self, bytes: &[u8]);
}

impl dyn Console + '_ {
    /// A line on standard output.
    pub fn outln(&self, text: &str) {
        self.out(format!("{text}\n").as_bytes());
    }

    /// A line on standard error.
    pub fn errln(&self, text: &str) {
        self.err(format!("{text}\n").as_bytes());
    }
}

/// This process's stdout and stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal;

impl Console for Terminal {
    fn out(&self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }

    fn err(&self, bytes: &[u8]) {
        let _ = std::io::stderr().lock().write_all(bytes);
    }
}

/// Sends standard output to stderr too (keeps `plan --json` clean).
#[derive(Clone)]
pub struct OutToErr(pub Arc<dyn Console>);

impl std::fmt::Debug for OutToErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutToErr")
    }
}

impl Console for OutToErr {
    fn out(&self, bytes: &[u8]) {
        self.0.err(bytes)
    }

    fn err(&self, bytes: &[u8]) {
        self.0.err(bytes)
    }
}

/// Drops everything (a plan pass run only for the grants it finds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Console for Discard {
    fn out(&self, _: &[u8]) {}

    fn err(&self, _: &[u8]) {}
}
