//! The audit log: append-only JSON Lines, each line carrying the hash of the
//! line before it (`prev`) and its own (`hash`), so that an edited, deleted,
//! reordered or truncated line is found by [`verify`]. Lines are appended
//! under an exclusive `flock`, whole, by one `write`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ops::Op;

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why the log could not be written or read.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit log {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

/// One audited call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339 time.
    pub time: String,
    pub run: String,
    pub principal: String,
    /// The equivalent command line.
    pub cmd: String,
    /// The typed operation.
    pub call: serde_json::Value,
    /// "allow" or "deny".
    pub decision: String,
    /// The grants that allowed the call, or the reason it was denied.
    pub grants: Vec<String>,
    pub reason: Option<String>,
    /// "ok" or the error.
    pub result: String,
    pub duration_us: u64,
    #[serde(default)]
    pub prev: String,
}

impl Entry {
    /// An entry for `op`, to be completed with the outcome.
    pub fn new(run: &str, principal: &str, op: &Op) -> Entry {
        Entry {
            time: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            run: run.into(),
            principal: principal.into(),
            cmd: op.to_string(),
            call: serde_json::to_value(op).unwrap_or(serde_json::Value::Null),
            decision: String::new(),
            grants: Vec::new(),
            reason: None,
            result: String::new(),
            duration_us: 0,
            prev: String::new(),
        }
    }
}

/// The log file. Clones share one open handle and the hash of the last line
/// this process wrote, which is reused while nobody else has appended since.
#[derive(Debug, Clone)]
pub struct Audit {
    path: PathBuf,
    tail: Arc<Mutex<Option<Tail>>>,
}

/// The open log and where this process last left it.
#[derive(Debug)]
struct Tail {
    file: File,
    /// File length after our last append, and that line's hash.
    end: u64,
    hash: String,
}

fn io(path: &Path, err: std::io::Error) -> AuditError {
    AuditError::Io { path: path.display().to_string(), err }
}

/// sha256 of a line's body (the line without its `hash` field).
fn hash_of(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// Split a line into its body and `hash`, if it has the shape netsh writes.
fn split_hash(line: &str) -> Option<(String, &str)> {
    let start = line.rfind(",\"hash\":\"")?;
    let hash = line[start..].strip_prefix(",\"hash\":\"")?.strip_suffix("\"}")?;
    Some((format!("{}}}", &line[..start]), hash))
}

impl Audit {
    /// The log at `dir/audit.jsonl`.
    pub fn new(dir: &Path) -> Audit {
        Audit { path: dir.join("audit.jsonl"), tail: Arc::new(Mutex::new(None)) }
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Result<File, AuditError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(&self.path, e))?;
        }
        OpenOptions::new().create(true).read(true).append(true).open(&self.path).map_err(|e| io(&self.path, e))
    }

    /// Append one entry, chained to the last line.
    pub fn append(&self, mut entry: Entry) -> Result<(), AuditError> {
        let mut guard = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let (file, known) = match guard.take() {
            Some(tail) => (tail.file, Some((tail.end, tail.hash))),
            None => (self.open()?, None),
        };
        let mut file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io(&self.path, e.into()))?;
        let len = file.metadata().map_err(|e| io(&self.path, e))?.len();
        entry.prev = match known {
            Some((end, hash)) if end == len => hash,
            _ => last_hash(&mut file).map_err(|e| io(&self.path, e))?,
        };
        let body = serde_json::to_string(&entry).map_err(|e| io(&self.path, e.into()))?;
        let hash = hash_of(&body);
        let line = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
        file.write_all(line.as_bytes()).map_err(|e| io(&self.path, e))?;
        let file = file.unlock().map_err(|(_, e)| io(&self.path, e.into()))?;
        *guard = Some(Tail { file, end: len + line.len() as u64, hash });
        Ok(())
    }

    /// Every entry (lines that do not parse are skipped; `verify` reports them).
    pub fn entries(&self) -> Result<Vec<Entry>, AuditError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.path, e)),
        };
        Ok(BufReader::new(file).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect())
    }

    /// Check the chain; `Ok(n)` is the number of good lines, `Err` names the first bad one.
    pub fn verify(&self) -> Result<usize, String> {
        let mut text = String::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                f.read_to_string(&mut text).map_err(|e| format!("cannot read {}: {e}", self.path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        if !text.is_empty() && !text.ends_with('\n') {
            let n = text.lines().count();
            return Err(format!("line {n} is truncated (no line end)"));
        }
        let mut prev = GENESIS.to_string();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let (body, hash) = split_hash(line).ok_or_else(|| format!("line {n} is malformed (no hash)"))?;
            let entry: Entry = serde_json::from_str(&body).map_err(|e| format!("line {n} is malformed: {e}"))?;
            if hash_of(&body) != hash {
                return Err(format!("line {n} was edited (its hash does not match its content)"));
            }
            if entry.prev != prev {
                return Err(format!("line {n} does not follow line {} (a line was deleted, inserted or moved)", n - 1));
            }
            prev = hash.to_string();
        }
        Ok(text.lines().count())
    }
}

/// The hash of the file's last line (GENESIS for an empty file).
fn last_hash(file: &mut File) -> std::io::Result<String> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut chunk = 4096u64;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = String::new();
        file.read_to_string(&mut tail)?;
        let trimmed = tail.trim_end_matches('\n');
        match trimmed.rfind('\n') {
            Some(i) => return Ok(hash_field(&trimmed[i + 1..])),
            None if start == 0 => return Ok(if trimmed.is_empty() { GENESIS.into() } else { hash_field(trimmed) }),
            None => chunk *= 4,
        }
    }
}

fn hash_field(line: &str) -> String {
    split_hash(line).map(|(_, h)| h.to_string()).unwrap_or_else(|| hash_of(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: usize) -> (Audit, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "netsh-audit-{}-{n}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let audit = Audit::new(&dir);
        for i in 0..n {
            let mut e = Entry::new("run1", "test", &Op::NetnsCreate { name: format!("ns{i}") });
            e.decision = "allow".into();
            e.result = "ok".into();
            audit.append(e).unwrap();
        }
        (audit, dir)
    }

    fn edit(audit: &Audit, f: impl FnOnce(&mut Vec<String>)) {
        let text = std::fs::read_to_string(audit.path()).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        f(&mut lines);
        std::fs::write(audit.path(), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn a_good_chain_verifies() {
        let (audit, dir) = log_with(4);
        assert_eq!(audit.verify(), Ok(4));
        assert_eq!(audit.entries().unwrap().len(), 4);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tampering_is_found() {
        let cases: Vec<(&str, Box<dyn Fn(&mut Vec<String>)>)> = vec![
            ("line 2 was edited", Box::new(|l| l[1] = l[1].replace("ns1", "ns9"))),
            ("line 2 does not follow", Box::new(|l| drop(l.remove(1)))),
            ("line 2 does not follow", Box::new(|l| l.swap(1, 2))),
            ("line 4 was edited", Box::new(|l| l[3] = l[3].replace("\"ok\"", "\"no\""))),
        ];
        for (expected, change) in cases {
            let (audit, dir) = log_with(4);
            edit(&audit, change);
            let err = audit.verify().unwrap_err();
            assert!(err.contains(expected), "{expected}: got {err}");
            std::fs::remove_dir_all(dir).unwrap();
        }
        let (audit, dir) = log_with(3);
        let text = std::fs::read_to_string(audit.path()).unwrap();
        std::fs::write(audit.path(), &text[..text.len() - 10]).unwrap();
        assert!(audit.verify().unwrap_err().contains("line 3 is truncated"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
