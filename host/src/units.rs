//! Durations and sizes as people type them: `10s`, `500ms`, `64M`, `1G`.

use std::time::Duration;

/// Parse "10s", "500ms", "2m", "1h" or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use ms, s, m or h")),
    };
    if secs <= 0.0 || !secs.is_finite() || secs > 7.0 * 86400.0 {
        return Err(format!("duration {text:?} must be positive and at most a week"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse "64M", "64MiB", "1G", "512K" or plain MiB into MiB.
pub fn parse_mib(text: &str) -> Result<usize, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: usize = num.parse().map_err(|_| format!("{text:?} is not a size like 64M or 1G"))?;
    let mib = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => Some(value),
        "g" | "gb" | "gib" => value.checked_mul(1024),
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use M or G")),
    };
    match mib {
        Some(m) if (1..=65536).contains(&m) => Ok(m),
        _ => Err(format!("memory limit {text:?} must be between 1 MiB and 64 GiB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["0s", "ten", "5d", "1e400", "99999999999h", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_mib("64M").unwrap(), 64);
        assert_eq!(parse_mib("64MiB").unwrap(), 64);
        assert_eq!(parse_mib("1G").unwrap(), 1024);
        assert_eq!(parse_mib("16").unwrap(), 16);
        for bad in ["0", "12T", "99999999999999999999G", "18446744073709551615G"] {
            assert!(parse_mib(bad).is_err(), "{bad}");
        }
    }
}
