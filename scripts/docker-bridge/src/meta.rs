//! What docker-bridge keeps in the kernel: `key=value` words in the alias of
//! each network's bridge and of each container's bridge port
//! (`ip link set DEV alias ...`), so every run derives its state from the
//! kernel and nothing lives in hidden files.

use netsh_guest::link::LinkInfo;

/// The first word of every alias docker-bridge writes.
pub const TAG: &str = "netsh:docker-bridge";

/// Parsed `key=value` words of an alias.
#[derive(Debug, Clone, Default)]
pub struct Meta(Vec<(String, String)>);

impl Meta {
    /// Parse a link's alias if docker-bridge wrote it.
    pub fn of(link: &LinkInfo) -> Option<Meta> {
        let mut words = link.alias.as_deref()?.split_whitespace();
        if words.next()? != TAG {
            return None;
        }
        Some(Meta(words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()))
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

    /// Render as an alias.
    pub fn render(&self) -> String {
        let mut out = TAG.to_string();
        for (k, v) in &self.0 {
            out.push_str(&format!(" {k}={v}"));
        }
        out
    }
}

/// A short stable hash (FNV-1a), for deterministic interface names.
pub fn short_hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{:07x}", h & 0xfffffff)
}
