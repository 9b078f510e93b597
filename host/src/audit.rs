//! The audit log: append-only JSON Lines in `STATE/audit.jsonl`. Each line
//! carries the MAC of the line before it (`prev`) and its own (`mac`), keyed
//! with netsh's secret, so a line cannot be edited, inserted, moved or
//! re-chained by someone who cannot read the key. A head record
//! (`STATE/audit.head`: line count, last MAC, and a MAC over both) anchors the
//! end, so truncation and deletion of the log are found too. Appends happen
//! under an exclusive `flock` of the log, one `write` per line.
//!
//! What it proves: that the log is the one netsh wrote, complete up to the
//! head. What it cannot prove: anything against someone who can read the key
//! (root can), or the removal of the log together with its head.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ops::Op;
use crate::secret::{self, Secret, SecretError};

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Size of the head record, padded, so it can be rewritten in place.
const HEAD_LEN: usize = 224;

/// Why the log could not be written or read.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit log {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error(transparent)]
    Key(#[from] SecretError),
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

/// The head record: how many lines the log has and the MAC of the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    lines: u64,
    last: String,
    /// Set when the head had to be rebuilt from the log (it was missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rebuilt: Option<String>,
    mac: String,
}

impl Head {
    fn sealed(secret: &Secret, lines: u64, last: String, rebuilt: Option<String>) -> Head {
        let mac = secret.mac("audit-head", format!("{lines} {last} {}", rebuilt.as_deref().unwrap_or("")).as_bytes());
        Head { lines, last, rebuilt, mac }
    }

    fn is_sealed(&self, secret: &Secret) -> bool {
        Head::sealed(secret, self.lines, self.last.clone(), self.rebuilt.clone()) == *self
    }
}

/// The log. Clones share the open files and the key.
#[derive(Debug, Clone)]
pub struct Audit {
    dir: PathBuf,
    open: Arc<Mutex<Option<Open>>>,
}

/// The open log and head, and the key.
#[derive(Debug)]
struct Open {
    log: File,
    head: File,
    secret: Secret,
}

fn io(path: &Path, err: std::io::Error) -> AuditError {
    AuditError::Io { path: path.display().to_string(), err }
}

/// Split a line into its body (without `mac`) and its MAC, if it has the shape netsh writes.
fn split_mac(line: &str) -> Option<(String, &str)> {
    let start = line.rfind(",\"mac\":\"")?;
    let mac = line.get(start..)?.strip_prefix(",\"mac\":\"")?.strip_suffix("\"}")?;
    Some((format!("{}}}", line.get(..start)?), mac))
}

fn read_head(file: &File) -> std::io::Result<Option<Head>> {
    let mut buf = [0u8; HEAD_LEN];
    let n = file.read_at(&mut buf, 0)?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Ok(serde_json::from_str(text.trim()).ok())
}

fn write_head(file: &File, head: &Head) -> std::io::Result<()> {
    let mut text = serde_json::to_string(head).map_err(std::io::Error::other)?;
    if text.len() >= HEAD_LEN {
        return Err(std::io::Error::other("audit head record too long"));
    }
    text.push_str(&" ".repeat(HEAD_LEN - 1 - text.len()));
    text.push('\n');
    file.write_all_at(text.as_bytes(), 0)
}

impl Audit {
    /// The log in `dir` (`audit.jsonl`, `audit.head`).
    pub fn new(dir: &Path) -> Audit {
        Audit { dir: dir.to_path_buf(), open: Arc::new(Mutex::new(None)) }
    }

    /// Where the log is.
    pub fn path(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    fn head_path(&self) -> PathBuf {
        self.dir.join("audit.head")
    }

    fn open(&self) -> Result<Open, AuditError> {
        let secret = Secret::load_or_create(&self.dir)?;
        let file = |path: PathBuf| {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io(&path, e))
        };
        let log = OpenOptions::new().create(true).read(true).append(true).mode(0o600).open(self.path());
        Ok(Open { log: log.map_err(|e| io(&self.path(), e))?, head: file(self.head_path())?, secret })
    }

    /// Open the log (and its key) now, so that a run that cannot be
    /// recorded fails before it changes anything.
    pub fn ensure_writable(&self) -> Result<(), AuditError> {
        let mut guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        Ok(())
    }

    /// Append one entry, chained to the last line; the head moves with it.
    pub fn append(&self, mut entry: Entry) -> Result<(), AuditError> {
        let path = self.path();
        let mut guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let open = match guard.take() {
            Some(open) => open,
            None => self.open()?,
        };
        let Open { log, head, secret } = open;
        let mut log = Flock::lock(log, FlockArg::LockExclusive).map_err(|(_, e)| io(&path, e.into()))?;
        let current = match read_head(&head).map_err(|e| io(&self.head_path(), e))? {
            Some(h) => h,
            None => self.rebuild_head(&mut log, &secret)?,
        };
        entry.prev = current.last.clone();
        let body = serde_json::to_string(&entry).map_err(|e| io(&path, e.into()))?;
        let mac = secret.mac("audit-line", body.as_bytes());
        let line = format!("{},\"mac\":\"{mac}\"}}\n", &body[..body.len() - 1]);
        log.write_all(line.as_bytes()).map_err(|e| io(&path, e))?;
        let next = Head::sealed(&secret, current.lines + 1, mac, current.rebuilt);
        write_head(&head, &next).map_err(|e| io(&self.head_path(), e))?;
        let log = log.unlock().map_err(|(_, e)| io(&path, e.into()))?;
        *guard = Some(Open { log, head, secret });
        Ok(())
    }

    /// A head for a log that has none: an empty log starts one; a log with
    /// lines gets one rebuilt from them, marked so that `verify` says so.
    fn rebuild_head(&self, log: &mut File, secret: &Secret) -> Result<Head, AuditError> {
        let mut text = String::new();
        log.read_to_string(&mut text).map_err(|e| io(&self.path(), e))?;
        let lines = text.lines().count() as u64;
        if lines == 0 {
            return Ok(Head::sealed(secret, 0, GENESIS.into(), None));
        }
        let last = text.lines().last().and_then(split_mac).map(|(_, m)| m.to_string()).unwrap_or_default();
        let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        eprintln!(
            "netsh: warning: the audit head record was missing; rebuilt it from the log's {lines} line(s) — `netsh audit verify` cannot prove that nothing was removed before {when}"
        );
        Ok(Head::sealed(secret, lines, last, Some(when)))
    }

    /// Every entry (lines that do not parse are skipped; `verify` reports them).
    pub fn entries(&self) -> Result<Vec<Entry>, AuditError> {
        let file = match File::open(self.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.path(), e)),
        };
        Ok(BufReader::new(file).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect())
    }

    /// Check the chain and the head: `Ok(n)` is the number of lines, `Err`
    /// says what is wrong (the first bad line, or a missing end).
    pub fn verify(&self) -> Result<u64, String> {
        let head_file = File::open(self.head_path());
        let text = match std::fs::read_to_string(self.path()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match head_file.ok().and_then(|f| read_head(&f).ok().flatten()) {
                    Some(head) if head.lines > 0 => {
                        Err(format!("the log was deleted: its head record counts {} line(s)", head.lines))
                    }
                    _ => Ok(0),
                };
            }
            Err(e) => return Err(format!("cannot read {}: {e}", self.path().display())),
        };
        let secret = Secret::load(&secret::key_path(&self.dir)).map_err(|e| format!("cannot check the MACs: {e}"))?;
        let lines = check_lines(&text, &secret)?;
        let head = match head_file {
            Ok(f) => read_head(&f).map_err(|e| format!("cannot read the head record: {e}"))?,
            Err(_) => None,
        };
        let head = head.ok_or("the head record (audit.head) is missing: the end of the log cannot be checked")?;
        if !head.is_sealed(&secret) {
            return Err("the head record was edited (its MAC does not match)".into());
        }
        let last = text.lines().last().and_then(split_mac).map(|(_, m)| m.to_string()).unwrap_or(GENESIS.into());
        if lines < head.lines {
            return Err(format!(
                "the last {} line(s) were removed: the head record counts {}, the log has {lines}",
                head.lines - lines,
                head.lines
            ));
        }
        if lines > head.lines || last != head.last {
            return Err(format!(
                "line {lines} is not the line the head record names (lines were added or replaced at the end)"
            ));
        }
        if let Some(when) = head.rebuilt {
            return Err(format!(
                "the chain is intact, but its head was rebuilt at {when}: lines removed before then cannot be detected"
            ));
        }
        Ok(lines)
    }
}

/// Check every line's MAC and link; returns the number of lines.
fn check_lines(text: &str, secret: &Secret) -> Result<u64, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(format!("line {} is truncated (no line end)", text.lines().count()));
    }
    let mut prev = GENESIS.to_string();
    let mut n = 0u64;
    for line in text.lines() {
        n += 1;
        let (body, mac) = split_mac(line).ok_or_else(|| format!("line {n} is malformed (no mac)"))?;
        let entry: Entry = serde_json::from_str(&body).map_err(|e| format!("line {n} is malformed: {e}"))?;
        if secret.mac("audit-line", body.as_bytes()) != mac {
            return Err(format!("line {n} was edited (its MAC does not match its content)"));
        }
        if entry.prev != prev {
            return Err(format!("line {n} does not follow line {} (a line was deleted, inserted or moved)", n - 1));
        }
        prev = mac.to_string();
    }
    Ok(n)
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
        let joined = lines.join("\n");
        std::fs::write(audit.path(), if joined.is_empty() { joined } else { joined + "\n" }).unwrap();
    }

    /// An attacker without the key re-chains with plain SHA-256 after editing.
    fn rechain_without_key(lines: &mut [String]) {
        use sha2::{Digest, Sha256};
        let mut prev = GENESIS.to_string();
        for line in lines.iter_mut() {
            let (body, _) = split_mac(line).unwrap();
            let mut entry: Entry = serde_json::from_str(&body).unwrap();
            entry.prev = prev.clone();
            let body = serde_json::to_string(&entry).unwrap();
            let mac = hex::encode(Sha256::digest(body.as_bytes()));
            *line = format!("{},\"mac\":\"{mac}\"}}", &body[..body.len() - 1]);
            prev = mac;
        }
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
        type Change = Box<dyn Fn(&mut Vec<String>)>;
        let cases: Vec<(&str, Change)> = vec![
            ("line 2 was edited", Box::new(|l| l[1] = l[1].replace("ns1", "ns9"))),
            ("line 2 does not follow", Box::new(|l| drop(l.remove(1)))),
            ("line 2 does not follow", Box::new(|l| l.swap(1, 2))),
            ("line 4 was edited", Box::new(|l| l[3] = l[3].replace("\"ok\"", "\"no\""))),
            ("the last 1 line(s) were removed", Box::new(|l| drop(l.pop()))),
            ("the last 4 line(s) were removed", Box::new(|l| l.clear())),
            (
                "line 1 was edited",
                Box::new(|l| {
                    l[0] = l[0].replace("ns0", "evil");
                    rechain_without_key(l)
                }),
            ),
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
        std::fs::remove_file(audit.path()).unwrap();
        assert!(audit.verify().unwrap_err().contains("the log was deleted"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_head_is_rebuilt_and_reported() {
        let (audit, dir) = log_with(2);
        std::fs::remove_file(dir.join("audit.head")).unwrap();
        assert!(Audit::new(&dir).verify().unwrap_err().contains("head record (audit.head) is missing"));
        let again = Audit::new(&dir);
        again.append(Entry::new("run2", "test", &Op::NetnsList)).unwrap();
        assert!(again.verify().unwrap_err().contains("its head was rebuilt"));
        drop(audit);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
