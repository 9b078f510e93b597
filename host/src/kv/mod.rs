//! The key-value store recipes keep their state in (network definitions,
//! address allocations, endpoints): get, put, create-if-absent,
//! compare-and-swap, delete, list by prefix. Every write gets a new version
//! from one counter, so a compare-and-swap knows whether anyone wrote in
//! between. The embedded store ([`sqlite`]) lives in netsh's state directory
//! and is safe under concurrent netsh processes; [`etcd`] is the store
//! several hosts share.

pub mod etcd;
pub mod sqlite;

use serde::{Deserialize, Serialize};

use crate::error::{CapError, CapResult};

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// The store's version counter at the key's last write.
    pub version: u64,
}

/// A store of versioned keys.
pub trait KvStore: Send + Sync {
    /// The entry at `key`.
    fn get(&self, key: &str) -> CapResult<Option<Entry>>;
    /// Entries whose key starts with `prefix`, by key.
    fn list(&self, prefix: &str) -> CapResult<Vec<Entry>>;
    /// Set `key`; returns the new version.
    fn put(&self, key: &str, value: &str) -> CapResult<u64>;
    /// Set `key` to expire `ttl` from now unless written again; the new version.
    fn put_lease(&self, key: &str, value: &str, ttl: std::time::Duration) -> CapResult<u64>;
    /// Set `key` only if it is absent; the new version, or `None` if it exists.
    fn create(&self, key: &str, value: &str) -> CapResult<Option<u64>>;
    /// Set `key` only if its version is `version` (0: only if absent); the
    /// new version, or `None` if someone wrote in between.
    fn swap(&self, key: &str, version: u64, value: &str) -> CapResult<Option<u64>>;
    /// Remove `key`; whether it existed.
    fn delete(&self, key: &str) -> CapResult<bool>;
    /// Remove `key` only if its version is `version`; whether it was removed.
    fn delete_at(&self, key: &str, version: u64) -> CapResult<bool>;

    /// Take one write back without clobbering anyone else's: only if `key`
    /// still holds `expect` (`None`: absent), set it to `restore` (`None`:
    /// remove it). Whether anything changed; a key someone has written
    /// since is left alone, as are concurrent writes during the revert.
    fn revert(&self, key: &str, expect: Option<&str>, restore: Option<&str>) -> CapResult<bool> {
        let current = self.get(key)?;
        if current.as_ref().map(|e| e.value.as_str()) != expect {
            return Ok(false);
        }
        match (current, restore) {
            (Some(e), Some(old)) => Ok(self.swap(key, e.version, old)?.is_some()),
            (Some(e), None) => self.delete_at(key, e.version),
            (None, Some(old)) => Ok(self.create(key, old)?.is_some()),
            (None, None) => Ok(false),
        }
    }
}

/// Longest key and value the store takes.
pub const MAX_KEY: usize = 512;
pub const MAX_VALUE: usize = 64 * 1024;

/// Check a key: printable, `/`-separated, no empty, `.` or `..` segments.
pub fn check_key(key: &str) -> CapResult<()> {
    let ok_char = |c: char| c.is_ascii_graphic() && c != '*';
    let bad_segment = key.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if key.is_empty() || key.len() > MAX_KEY || !key.chars().all(ok_char) || bad_segment {
        return Err(CapError::Invalid(format!(
            "key {key:?} must be 1-{MAX_KEY} printable characters (no '*'), '/'-separated, without empty, '.' or '..' parts"
        )));
    }
    Ok(())
}

/// Check a value's size.
pub fn check_value(key: &str, value: &str) -> CapResult<()> {
    if value.len() > MAX_VALUE {
        return Err(CapError::Invalid(format!(
            "value for {key} is {} bytes; the store takes at most {MAX_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for good in ["docker-bridge/net/a", "x", "ip/10.0.0.2", "ip6/fd00::2"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a b", "a*", "é"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
