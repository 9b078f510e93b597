//! Sockets bound in the calling thread's network namespace, read from
//! /proc/thread-self/net: a host port a process listens on is never
//! published over (its traffic would silently go elsewhere), and ephemeral
//! host ports are picked among the free ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{CapError, CapResult};
use crate::ops::{FwRule, Proto};

/// A socket bound to a local address and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    addr: IpAddr,
    port: u16,
    inode: u64,
}

/// TCP's LISTEN state and UDP's unconnected state in /proc/net/{tcp,udp}.
const TCP_LISTEN: &str = "0A";
const UDP_UNCONNECTED: &str = "07";

/// Sockets taking `proto` connections or datagrams, both families.
fn bound(proto: Proto) -> CapResult<Vec<Bound>> {
    let state = match proto {
        Proto::Tcp => TCP_LISTEN,
        Proto::Udp => UDP_UNCONNECTED,
    };
    let mut out = Vec::new();
    for file in [proto.as_str().to_string(), format!("{}6", proto.as_str())] {
        let path = format!("/proc/thread-self/net/{file}");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // No IPv6 in this kernel: nothing bound there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CapError::io(&e, format!("read {path}"))),
        };
        out.extend(text.lines().skip(1).filter_map(|line| parse_line(line, state)));
    }
    Ok(out)
}

/// One /proc/net/{tcp,udp}[6] line, if its socket is in `state`.
fn parse_line(line: &str, state: &str) -> Option<Bound> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&state) {
        return None;
    }
    let (addr, port) = fields.get(1)?.split_once(':')?;
    Some(Bound {
        addr: parse_addr(addr)?,
        port: u16::from_str_radix(port, 16).ok()?,
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// The kernel prints addresses as native-endian 32-bit words in hex.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok().map(u32::to_ne_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// Whether a socket bound to `bound` takes traffic for `host_ip` (`None`: every address).
fn overlaps(bound: IpAddr, host_ip: Option<IpAddr>) -> bool {
    let wildcard = bound.is_unspecified();
    match host_ip {
        None => true,
        Some(ip) => wildcard || bound == ip || bound.to_canonical() == ip,
    }
}

/// Refuse a publish rule for a host address this namespace does not have,
/// or whose host ports a process holds here.
pub fn refuse_held(rule: &FwRule) -> CapResult<()> {
    let FwRule::Publish { proto, host_ip, first, last, .. } = rule else { return Ok(()) };
    if let Some(ip) = host_ip {
        refuse_foreign(*ip)?;
    }
    let held = bound(*proto)?.into_iter().find(|b| (*first..=*last).contains(&b.port) && overlaps(b.addr, *host_ip));
    match held {
        None => Ok(()),
        Some(b) => Err(CapError::Exists(format!(
            "host port {}/{} is in use: {} is bound to {} by {}; stop it or publish another port",
            proto.as_str(),
            b.port,
            proto.as_str(),
            std::net::SocketAddr::new(b.addr, b.port),
            holder(b.inode)
        ))),
    }
}

/// Refuse an address no interface here has: binding to it is how the kernel tells.
fn refuse_foreign(ip: IpAddr) -> CapResult<()> {
    match std::net::UdpSocket::bind((ip, 0)) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EADDRNOTAVAIL) => Err(CapError::Invalid(format!(
            "host address {ip} is not on this machine (see `ip addr`); publish on one of its addresses or on all"
        ))),
        _ => Ok(()),
    }
}

/// A host port no socket holds for `host_ip`, picked at random from the
/// kernel's ephemeral range (net.ipv4.ip_local_port_range), so concurrent
/// callers rarely pick the same one.
pub fn free_port(proto: Proto, host_ip: Option<IpAddr>) -> CapResult<u16> {
    let (low, high) = ephemeral_range()?;
    let held: std::collections::HashSet<u16> =
        bound(proto)?.into_iter().filter(|b| overlaps(b.addr, host_ip)).map(|b| b.port).collect();
    let span = u32::from(high - low) + 1;
    let start = rand_below(span);
    (0..span)
        .map(|i| low + ((start + i) % span) as u16)
        .find(|p| !held.contains(p))
        .ok_or_else(|| CapError::Failed(format!("every {} port from {low} to {high} is in use", proto.as_str())))
}

fn ephemeral_range() -> CapResult<(u16, u16)> {
    let path = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = std::fs::read_to_string(path).map_err(|e| CapError::io(&e, format!("read {path}")))?;
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    match (parts.next(), parts.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => Ok((low, high)),
        _ => Err(CapError::Failed(format!("{path} holds {text:?}, not LOW HIGH"))),
    }
}

/// A random number below `n` (std's per-process random hash keys).
fn rand_below(n: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    (std::collections::hash_map::RandomState::new().build_hasher().finish() % u64::from(n.max(1))) as u32
}

/// "pid P (COMMAND)" for the process holding socket `inode`, as far as /proc tells.
fn holder(inode: u64) -> String {
    let target = format!("socket:[{inode}]");
    let found = std::fs::read_dir("/proc").ok().and_then(|procs| {
        procs.flatten().find_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
            let holds =
                fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()));
            holds.then(|| {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                format!("pid {pid} ({})", comm.trim())
            })
        })
    });
    found.unwrap_or_else(|| "a process".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_lines() {
        let tcp = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0";
        assert_eq!(
            parse_line(tcp, TCP_LISTEN),
            Some(Bound { addr: "127.0.0.1".parse().unwrap(), port: 8080, inode: 4242 })
        );
        assert_eq!(parse_line(tcp, UDP_UNCONNECTED), None);
        let tcp6 = "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0";
        assert_eq!(parse_line(tcp6, TCP_LISTEN).map(|b| (b.addr, b.port)), Some(("::1".parse().unwrap(), 80)));
    }

    #[test]
    fn which_sockets_a_publish_would_shadow() {
        let any4: IpAddr = "0.0.0.0".parse().unwrap();
        let any6: IpAddr = "::".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(overlaps(any4, Some(other)) && overlaps(any6, Some(other)) && overlaps(lo, None));
        assert!(overlaps(lo, Some(lo)) && !overlaps(lo, Some(other)));
        assert!(overlaps("::ffff:10.0.0.1".parse().unwrap(), Some(other)));
    }
}
