//! Containers on this host joining and leaving an overlay network.

use std::net::IpAddr;

use netsh_guest::meta::check_name;
use netsh_guest::netns::EtcFile;
use netsh_guest::{Args, Cidr, Error, Result, addr, dns, link, netns, route};

use crate::host;
use crate::store::{self, Endpoint, MTU, Network};

/// `connect NAME CONTAINER [--ip IP] [--alias A]... [--underlay IP]`:
/// everything checked, the endpoint and address taken in the store, the
/// host joined on its first member, then the container's end made and its
/// MAC published.
pub fn connect(args: &Args) -> Result<()> {
    args.at_most(3)?;
    let net = Network::load(args.required(1, "network NAME")?)?;
    let container = args.required(2, "CONTAINER")?.to_string();
    check_name("container", &container)?;
    let aliases: Vec<String> = args.values("--alias").iter().map(|a| a.to_string()).collect();
    aliases.iter().try_for_each(|a| check_name("alias", a))?;
    let wanted = args.value("--ip").map(|ip| wanted_ip(&net, ip)).transpose()?;
    let me = host::underlay(args)?;
    let created = !netns::exists(&container)?;
    let mut ep = Endpoint {
        container: container.clone(),
        ip: wanted.unwrap_or(net.gateway.addr()),
        mac: String::new(),
        host: me,
        aliases,
        ifname: if created { "eth0".into() } else { free_ifname(&container)? },
        created,
    };
    if let Some(other) = net.endpoint(&container)? {
        return Err(Error::Exists(format!(
            "container {container} is already connected to overlay network {} (on host {})",
            net.name, other.host
        )));
    }
    ep.ip = match wanted {
        Some(ip) if net.take_ip(ip, &container)? => ip,
        Some(ip) => return Err(Error::Exists(format!("address {ip} is taken on overlay network {}", net.name))),
        None => net.allocate(&container)?,
    };
    if !net.reserve_endpoint(&ep)? {
        return Err(Error::Exists(format!(
            "container {container} is already connected to overlay network {}",
            net.name
        )));
    }
    let first_member = !host::joined(&net.name)?;
    if first_member {
        host::join(&net, me)?;
    }
    attach(&net, &ep)?;
    ep.mac = link::get(Some(&container), &ep.ifname)?.mac;
    net.save_endpoint(&ep)?;
    if first_member {
        // A host joining needs every remote member; later members only their own names.
        host::sync(&net.name, &Ok(me))?;
    } else {
        dns::add(&net.name, &ep.container, &ep.ip.to_string(), dns::Kind::Own)?;
        for alias in &ep.aliases {
            dns::add(&net.name, alias, &ep.ip.to_string(), dns::Kind::Alias)?;
        }
    }
    println!("{} {} {}/{} {}", ep.container, ep.ifname, ep.ip, net.subnet.prefix(), ep.mac);
    Ok(())
}

/// `--ip`: a host address of the subnet, not the gateway.
fn wanted_ip(net: &Network, text: &str) -> Result<IpAddr> {
    let ip: IpAddr = text.parse().map_err(|_| Error::Invalid(format!("--ip {text:?} is not an IP address")))?;
    if !net.subnet.is_host(ip) {
        return Err(Error::Invalid(format!(
            "--ip {ip} is not a host address of subnet {} (outside it, or its network or broadcast address)",
            net.subnet
        )));
    }
    if ip == net.gateway.addr() {
        return Err(Error::Exists(format!("--ip {ip} is the gateway of overlay network {}", net.name)));
    }
    Ok(ip)
}

/// A container's MAC address from its IPv4 address, as Docker makes them
/// (02:42 and the address): an address reused on another container keeps
/// its MAC, so no neighbour anywhere holds a stale one.
fn mac_of(ip: IpAddr) -> String {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => [v6.octets()[12], v6.octets()[13], v6.octets()[14], v6.octets()[15]],
    };
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", octets[0], octets[1], octets[2], octets[3])
}

/// The first free ethN in an existing namespace.
fn free_ifname(container: &str) -> Result<String> {
    let names: Vec<String> = link::list(Some(container))?.into_iter().map(|l| l.name).collect();
    (0..).map(|i| format!("eth{i}")).find(|n| !names.contains(n)).ok_or_else(|| Error::msg("no free interface name"))
}

/// The container's namespace (if new), veth pair, address, default route and /etc files.
fn attach(net: &Network, ep: &Endpoint) -> Result<()> {
    let ns = ep.container.as_str();
    if ep.created {
        netns::create(ns)?;
    }
    let veth = link::Veth {
        name: ep.veth(&net.name),
        peer: ep.ifname.clone(),
        peer_ns: Some(ns.into()),
        peer_mac: Some(mac_of(ep.ip)),
        master: Some(net.bridge()),
        up: true,
        mtu: Some(MTU),
        hairpin: false,
    };
    link::add_veth(None, &veth)?;
    link::set_up(Some(ns), "lo", true)?;
    addr::add(Some(ns), &ep.ifname, &Cidr::new(ep.ip, net.subnet.prefix())?)?;
    link::set_up(Some(ns), &ep.ifname, true)?;
    if !route::list(Some(ns))?.iter().any(|r| r.dest == "default") {
        route::add(Some(ns), &route::default_via(&net.gateway.addr().to_string()))?;
    }
    if ep.created {
        netns::write_etc(ns, EtcFile::ResolvConf, &format!("nameserver {}\n", net.gateway.addr()))?;
        netns::write_etc(ns, EtcFile::Hostname, &format!("{ns}\n"))?;
    }
    Ok(())
}

/// `disconnect NAME CONTAINER [--underlay IP]`: only on the container's own host.
pub fn disconnect(args: &Args) -> Result<()> {
    args.at_most(3)?;
    let net = Network::load(args.required(1, "network NAME")?)?;
    let container = args.required(2, "CONTAINER")?;
    let ep = net.endpoint(container)?.ok_or_else(|| {
        Error::NotFound(format!("container {container} is not connected to overlay network {}", net.name))
    })?;
    let me = host::underlay(args)?;
    if ep.host != me {
        return Err(Error::Invalid(format!(
            "container {container} is on host {}, not this one ({me}); disconnect it there",
            ep.host
        )));
    }
    release(&net, &ep, me)
}

/// Release a local endpoint, then leave the network if it was the last member here.
pub fn release(net: &Network, ep: &Endpoint, me: IpAddr) -> Result<()> {
    forget_local(&net.name, ep)?;
    host::sync(&net.name, &Ok(me)).map(drop)
}

/// Forget a local endpoint of `network` in the store and this host's
/// resolver, then delete its veth (or the namespace connect made):
/// deletions last, because they cannot be undone.
pub fn forget_local(network: &str, ep: &Endpoint) -> Result<()> {
    store::forget_endpoint(network, ep)?;
    dns::remove(network, &ep.container, &ep.ip.to_string())?;
    for alias in &ep.aliases {
        dns::remove(network, alias, &ep.ip.to_string())?;
    }
    let gone = |r: Result<()>| match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    };
    match ep.created {
        true => gone(netns::delete(&ep.container)),
        false => gone(link::delete(None, &ep.veth(network))),
    }
}
