//! `key=value` words, one line per record: how recipes write their records
//! in the store; the names they take; and stable short hashes for
//! interface names and ids.

use crate::{Error, Result};

/// Parsed `key=value` words.
#[derive(Debug, Clone, Default)]
pub struct Meta(Vec<(String, String)>);

impl Meta {
    /// Parse a record; `None` if a word is not `key=value`.
    pub fn parse(text: &str) -> Option<Meta> {
        text.split_whitespace()
            .map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect::<Option<Vec<_>>>()
            .map(Meta)
    }

    /// A value, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A boolean value ("1" is true).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("1")
    }

    /// Add a value.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.0.push((key.to_string(), value.to_string()));
        self
    }

    /// Render as one line.
    pub fn render(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }
}

/// Check a network, container or alias name: it ends up in namespace
/// names, store keys and firewall rule owners.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || name.starts_with(['.', '-']) || !name.chars().all(ok) {
        return Err(Error::Invalid(format!(
            "{what} name {name:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.' or '-'"
        )));
    }
    Ok(())
}

/// FNV-1a over `parts`, from `seed`.
fn fnv(seed: u64, parts: &[&str]) -> u64 {
    let mut h = seed;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// A short stable hash (FNV-1a), for deterministic interface names.
pub fn short_hash(parts: &[&str]) -> String {
    format!("{:07x}", fnv(0xcbf29ce484222325, parts) & 0xfffffff)
}

/// A 64-hex-digit stable hash, shaped like Docker's ids (not a secret).
pub fn long_hash(parts: &[&str]) -> String {
    (1..=4u64).map(|i| format!("{:016x}", fnv(0xcbf29ce484222325 ^ i, parts))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = long_hash(&["net", "10.0.0.0/24"]);
        assert_eq!((id.len(), id.chars().all(|c| c.is_ascii_hexdigit())), (64, true));
        assert_ne!(id, long_hash(&["net", "10.0.1.0/24"]));
    }
}
