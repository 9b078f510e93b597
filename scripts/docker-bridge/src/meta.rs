//! `key=value` words: how docker-bridge writes its records in the store.

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
