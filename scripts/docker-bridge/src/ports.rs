//! `--publish [HOSTIP:]HOSTPORT[-END]:PORT[-END][/tcp|udp]`, as in `docker run -p`.

use netsh_guest::firewall::{PortRange, Proto, PublishSpec};
use netsh_guest::{Error, Result};

fn port(text: &str, whole: &str) -> Result<u16> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::Invalid(format!("publish {whole:?}: {text:?} is not a port (1-65535)"))),
    }
}

fn range(text: &str, whole: &str) -> Result<(u16, u16)> {
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a, whole)?, port(b, whole)?),
        None => (port(text, whole)?, port(text, whole)?),
    };
    if first > last {
        return Err(Error::Invalid(format!("publish {whole:?}: port range {first}-{last} is reversed")));
    }
    Ok((first, last))
}

/// Parse a publish spec for destination `to_ip`.
pub fn parse(text: &str, to_ip: &str) -> Result<PublishSpec> {
    let (body, proto) = match text.rsplit_once('/') {
        Some((b, "tcp")) => (b, Proto::Tcp),
        Some((b, "udp")) => (b, Proto::Udp),
        Some((_, other)) => return Err(Error::Invalid(format!("publish {text:?}: unknown protocol {other:?}"))),
        None => (text, Proto::Tcp),
    };
    let parts: Vec<&str> = body.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [host, container] => (None, *host, *container),
        [ip, host, container] => {
            let ip: std::net::Ipv4Addr =
                ip.parse().map_err(|_| Error::Invalid(format!("publish {text:?}: {ip:?} is not an IPv4 address")))?;
            (Some(ip.to_string()), *host, *container)
        }
        _ => return Err(Error::Invalid(format!("publish {text:?} is not [HOSTIP:]HOSTPORT[-END]:PORT[/tcp|udp]"))),
    };
    let (first, last) = range(host, text)?;
    let (to_first, to_last) = range(container, text)?;
    if to_first != to_last && to_last - to_first != last - first {
        return Err(Error::Invalid(format!("publish {text:?}: host and container ranges differ in size")));
    }
    Ok(PublishSpec { proto, host_ip, host_ports: PortRange { first, last }, to_ip: to_ip.into(), to_port: to_first })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let p = parse("8080:80", "172.17.0.2").unwrap();
        assert_eq!((p.host_ports.first, p.host_ports.last, p.to_port), (8080, 8080, 80));
        assert!(matches!(p.proto, Proto::Tcp));
        let p = parse("127.0.0.1:9000-9002:9000/udp", "172.17.0.2").unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(matches!(p.proto, Proto::Udp));
        assert_eq!((p.host_ports.first, p.host_ports.last, p.to_port), (9000, 9002, 9000));
        assert!(parse("8000-8002:80-82", "1.2.3.4").is_ok());
    }

    #[test]
    fn errors() {
        for bad in ["80", "9000-8000:80", "0:80", "x:80", "8080:80/sctp", "8000-8002:80-81", "a.b:1:2"] {
            assert!(parse(bad, "172.17.0.2").is_err(), "{bad}");
        }
    }
}
