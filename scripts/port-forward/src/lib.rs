//! Publish host ports to any destination the host can reach (DNAT in
//! PREROUTING and OUTPUT plus the FORWARD accept), like a router's port forwarding.

use netsh_guest::firewall::{self, PublishSpec, RuleInfo, RuleSpec, parse_ports, proto_name, split_proto};
use netsh_guest::{Args, Error, Manifest, Recipe, Result, sysctl};

struct PortForward;

const OWNER: &str = "port-forward";

const USAGE: &str = "port-forward COMMAND
  add [HOSTIP:]HOSTPORT[-END] DESTIP:PORT[/tcp|udp]   forward host ports to DESTIP (a range maps
                                                      onto PORT..PORT+END-HOSTPORT); turns on ip_forward
  rm  [HOSTIP:]HOSTPORT[-END] DESTIP:PORT[/tcp|udp]   remove that forward
  rm  ID                                              remove the forward with this id (see ls)
  ls                                                  list forwards (id, host ports, destination)";

fn spec(args: &Args) -> Result<PublishSpec> {
    let host = args.required(1, "[HOSTIP:]HOSTPORT[-END]")?;
    let dest = args.required(2, "DESTIP:PORT[/tcp|udp]")?;
    // 0.0.0.0 is every address: the same forward as none named.
    let (host_ip, host_ports) = match host.rsplit_once(':') {
        Some((ip, ports)) => (Some(ip.to_string()).filter(|ip| ip != "0.0.0.0"), ports),
        None => (None, host),
    };
    let (dest, proto) = split_proto(dest)?;
    let (to_ip, to_port) =
        dest.rsplit_once(':').ok_or_else(|| Error::Invalid(format!("destination {dest:?} is not DESTIP:PORT")))?;
    let to_port = parse_ports(to_port)?;
    if to_port.first != to_port.last {
        return Err(Error::Invalid(format!(
            "destination {dest:?} takes one port; a host range maps onto the ports after it"
        )));
    }
    Ok(PublishSpec {
        proto,
        host_ip,
        host_ports: parse_ports(host_ports)?,
        to_ip: to_ip.into(),
        to_port: to_port.first,
    })
}

/// The forward a rule holds, if it is one of this recipe's.
fn forward(rule: &RuleInfo) -> Option<&PublishSpec> {
    match &rule.spec {
        RuleSpec::Publish(p) if rule.owner == OWNER => Some(p),
        _ => None,
    }
}

fn same(a: &PublishSpec, b: &PublishSpec) -> bool {
    proto_name(a.proto) == proto_name(b.proto)
        && a.host_ip == b.host_ip
        && (a.host_ports.first, a.host_ports.last) == (b.host_ports.first, b.host_ports.last)
        && a.to_ip == b.to_ip
        && a.to_port == b.to_port
}

fn describe(id: &str, p: &PublishSpec) -> String {
    let (first, last) = (p.host_ports.first, p.host_ports.last);
    let ports = if first == last { first.to_string() } else { format!("{first}-{last}") };
    let host_ip = p.host_ip.as_ref().map(|ip| format!("{ip}:")).unwrap_or_default();
    format!("{id}  {host_ip}{ports} -> {}:{}/{}", p.to_ip, p.to_port, proto_name(p.proto))
}

impl Recipe for PortForward {
    fn manifest() -> Manifest {
        Manifest::new("port-forward", "forward host ports to any reachable destination")
            .version(env!("CARGO_PKG_VERSION"))
            .usage(USAGE)
            .grant("publish:tcp/1-65535", "DNATs the given TCP host ports")
            .grant("publish:udp/1-65535", "DNATs the given UDP host ports")
            .grant("sysctl:net.ipv4.ip_forward", "turns on forwarding")
    }

    fn run(args: Vec<String>) -> Result<()> {
        let args = Args::parse(args, &[])?;
        args.at_most(3)?;
        match args.positional().first().map(String::as_str) {
            Some("add") => {
                let s = spec(&args)?;
                sysctl::set(None, "net.ipv4.ip_forward", "1")?;
                println!("{}", firewall::publish(None, OWNER, &s)?);
                Ok(())
            }
            Some("rm") if args.positional().len() == 2 => {
                let id = &args.positional()[1];
                match firewall::get(None, id)? {
                    Some(rule) if forward(&rule).is_some() => firewall::remove(None, id),
                    _ => Err(Error::NotFound(format!("no forward with id {id} (see `port-forward ls`)"))),
                }
            }
            Some("rm") => {
                let s = spec(&args)?;
                let rule =
                    firewall::list(None)?.into_iter().find(|r| forward(r).is_some_and(|p| same(p, &s))).ok_or_else(
                        || Error::NotFound(format!("no forward {} {}", args.positional()[1], args.positional()[2])),
                    )?;
                firewall::remove(None, &rule.id)
            }
            Some("ls") => {
                let rules = firewall::list(None)?;
                let lines: Vec<String> = rules.iter().filter_map(|r| forward(r).map(|p| describe(&r.id, p))).collect();
                if lines.is_empty() {
                    println!("no forwards (port-forward add HOSTPORT DESTIP:PORT)");
                }
                lines.iter().for_each(|l| println!("{l}"));
                Ok(())
            }
            _ => Err(Error::Usage(USAGE.into())),
        }
    }
}

netsh_guest::export_recipe!(PortForward);
