//! The rollback journal: one JSON Lines file per run under `STATE/runs/`.
//! It is write-ahead: before a change reaches the kernel its intent and
//! inverse are written, after it its outcome, so a run killed in the middle
//! of a call still knows what may have been applied. Undo writes a line for
//! each change it takes back, so a second undo does nothing twice. A run's
//! final state ends the file; a file without one belongs to a run that is
//! still going or was killed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ops::Op;

/// Why the journal could not be written or read.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("no run {0} (see `netsh runs`)")]
    NoRun(String),
    #[error("run id {0:?} is malformed (ids look like 20261201-193419-ab12)")]
    BadId(String),
}

impl JournalError {
    /// The errno behind the error, if any.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            JournalError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// How to take one call back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Inverse {
    /// Run this operation.
    Undo(Op),
    /// The call cannot be reverted (a deletion); undo reports it.
    Irreversible(String),
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Record {
    Start {
        run: String,
        principal: String,
        pid: u32,
        /// The process's start time in clock ticks, so a reused pid is not mistaken for it.
        #[serde(default)]
        pid_start: u64,
        time: String,
    },
    /// About to make change `seq`; `inverse` takes it back.
    Intent {
        seq: u32,
        did: String,
        inverse: Inverse,
    },
    /// Change `seq` was made.
    Done {
        seq: u32,
    },
    /// Change `seq` failed: nothing to take back.
    Failed {
        seq: u32,
    },
    /// Undo or rollback took change `seq` back.
    Reverted {
        seq: u32,
    },
    /// Another process (a restarted agent) took over the run's deadline.
    Adopt {
        pid: u32,
        pid_start: u64,
    },
    /// The run is applied and waits for `netsh confirm` until `until`.
    AwaitConfirm {
        until: String,
    },
    End {
        state: String,
        time: String,
    },
}

/// Whether a journaled change happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    Yes,
    /// The run died during the call: it may or may not have happened.
    Unknown,
}

/// One change a run made (or may have made).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub seq: u32,
    pub did: String,
    pub inverse: Inverse,
    pub applied: Applied,
    pub reverted: bool,
}

/// A run's journal as read back.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub principal: String,
    pub pid: u32,
    #[serde(skip)]
    pid_start: u64,
    pub started: String,
    /// Final state; `None` while running or after the process was killed.
    pub state: Option<String>,
    /// Changes made or possibly made (failed calls are not counted).
    pub steps: usize,
    /// Line numbers that could not be read: undo must not claim completeness.
    pub unreadable: Vec<usize>,
    /// When the run waits for `netsh confirm`: the deadline.
    pub awaiting_confirm: Option<String>,
    #[serde(skip)]
    changes: Vec<Step>,
}

impl RunInfo {
    /// Changes not yet taken back, last first: the order in which to undo them.
    pub fn undo_order(&self) -> impl Iterator<Item = &Step> {
        self.changes.iter().rev().filter(|s| !s.reverted)
    }

    /// Whether everything this run did has been taken back.
    pub fn fully_reverted(&self) -> bool {
        self.changes.iter().all(|s| s.reverted)
    }

    /// Whether the run's process is gone without a final state (killed).
    pub fn abandoned(&self) -> bool {
        self.state.is_none() && !process_alive(self.pid, self.pid_start)
    }
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), if it exists.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn process_alive(pid: u32, start: u64) -> bool {
    match process_start(pid) {
        Some(now) => start == 0 || now == start,
        None => false,
    }
}

/// The runs directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

fn io(path: &Path, err: std::io::Error) -> JournalError {
    JournalError::Io { path: path.display().to_string(), err }
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// How many ids a run tries before giving up (concurrent runs started in
/// the same second may draw the same one).
const ID_ATTEMPTS: u64 = 16;

/// A fresh run id: UTC time plus six hex digits from the clock, the
/// process and the attempt.
fn new_id(attempt: u64) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let (day, time) = stamp.split_at(stamp.len().min(8));
    let mixed = u64::from(nanos) ^ (u64::from(std::process::id()) << 12) ^ attempt.wrapping_mul(0x9e37_79b9);
    format!("{day}-{time}-{:06x}", mixed & 0xff_ffff)
}

/// A run id names a file: letters, digits and '-' only.
fn check_id(id: &str) -> Result<(), JournalError> {
    let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok { Ok(()) } else { Err(JournalError::BadId(id.into())) }
}

impl Journal {
    /// Runs under `state_dir/runs`.
    pub fn new(state_dir: &Path) -> Journal {
        Journal { dir: state_dir.join("runs") }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.jsonl"))
    }

    /// Present while a run has no final state, so unfinished runs are found
    /// without reading every journal.
    fn open_marker(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.open"))
    }

    fn ids_with(&self, suffix: &str) -> Result<Vec<String>, JournalError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(suffix).map(String::from))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Runs without a final state (running, or killed), oldest first.
    pub fn unfinished(&self) -> Result<Vec<RunInfo>, JournalError> {
        let mut runs = Vec::new();
        for id in self.ids_with(".open")? {
            match self.load(&id) {
                Ok(run) => runs.push(run),
                // The run ended between the listing and the read.
                Err(JournalError::NoRun(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(runs)
    }

    /// Start journaling a run.
    pub fn begin(&self, principal: &str) -> Result<RunLog, JournalError> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(|e| io(&self.dir, e))?;
        let (id, path, file) = self.create_journal()?;
        let marker = self.open_marker(&id);
        File::create(&marker).map_err(|e| io(&marker, e))?;
        let log = RunLog { id: id.clone(), path, marker: Some(marker), file: Mutex::new(file), seq: AtomicU32::new(0) };
        let pid = std::process::id();
        let pid_start = process_start(pid).unwrap_or(0);
        log.write(&Record::Start { run: id, principal: principal.into(), pid, pid_start, time: now() })?;
        Ok(log)
    }

    /// A new journal file under a fresh id.
    fn create_journal(&self) -> Result<(String, PathBuf, File), JournalError> {
        let mut attempt = 0;
        loop {
            let id = new_id(attempt);
            let path = self.path(&id);
            match OpenOptions::new().create_new(true).append(true).mode(0o600).open(&path) {
                Ok(file) => return Ok((id, path, file)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt + 1 < ID_ATTEMPTS => attempt += 1,
                Err(e) => return Err(io(&path, e)),
            }
        }
    }

    /// Append to an existing run's journal (undo, confirm).
    pub fn reopen(&self, id: &str) -> Result<RunLog, JournalError> {
        check_id(id)?;
        let path = self.path(id);
        let file = OpenOptions::new().append(true).open(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => JournalError::NoRun(id.into()),
            _ => io(&path, e),
        })?;
        Ok(RunLog {
            id: id.into(),
            marker: Some(self.open_marker(id)),
            path,
            file: Mutex::new(file),
            seq: AtomicU32::new(0),
        })
    }

    /// Read one run.
    pub fn load(&self, id: &str) -> Result<RunInfo, JournalError> {
        check_id(id)?;
        let path = self.path(id);
        let file = File::open(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => JournalError::NoRun(id.into()),
            _ => io(&path, e),
        })?;
        let mut info = RunInfo {
            id: id.into(),
            principal: String::new(),
            pid: 0,
            pid_start: 0,
            started: String::new(),
            state: None,
            steps: 0,
            unreadable: Vec::new(),
            awaiting_confirm: None,
            changes: Vec::new(),
        };
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| io(&path, e))?;
            match serde_json::from_str::<Record>(&line) {
                Ok(record) => info.absorb(record),
                Err(_) => info.unreadable.push(i + 1),
            }
        }
        info.steps = info.changes.len();
        Ok(info)
    }

    /// Every run, oldest first.
    pub fn list(&self) -> Result<Vec<RunInfo>, JournalError> {
        let mut runs = Vec::new();
        for id in self.ids_with(".jsonl")? {
            match self.load(&id) {
                Ok(run) => runs.push(run),
                Err(JournalError::NoRun(_)) => {}
                Err(e) => return Err(e),
            }
        }
        runs.sort_by(|a, b| a.started.cmp(&b.started));
        Ok(runs)
    }

    /// Forget a run: remove its journal (`netsh runs --prune`).
    pub fn remove(&self, id: &str) -> Result<(), JournalError> {
        check_id(id)?;
        for path in [self.path(id), self.open_marker(id), self.confirm_marker(id)] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(io(&path, e)),
                _ => {}
            }
        }
        Ok(())
    }

    fn confirm_marker(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.confirmed"))
    }

    /// Mark a run confirmed (`netsh confirm`).
    pub fn confirm(&self, id: &str) -> Result<(), JournalError> {
        check_id(id)?;
        if !self.path(id).exists() {
            return Err(JournalError::NoRun(id.into()));
        }
        let marker = self.confirm_marker(id);
        std::fs::write(&marker, now()).map_err(|e| io(&marker, e))
    }

    /// Whether `netsh confirm` arrived for a run.
    pub fn confirmed(&self, id: &str) -> bool {
        self.confirm_marker(id).exists()
    }
}

impl RunInfo {
    fn absorb(&mut self, record: Record) {
        match record {
            Record::Start { principal, pid, pid_start, time, .. } => {
                (self.principal, self.pid, self.pid_start, self.started) = (principal, pid, pid_start, time)
            }
            Record::Intent { seq, did, inverse } => {
                self.changes.push(Step { seq, did, inverse, applied: Applied::Unknown, reverted: false })
            }
            Record::Done { seq } => {
                if let Some(s) = self.changes.iter_mut().rev().find(|s| s.seq == seq) {
                    s.applied = Applied::Yes;
                }
            }
            Record::Failed { seq } => self.changes.retain(|s| s.seq != seq),
            Record::Reverted { seq } => {
                if let Some(s) = self.changes.iter_mut().rev().find(|s| s.seq == seq) {
                    s.reverted = true;
                }
            }
            Record::Adopt { pid, pid_start } => (self.pid, self.pid_start) = (pid, pid_start),
            Record::AwaitConfirm { until } => self.awaiting_confirm = Some(until),
            Record::End { state, .. } => self.state = Some(state),
        }
    }
}

/// Appends to one run's journal.
#[derive(Debug)]
pub struct RunLog {
    pub id: String,
    path: PathBuf,
    marker: Option<PathBuf>,
    file: Mutex<File>,
    seq: AtomicU32,
}

impl RunLog {
    fn write(&self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(record).map_err(|e| io(&self.path, e.into()))?;
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes()).map_err(|e| io(&self.path, e))
    }

    /// Before a change: what it is and how to take it back. Returns its sequence number.
    pub fn intent(&self, did: &Op, inverse: Inverse) -> Result<u32, JournalError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.write(&Record::Intent { seq, did: did.to_string(), inverse })?;
        Ok(seq)
    }

    /// After a change: whether it was made.
    pub fn outcome(&self, seq: u32, made: bool) -> Result<(), JournalError> {
        self.write(&if made { Record::Done { seq } } else { Record::Failed { seq } })
    }

    /// Change `seq` was taken back.
    pub fn reverted(&self, seq: u32) -> Result<(), JournalError> {
        self.write(&Record::Reverted { seq })
    }

    /// The run is applied and waits for `netsh confirm` until `until`.
    pub fn await_confirm(&self, until: std::time::SystemTime) -> Result<(), JournalError> {
        self.write(&Record::AwaitConfirm { until: humantime::format_rfc3339_millis(until).to_string() })
    }

    /// Make this process the run's keeper (its first keeper died).
    pub fn adopt(&self) -> Result<(), JournalError> {
        let pid = std::process::id();
        self.write(&Record::Adopt { pid, pid_start: process_start(pid).unwrap_or(0) })
    }

    /// Record the run's final state.
    pub fn end(&self, state: &str) -> Result<(), JournalError> {
        self.write(&Record::End { state: state.into(), time: now() })?;
        if let Some(marker) = &self.marker {
            let _ = std::fs::remove_file(marker);
        }
        Ok(())
    }

    /// End a run that changed nothing by forgetting it: nothing to list or undo.
    pub fn discard(&self) -> Result<(), JournalError> {
        let _ = std::fs::remove_file(&self.path);
        if let Some(marker) = &self.marker {
            let _ = std::fs::remove_file(marker);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(name: &str) -> (Journal, PathBuf) {
        let dir = std::env::temp_dir().join(format!("netsh-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Journal::new(&dir), dir)
    }

    #[test]
    fn runs_started_in_the_same_second_get_distinct_ids() {
        let (journal, dir) = journal("ids");
        let ids: std::collections::HashSet<String> = (0..300).map(|_| journal.begin("test@abc").unwrap().id).collect();
        assert_eq!(ids.len(), 300);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn runs_round_trip() {
        let (journal, dir) = journal("rt");
        let log = journal.begin("test@abc").unwrap();
        let create = Op::NetnsCreate { name: "a".into() };
        let seq = log.intent(&create, Inverse::Undo(Op::NetnsDelete { name: "a".into() })).unwrap();
        log.outcome(seq, true).unwrap();
        let del = Op::LinkDelete { ns: None, name: "x".into() };
        let seq = log.intent(&del, Inverse::Irreversible("ip link del x".into())).unwrap();
        log.outcome(seq, true).unwrap();
        let failed = log.intent(&del, Inverse::Irreversible("ip link del y".into())).unwrap();
        log.outcome(failed, false).unwrap();
        let info = journal.load(&log.id).unwrap();
        assert_eq!((info.steps, info.state.clone(), info.principal.as_str()), (2, None, "test@abc"));
        assert!(!info.abandoned(), "this process is alive");
        assert!(matches!(info.undo_order().next().map(|s| &s.inverse), Some(Inverse::Irreversible(_))));
        log.end("finished").unwrap();
        assert_eq!(journal.list().unwrap()[0].state.as_deref(), Some("finished"));
        assert!(!journal.confirmed(&log.id));
        journal.confirm(&log.id).unwrap();
        assert!(journal.confirmed(&log.id));
        assert!(matches!(journal.confirm("nope"), Err(JournalError::NoRun(_))));
        assert!(matches!(journal.load("../etc/passwd"), Err(JournalError::BadId(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_call_without_outcome_counts_as_possibly_applied() {
        let (journal, dir) = journal("wal");
        let log = journal.begin("t").unwrap();
        log.intent(&Op::NetnsCreate { name: "a".into() }, Inverse::Undo(Op::NetnsDelete { name: "a".into() })).unwrap();
        let info = journal.load(&log.id).unwrap();
        assert_eq!(info.undo_order().next().map(|s| s.applied), Some(Applied::Unknown));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reverted_steps_are_not_undone_twice_and_bad_lines_are_reported() {
        let (journal, dir) = journal("rev");
        let log = journal.begin("t").unwrap();
        let seq = log
            .intent(&Op::NetnsCreate { name: "a".into() }, Inverse::Undo(Op::NetnsDelete { name: "a".into() }))
            .unwrap();
        log.outcome(seq, true).unwrap();
        journal.reopen(&log.id).unwrap().reverted(seq).unwrap();
        let info = journal.load(&log.id).unwrap();
        assert!(info.fully_reverted() && info.undo_order().next().is_none());
        std::fs::OpenOptions::new().append(true).open(journal.path(&log.id)).unwrap().write_all(b"{garbage\n").unwrap();
        assert_eq!(journal.load(&log.id).unwrap().unreadable, vec![5]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
