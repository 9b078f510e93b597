//! `--publish`, `--expose` and `--publish-all`, as in `docker run -p/-P`.

use netsh_guest::firewall::{self, Proto, PublishSpec, parse_ports, split_proto};
use netsh_guest::{Error, Result};

/// A port to publish: on the host ports it names, or on one netsh picks.
#[derive(Debug, Clone)]
pub struct Publish {
    pub spec: PublishSpec,
    /// `-p PORT`, `-p IP::PORT`, `-P`: the host port is netsh's choice.
    pub ephemeral: bool,
}

/// Parse a publish spec for destination `to_ip`: `PORT`, `HOSTIP::PORT`,
/// `HOSTPORT:PORT` or `HOSTIP:HOSTPORT:PORT`, ranges as `FIRST-LAST`.
pub fn parse(text: &str, to_ip: &str) -> Result<Publish> {
    let context = |e: Error| Error::Invalid(format!("publish {text:?}: {e}"));
    let (body, proto) = split_proto(text).map_err(context)?;
    let parts: Vec<&str> = body.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [container] => (None, "", *container),
        [host, container] => (None, *host, *container),
        [ip, host, container] => (Some(host_ipv4(text, ip)?), *host, *container),
        _ => {
            return Err(Error::Invalid(format!(
                "publish {text:?} is not [[HOSTIP:]HOSTPORT[-END]:]PORT[-END][/tcp|udp] or HOSTIP::PORT"
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
    Ok(Publish { spec: PublishSpec { proto, host_ip, host_ports, to_ip: to_ip.into(), to_port: to.first }, ephemeral })
}

/// `--expose PORT[/tcp|udp]` under `-P`: published on a host port netsh picks.
pub fn exposed(text: &str, to_ip: &str) -> Result<Publish> {
    let (port, _) = split_proto(text).map_err(|e| Error::Invalid(format!("--expose {text:?}: {e}")))?;
    if port.contains(':') {
        return Err(Error::Invalid(format!("--expose {text:?} is a container port, PORT[/tcp|udp]; publish with -p")));
    }
    parse(text, to_ip)
}

fn host_ipv4(text: &str, ip: &str) -> Result<String> {
    let ip: std::net::Ipv4Addr =
        ip.parse().map_err(|_| Error::Invalid(format!("publish {text:?}: {ip:?} is not an IPv4 address")))?;
    Ok(ip.to_string())
}

/// Add the rule: the host port named, or one netsh picks. Its id and host port.
pub fn publish(owner: &str, p: &Publish) -> Result<(String, u16)> {
    match p.ephemeral {
        true => firewall::publish_ephemeral(None, owner, &p.spec),
        false => firewall::publish(None, owner, &p.spec).map(|id| (id, p.spec.host_ports.first)),
    }
}

/// How `docker port` shows a mapping: `80/tcp -> 0.0.0.0:8080`.
pub fn describe(p: &Publish, host_port: u16) -> String {
    let proto = match p.spec.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let span = p.spec.host_ports.last - p.spec.host_ports.first;
    let range = |first: u16| if span == 0 { first.to_string() } else { format!("{first}-{}", first + span) };
    let host_ip = p.spec.host_ip.as_deref().unwrap_or("0.0.0.0");
    format!("{}/{proto} -> {host_ip}:{}", range(p.spec.to_port), range(host_port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netsh_guest::firewall::Proto;

    #[test]
    fn forms() {
        let p = parse("8080:80", "172.17.0.2").unwrap();
        assert_eq!(
            (p.spec.host_ports.first, p.spec.host_ports.last, p.spec.to_port, p.ephemeral),
            (8080, 8080, 80, false)
        );
        assert!(matches!(p.spec.proto, Proto::Tcp));
        let p = parse("127.0.0.1:9000-9002:9000/udp", "172.17.0.2").unwrap();
        assert_eq!(p.spec.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(matches!(p.spec.proto, Proto::Udp));
        assert_eq!((p.spec.host_ports.first, p.spec.host_ports.last, p.spec.to_port), (9000, 9002, 9000));
        assert_eq!(describe(&p, 9000), "9000-9002/udp -> 127.0.0.1:9000-9002");
        assert!(parse("8000-8002:80-82", "1.2.3.4").is_ok());
        let p = parse("80", "172.17.0.2").unwrap();
        assert!(p.ephemeral && p.spec.host_ip.is_none());
        let p = parse("127.0.0.1::53/udp", "172.17.0.2").unwrap();
        assert!(p.ephemeral && p.spec.host_ip.as_deref() == Some("127.0.0.1"));
        assert_eq!(describe(&p, 40000), "53/udp -> 127.0.0.1:40000");
        assert!(exposed("443/tcp", "172.17.0.2").unwrap().ephemeral);
    }

    #[test]
    fn errors() {
        for bad in
            ["9000-8000:80", "0:80", "x:80", "8080:80/sctp", "8000-8002:80-81", "a.b:1:2", "80-82", "::80", "1:2:3:4"]
        {
            assert!(parse(bad, "172.17.0.2").is_err(), "{bad}");
        }
        assert!(exposed("8080:80", "172.17.0.2").is_err());
    }
}
