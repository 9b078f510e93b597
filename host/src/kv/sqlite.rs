//! The embedded store: one SQLite database in netsh's state directory, in
//! WAL mode. Each write is one short immediate transaction, so concurrent
//! netsh processes serialise on SQLite's file lock for microseconds, never
//! for a whole run; a writer that waits more than a second says so.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Entry, KvStore, check_key, check_value};
use crate::error::{CapError, CapResult};

/// The schema's version, kept in SQLite's `user_version` (2 added leases).
const SCHEMA: u32 = 2;

/// How long a writer waits for another process's transaction.
const BUSY: Duration = Duration::from_secs(10);

/// The store in `STATE/kv.sqlite`.
#[derive(Debug)]
pub struct Sqlite {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn db_error(path: &Path, e: rusqlite::Error) -> CapError {
    CapError::Failed(format!("key-value store {}: {e}", path.display()))
}

impl Sqlite {
    /// Open (or create) the store at `path`; its directory must be trusted.
    pub fn open(path: &Path) -> CapResult<Sqlite> {
        if let Some(dir) = path.parent() {
            crate::trust::ensure_dir(dir)
                .map_err(|e| CapError::Failed(format!("key-value store {}: {e}", path.display())))?;
        }
        let err = |e| db_error(path, e);
        let conn = Connection::open(path).map_err(err)?;
        // Readers never wait in WAL mode; setting the database up may, briefly, on first use.
        conn.busy_timeout(BUSY).map_err(err)?;
        // SQLite's defaults suit a long-lived process; netsh is one process
        // per call, so: no checkpoint (and fsync) when the last connection
        // closes; instead a WAL kept short, because the next process to open
        // reads all of it. Synchronous NORMAL: a commit survives netsh
        // crashing; after a power loss the kernel state the store describes
        // is gone too. Pages are read through a shared mapping.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).map_err(err)?;
        // Processes opening a new store at once contend for its creation
        // (switching to WAL, the schema), where SQLite may answer "locked"
        // without waiting: try again for as long as a writer would wait.
        let started = Instant::now();
        while let Err(e) = set_up(&conn) {
            match e {
                rusqlite::Error::SqliteFailure(f, _) if busy(f.code) && started.elapsed() < BUSY => {
                    // A transaction the failure left open goes (none open is fine too).
                    conn.execute_batch("ROLLBACK").ok();
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return Err(err(other)),
            }
        }
        Ok(Sqlite { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    /// The store's version counter: it changes with every write.
    pub fn revision(&self) -> CapResult<u64> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("SELECT value FROM revision WHERE id = 0", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    fn err(&self, e: rusqlite::Error) -> CapError {
        db_error(&self.path, e)
    }

    /// Run `write` in an immediate transaction with the next version number;
    /// `None` from it rolls back (nothing written, no version used).
    fn write<T>(&self, write: impl FnOnce(&Connection, u64) -> rusqlite::Result<Option<T>>) -> CapResult<Option<T>> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        begin(&conn).map_err(|e| self.err(e))?;
        let run = || -> rusqlite::Result<Option<T>> {
            let version: u64 =
                conn.query_row("UPDATE revision SET value = value + 1 WHERE id = 0 RETURNING value", [], |r| r.get(0))?;
            // Expired leases go before any write, so creates and swaps see them absent.
            conn.execute("DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?1", [now()])?;
            write(&conn, version)
        };
        let result = run();
        let end = if matches!(result, Ok(Some(_))) { "COMMIT" } else { "ROLLBACK" };
        conn.execute_batch(end).map_err(|e| self.err(e))?;
        result.map_err(|e| self.err(e))
    }
}

impl Sqlite {
    /// Set `key`, expiring at `expires` (Unix seconds) or never.
    fn put_until(&self, key: &str, value: &str, expires: Option<i64>) -> CapResult<u64> {
        check_key(key)?;
        check_value(key, value)?;
        let done = self.write(|tx, v| {
            tx.execute(
                "INSERT INTO kv VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key) DO UPDATE SET value = ?2, version = ?3, expires = ?4",
                params![key, value, v, expires],
            )?;
            Ok(Some(v))
        })?;
        Ok(done.unwrap_or_default())
    }
}

/// WAL mode and the schema, made or upgraded (another process may have done it first).
fn set_up(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 64;
         PRAGMA mmap_size = 268435456;",
    )?;
    let schema: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if schema != SCHEMA {
        // `expires`: a lease's end in Unix seconds (NULL: never). A store of
        // schema 1 gains the column; another process may have done it first.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let add_expires = match current {
            1 => "ALTER TABLE kv ADD COLUMN expires INTEGER;",
            _ => "",
        };
        let upgrade = match current {
            SCHEMA => String::new(),
            _ => format!(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL, expires INTEGER);
                 {add_expires}
                 CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires) WHERE expires IS NOT NULL;
                 CREATE TABLE IF NOT EXISTS revision (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL);
                 INSERT OR IGNORE INTO revision VALUES (0, 0);
                 PRAGMA user_version = {SCHEMA};"
            ),
        };
        conn.execute_batch(&format!("{upgrade} COMMIT;"))?;
    }
    Ok(())
}

fn busy(code: rusqlite::ErrorCode) -> bool {
    matches!(code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
}

/// Begin a write (`BEGIN IMMEDIATE`), waiting for other writers and saying
/// so after a second.
fn begin(conn: &Connection) -> rusqlite::Result<()> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY =>
            {
                if !warned && started.elapsed() > Duration::from_secs(1) {
                    eprintln!("netsh: waiting for another netsh to finish writing the key-value store");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

/// Unix seconds now.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn entry(row: &rusqlite::Row) -> rusqlite::Result<Entry> {
    Ok(Entry { key: row.get(0)?, value: row.get(1)?, version: row.get(2)? })
}

impl KvStore for Sqlite {
    fn get(&self, key: &str) -> CapResult<Option<Entry>> {
        check_key(key)?;
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let live = "SELECT key, value, version FROM kv WHERE key = ?1 AND (expires IS NULL OR expires > ?2)";
        conn.query_row(live, params![key, now()], entry).optional().map_err(|e| self.err(e))
    }

    fn list(&self, prefix: &str) -> CapResult<Vec<Entry>> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // Keys in [prefix, prefix + U+10FFFF): a range scan of the primary key.
        let end = format!("{prefix}\u{10FFFF}");
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, value, version FROM kv WHERE key >= ?1 AND key < ?2 AND (expires IS NULL OR expires > ?3)
                 ORDER BY key",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![prefix, end, now()], entry).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    fn put(&self, key: &str, value: &str) -> CapResult<u64> {
        self.put_until(key, value, None)
    }

    fn put_lease(&self, key: &str, value: &str, ttl: Duration) -> CapResult<u64> {
        self.put_until(key, value, Some(now().saturating_add(ttl.as_secs() as i64)))
    }

    fn create(&self, key: &str, value: &str) -> CapResult<Option<u64>> {
        check_key(key)?;
        check_value(key, value)?;
        self.write(|tx, v| {
            let n = tx.execute("INSERT OR IGNORE INTO kv VALUES (?1, ?2, ?3, NULL)", params![key, value, v])?;
            Ok((n == 1).then_some(v))
        })
    }

    fn swap(&self, key: &str, version: u64, value: &str) -> CapResult<Option<u64>> {
        if version == 0 {
            return self.create(key, value);
        }
        check_key(key)?;
        check_value(key, value)?;
        self.write(|tx, v| {
            let n = tx.execute(
                "UPDATE kv SET value = ?2, version = ?3, expires = NULL WHERE key = ?1 AND version = ?4",
                params![key, value, v, version],
            )?;
            Ok((n == 1).then_some(v))
        })
    }

    fn delete(&self, key: &str) -> CapResult<bool> {
        check_key(key)?;
        let deleted =
            self.write(|tx, _| Ok((tx.execute("DELETE FROM kv WHERE key = ?1", [key])? == 1).then_some(())))?;
        Ok(deleted.is_some())
    }

    fn delete_at(&self, key: &str, version: u64) -> CapResult<bool> {
        check_key(key)?;
        let delete = "DELETE FROM kv WHERE key = ?1 AND version = ?2";
        let deleted = self.write(|tx, _| Ok((tx.execute(delete, params![key, version])? == 1).then_some(())))?;
        Ok(deleted.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> (Sqlite, PathBuf) {
        let dir = std::env::temp_dir().join(format!("netsh-kv-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Sqlite::open(&dir.join("kv.sqlite")).unwrap(), dir)
    }

    #[test]
    fn versions_guard_creates_and_swaps() {
        let (kv, dir) = store("cas");
        let v1 = kv.create("a/x", "1").unwrap().unwrap();
        assert_eq!(kv.create("a/x", "2").unwrap(), None);
        assert_eq!(kv.swap("a/x", v1 + 100, "3").unwrap(), None);
        let v2 = kv.swap("a/x", v1, "3").unwrap().unwrap();
        assert!(v2 > v1);
        assert_eq!(kv.get("a/x").unwrap().unwrap().value, "3");
        kv.put("a/y", "4").unwrap();
        kv.put("ab", "5").unwrap();
        let keys: Vec<String> = kv.list("a/").unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["a/x", "a/y"]);
        assert!(kv.delete("a/x").unwrap());
        assert!(!kv.delete("a/x").unwrap());
        assert_eq!(kv.swap("a/x", 0, "6").unwrap().is_some(), true);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reverts_leave_later_writes_alone() {
        let (kv, dir) = store("revert");
        kv.put("k", "mine").unwrap();
        assert!(kv.revert("k", Some("mine"), Some("old")).unwrap());
        assert_eq!(kv.get("k").unwrap().unwrap().value, "old");
        assert!(!kv.revert("k", Some("mine"), None).unwrap(), "someone else's value stays");
        assert_eq!(kv.get("k").unwrap().unwrap().value, "old");
        assert!(kv.revert("k", Some("old"), None).unwrap());
        assert!(kv.get("k").unwrap().is_none());
        assert!(kv.revert("k", None, Some("back")).unwrap());
        assert!(!kv.revert("k", None, Some("twice")).unwrap());
        let v = kv.get("k").unwrap().unwrap().version;
        assert!(!kv.delete_at("k", v + 1).unwrap());
        assert!(kv.delete_at("k", v).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn leases_expire_and_free_their_key() {
        let (kv, dir) = store("lease");
        kv.put_lease("host/a", "up", Duration::from_secs(1)).unwrap();
        kv.put_lease("host/b", "up", Duration::from_secs(60)).unwrap();
        assert!(kv.get("host/a").unwrap().is_some());
        std::thread::sleep(Duration::from_millis(2100));
        assert!(kv.get("host/a").unwrap().is_none());
        let keys: Vec<String> = kv.list("host/").unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["host/b"]);
        assert!(kv.create("host/a", "again").unwrap().is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_creates_give_each_key_to_one_writer() {
        let (kv, dir) = store("race");
        drop(kv);
        let path = dir.join("kv.sqlite");
        let winners: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    s.spawn(move || {
                        let kv = Sqlite::open(&path).unwrap();
                        (0..20).filter(|i| kv.create(&format!("ip/{i}"), "me").unwrap().is_some()).count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(winners.iter().sum::<usize>(), 20);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
