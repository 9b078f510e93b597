//! The rollback journal: one JSON Lines file per run under `STATE/runs/`,
//! holding a header, the inverse of every mutating call (written before the
//! call returns to the recipe) and, when the run ends, its final state. A
//! journal without a final state belongs to a run that was killed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    Start { run: String, principal: String, pid: u32, time: String },
    Step { did: String, inverse: Inverse },
    End { state: String, time: String },
}

/// A run's journal as read back.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub principal: String,
    pub pid: u32,
    pub started: String,
    /// Final state; `None` while running or after the process was killed.
    pub state: Option<String>,
    pub steps: usize,
    #[serde(skip)]
    inverses: Vec<Inverse>,
}

impl RunInfo {
    /// Inverses, last first: the order in which to apply them.
    pub fn undo_order(&self) -> impl Iterator<Item = &Inverse> {
        self.inverses.iter().rev()
    }

    /// Whether the run's process is gone without a final state (killed).
    pub fn abandoned(&self) -> bool {
        self.state.is_none() && !Path::new(&format!("/proc/{}", self.pid)).exists()
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

/// A fresh run id: UTC time plus a few random hex digits.
fn new_id() -> String {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}-{}-{:04x}", &stamp[..8], &stamp[8..], (nanos ^ std::process::id()) & 0xffff)
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

    /// Runs without a final state (running, or killed), oldest first.
    pub fn unfinished(&self) -> Result<Vec<RunInfo>, JournalError> {
        let mut ids: Vec<String> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".open").map(String::from))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir, e)),
        };
        ids.sort();
        ids.iter().map(|id| self.load(id)).collect()
    }

    /// Start journaling a run.
    pub fn begin(&self, principal: &str) -> Result<RunLog, JournalError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let id = new_id();
        let path = self.path(&id);
        let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(|e| io(&path, e))?;
        let marker = self.open_marker(&id);
        File::create(&marker).map_err(|e| io(&marker, e))?;
        let log = RunLog { id: id.clone(), path, marker, file: Mutex::new(file) };
        log.write(&Record::Start { run: id, principal: principal.into(), pid: std::process::id(), time: now() })?;
        Ok(log)
    }

    /// Read one run.
    pub fn load(&self, id: &str) -> Result<RunInfo, JournalError> {
        let path = self.path(id);
        let file = File::open(&path).map_err(|_| JournalError::NoRun(id.into()))?;
        let mut info = RunInfo {
            id: id.into(),
            principal: String::new(),
            pid: 0,
            started: String::new(),
            state: None,
            steps: 0,
            inverses: Vec::new(),
        };
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            match serde_json::from_str::<Record>(&line) {
                Ok(Record::Start { principal, pid, time, .. }) => {
                    (info.principal, info.pid, info.started) = (principal, pid, time)
                }
                Ok(Record::Step { inverse, .. }) => {
                    info.steps += 1;
                    info.inverses.push(inverse);
                }
                Ok(Record::End { state, .. }) => info.state = Some(state),
                Err(_) => {}
            }
        }
        Ok(info)
    }

    /// Every run, oldest first.
    pub fn list(&self) -> Result<Vec<RunInfo>, JournalError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir, e)),
        };
        let ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".jsonl").map(String::from))
            .collect();
        let mut runs = ids.iter().map(|id| self.load(id)).collect::<Result<Vec<_>, _>>()?;
        runs.sort_by(|a, b| a.started.cmp(&b.started));
        Ok(runs)
    }

    /// Record a final state for a run (after undo, or a confirm).
    pub fn end(&self, id: &str, state: &str) -> Result<(), JournalError> {
        let path = self.path(id);
        let mut file = OpenOptions::new().append(true).open(&path).map_err(|_| JournalError::NoRun(id.into()))?;
        let line = serde_json::to_string(&Record::End { state: state.into(), time: now() })
            .map_err(|e| io(&path, e.into()))?;
        writeln!(file, "{line}").map_err(|e| io(&path, e))?;
        let _ = std::fs::remove_file(self.open_marker(id));
        Ok(())
    }

    /// Mark a run confirmed (`netsh confirm`).
    pub fn confirm(&self, id: &str) -> Result<(), JournalError> {
        if !self.path(id).exists() {
            return Err(JournalError::NoRun(id.into()));
        }
        let marker = self.dir.join(format!("{id}.confirmed"));
        std::fs::write(&marker, now()).map_err(|e| io(&marker, e))
    }

    /// Whether `netsh confirm` arrived for a run.
    pub fn confirmed(&self, id: &str) -> bool {
        self.dir.join(format!("{id}.confirmed")).exists()
    }
}

/// The journal of the run in progress.
#[derive(Debug)]
pub struct RunLog {
    pub id: String,
    path: PathBuf,
    marker: PathBuf,
    file: Mutex<File>,
}

impl RunLog {
    fn write(&self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(record).map_err(|e| io(&self.path, e.into()))?;
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes()).map_err(|e| io(&self.path, e))
    }

    /// Record how to take back a call that just succeeded.
    pub fn step(&self, did: &Op, inverse: Inverse) -> Result<(), JournalError> {
        self.write(&Record::Step { did: did.to_string(), inverse })
    }

    /// Record the run's final state.
    pub fn end(&self, state: &str) -> Result<(), JournalError> {
        self.write(&Record::End { state: state.into(), time: now() })?;
        let _ = std::fs::remove_file(&self.marker);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip() {
        let dir = std::env::temp_dir().join(format!("netsh-journal-{}", std::process::id()));
        let journal = Journal::new(&dir);
        let log = journal.begin("test@abc").unwrap();
        log.step(&Op::NetnsCreate { name: "a".into() }, Inverse::Undo(Op::NetnsDelete { name: "a".into() })).unwrap();
        log.step(&Op::LinkDelete { ns: None, name: "x".into() }, Inverse::Irreversible("ip link del x".into()))
            .unwrap();
        let info = journal.load(&log.id).unwrap();
        assert_eq!((info.steps, info.state.clone(), info.principal.as_str()), (2, None, "test@abc"));
        assert!(!info.abandoned(), "this process is alive");
        assert!(matches!(info.undo_order().next(), Some(Inverse::Irreversible(_))));
        log.end("finished").unwrap();
        assert_eq!(journal.list().unwrap()[0].state.as_deref(), Some("finished"));
        assert!(!journal.confirmed(&log.id));
        journal.confirm(&log.id).unwrap();
        assert!(journal.confirmed(&log.id));
        assert!(journal.confirm("nope").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
