//! `--publish [HOSTIP:]HOSTPORT[-END]:PORT[-END][/tcp|udp]`, as in `docker run -p`.

use netsh_guest::firewall::{PublishSpec, parse_ports, split_proto};
use netsh_guest::{Error, Result};

/// Parse a publish spec for destination `to_ip`.
pub fn parse(text: &str, to_ip: &str) -> Result<PublishSpec> {
    let context = |e: Error| Error::Invalid(format!("publish {text:?}: {e}"));
    let (body, proto) = split_proto(text).map_err(context)?;
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
    let host_ports = parse_ports(host).map_err(context)?;
    let to = parse_ports(container).map_err(context)?;
    if to.first != to.last && to.last - to.first != host_ports.last - host_ports.first {
        return Err(Error::Invalid(format!("publish {text:?}: host and container ranges differ in size")));
    }
    Ok(PublishSpec { proto, host_ip, host_ports, to_ip: to_ip.into(), to_port: to.first })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netsh_guest::firewall::Proto;

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
