//! One host's share of an overlay network: its bridge and VXLAN device
//! while it has members, and entries that make every remote member
//! reachable without a broadcast crossing the underlay: an FDB entry (MAC
//! to remote host) and a neighbour entry (IP to MAC, answered by the VXLAN
//! device's ARP proxy) per remote endpoint.

use std::net::IpAddr;

use netsh_guest::firewall::{self, Isolation};
use netsh_guest::neigh::{self, FdbEntry};
use netsh_guest::{Args, Error, Result, addr, dns, link, log, route, sysctl};

use crate::member;
use crate::store::{self, Endpoint, MTU, Network, VXLAN_PORT, bridge_name, vxlan_name};

/// The alias marking a bridge as an overlay network's, so `sync` finds
/// devices whose network was removed on another host.
const ALIAS_PREFIX: &str = "overlay:";

/// This host's underlay address: `--underlay`, else the first IPv4 address
/// of the interface holding the default route.
pub fn underlay(args: &Args) -> Result<IpAddr> {
    if let Some(text) = args.value("--underlay") {
        return text.parse().map_err(|_| Error::Invalid(format!("--underlay {text:?} is not an IP address")));
    }
    let missing =
        |why: &str| Error::Invalid(format!("cannot tell this host's underlay address: {why}; give --underlay IP"));
    let routes = route::list(None)?;
    let default = routes.iter().find(|r| r.dest == "default").ok_or_else(|| missing("no default route"))?;
    let dev = default.dev.as_deref().ok_or_else(|| missing("the default route names no device"))?;
    addr::list(None, Some(dev))?
        .iter()
        .filter_map(|a| a.cidr.split('/').next()?.parse::<IpAddr>().ok())
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| missing(&format!("{dev} has no IPv4 address")))
}

/// Whether this host has the devices of network `name`.
pub fn joined(name: &str) -> Result<bool> {
    match link::get(None, &bridge_name(name)) {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Give this host the network's devices, rules and DNS zone.
pub fn join(net: &Network, underlay: IpAddr) -> Result<()> {
    let bridge = net.bridge();
    link::add_bridge(None, &bridge, Some(MTU))?;
    link::set_alias(None, &bridge, &format!("{ALIAS_PREFIX}{}", net.name))?;
    addr::add(None, &bridge, &net.gateway)?;
    link::set_up(None, &bridge, true)?;
    let vxlan = link::Vxlan {
        name: net.vxlan(),
        vni: net.vni,
        port: VXLAN_PORT,
        local: Some(underlay.to_string()),
        dev: None,
        learning: false,
        proxy: true,
        mtu: Some(MTU),
        master: Some(bridge.clone()),
        up: true,
    };
    link::add_vxlan(None, &vxlan)?;
    sysctl::set(None, "net.ipv4.ip_forward", "1")?;
    let owner = net.owner();
    if net.internal {
        firewall::forward_accept(None, &owner, Some(&bridge), Some(&bridge))?;
        firewall::isolate(None, &owner, &bridge, Isolation::External)?;
    } else {
        firewall::masquerade(None, &owner, &net.subnet.to_string(), Some(&bridge))?;
        firewall::forward_accept(None, &owner, Some(&bridge), None)?;
    }
    firewall::isolate(None, &owner, &bridge, Isolation::Networks)?;
    dns::serve(&net.name, &net.gateway.addr().to_string(), &net.subnet, !net.internal)
}

/// Take this host out of the network `name`: zone, rules, then the devices
/// (the VXLAN device's entries go with it).
pub fn leave(name: &str) -> Result<()> {
    dns::unserve(name)?;
    let owner = format!("overlay/{name}");
    for rule in firewall::list(None)?.into_iter().filter(|r| r.owner == owner) {
        match firewall::remove(None, &rule.id) {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    for dev in [vxlan_name(name), bridge_name(name)] {
        match link::delete(None, &dev) {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// `sync [NAME] [--underlay IP]`.
pub fn sync_command(args: &Args) -> Result<()> {
    args.at_most(2)?;
    let me = underlay(args);
    let names = match args.positional().get(1) {
        Some(name) => vec![name.clone()],
        None => {
            let mut names = Network::names()?;
            names.extend(local_networks()?);
            names.sort();
            names.dedup();
            names
        }
    };
    for name in names {
        let report = sync(&name, &me)?;
        println!("{name}: {report}");
    }
    Ok(())
}

/// Networks whose bridge is on this host (by the bridge's alias).
fn local_networks() -> Result<Vec<String>> {
    Ok(link::list(None)?.into_iter().filter_map(|l| l.alias?.strip_prefix(ALIAS_PREFIX).map(String::from)).collect())
}

/// What one sync changed.
#[derive(Debug, Default)]
pub struct Report {
    added: usize,
    removed: usize,
    left: bool,
    members: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.left {
            return write!(f, "no members here; left the network");
        }
        write!(f, "{} local member(s), {} entries added, {} removed", self.members, self.added, self.removed)
    }
}

/// Make this host's state for network `name` match the store. Without
/// an underlay address this host can have no members: that is only an
/// error if it has the network's devices.
pub fn sync(name: &str, me: &Result<IpAddr>) -> Result<Report> {
    let net = Network::find(name)?;
    let endpoints = store::endpoints(name)?;
    let me = match me {
        Ok(me) => *me,
        Err(e) if joined(name)? => return Err(e.clone()),
        Err(_) => return Ok(Report::default()),
    };
    let mine: Vec<&Endpoint> = endpoints.iter().filter(|e| e.host == me).collect();
    if net.is_none() {
        // Removed with --force elsewhere: this host's members go too.
        mine.iter().try_for_each(|ep| member::forget_local(name, ep))?;
    }
    let members = mine.len();
    let Some(net) = net.filter(|_| members > 0) else {
        let left = joined(name)?;
        if left {
            leave(name)?;
        }
        return Ok(Report { left, ..Report::default() });
    };
    if !joined(name)? {
        join(&net, me)?;
    }
    let remote: Vec<&Endpoint> = endpoints.iter().filter(|e| e.host != me && e.ready()).collect();
    let mut report = Report { members, ..Report::default() };
    sync_fdb(&net, &remote, &mut report)?;
    sync_neighbours(&net, &remote, &mut report)?;
    sync_names(&net, &endpoints, &mut report)?;
    Ok(report)
}

fn sync_fdb(net: &Network, remote: &[&Endpoint], report: &mut Report) -> Result<()> {
    let dev = net.vxlan();
    let want: Vec<(String, String)> = remote.iter().map(|e| (e.mac.clone(), e.host.to_string())).collect();
    let have: Vec<(String, String)> =
        neigh::fdb_list(None, Some(&dev))?.into_iter().filter_map(|f| Some((f.mac, f.dst?))).collect();
    let entry = |(mac, dst): &(String, String)| FdbEntry { dev: dev.clone(), mac: mac.clone(), dst: Some(dst.clone()) };
    for stale in have.iter().filter(|h| !want.contains(h)) {
        neigh::fdb_delete(None, &entry(stale))?;
        report.removed += 1;
    }
    for missing in want.iter().filter(|w| !have.contains(w)) {
        neigh::fdb_append(None, &entry(missing))?;
        report.added += 1;
    }
    Ok(())
}

fn sync_neighbours(net: &Network, remote: &[&Endpoint], report: &mut Report) -> Result<()> {
    let dev = net.vxlan();
    let want: Vec<(String, String)> = remote.iter().map(|e| (e.ip.to_string(), e.mac.clone())).collect();
    let have: Vec<(String, String)> =
        neigh::list(None, Some(&dev))?.into_iter().filter(|n| n.state == "permanent").map(|n| (n.ip, n.mac)).collect();
    for (ip, _) in have.iter().filter(|h| !want.contains(h)) {
        neigh::delete(None, &dev, ip)?;
        report.removed += 1;
    }
    for (ip, mac) in want.iter().filter(|w| !have.contains(w)) {
        neigh::add(None, &dev, ip, mac)?;
        report.added += 1;
    }
    Ok(())
}

/// Every member's name and aliases, local or remote, in this host's resolver.
fn sync_names(net: &Network, endpoints: &[Endpoint], report: &mut Report) -> Result<()> {
    let mut want: Vec<(String, String, dns::Kind)> = Vec::new();
    for e in endpoints.iter().filter(|e| e.ready()) {
        want.push((e.container.clone(), e.ip.to_string(), dns::Kind::Own));
        want.extend(e.aliases.iter().map(|a| (a.clone(), e.ip.to_string(), dns::Kind::Alias)));
    }
    let have = dns::names(&net.name)?;
    for (name, ip) in have.iter().filter(|(n, i)| !want.iter().any(|(wn, wi, _)| wn == n && wi == i)) {
        dns::remove(&net.name, name, ip)?;
        report.removed += 1;
    }
    for (name, ip, kind) in want.iter().filter(|(n, i, _)| !have.iter().any(|(hn, hi)| hn == n && hi == i)) {
        dns::add(&net.name, name, ip, *kind)?;
        report.added += 1;
    }
    if report.added + report.removed > 0 {
        log::info(&format!("overlay {}: {} entries added, {} removed", net.name, report.added, report.removed));
    }
    Ok(())
}
