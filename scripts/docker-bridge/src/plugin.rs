//! docker-bridge as a CNI plugin. The conflist's `network` is a
//! docker-bridge network (made beforehand with `create`): ADD connects the
//! runtime's namespace to it, DEL disconnects (and succeeds when nothing is
//! left to remove), CHECK verifies the attachment, GC forgets attachments
//! the runtime no longer has, STATUS says whether the network is usable.

use netsh_guest::cni::{self, Command, Interface, Ip, Reply, Request, Route};
use netsh_guest::{Error, Result, link};

use crate::container::{self, Joining, Place};
use crate::store::{Endpoint, Network, Pool};
use netsh_guest::meta::check_name;

/// Answer one CNI call.
pub fn answer(request: Request) -> Result<Reply> {
    let net = match Network::load(&request.network) {
        Ok(net) => net,
        // Nothing of this network is left to remove.
        Err(e) if e.is_not_found() && matches!(request.command, Command::Del | Command::Gc) => return Ok(cni::empty()),
        Err(e) if e.is_not_found() => {
            return Err(Error::Invalid(format!(
                "docker-bridge network {0} does not exist; create it first: netsh run docker-bridge.wasm -- create {0} [--subnet CIDR]",
                request.network
            )));
        }
        Err(e) => return Err(e),
    };
    match request.command {
        Command::Add => add(&net, &request),
        Command::Del => del(&net, &request).map(|()| cni::empty()),
        Command::Check => check(&net, &request).map(|()| cni::empty()),
        Command::Status => link::get(None, &net.bridge).map(|_| cni::empty()),
        Command::Gc => gc(&net, &request).map(|()| cni::empty()),
    }
}

/// The endpoint name of a runtime's container: the first 12 characters of
/// its id, as `podman ps` and `docker ps` show it.
fn endpoint_name(container_id: &str) -> Result<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if container_id.is_empty() || !container_id.chars().all(ok) {
        return Err(Error::Invalid(format!(
            "CNI_CONTAINERID {container_id:?} must be letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(container_id.chars().take(12).collect())
}

/// The names a runtime's container answers to: the runtime's aliases and
/// its name (podman passes it as `K8S_POD_NAME` in CNI_ARGS), if valid.
fn runtime_names(request: &Request) -> Vec<String> {
    let name = request.args.iter().find(|(k, _)| k == "K8S_POD_NAME").map(|(_, v)| v.clone());
    let mut names = request.aliases.clone();
    names.extend(name.filter(|n| check_name("container", n).is_ok() && !request.aliases.contains(n)));
    names
}

fn add(net: &Network, request: &Request) -> Result<Reply> {
    let netns = request
        .netns
        .clone()
        .ok_or_else(|| Error::Invalid("ADD needs the container's network namespace (CNI_NETNS)".into()))?;
    let publishes = request
        .port_mappings
        .iter()
        .map(|p| match p.host_ip.as_deref() {
            Some(ip) if ip.contains(':') => format!("[{ip}]:{}:{}/{}", p.host_port, p.container_port, p.protocol),
            Some(ip) if !ip.is_empty() => format!("{ip}:{}:{}/{}", p.host_port, p.container_port, p.protocol),
            _ => format!("{}:{}/{}", p.host_port, p.container_port, p.protocol),
        })
        .collect();
    let joining = Joining {
        container: endpoint_name(&request.container_id)?,
        netns: Place::Runtime { netns, ifname: request.ifname.clone() },
        wanted_ip: requested_ip(request, false),
        wanted_ip6: requested_ip(request, true),
        // The default network has no names.
        aliases: if net.is_default() { Vec::new() } else { runtime_names(request) },
        links: Vec::new(),
        extra_hosts: Vec::new(),
        exposed: Vec::new(),
        publishes,
        etc: Default::default(),
    };
    let (ep, _) = container::join(net, joining)?;
    reply(net, &ep)
}

/// The runtime's static address of one family (`ips` in the runtime
/// config), without its prefix.
fn requested_ip(request: &Request, v6: bool) -> Option<String> {
    let bare = |ip: &String| ip.split('/').next().unwrap_or(ip).to_string();
    request.ips.iter().map(bare).find(|ip| ip.contains(':') == v6)
}

/// The endpoint's addresses with their pools: IPv4, then IPv6 on a dual-stack network.
fn addresses(net: &Network, ep: &Endpoint) -> Vec<(String, Pool)> {
    let v4 = (ep.ip, net.v4());
    std::iter::once(v4)
        .chain(ep.ip6.zip(net.ipv6))
        .map(|(ip, pool)| (format!("{ip}/{}", pool.subnet.prefix()), pool))
        .collect()
}

/// ADD's result: both veth ends, each address with its gateway, the
/// default routes, and the gateway as nameserver.
fn reply(net: &Network, ep: &Endpoint) -> Result<Reply> {
    let host = link::get(None, &ep.veth)?;
    let inside = link::get(Some(&ep.netns), &ep.ifname)?;
    let gateway = net.gateway.addr().to_string();
    let addresses = addresses(net, ep);
    Ok(Reply {
        interfaces: vec![
            Interface { name: host.name, mac: host.mac, in_container: false },
            Interface { name: inside.name, mac: inside.mac, in_container: true },
        ],
        ips: addresses
            .iter()
            .map(|(address, pool)| Ip {
                address: address.clone(),
                gateway: Some(pool.gateway.addr().to_string()),
                interface: Some(1),
            })
            .collect(),
        // netsh's resolver on the gateway: the runtime writes it into the container's resolv.conf.
        nameservers: vec![gateway],
        routes: addresses
            .iter()
            .map(|(_, pool)| {
                let any = if pool.subnet.addr().is_ipv6() { "::/0" } else { "0.0.0.0/0" };
                Route { dst: any.into(), gw: Some(pool.gateway.addr().to_string()) }
            })
            .collect(),
    })
}

/// DEL: whatever is left of the attachment goes; nothing left is success.
fn del(net: &Network, request: &Request) -> Result<()> {
    match net.endpoint(&endpoint_name(&request.container_id)?)? {
        Some(ep) => container::release(net, &ep)?.carry_out(),
        None => Ok(()),
    }
}

/// CHECK: the endpoint is stored, its veth is on the bridge, and the
/// container's interface holds its address.
fn check(net: &Network, request: &Request) -> Result<()> {
    let name = endpoint_name(&request.container_id)?;
    let ep = net
        .endpoint(&name)?
        .ok_or_else(|| Error::NotFound(format!("container {name} is not attached to network {}", net.name)))?;
    let host = link::get(None, &ep.veth)?;
    if host.master.as_deref() != Some(net.bridge.as_str()) {
        return Err(Error::Failed(format!("{} is no longer a port of bridge {}", ep.veth, net.bridge)));
    }
    let netns = request.netns.as_deref().unwrap_or(&ep.netns);
    let inside = link::get(Some(netns), &ep.ifname)?;
    match addresses(net, &ep).into_iter().find(|(address, _)| !inside.addresses.contains(address)) {
        Some((address, _)) => Err(Error::Failed(format!("{} in {netns} lost its address {address}", ep.ifname))),
        None => Ok(()),
    }
}

/// GC: release the runtime's attachments to this network that are not in
/// `valid-attachments` (attachments made with `connect` are left alone).
fn gc(net: &Network, request: &Request) -> Result<()> {
    let valid: Vec<String> =
        request.valid_attachments.iter().map(|(id, _)| endpoint_name(id)).collect::<Result<_>>()?;
    for ep in net.endpoints()?.into_iter().filter(|ep| ep.runtime && !valid.contains(&ep.container)) {
        container::release(net, &ep)?.carry_out()?;
    }
    Ok(())
}
