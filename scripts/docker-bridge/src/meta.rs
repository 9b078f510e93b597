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

/// Now as RFC 3339 in UTC (`2026-12-02T16:20:00Z`), from the system clock.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ids() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        let id = long_hash(&["net", "10.0.0.0/24"]);
        assert_eq!((id.len(), id.chars().all(|c| c.is_ascii_hexdigit())), (64, true));
        assert_ne!(id, long_hash(&["net", "10.0.1.0/24"]));
    }
}
