//! Networks: a bridge with the gateway address, NAT and isolation rules,
//! read back from the kernel on every run.

use std::net::IpAddr;

use netsh_guest::firewall::{self, Isolation};
use netsh_guest::link::LinkInfo;
use netsh_guest::{Args, Cidr, Error, Result, addr, link, sysctl};

use crate::meta::Meta;
use crate::session::Session;

/// One attached container: the bridge port of its veth pair.
#[derive(Debug, Clone)]
pub struct Port {
    pub veth: String,
    pub container: String,
    pub ifname: String,
    pub ip: IpAddr,
    /// connect created the namespace (so disconnect removes it).
    pub created: bool,
    /// The namespace is a running process's (named with --pid).
    pub pid: bool,
    pub aliases: Vec<String>,
}

/// A docker-bridge network as the kernel shows it.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub bridge: String,
    /// The network address with its prefix.
    pub subnet: Cidr,
    /// The gateway (the bridge's address) with the subnet's prefix.
    pub gateway: Cidr,
    pub ip_range: Cidr,
    pub internal: bool,
    pub icc: bool,
    pub mtu: u32,
    pub ports: Vec<Port>,
}

impl Network {
    /// Owner label of the network's own firewall rules.
    pub fn owner(&self) -> String {
        format!("docker-bridge/{}", self.name)
    }

    /// Owner label of a container's published ports on this network.
    pub fn container_owner(&self, container: &str) -> String {
        format!("docker-bridge/{}/{container}", self.name)
    }

    /// The port of `container`, if attached.
    pub fn port(&self, container: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.container == container)
    }
}

/// The host namespace's links: read once per invocation, then kept current
/// in memory as commands add and remove bridges and ports.
pub struct Host {
    pub links: Vec<LinkInfo>,
}

/// A link as docker-bridge creates it, for the in-memory view.
pub fn made_link(name: &str, master: Option<&str>, alias: String, addresses: Vec<String>, mtu: u32) -> LinkInfo {
    LinkInfo {
        name: name.into(),
        index: 0,
        kind: if master.is_some() { "veth" } else { "bridge" }.into(),
        mtu,
        up: true,
        oper_state: "unknown".into(),
        master: master.map(String::from),
        mac: String::new(),
        addresses,
        alias: Some(alias),
    }
}

impl Host {
    /// Read every link of netsh's namespace.
    pub fn read() -> Result<Host> {
        Ok(Host { links: link::list(None)? })
    }

    /// Forget a link that was deleted.
    pub fn forget(&mut self, name: &str) {
        self.links.retain(|l| l.name != name);
    }

    /// Every docker-bridge network.
    pub fn networks(&self) -> Vec<Network> {
        self.links.iter().filter_map(|l| self.network_of(l)).collect()
    }

    /// The network called `name`.
    pub fn network(&self, name: &str) -> Result<Network> {
        self.networks()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::NotFound(format!("network {name} not found (see `docker-bridge ls`)")))
    }

    fn network_of(&self, bridge: &LinkInfo) -> Option<Network> {
        let meta = Meta::of(bridge)?;
        let name = meta.get("network")?.to_string();
        let gateway: Cidr =
            bridge.addresses.iter().filter_map(|a| a.parse::<Cidr>().ok()).find(|c| c.addr().is_ipv4())?;
        let subnet = gateway.network();
        let ports = self
            .links
            .iter()
            .filter(|l| l.master.as_deref() == Some(bridge.name.as_str()))
            .filter_map(|l| port_of(l))
            .collect();
        Some(Network {
            name,
            bridge: bridge.name.clone(),
            subnet,
            gateway,
            ip_range: meta.get("ip-range").and_then(|r| r.parse().ok()).unwrap_or(subnet),
            internal: meta.flag("internal"),
            icc: !meta.flag("no-icc"),
            mtu: bridge.mtu,
            ports,
        })
    }
}

fn port_of(link: &LinkInfo) -> Option<Port> {
    let meta = Meta::of(link)?;
    Some(Port {
        veth: link.name.clone(),
        container: meta.get("container")?.to_string(),
        ifname: meta.get("ifname")?.to_string(),
        ip: meta.get("ip")?.parse().ok()?,
        created: meta.flag("created"),
        pid: meta.flag("pid"),
        aliases: meta.get("aliases").map(|a| a.split(',').map(String::from).collect()).unwrap_or_default(),
    })
}

/// Check a network or container name (it ends up in namespace names, aliases and rule owners).
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || name.starts_with(['.', '-']) || !name.chars().all(ok) {
        return Err(Error::Invalid(format!(
            "{what} name {name:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.' or '-'"
        )));
    }
    Ok(())
}

/// Docker's default pools: 172.17-31.0.0/16, then 192.168.X.0/20.
fn default_subnets() -> impl Iterator<Item = Cidr> {
    let b = (17..=31).map(|o| format!("172.{o}.0.0/16"));
    let c = (0..16).map(|i| format!("192.168.{}.0/20", i * 16));
    b.chain(c).filter_map(|s| s.parse().ok())
}

/// IPv4 networks already in use on the host (every interface's addresses).
fn used_subnets(host: &Host) -> Vec<(Cidr, String)> {
    host.links
        .iter()
        .flat_map(|l| l.addresses.iter().filter_map(|a| a.parse::<Cidr>().ok()).map(|c| (c.network(), l.name.clone())))
        .filter(|(c, _)| c.addr().is_ipv4() && !c.addr().is_loopback())
        .collect()
}

/// What `create` was asked for, validated.
struct Spec {
    name: String,
    bridge: String,
    subnet: Cidr,
    gateway: Cidr,
    ip_range: Cidr,
    internal: bool,
    icc: bool,
    mtu: Option<u32>,
}

fn spec(host: &Host, args: &Args) -> Result<Spec> {
    let name = args.required(1, "network NAME")?.to_string();
    check_name("network", &name)?;
    if host.network(&name).is_ok() {
        return Err(Error::Exists(format!("network {name} already exists")));
    }
    let bridge = args.value("--bridge").map(String::from).unwrap_or_else(|| format!("br-{name}"));
    if bridge.len() > 15 {
        return Err(Error::Invalid(format!(
            "bridge name {bridge:?} is longer than 15 bytes; choose a shorter one with --bridge"
        )));
    }
    if host.links.iter().any(|l| l.name == bridge) {
        return Err(Error::Exists(format!("interface {bridge} already exists; choose another with --bridge")));
    }
    let used = used_subnets(host);
    let subnet = match args.value("--subnet") {
        Some(s) => {
            let subnet: Cidr = s.parse()?;
            if !subnet.addr().is_ipv4() || subnet.prefix() > 30 {
                return Err(Error::Invalid(format!("subnet {s} must be IPv4 with a prefix of at most /30")));
            }
            if let Some((other, dev)) = used.iter().find(|(u, _)| u.overlaps(&subnet)) {
                return Err(Error::Invalid(format!("subnet {s} overlaps {other} on {dev}")));
            }
            subnet.network()
        }
        None => default_subnets()
            .find(|c| !used.iter().any(|(u, _)| u.overlaps(c)))
            .ok_or_else(|| Error::Invalid("no free default subnet; give one with --subnet".into()))?,
    };
    let gateway = match args.value("--gateway") {
        Some(g) => {
            let ip: IpAddr = g.parse().map_err(|_| Error::Invalid(format!("gateway {g:?} is not an IP address")))?;
            if !subnet.is_host(ip) {
                return Err(Error::Invalid(format!(
                    "gateway {g} is outside subnet {subnet} (or is its network or broadcast address)"
                )));
            }
            Cidr::new(ip, subnet.prefix())?
        }
        None => subnet.nth(1).ok_or_else(|| Error::Invalid(format!("subnet {subnet} is too small")))?,
    };
    let ip_range = match args.value("--ip-range") {
        Some(r) => {
            let range: Cidr = r.parse()?;
            if range.prefix() < subnet.prefix() || !subnet.contains(range.addr()) {
                return Err(Error::Invalid(format!("ip-range {r} is not inside subnet {subnet}")));
            }
            range.network()
        }
        None => subnet,
    };
    let icc = match args.value("--icc") {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => return Err(Error::Invalid(format!("--icc must be true or false, not {other:?}"))),
    };
    let mtu = match args.value("--mtu") {
        Some(m) => Some(m.parse().map_err(|_| Error::Invalid(format!("--mtu {m:?} is not a number")))?),
        None => None,
    };
    Ok(Spec { name, bridge, subnet, gateway, ip_range, internal: args.has("--internal"), icc, mtu })
}

/// `create NAME [--subnet CIDR] [--gateway IP] [--ip-range CIDR] [--internal] [--icc=false] [--mtu N] [--bridge IFNAME]`.
pub fn create(session: &mut Session, args: &Args) -> Result<()> {
    let s = spec(&session.host, args)?;
    link::add_bridge(None, &s.bridge, s.mtu)?;
    let owner = format!("docker-bridge/{}", s.name);
    match configure(&s, &owner) {
        Ok(alias) => {
            let mtu = s.mtu.unwrap_or(1500);
            session.host.links.push(made_link(&s.bridge, None, alias, vec![s.gateway.to_string()], mtu));
            println!("{} {} subnet {} gateway {}", s.name, s.bridge, s.subnet, s.gateway.addr());
            Ok(())
        }
        Err(e) => {
            remove_rules(&owner);
            let _ = link::delete(None, &s.bridge);
            Err(e)
        }
    }
}

/// Configure a new bridge and its rules; returns the alias it was given.
fn configure(s: &Spec, owner: &str) -> Result<String> {
    let mut meta = Meta::default().with("network", &s.name).with("ip-range", s.ip_range);
    if s.internal {
        meta = meta.with("internal", 1);
    }
    if !s.icc {
        meta = meta.with("no-icc", 1);
    }
    link::set_alias(None, &s.bridge, &meta.render())?;
    addr::add(None, &s.bridge, &s.gateway)?;
    link::set_up(None, &s.bridge, true)?;
    sysctl::set(None, "net.ipv4.ip_forward", "1")?;
    // Lets 127.0.0.1:PORT be DNATed to containers on this bridge.
    sysctl::set(None, &format!("net/ipv4/conf/{}/route_localnet", s.bridge), "1")?;
    if s.internal {
        firewall::forward_accept(None, owner, Some(&s.bridge), Some(&s.bridge))?;
        firewall::isolate(None, owner, &s.bridge, Isolation::External)?;
    } else {
        firewall::masquerade(None, owner, &s.subnet.to_string(), Some(&s.bridge))?;
        firewall::forward_accept(None, owner, Some(&s.bridge), None)?;
    }
    firewall::isolate(None, owner, &s.bridge, Isolation::Networks)?;
    if !s.icc {
        firewall::isolate(None, owner, &s.bridge, Isolation::Ports)?;
    }
    Ok(meta.render())
}

/// Remove every rule owned by `owner` or by its containers; best effort.
pub fn remove_rules(owner: &str) {
    let nested = format!("{owner}/");
    if let Ok(rules) = firewall::list(None) {
        for rule in rules.iter().filter(|r| r.owner == owner || r.owner.starts_with(&nested)) {
            let _ = firewall::remove(None, &rule.id);
        }
    }
}

/// `rm NAME [--force]`.
pub fn rm(session: &mut Session, args: &Args) -> Result<()> {
    let name = args.required(1, "network NAME")?;
    let net = session.host.network(name)?;
    if !net.ports.is_empty() && !args.has("--force") {
        let names: Vec<&str> = net.ports.iter().map(|p| p.container.as_str()).collect();
        return Err(Error::Invalid(format!(
            "network {name} has active endpoints ({}); disconnect them first or use --force",
            names.join(", ")
        )));
    }
    // One pass removes the network's rules and every container's (their owners nest under it).
    remove_rules(&net.owner());
    for port in &net.ports {
        crate::container::detach(session, &net, port)?;
    }
    link::delete(None, &net.bridge)?;
    session.host.forget(&net.bridge);
    Ok(())
}

/// `ls`: one line per network.
pub fn ls(session: &Session) -> Result<()> {
    println!("{:<20} {:<15} {:<18} {:<15} CONTAINERS", "NAME", "BRIDGE", "SUBNET", "GATEWAY");
    for n in session.host.networks() {
        let mut flags = Vec::new();
        if n.internal {
            flags.push("internal");
        }
        if !n.icc {
            flags.push("icc=false");
        }
        println!(
            "{:<20} {:<15} {:<18} {:<15} {}{}",
            n.name,
            n.bridge,
            n.subnet.to_string(),
            n.gateway.addr().to_string(),
            n.ports.len(),
            if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(", ")) }
        );
    }
    Ok(())
}
