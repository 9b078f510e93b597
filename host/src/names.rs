//! Validated names: interfaces, namespaces and sysctl keys.

use crate::error::{CapError, CapResult};

/// The first 12 characters of a digest, for messages; never panics on
/// short or odd input read back from a state file.
pub fn short_digest(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Parse a MAC address such as `02:42:ac:11:00:02` into its six bytes.
pub fn parse_mac(text: &str) -> CapResult<[u8; 6]> {
    let bad = || CapError::Invalid(format!("{text:?} is not a MAC address like 02:42:ac:11:00:02"));
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// A MAC address in the kernel's notation: lower-case, colon-separated.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Check an interface name the way the kernel's `dev_valid_name` does.
pub fn check_ifname(name: &str) -> CapResult<()> {
    if name.is_empty() {
        return Err(CapError::Invalid("interface name is empty".into()));
    }
    if name.len() > IFNAME_MAX {
        return Err(CapError::Invalid(format!(
            "interface name {name:?} is {} bytes; the kernel allows at most {IFNAME_MAX}",
            name.len()
        )));
    }
    if name == "." || name == ".." || name.contains(['/', ':']) || name.contains(char::is_whitespace) {
        return Err(CapError::Invalid(format!(
            "interface name {name:?} may not contain '/', ':' or spaces, nor be '.' or '..'"
        )));
    }
    Ok(())
}

/// Check a namespace name: a single file name under /run/netns.
pub fn check_netns(name: &str) -> CapResult<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+');
    if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(ok_char) {
        return Err(CapError::Invalid(format!(
            "namespace name {name:?} must be 1-64 characters of letters, digits, '-', '_', '.', '@', '+' and not start with '.'"
        )));
    }
    Ok(())
}

/// Turn a dotted sysctl key under `net.` into its path below /proc/sys.
///
/// A key may use '/' as separator instead, for interface names holding dots
/// (`net/ipv4/conf/eth0.5/forwarding`), as sysctl(8) allows.
pub fn sysctl_path(key: &str) -> CapResult<String> {
    let rel = if key.contains('/') { key.to_string() } else { key.replace('.', "/") };
    let parts: Vec<&str> = rel.split('/').collect();
    let bad_part = parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..");
    if parts.first() != Some(&"net") || parts.len() < 3 || bad_part {
        return Err(CapError::Invalid(format!("sysctl key {key:?} is not under net.* (e.g. net.ipv4.ip_forward)")));
    }
    Ok(format!("/proc/sys/{rel}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_limits() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("a23456789012345").is_ok());
        assert!(matches!(check_ifname("a234567890123456"), Err(CapError::Invalid(m)) if m.contains("16 bytes")));
        for bad in ["", ".", "..", "a/b", "a:b", "a b"] {
            assert!(check_ifname(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn netns_names() {
        assert!(check_netns("c1").is_ok());
        assert!(check_netns("my-net_2.x").is_ok());
        for bad in ["", ".hidden", "a/b", "../x", "a b"] {
            assert!(check_netns(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sysctl_keys() {
        assert_eq!(sysctl_path("net.ipv4.ip_forward").unwrap(), "/proc/sys/net/ipv4/ip_forward");
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.5/forwarding").unwrap(),
            "/proc/sys/net/ipv4/conf/eth0.5/forwarding"
        );
        for bad in ["kernel.pid_max", "net", "net.ipv4", "net/../kernel/x", "net..ipv4.x", "vm.swappiness"] {
            assert!(sysctl_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
