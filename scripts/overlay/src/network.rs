//! Overlay networks in the store: create, rm, inspect, ls. Creating one
//! changes no host; hosts join when a container connects there.

use std::net::IpAddr;

use netsh_guest::json::{list, string as s};
use netsh_guest::meta::{check_name, long_hash};
use netsh_guest::{Args, Cidr, Error, Result, addr};

use crate::host;
use crate::store::{self, MTU, Network, VXLAN_PORT};

/// Largest VXLAN id.
const VNI_MAX: u32 = (1 << 24) - 1;
/// Default VXLAN ids start above Docker's (4096 and up).
const VNI_FIRST: u32 = 4097;

/// `create NAME [--subnet CIDR] [--gateway IP] [--vni N] [--internal]`.
pub fn create(args: &Args) -> Result<()> {
    args.at_most(2)?;
    let name = args.required(1, "network NAME")?.to_string();
    check_name("network", &name)?;
    if Network::find(&name)?.is_some() {
        return Err(Error::Exists(format!("overlay network {name} already exists")));
    }
    let wanted_vni = args.value("--vni").map(parse_vni).transpose()?;
    let wanted_subnet = args.value("--subnet").map(parse_subnet).transpose()?;
    let subnet = match wanted_subnet {
        Some(subnet) => match store::reserve_subnet(&subnet, &name)? {
            None => subnet,
            Some(owner) => return Err(Error::Exists(format!("subnet {subnet} is taken by overlay network {owner}"))),
        },
        None => free_subnet(&name)?,
    };
    let gateway = subnet.gateway(args.value("--gateway"))?;
    let vni = match wanted_vni {
        Some(vni) if store::reserve_vni(vni, &name)? => vni,
        Some(vni) => return Err(Error::Exists(format!("VXLAN id {vni} is taken by another overlay network"))),
        None => free_vni(&name)?,
    };
    let net = Network { name: name.clone(), subnet, gateway, vni, internal: args.has("--internal") };
    if !net.claim()? {
        return Err(Error::Exists(format!("overlay network {name} already exists")));
    }
    println!("{name} subnet {subnet} gateway {} vni {vni}", gateway.addr());
    Ok(())
}

fn parse_vni(text: &str) -> Result<u32> {
    match text.parse::<u32>() {
        Ok(vni) if (1..=VNI_MAX).contains(&vni) => Ok(vni),
        _ => Err(Error::Invalid(format!("--vni {text:?} must be a number from 1 to {VNI_MAX}"))),
    }
}

fn parse_subnet(text: &str) -> Result<Cidr> {
    let subnet: Cidr = text.parse()?;
    if !subnet.addr().is_ipv4() || subnet.prefix() > 29 {
        return Err(Error::Invalid(format!("subnet {text} must be IPv4 with a prefix of at most /29")));
    }
    Ok(subnet.network())
}

/// The first 10.0.N.0/24 that neither another overlay nor this host's interfaces use.
fn free_subnet(name: &str) -> Result<Cidr> {
    let local: Vec<Cidr> = addr::list(None, None)?.iter().filter_map(|a| a.cidr.parse::<Cidr>().ok()).collect();
    for n in 0..=255u8 {
        let candidate: Cidr = format!("10.0.{n}.0/24").parse()?;
        if local.iter().any(|l| l.overlaps(&candidate)) {
            continue;
        }
        if store::reserve_subnet(&candidate, name)?.is_none() {
            return Ok(candidate);
        }
    }
    Err(Error::Invalid("no free subnet in 10.0.0.0/16; give one with --subnet".into()))
}

/// A VXLAN id derived from the name, or the next free one.
fn free_vni(name: &str) -> Result<u32> {
    let span = VNI_MAX - VNI_FIRST;
    let start = u32::from_str_radix(&long_hash(&[name])[..6], 16).unwrap_or(0) % span;
    for i in 0..64 {
        let vni = VNI_FIRST + (start + i) % span;
        if store::reserve_vni(vni, name)? {
            return Ok(vni);
        }
    }
    Err(Error::Invalid("no free VXLAN id found; give one with --vni".into()))
}

/// `rm NAME [--force]`: refused while any host has members, unless
/// --force; this host's members are released at once, other hosts release
/// theirs (and leave) on their next sync.
pub fn rm(args: &Args) -> Result<()> {
    args.at_most(2)?;
    let net = Network::load(args.required(1, "network NAME")?)?;
    let endpoints = net.endpoints()?;
    if !endpoints.is_empty() && !args.has("--force") {
        let names: Vec<String> = endpoints.iter().map(|e| format!("{} on {}", e.container, e.host)).collect();
        return Err(Error::Invalid(format!(
            "overlay network {} has members ({}); disconnect them first or use --force",
            net.name,
            names.join(", ")
        )));
    }
    net.forget()?;
    host::sync(&net.name, &host::underlay(args)).map(drop)
}

/// `inspect NAME`: JSON shaped like `docker network inspect`.
pub fn inspect(args: &Args) -> Result<()> {
    args.at_most(2)?;
    let net = Network::load(args.required(1, "network NAME")?)?;
    let endpoints = net.endpoints()?;
    let containers: Vec<String> = endpoints
        .iter()
        .map(|e| {
            let aliases: Vec<String> = e.aliases.iter().map(|a| s(a)).collect();
            format!(
                "      {}: {{\"Name\": {}, \"EndpointID\": {}, \"MacAddress\": {}, \"IPv4Address\": {}, \"Aliases\": {}, \"Host\": {}}}",
                s(&e.container),
                s(&e.container),
                s(&long_hash(&[&net.name, &e.container])),
                s(&e.mac),
                s(&format!("{}/{}", e.ip, net.subnet.prefix())),
                list(&aliases),
                s(&e.host.to_string())
            )
        })
        .collect();
    let mut hosts: Vec<String> = endpoints.iter().map(|e| e.host.to_string()).collect();
    hosts.sort();
    hosts.dedup();
    let peers: Vec<String> = hosts.iter().map(|h| format!("{{\"IP\": {}}}", s(h))).collect();
    println!(
        "[\n  {{\n    \"Name\": {},\n    \"Id\": {},\n    \"Scope\": \"global\",\n    \"Driver\": \"overlay\",\n    \"EnableIPv6\": false,\n    \"IPAM\": {{\"Driver\": \"default\", \"Config\": [{{\"Subnet\": {}, \"Gateway\": {}}}]}},\n    \"Internal\": {},\n    \"Containers\": {{\n{}\n    }},\n    \"Options\": {{\"com.docker.network.driver.overlay.vxlanid_list\": {}, \"com.docker.network.driver.mtu\": {}, \"vxlan.port\": {}}},\n    \"Peers\": {}\n  }}\n]",
        s(&net.name),
        s(&long_hash(&[&net.name, &net.subnet.to_string()])),
        s(&net.subnet.to_string()),
        s(&net.gateway.addr().to_string()),
        net.internal,
        containers.join(",\n"),
        s(&net.vni.to_string()),
        s(&MTU.to_string()),
        s(&VXLAN_PORT.to_string()),
        list(&peers)
    );
    Ok(())
}

/// `ls`: one line per network.
pub fn ls(args: &Args) -> Result<()> {
    args.at_most(1)?;
    println!("{:<20} {:<8} {:<18} {:<9} {:<10} HOSTS", "NAME", "DRIVER", "SUBNET", "VNI", "CONTAINERS");
    for name in Network::names()? {
        let Some(net) = Network::find(&name)? else { continue };
        let endpoints = net.endpoints()?;
        let mut hosts: Vec<IpAddr> = endpoints.iter().map(|e| e.host).collect();
        hosts.sort();
        hosts.dedup();
        let internal = if net.internal { " (internal)" } else { "" };
        println!(
            "{:<20} {:<8} {:<18} {:<9} {:<10} {}{internal}",
            net.name,
            "overlay",
            net.subnet.to_string(),
            net.vni,
            endpoints.len(),
            hosts.len()
        );
    }
    Ok(())
}
