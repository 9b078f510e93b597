//! Publish host ports to any destination the host can reach (DNAT in
//! PREROUTING and OUTPUT plus the FORWARD accept), like a router's port forwarding.

use netsh_guest::firewall::{self, PublishSpec, RuleInfo, parse_ports, proto_name, split_proto};
use netsh_guest::{Args, Error, Manifest, Recipe, Result, sysctl};

struct PortForward;

const OWNER: &str = "port-forward";

const USAGE: &str = "port-forward COMMAND
  add [HOSTIP:]HOSTPORT[-END] DESTIP:PORT[/tcp|udp]   forward host ports to DESTIP (a range maps
                                                      onto PORT..PORT+END-HOSTPORT); turns on ip_forward
  rm  [HOSTIP:]HOSTPORT[-END] DESTIP:PORT[/tcp|udp]   remove that forward
  ls                                                  list forwards";

fn spec(args: &Args) -> Result<PublishSpec> {
    let host = args.required(1, "[HOSTIP:]HOSTPORT[-END]")?;
    let dest = args.required(2, "DESTIP:PORT[/tcp|udp]")?;
    let (host_ip, host_ports) = match host.rsplit_once(':') {
        Some((ip, ports)) => (Some(ip.to_string()), ports),
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

/// The value after `flag` in an iptables command line.
fn after<'a>(command: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = command.split_whitespace();
    words.by_ref().find(|w| *w == flag)?;
    words.next()
}

/// The forward's first DNAT line (PREROUTING), if the rule is a forward.
fn first_dnat(rule: &RuleInfo) -> Option<&str> {
    let line = rule.commands.iter().find(|c| c.contains("NETSH-PREROUTING") && c.contains("-j DNAT"))?;
    (rule.owner == OWNER).then_some(line.as_str())
}

fn matches(rule: &RuleInfo, s: &PublishSpec) -> bool {
    let Some(line) = first_dnat(rule) else { return false };
    let host_ip = after(line, "-d").map(|d| d.trim_end_matches("/32"));
    after(line, "-p") == Some(proto_name(s.proto))
        && after(line, "--dport") == Some(s.host_ports.first.to_string().as_str())
        && after(line, "--to-destination") == Some(format!("{}:{}", s.to_ip, s.to_port).as_str())
        && host_ip == s.host_ip.as_deref()
}

fn describe(rule: &RuleInfo) -> Option<String> {
    let line = first_dnat(rule)?;
    let count = rule.commands.iter().filter(|c| c.contains("NETSH-PREROUTING")).count();
    let first: u16 = after(line, "--dport")?.parse().ok()?;
    let ports = if count > 1 { format!("{first}-{}", first as usize + count - 1) } else { first.to_string() };
    let host_ip = after(line, "-d").map(|d| format!("{}:", d.trim_end_matches("/32"))).unwrap_or_default();
    Some(format!("{}  {host_ip}{ports} -> {}/{}", rule.id, after(line, "--to-destination")?, after(line, "-p")?))
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
        let args = Args::parse(args, &[], &[])?;
        match args.positional().first().map(String::as_str) {
            Some("add") => {
                let s = spec(&args)?;
                sysctl::set(None, "net.ipv4.ip_forward", "1")?;
                println!("{}", firewall::publish(None, OWNER, &s)?);
                Ok(())
            }
            Some("rm") => {
                let s = spec(&args)?;
                let rule = firewall::list(None)?.into_iter().find(|r| matches(r, &s)).ok_or_else(|| {
                    Error::NotFound(format!("no forward {} {}", args.positional()[1], args.positional()[2]))
                })?;
                firewall::remove(None, &rule.id)
            }
            Some("ls") => {
                for rule in firewall::list(None)?.iter().filter(|r| r.owner == OWNER) {
                    if let Some(line) = describe(rule) {
                        println!("{line}");
                    }
                }
                Ok(())
            }
            _ => Err(Error::Usage(USAGE.into())),
        }
    }
}

netsh_guest::export_recipe!(PortForward);
