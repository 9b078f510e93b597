//! Containers: a namespace joined to a network by a veth pair, with an
//! address from IPAM, a default route, published ports and /etc files.

use std::collections::BTreeSet;
use std::net::IpAddr;

use netsh_guest::netns::EtcFile;
use netsh_guest::{Args, Cidr, Error, Result, addr, firewall, link, netns, route};

use crate::meta::{Meta, short_hash};
use crate::network::{Host, Network, Port, check_name, remove_rules};
use crate::ports;

/// `connect NAME CONTAINER [--ip IP] [--alias A]... [--publish SPEC]... [--pid PID]`.
pub fn connect(args: &Args) -> Result<()> {
    let host = Host::read()?;
    let net = host.network(args.required(1, "network NAME")?)?;
    let container = args.required(2, "CONTAINER")?.to_string();
    check_name("container", &container)?;
    if net.port(&container).is_some() {
        return Err(Error::Exists(format!("container {container} is already connected to network {}", net.name)));
    }
    for alias in args.values("--alias") {
        check_name("alias", alias)?;
    }
    let ip = allocate(&net, args.value("--ip"))?;
    let publishes: Vec<_> =
        args.values("--publish").iter().map(|p| ports::parse(p, &ip.to_string())).collect::<Result<_>>()?;
    if net.internal && !publishes.is_empty() {
        return Err(Error::Invalid(format!("network {} is internal: ports cannot be published", net.name)));
    }
    let pid: Option<u32> = match args.value("--pid") {
        Some(p) => Some(p.parse().map_err(|_| Error::Invalid(format!("--pid {p:?} is not a process id")))?),
        None => None,
    };
    let created = ensure_namespace(&container, pid)?;
    let port = Port {
        veth: format!("veth{}", short_hash(&[&net.name, &container])),
        container: container.clone(),
        ifname: String::new(),
        ip,
        created,
        pid: pid.is_some(),
        aliases: args.values("--alias").iter().map(|a| a.to_string()).collect(),
    };
    match attach(&net, port, &publishes) {
        Ok(port) => {
            println!("{container} {} {}/{}", port.ifname, port.ip, net.subnet.prefix());
            let peers: Vec<&str> = net.ports.iter().map(|p| p.container.as_str()).collect();
            refresh_files(&[container.as_str()], &peers, None)
        }
        Err(e) => {
            if created {
                let _ = netns::delete(&container);
            }
            Err(e)
        }
    }
}

/// Create the container's namespace, or name a process's; returns whether netsh created it.
fn ensure_namespace(container: &str, pid: Option<u32>) -> Result<bool> {
    let exists = netns::exists(container)?;
    match (exists, pid) {
        (true, None) => Ok(false),
        (true, Some(_)) => Err(Error::Exists(format!("namespace {container} already exists; drop --pid to use it"))),
        (false, Some(pid)) => netns::attach(container, pid).map(|()| true),
        (false, None) => netns::create(container).map(|()| true),
    }
}

/// Pick the container's address: `--ip` checked, or the first free one in the ip-range.
fn allocate(net: &Network, wanted: Option<&str>) -> Result<IpAddr> {
    let used: BTreeSet<IpAddr> = net.ports.iter().map(|p| p.ip).chain([net.gateway.addr()]).collect();
    if let Some(w) = wanted {
        let ip: IpAddr = w.parse().map_err(|_| Error::Invalid(format!("--ip {w:?} is not an IP address")))?;
        if !net.subnet.is_host(ip) {
            return Err(Error::Invalid(format!("--ip {ip} is outside subnet {} of network {}", net.subnet, net.name)));
        }
        if let Some(holder) = net.ports.iter().find(|p| p.ip == ip) {
            return Err(Error::Exists(format!("--ip {ip} is already in use by {}", holder.container)));
        }
        if ip == net.gateway.addr() {
            return Err(Error::Exists(format!("--ip {ip} is the gateway of network {}", net.name)));
        }
        return Ok(ip);
    }
    (1..=net.ip_range.host_count())
        .filter_map(|n| net.ip_range.nth(n))
        .map(|c| c.addr())
        .find(|ip| net.subnet.is_host(*ip) && !used.contains(ip))
        .ok_or_else(|| Error::Invalid(format!("network {} has no free address in {}", net.name, net.ip_range)))
}

/// The first free ethN in the container's namespace.
fn free_ifname(container: &str) -> Result<String> {
    let names: BTreeSet<String> = link::list(Some(container))?.into_iter().map(|l| l.name).collect();
    (0..).map(|i| format!("eth{i}")).find(|n| !names.contains(n)).ok_or_else(|| Error::msg("no free interface name"))
}

/// Create the veth pair and configure both ends; undo on failure.
fn attach(net: &Network, mut port: Port, publishes: &[netsh_guest::firewall::PublishSpec]) -> Result<Port> {
    let ns = port.container.clone();
    port.ifname = free_ifname(&ns)?;
    let veth = link::Veth {
        name: port.veth.clone(),
        peer: port.ifname.clone(),
        peer_ns: Some(ns.clone()),
        master: Some(net.bridge.clone()),
        up: true,
        mtu: Some(net.mtu),
    };
    link::add_veth(None, &veth)?;
    let configured = (|| {
        let mut meta = Meta::default()
            .with("container", &ns)
            .with("ifname", &port.ifname)
            .with("ip", port.ip)
            .with("created", u8::from(port.created))
            .with("pid", u8::from(port.pid));
        if !port.aliases.is_empty() {
            meta = meta.with("aliases", port.aliases.join(","));
        }
        link::set_alias(None, &port.veth, &meta.render())?;
        link::set_up(Some(&ns), "lo", true)?;
        addr::add(Some(&ns), &port.ifname, &Cidr::new(port.ip, net.subnet.prefix())?)?;
        link::set_up(Some(&ns), &port.ifname, true)?;
        if !route::list(Some(&ns))?.iter().any(|r| r.dest == "default") {
            route::add(Some(&ns), &route::default_via(&net.gateway.addr().to_string()))?;
        }
        let owner = net.container_owner(&ns);
        publishes.iter().try_for_each(|p| firewall::publish(None, &owner, p).map(drop))
    })();
    if let Err(e) = configured {
        remove_rules(&net.container_owner(&ns));
        let _ = link::delete(None, &port.veth);
        return Err(e);
    }
    Ok(port)
}

/// `disconnect NAME CONTAINER`.
pub fn disconnect(args: &Args) -> Result<()> {
    let net = Host::read()?.network(args.required(1, "network NAME")?)?;
    let container = args.required(2, "CONTAINER")?;
    let port = net
        .port(container)
        .ok_or_else(|| Error::NotFound(format!("container {container} is not connected to network {}", net.name)))?;
    detach(&net, port)?;
    let peers: Vec<&str> = net.ports.iter().map(|p| p.container.as_str()).filter(|c| *c != container).collect();
    refresh_files(&[], &peers, Some(container))
}

/// Remove a container from a network: its rules, its veth pair, and the
/// namespace if connect created it and nothing else uses it.
pub fn detach(net: &Network, port: &Port) -> Result<()> {
    remove_rules(&net.container_owner(&port.container));
    let other_networks =
        Host::read()?.networks().iter().any(|n| n.name != net.name && n.port(&port.container).is_some());
    let drop_namespace = port.created && !other_networks;
    // Deleting an unshared namespace removes its veth ends with it, faster than a link delete.
    if port.pid || !drop_namespace {
        link::delete(None, &port.veth)?;
    }
    if drop_namespace { netns::delete(&port.container) } else { Ok(()) }
}

/// Rewrite /etc/netns files: resolv.conf and hostname for `new` containers,
/// hosts for every container in `new` and `peers`, leaving out `gone` (a
/// deleted namespace's veth may linger in the kernel for a moment).
fn refresh_files(new: &[&str], peers: &[&str], gone: Option<&str>) -> Result<()> {
    let resolv = resolv_conf()?;
    for c in new {
        netns::write_etc(c, EtcFile::ResolvConf, &resolv)?;
        netns::write_etc(c, EtcFile::Hostname, &format!("{c}\n"))?;
    }
    let networks = Host::read()?.networks();
    let targets: BTreeSet<&str> = new.iter().chain(peers).copied().collect();
    for c in targets {
        netns::write_etc(c, EtcFile::Hosts, &hosts_for(&networks, c, gone))?;
    }
    Ok(())
}

/// localhost, then every container (with aliases) on each network `container` is on.
fn hosts_for(networks: &[Network], container: &str, gone: Option<&str>) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for net in networks.iter().filter(|n| n.port(container).is_some()) {
        for p in net.ports.iter().filter(|p| Some(p.container.as_str()) != gone) {
            let names: Vec<&str> =
                std::iter::once(p.container.as_str()).chain(p.aliases.iter().map(String::as_str)).collect();
            out.push_str(&format!("{}\t{}\n", p.ip, names.join(" ")));
        }
    }
    out
}

/// The host's resolv.conf without loopback resolvers (unreachable from a
/// container); Docker's public fallback when none is left.
fn resolv_conf() -> Result<String> {
    let host = match netns::read_etc(None, EtcFile::ResolvConf) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => String::new(),
        Err(e) => return Err(e),
    };
    let is_loopback = |line: &str| {
        line.split_whitespace().nth(1).and_then(|ip| ip.parse::<IpAddr>().ok()).is_some_and(|ip| ip.is_loopback())
    };
    let kept: Vec<&str> =
        host.lines().filter(|l| !(l.trim_start().starts_with("nameserver") && is_loopback(l))).collect();
    let mut out = kept.join("\n");
    if !kept.iter().any(|l| l.trim_start().starts_with("nameserver")) {
        out.push_str("\nnameserver 8.8.8.8\nnameserver 8.8.4.4");
    }
    out.push('\n');
    Ok(out.trim_start().to_string())
}
