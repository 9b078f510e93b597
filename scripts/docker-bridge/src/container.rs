//! Containers: a namespace joined to a network by a veth pair, with an
//! address from IPAM, a default route and published ports.

use std::collections::BTreeSet;
use std::net::IpAddr;

use netsh_guest::firewall::PublishSpec;
use netsh_guest::{Args, Cidr, Error, Result, addr, firewall, link, netns, route};

use crate::meta::{Meta, short_hash};
use crate::network::{Network, Port, check_name, made_link, remove_rules};
use crate::ports;
use crate::session::Session;

/// `connect NAME CONTAINER [--ip IP] [--alias A]... [--publish SPEC]... [--pid PID]`.
pub fn connect(session: &mut Session, args: &Args) -> Result<()> {
    let net = session.host.network(args.required(1, "network NAME")?)?;
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
        Ok((port, alias)) => {
            println!("{container} {} {}/{}", port.ifname, port.ip, net.subnet.prefix());
            session.host.links.push(made_link(&port.veth, Some(&net.bridge), alias, Vec::new(), net.mtu));
            session.joined(&container, &net);
            Ok(())
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
    let used: BTreeSet<IpAddr> = net.ports.iter().map(|p| p.ip).chain([net.gateway.addr()]).collect();
    (1..=net.ip_range.host_count())
        .filter_map(|n| net.ip_range.nth(n))
        .map(|c| c.addr())
        .find(|ip| net.subnet.is_host(*ip) && !used.contains(ip))
        .ok_or_else(|| Error::Invalid(format!("network {} has no free address in {}", net.name, net.ip_range)))
}

/// The first free ethN in the container's namespace (eth0 in a new one).
fn free_ifname(container: &str, created: bool) -> Result<String> {
    if created {
        return Ok("eth0".into());
    }
    let names: BTreeSet<String> = link::list(Some(container))?.into_iter().map(|l| l.name).collect();
    (0..).map(|i| format!("eth{i}")).find(|n| !names.contains(n)).ok_or_else(|| Error::msg("no free interface name"))
}

/// Create the veth pair and configure both ends; undo on failure. Returns
/// the port and the alias its host end was given.
fn attach(net: &Network, mut port: Port, publishes: &[PublishSpec]) -> Result<(Port, String)> {
    let ns = port.container.clone();
    port.ifname = free_ifname(&ns, port.created && !port.pid)?;
    let veth = link::Veth {
        name: port.veth.clone(),
        peer: port.ifname.clone(),
        peer_ns: Some(ns.clone()),
        master: Some(net.bridge.clone()),
        up: true,
        mtu: Some(net.mtu),
        hairpin: true,
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
        let alias = meta.render();
        link::set_alias(None, &port.veth, &alias)?;
        link::set_up(Some(&ns), "lo", true)?;
        addr::add(Some(&ns), &port.ifname, &Cidr::new(port.ip, net.subnet.prefix())?)?;
        link::set_up(Some(&ns), &port.ifname, true)?;
        let fresh = port.created && !port.pid;
        if fresh || !route::list(Some(&ns))?.iter().any(|r| r.dest == "default") {
            route::add(Some(&ns), &route::default_via(&net.gateway.addr().to_string()))?;
        }
        let owner = net.container_owner(&ns);
        publishes.iter().try_for_each(|p| firewall::publish(None, &owner, p).map(drop))?;
        Ok(alias)
    })();
    match configured {
        Ok(alias) => Ok((port, alias)),
        Err(e) => {
            remove_rules(&net.container_owner(&ns));
            let _ = link::delete(None, &port.veth);
            Err(e)
        }
    }
}

/// `disconnect NAME CONTAINER`.
pub fn disconnect(session: &mut Session, args: &Args) -> Result<()> {
    let net = session.host.network(args.required(1, "network NAME")?)?;
    let container = args.required(2, "CONTAINER")?;
    let port = net
        .port(container)
        .ok_or_else(|| Error::NotFound(format!("container {container} is not connected to network {}", net.name)))?;
    remove_rules(&net.container_owner(container));
    detach(session, &net, port)
}

/// Remove a container from a network: its veth pair, and the namespace if
/// connect created it and no other network uses it. (Its rules are the caller's.)
pub fn detach(session: &mut Session, net: &Network, port: &Port) -> Result<()> {
    let elsewhere = session.host.networks().iter().any(|n| n.name != net.name && n.port(&port.container).is_some());
    let drop_namespace = port.created && !elsewhere;
    // Deleting an unshared namespace removes its veth ends with it, faster than a link delete.
    if port.pid || !drop_namespace {
        link::delete(None, &port.veth)?;
    }
    if drop_namespace {
        netns::delete(&port.container)?;
    }
    session.forget_link(&port.veth);
    session.left(&port.container, net, drop_namespace);
    Ok(())
}
