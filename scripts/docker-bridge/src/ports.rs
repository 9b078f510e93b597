//! `--publish`, `--expose` and `--publish-all`, as in `docker run -p/-P`.

use std::net::IpAddr;

use netsh_guest::firewall::{self, PortRange, Proto, PublishSpec, parse_ports, split_proto};
use netsh_guest::{Error, Result};

/// A port to publish: on the host ports it names, or on one netsh picks.
#[derive(Debug, Clone)]
pub struct Publish {
    pub spec: PublishSpec,
    /// `-p PORT`, `-p IP::PORT`, `-P`: the host port is netsh's choice.
    pub ephemeral: bool,
    /// `0.0.0.0:…` or `[::]:…`: every host address of that family (IPv6:
    /// true) and only of it.
    pub wildcard: Option<bool>,
}

impl Publish {
    /// Whether it is for IPv6 alone (`[::1]:8080:80`, `[::]:8080:80`).
    pub fn on_ipv6(&self) -> bool {
        self.wildcard == Some(true) || self.spec.host_ip.as_deref().is_some_and(|ip| ip.contains(':'))
    }

    /// Whether it names no host address at all (the network's default binding applies).
    pub fn unbound(&self) -> bool {
        self.spec.host_ip.is_none() && self.wildcard.is_none()
    }
}

/// Parse a publish spec (its destination is filled in by [`publish`]):
/// `PORT`, `HOSTIP::PORT`, `HOSTPORT:PORT` or `HOSTIP:HOSTPORT:PORT`,
/// ranges as `FIRST-LAST`, an IPv6 HOSTIP in brackets (`[::1]:8080:80`).
pub fn parse(text: &str) -> Result<Publish> {
    let context = |e: Error| Error::Invalid(format!("publish {text:?}: {e}"));
    let (body, proto) = split_proto(text).map_err(context)?;
    let (ipv6, rest) = match body.strip_prefix('[').and_then(|b| b.split_once("]:")) {
        Some((ip, rest)) => (Some(host_ip(text, ip, true)?), rest),
        None => (None, body),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host, container) = match (ipv6, parts.as_slice()) {
        (None, [container]) => (None, "", *container),
        (None, [host, container]) => (None, *host, *container),
        (None, [ip, host, container]) => (Some(host_ip(text, ip, false)?), *host, *container),
        (Some(ip), [host, container]) => (Some(ip), *host, *container),
        _ => {
            return Err(Error::Invalid(format!(
                "publish {text:?} is not [[HOSTIP:]HOSTPORT[-END]:]PORT[-END][/tcp|udp] or HOSTIP::PORT (an IPv6 HOSTIP in brackets)"
            )));
        }
    };
    let to = parse_ports(container).map_err(context)?;
    let ephemeral = host.is_empty();
    if ephemeral && to.first != to.last {
        return Err(Error::Invalid(format!(
            "publish {text:?}: netsh picks one host port per container port; name host ports for a range (8000-8002:80-82)"
        )));
    }
    let host_ports = if ephemeral { to } else { parse_ports(host).map_err(context)? };
    if to.first != to.last && to.last - to.first != host_ports.last - host_ports.first {
        return Err(Error::Invalid(format!("publish {text:?}: host and container ranges differ in size")));
    }
    // An unspecified host address is every address of its family: no address in the rule.
    let wildcard = host_ip.as_deref().filter(|ip| *ip == "0.0.0.0" || *ip == "::").map(|ip| ip.contains(':'));
    let host_ip = host_ip.filter(|_| wildcard.is_none());
    let spec = PublishSpec { proto, host_ip, host_ports, to_ip: String::new(), to_port: to.first };
    Ok(Publish { spec, ephemeral, wildcard })
}

/// `--expose PORT[-END][/tcp|udp]`: the protocol and container ports.
pub fn exposed_ports(text: &str) -> Result<(Proto, PortRange)> {
    let context = |e: Error| Error::Invalid(format!("--expose {text:?}: {e}"));
    let (port, proto) = split_proto(text).map_err(context)?;
    if port.contains(':') {
        return Err(Error::Invalid(format!("--expose {text:?} is a container port, PORT[/tcp|udp]; publish with -p")));
    }
    Ok((proto, parse_ports(port).map_err(context)?))
}

/// `--expose PORT[/tcp|udp]` under `-P`: published on a host port netsh picks.
pub fn exposed(text: &str) -> Result<Publish> {
    exposed_ports(text)?;
    parse(text)
}

fn host_ip(text: &str, ip: &str, v6: bool) -> Result<String> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    match ip.parse::<IpAddr>() {
        Ok(parsed) if parsed.is_ipv6() == v6 => Ok(parsed.to_string()),
        _ => Err(Error::Invalid(format!("publish {text:?}: {ip:?} is not an {family} address"))),
    }
}

/// Publish `p` to a container at `ip` and, on a dual-stack network, `ip6`:
/// an IPv4 host address reaches `ip`, an IPv6 one `ip6`, and no host
/// address both (IPv6 on the host port IPv4 got). Each rule's id, and the
/// mapping as `docker port` shows it.
pub fn publish(owner: &str, p: &Publish, ip: IpAddr, ip6: Option<IpAddr>) -> Result<Vec<(String, String)>> {
    let mut p = p.clone();
    let mut out = Vec::new();
    if !p.on_ipv6() {
        p.spec.to_ip = ip.to_string();
        let (id, host_port) = publish_one(owner, &p)?;
        out.push((id, describe(&p, host_port)));
        if !p.unbound() {
            return Ok(out);
        }
        let span = p.spec.host_ports.last - p.spec.host_ports.first;
        p.spec.host_ports = PortRange { first: host_port, last: host_port + span };
        p.ephemeral = false;
    }
    if let Some(ip6) = ip6 {
        p.spec.to_ip = ip6.to_string();
        let (id, host_port) = publish_one(owner, &p)?;
        out.push((id, describe(&p, host_port)));
    }
    Ok(out)
}

/// Add one rule: the host port named, or one netsh picks. Its id and host port.
fn publish_one(owner: &str, p: &Publish) -> Result<(String, u16)> {
    match p.ephemeral {
        true => firewall::publish_ephemeral(None, owner, &p.spec),
        false => firewall::publish(None, owner, &p.spec).map(|id| (id, p.spec.host_ports.first)),
    }
}

/// The host side of a mapping as Docker shows it: `0.0.0.0`, `[::]`, `[::1]`.
pub fn host_label(host_ip: Option<&str>, to_ip: &str) -> String {
    match host_ip {
        Some(ip) if ip.contains(':') => format!("[{ip}]"),
        Some(ip) => ip.into(),
        None if to_ip.contains(':') => "[::]".into(),
        None => "0.0.0.0".into(),
    }
}

/// How `docker port` shows a mapping: `80/tcp -> 0.0.0.0:8080`.
pub fn describe(p: &Publish, host_port: u16) -> String {
    let span = p.spec.host_ports.last - p.spec.host_ports.first;
    let range = |first: u16| if span == 0 { first.to_string() } else { format!("{first}-{}", first + span) };
    let host = host_label(p.spec.host_ip.as_deref(), &p.spec.to_ip);
    format!("{}/{} -> {host}:{}", range(p.spec.to_port), firewall::proto_name(p.spec.proto), range(host_port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netsh_guest::firewall::Proto;

    #[test]
    fn forms() {
        let p = parse("8080:80").unwrap();
        assert_eq!(
            (p.spec.host_ports.first, p.spec.host_ports.last, p.spec.to_port, p.ephemeral),
            (8080, 8080, 80, false)
        );
        assert!(matches!(p.spec.proto, Proto::Tcp));
        let p = parse("127.0.0.1:9000-9002:9000/udp").unwrap();
        assert_eq!(p.spec.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(matches!(p.spec.proto, Proto::Udp));
        assert_eq!((p.spec.host_ports.first, p.spec.host_ports.last, p.spec.to_port), (9000, 9002, 9000));
        assert_eq!(describe(&p, 9000), "9000-9002/udp -> 127.0.0.1:9000-9002");
        assert!(parse("8000-8002:80-82").is_ok());
        let p = parse("80").unwrap();
        assert!(p.ephemeral && p.spec.host_ip.is_none());
        let p = parse("127.0.0.1::53/udp").unwrap();
        assert!(p.ephemeral && p.spec.host_ip.as_deref() == Some("127.0.0.1"));
        assert_eq!(describe(&p, 40000), "53/udp -> 127.0.0.1:40000");
        assert!(exposed("443/tcp").unwrap().ephemeral);
        let mut p = parse("[::1]:8080:80").unwrap();
        assert!(p.on_ipv6() && p.spec.host_ip.as_deref() == Some("::1"));
        p.spec.to_ip = "fd00::2".into();
        assert_eq!(describe(&p, 8080), "80/tcp -> [::1]:8080");
        let p = parse("[fd00::1]::53/udp").unwrap();
        assert!(p.ephemeral && p.on_ipv6());
        assert_eq!(host_label(None, "fd00::2"), "[::]");
        assert_eq!(host_label(None, "172.17.0.2"), "0.0.0.0");
        let p = parse("[::]:8080:80").unwrap();
        assert!(p.on_ipv6() && !p.unbound() && p.spec.host_ip.is_none());
        let p = parse("0.0.0.0:8080:80").unwrap();
        assert!(!p.on_ipv6() && !p.unbound() && p.spec.host_ip.is_none());
        assert!(parse("8080:80").unwrap().unbound());
    }

    #[test]
    fn errors() {
        for bad in
            ["9000-8000:80", "0:80", "x:80", "8080:80/sctp", "8000-8002:80-81", "a.b:1:2", "80-82", "::80", "1:2:3:4"]
                .into_iter()
                .chain(["[::1]:80", "[10.0.0.1]:80:80", "::1:80:80", "[::1:80:80", "1.2.3.4:[::1]:80"])
        {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(exposed("8080:80").is_err());
    }
}
