//! Containers: a namespace joined to a network by a veth pair, with an
//! address taken in the store, a default route, published ports and a line
//! in the network's hosts file. Every call touches only its own container.

use std::net::IpAddr;

use netsh_guest::dns;
use netsh_guest::firewall::{self, LinkSpec};
use netsh_guest::netns::EtcFile;
use netsh_guest::{Args, Cidr, Error, Result, addr, link, netns, route};

use crate::network::{default_network, remove_rule, repair_rules};
use crate::ports::{self, Publish};
use crate::store::{self, Endpoint, Link, Network, Pool, memberships};
use netsh_guest::meta::check_name;
use netsh_guest::meta::short_hash;

/// `connect NAME CONTAINER [--ip IP] [--ip6 IP] [--alias A]... [--publish SPEC]...
/// [--publish-all --expose PORT...] [--pid PID] [--hostname H] [--dns IP]...
/// [--dns-search D]... [--dns-option O]...`; prints the endpoint, then each
/// published port as `docker port` does.
pub fn connect(args: &Args) -> Result<()> {
    args.at_most(3)?;
    let name = args.required(1, "network NAME")?;
    let net = if name == store::DEFAULT_NETWORK { default_network()? } else { Network::load(name)? };
    let container = args.required(2, "CONTAINER")?.to_string();
    let pid: Option<u32> = match args.value("--pid") {
        Some(p) => Some(p.parse().map_err(|_| Error::Invalid(format!("--pid {p:?} is not a process id")))?),
        None => None,
    };
    let joining = Joining {
        netns: Place::Named { pid },
        container,
        wanted_ip: args.value("--ip").map(String::from),
        wanted_ip6: args.value("--ip6").map(String::from),
        aliases: args.values("--alias").iter().map(|a| a.to_string()).collect(),
        links: args.values("--link").iter().map(|l| l.parse()).collect::<Result<_>>()?,
        extra_hosts: args.values("--add-host").iter().map(|h| h.to_string()).collect(),
        exposed: args.values("--expose").iter().map(|p| p.to_string()).collect(),
        publishes: publishes(args)?,
        etc: EtcOptions::from_args(args)?,
    };
    let (ep, published) = join(&net, joining)?;
    let v6 = ep.ip6.zip(net.ipv6).map(|(ip, p)| format!(" {ip}/{}", p.subnet.prefix())).unwrap_or_default();
    println!("{} {} {}/{}{v6}", ep.container, ep.ifname, ep.ip, net.subnet.prefix());
    published.iter().for_each(|p| println!("{p}"));
    Ok(())
}

/// `--publish` specs, and with `--publish-all` the `--expose`d ports, each on
/// a host port netsh picks (there is no image whose ports -P could take).
fn publishes(args: &Args) -> Result<Vec<String>> {
    let mut specs: Vec<String> = args.values("--publish").iter().map(|p| p.to_string()).collect();
    let exposed = args.values("--expose");
    if !args.has("--publish-all") {
        return Ok(specs);
    }
    if exposed.is_empty() {
        return Err(Error::Usage("--publish-all (-P) publishes the ports given with --expose; name some".into()));
    }
    for port in exposed {
        ports::exposed(port)?;
        specs.push(port.to_string());
    }
    Ok(specs)
}

/// Where a joining container's namespace comes from.
pub enum Place {
    /// The namespace named like the container (made if missing), or a
    /// process's, named so with `pid`.
    Named { pid: Option<u32> },
    /// A container runtime's namespace, and the interface to make in it.
    Runtime { netns: String, ifname: String },
}

/// A container joining a network.
pub struct Joining {
    pub container: String,
    pub netns: Place,
    pub wanted_ip: Option<String>,
    /// `--ip6`, on a dual-stack network.
    pub wanted_ip6: Option<String>,
    pub aliases: Vec<String>,
    pub links: Vec<Link>,
    /// `--add-host NAME:IP` specs (IP may be `host-gateway`).
    pub extra_hosts: Vec<String>,
    /// `--expose` specs, `PORT[-END][/PROTO]`.
    pub exposed: Vec<String>,
    /// `[HOSTIP:]HOSTPORT[-END]:PORT[/PROTO]` specs.
    pub publishes: Vec<String>,
    pub etc: EtcOptions,
}

/// What a namespace connect creates gets in its /etc files instead of the defaults.
#[derive(Debug, Default)]
pub struct EtcOptions {
    pub hostname: Option<String>,
    /// Nameservers replacing netsh's resolver.
    pub dns: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl EtcOptions {
    /// `--hostname`, `--dns`, `--dns-search`, `--dns-option`, checked.
    fn from_args(args: &Args) -> Result<EtcOptions> {
        let owned = |name: &str| args.values(name).iter().map(|v| v.to_string()).collect::<Vec<_>>();
        let etc = EtcOptions {
            hostname: args.value("--hostname").map(String::from),
            dns: owned("--dns"),
            search: owned("--dns-search"),
            options: owned("--dns-option"),
        };
        if let Some(h) = &etc.hostname {
            check_name("host", h)?;
        }
        if let Some(bad) = etc.dns.iter().find(|ip| ip.parse::<IpAddr>().is_err()) {
            return Err(Error::Invalid(format!("--dns {bad:?} is not an IP address")));
        }
        let word = |v: &String| v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control());
        if let Some(bad) = etc.search.iter().chain(&etc.options).find(|v| word(v)) {
            return Err(Error::Invalid(format!("{bad:?} must be one word (a domain, or an option like ndots:2)")));
        }
        Ok(etc)
    }

    fn is_empty(&self) -> bool {
        self.hostname.is_none() && self.dns.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

/// Connect a container: everything is checked, then its address taken,
/// then the kernel changed, then its endpoint stored. The endpoint, and its
/// published ports as `docker port` shows them.
pub fn join(net: &Network, joining: Joining) -> Result<(Endpoint, Vec<String>)> {
    let container = joining.container;
    check_name("container", &container)?;
    if crate::modes::on_none(&container)? {
        return Err(Error::Invalid(format!(
            "container {container} is on network none (Docker's --net none); `disconnect none {container}` first"
        )));
    }
    if let Some(owner) = crate::modes::shares(&container)? {
        return Err(Error::Invalid(format!(
            "container {container} shares {owner}'s namespace (--net container:{owner}); it joins no network itself"
        )));
    }
    joining.aliases.iter().try_for_each(|a| check_name("alias", a))?;
    if net.is_default() && !joining.aliases.is_empty() {
        return Err(Error::Invalid(format!(
            "the default network {} has no names, so no aliases; use a network you create, or --link",
            net.name
        )));
    }
    joining.exposed.iter().try_for_each(|p| ports::exposed_ports(p).map(drop))?;
    let link_lines = linked_hosts_lines(net, &joining.links)?;
    let extra_hosts = joining.extra_hosts.iter().map(|h| extra_host(net, h)).collect::<Result<Vec<_>>>()?;
    if net.internal && !joining.publishes.is_empty() {
        return Err(Error::Invalid(format!("network {} is internal: ports cannot be published", net.name)));
    }
    if !net.firewall && !joining.publishes.is_empty() {
        return Err(Error::Invalid(format!(
            "network {} was created with --iptables=false: netsh makes no firewall rules for it, so it publishes no ports",
            net.name
        )));
    }
    if !joining.etc.is_empty() {
        let fresh = matches!(joining.netns, Place::Named { pid: None }) && !netns::exists(&container)?;
        if !fresh {
            return Err(Error::Invalid(format!(
                "--hostname and --dns* shape the files of a namespace connect creates; {container} already has one"
            )));
        }
    }
    let wanted = joining.wanted_ip.as_deref().map(|w| wanted_ip(net, &net.v4(), w, "--ip")).transpose()?;
    let wanted6 = match (joining.wanted_ip6.as_deref(), &net.ipv6) {
        (Some(w), Some(v6)) => Some(wanted_ip(net, v6, w, "--ip6")?),
        (Some(_), None) => return Err(no_ipv6(net, "--ip6")),
        (None, _) => None,
    };
    let mut publishes: Vec<Publish> = joining.publishes.iter().map(|p| ports::parse(p)).collect::<Result<_>>()?;
    if net.ipv6.is_none() && publishes.iter().any(Publish::on_ipv6) {
        return Err(no_ipv6(net, "publishing on an IPv6 host address"));
    }
    for p in publishes.iter_mut().filter(|p| p.unbound()) {
        p.spec.host_ip = net.host_binding.clone();
    }
    if !net.reserve_endpoint(&container)? {
        return Err(Error::Exists(format!("container {container} is already connected to network {}", net.name)));
    }
    let ip = take_or_allocate(net, &net.v4(), wanted, &container)?;
    let ip6 = net.ipv6.map(|v6| take_or_allocate(net, &v6, wanted6, &container)).transpose()?;
    let others = memberships(&container)?;
    let (netns, ifname, created, pid, runtime) = match joining.netns {
        Place::Named { pid } => {
            let created = ensure_namespace(&container, pid)?;
            let ifname = free_ifname(&container, created && pid.is_none())?;
            (container.clone(), ifname, created, pid.is_some(), false)
        }
        Place::Runtime { netns, ifname } => (netns, ifname, false, false, true),
    };
    let mut ep = Endpoint {
        veth: format!("veth{}", short_hash(&[&net.name, &container])),
        container,
        netns,
        runtime,
        ifname,
        ip,
        ip6,
        created,
        pid,
        aliases: joining.aliases,
        links: joining.links,
        extra_hosts,
        exposed: joining.exposed,
        rules: Vec::new(),
    };
    if created {
        store::made_namespace(&ep.container)?;
    }
    attach(net, &ep, others.is_empty())?;
    let owner = net.container_owner(&ep.container);
    let mut published = Vec::new();
    for p in &publishes {
        for (id, shown) in ports::publish(&owner, p, ep.ip, ep.ip6)? {
            ep.rules.push(id);
            published.push(shown);
        }
    }
    ep.rules.extend(link_exceptions(net, &ep, &owner)?);
    repair_rules(net)?;
    write_files(net, &ep, &joining.etc)?;
    name_endpoint(net, &ep, others.is_empty(), &link_lines)?;
    net.save_endpoint(&ep)?;
    Ok((ep, published))
}

/// Under `--icc=false`, the container may still open connections to the
/// `--expose`d ports of each `--link` target connected already, as Docker's
/// legacy links allow (the replies too; nothing else, in neither direction).
fn link_exceptions(net: &Network, ep: &Endpoint, owner: &str) -> Result<Vec<String>> {
    if net.icc || !net.firewall {
        return Ok(Vec::new());
    }
    let mut ids = Vec::new();
    for link in &ep.links {
        let Some(target) = net.endpoint(&link.target)? else { continue };
        for exposed in &target.exposed {
            let (proto, ports) = ports::exposed_ports(exposed)?;
            for (client, server) in std::iter::once((ep.ip, target.ip)).chain(ep.ip6.zip(target.ip6)) {
                let spec = LinkSpec {
                    bridge: net.bridge.clone(),
                    client: client.to_string(),
                    server: server.to_string(),
                    proto,
                    ports,
                };
                ids.push(firewall::link_accept(None, owner, &spec)?);
            }
        }
    }
    Ok(ids)
}

fn no_ipv6(net: &Network, what: &str) -> Error {
    Error::Invalid(format!("{what} needs IPv6, and network {} has none (create it with --ipv6)", net.name))
}

/// The address asked for, if free, else the next free one of `pool`.
fn take_or_allocate(net: &Network, pool: &Pool, wanted: Option<IpAddr>, container: &str) -> Result<IpAddr> {
    match wanted {
        Some(ip) => net.take_ip(ip, container).map(|()| ip),
        None => net.allocate(pool, container),
    }
}

/// `--ip` / `--ip6`: inside the subnet, not its network, broadcast or gateway address.
fn wanted_ip(net: &Network, pool: &Pool, text: &str, flag: &str) -> Result<IpAddr> {
    let ip: IpAddr = text.parse().map_err(|_| Error::Invalid(format!("{flag} {text:?} is not an IP address")))?;
    let subnet = pool.subnet;
    if !subnet.contains(ip) {
        return Err(Error::Invalid(format!("{flag} {ip} is outside subnet {subnet} of network {}", net.name)));
    }
    if ip == subnet.network().addr() {
        return Err(Error::Invalid(format!("{flag} {ip} is the network address of {subnet}; pick a host address")));
    }
    if subnet.broadcast().map(IpAddr::V4) == Some(ip) {
        return Err(Error::Invalid(format!("{flag} {ip} is the broadcast address of {subnet}; pick a host address")));
    }
    if ip == pool.gateway.addr() {
        return Err(Error::Exists(format!("{flag} {ip} is the gateway of network {}", net.name)));
    }
    Ok(ip)
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

/// The first free ethN in the container's namespace (eth0 in a new one).
fn free_ifname(container: &str, fresh: bool) -> Result<String> {
    if fresh {
        return Ok("eth0".into());
    }
    let names: Vec<String> = link::list(Some(container))?.into_iter().map(|l| l.name).collect();
    (0..).map(|i| format!("eth{i}")).find(|n| !names.contains(n)).ok_or_else(|| Error::msg("no free interface name"))
}

/// Make the veth pair and configure both ends.
fn attach(net: &Network, ep: &Endpoint, first_network: bool) -> Result<()> {
    let ns = ep.netns.as_str();
    let veth = link::Veth {
        name: ep.veth.clone(),
        peer: ep.ifname.clone(),
        peer_ns: Some(ns.into()),
        peer_mac: None,
        master: Some(net.bridge.clone()),
        up: true,
        mtu: Some(net.mtu),
        hairpin: true,
    };
    link::add_veth(None, &veth).map_err(|e| match e {
        Error::NotFound(_) => Error::NotFound(format!(
            "network {}'s bridge {} is gone (deleted outside netsh?); rm the network and create it again",
            net.name, net.bridge
        )),
        other => other,
    })?;
    link::set_up(Some(ns), "lo", true)?;
    addr::add(Some(ns), &ep.ifname, &Cidr::new(ep.ip, net.subnet.prefix())?)?;
    let v6 = ep.ip6.zip(net.ipv6);
    if let Some((ip6, pool)) = v6 {
        addr::add_nodad(Some(ns), &ep.ifname, &Cidr::new(ip6, pool.subnet.prefix())?)?;
    }
    link::set_up(Some(ns), &ep.ifname, true)?;
    if !first_network {
        return Ok(());
    }
    let fresh = ep.created && !ep.pid;
    let routes = if fresh { Vec::new() } else { route::list(Some(ns))? };
    let gateways = std::iter::once(net.gateway).chain(v6.map(|(_, pool)| pool.gateway));
    for gateway in gateways.map(|g| g.addr()) {
        // A default route of the gateway's family the namespace already has stays.
        if !has_default(&routes, gateway) {
            route::add(Some(ns), &route::default_via(&gateway.to_string()))?;
        }
    }
    Ok(())
}

/// Whether `routes` hold a default route of `gateway`'s family.
fn has_default(routes: &[route::RouteInfo], gateway: IpAddr) -> bool {
    let v6 = |r: &route::RouteInfo| r.via.as_deref().and_then(|v| v.parse::<IpAddr>().ok()).map(|v| v.is_ipv6());
    routes.iter().any(|r| r.dest == "default" && v6(r) == Some(gateway.is_ipv6()))
}

/// resolv.conf and hostname for a new container (a container runtime
/// keeps its containers' files itself).
fn write_files(net: &Network, ep: &Endpoint, etc: &EtcOptions) -> Result<()> {
    if ep.created && !ep.pid {
        let resolver = (!net.is_default()).then(|| net.gateway.addr().to_string());
        let resolv = resolv_conf(resolver.as_deref(), etc)?;
        netns::write_etc(&ep.container, EtcFile::ResolvConf, &resolv)?;
        let hostname = etc.hostname.as_deref().unwrap_or(&ep.container);
        netns::write_etc(&ep.container, EtcFile::Hostname, &format!("{hostname}\n"))?;
    }
    Ok(())
}

/// `--add-host NAME:IP` (or `NAME=IP`, an IPv6 IP maybe in brackets);
/// `host-gateway` is the network's gateway, the host as its containers see it.
fn extra_host(net: &Network, text: &str) -> Result<(String, IpAddr)> {
    let bad = || Error::Invalid(format!("--add-host {text:?} must be NAME:IP (or NAME:host-gateway)"));
    let (name, ip) = text.split_once('=').or_else(|| text.split_once(':')).ok_or_else(bad)?;
    check_name("--add-host", name)?;
    let ip = match ip.trim_start_matches('[').trim_end_matches(']') {
        "host-gateway" => net.gateway.addr(),
        other => other.parse().map_err(|_| bad())?,
    };
    Ok((name.to_string(), ip))
}

/// The hosts lines `--link` gives a container on the default network: its
/// targets, which must be there already (Docker's links are static there).
fn linked_hosts_lines(net: &Network, links: &[Link]) -> Result<Vec<String>> {
    if !net.is_default() {
        return Ok(Vec::new());
    }
    let mut lines = Vec::new();
    for link in links {
        let target = net.endpoint(&link.target)?.ok_or_else(|| {
            Error::NotFound(format!(
                "--link {link}: container {} is not on the default network {}; connect it first",
                link.target, net.name
            ))
        })?;
        let names =
            if link.alias == link.target { link.target.clone() } else { format!("{} {}", link.alias, link.target) };
        lines.extend(target.ips().map(|ip| format!("{ip}\t{names}")));
    }
    Ok(lines)
}

/// Give the container its names. On a network you create: its lines in the
/// network's hosts file (which a container's first network's file also
/// becomes), its names in the resolver, and its links (resolved for it
/// alone, whenever asked). On the default network, which has no names: a
/// hosts file of its own, with its own lines and its links' `link_lines`.
fn name_endpoint(net: &Network, ep: &Endpoint, first_network: bool, link_lines: &[String]) -> Result<()> {
    let own_file = first_network && !ep.runtime;
    if net.is_default() {
        if own_file {
            let extra = ep.extra_hosts.iter().map(|(name, ip)| format!("{ip}\t{name}"));
            let lines: Vec<String> =
                ep.hosts_lines().into_iter().chain(link_lines.iter().cloned()).chain(extra).collect();
            netns::write_etc(&ep.container, EtcFile::Hosts, &format!("{LOCALHOST_LINES}{}\n", lines.join("\n")))?;
        }
        return Ok(());
    }
    for line in ep.hosts_lines() {
        netns::hosts_add(&net.name, &line)?;
    }
    for (name, kind) in ep.dns_names() {
        ep.ips().try_for_each(|ip| dns::add(&net.name, name, &ip.to_string(), kind))?;
    }
    for link in &ep.links {
        dns::link(&net.name, &ep.ip.to_string(), &link.alias, &link.target)?;
    }
    for (name, ip) in &ep.extra_hosts {
        dns::pin(&net.name, &ep.ip.to_string(), name, &ip.to_string())?;
    }
    if own_file {
        netns::hosts_share(&ep.container, &net.name)?;
    }
    Ok(())
}

/// The first lines of every hosts file.
const LOCALHOST_LINES: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// `disconnect NAME CONTAINER`.
pub fn disconnect(args: &Args) -> Result<()> {
    args.at_most(3)?;
    let net = Network::load(args.required(1, "network NAME")?)?;
    let container = args.required(2, "CONTAINER")?;
    let ep = net
        .endpoint(container)?
        .ok_or_else(|| Error::NotFound(format!("container {container} is not connected to network {}", net.name)))?;
    release(&net, &ep)?.carry_out()
}

/// What is left of an endpoint after its reversible parts are gone: the
/// namespace or veth to delete, last, because a deletion cannot be undone.
#[derive(Debug)]
pub struct Doomed {
    namespace: Option<String>,
    veth: Option<String>,
}

/// Take back an endpoint's rules, hosts line and records; returns the deletions still to do.
pub fn release(net: &Network, ep: &Endpoint) -> Result<Doomed> {
    ep.rules.iter().try_for_each(|id| remove_rule(id))?;
    if !net.is_default() {
        unname_endpoint(net, ep)?;
    }
    net.forget_endpoint(ep)?;
    // The namespace goes with the last network if connect made it, on whichever network that was.
    let last_network = memberships(&ep.container)?.is_empty();
    let drop_namespace = last_network && (store::take_made_namespace(&ep.container)? || ep.created);
    if drop_namespace {
        crate::modes::refuse_while_shared(&ep.container)?;
    }
    // Deleting an unshared namespace takes its veth ends with it, faster than a link delete.
    let veth = (ep.pid || !drop_namespace).then(|| ep.veth.clone());
    Ok(Doomed { namespace: drop_namespace.then(|| ep.container.clone()), veth })
}

/// Take back what [`name_endpoint`] gave a container on a network you create.
fn unname_endpoint(net: &Network, ep: &Endpoint) -> Result<()> {
    for line in ep.hosts_lines() {
        netns::hosts_remove(&net.name, &line)?;
    }
    for (name, _) in ep.dns_names() {
        ep.ips().try_for_each(|ip| dns::remove(&net.name, name, &ip.to_string()))?;
    }
    let names = ep.links.iter().map(|l| &l.alias).chain(ep.extra_hosts.iter().map(|(name, _)| name));
    names.into_iter().try_for_each(|name| dns::unlink(&net.name, &ep.ip.to_string(), name))
}

impl Doomed {
    /// Delete what is doomed; what is gone already (the runtime removed the
    /// namespace first) counts as deleted.
    pub fn carry_out(self) -> Result<()> {
        let gone = |r: Result<()>| match r {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        };
        if let Some(veth) = &self.veth {
            gone(link::delete(None, veth))?;
        }
        if let Some(ns) = &self.namespace {
            gone(netns::delete(ns))?;
        }
        Ok(())
    }
}

/// A new container's resolv.conf: the `--dns` servers, else netsh's
/// `resolver` on the network's gateway (which forwards what is not a
/// container's name to the host's nameservers), else (the default network)
/// the host's own nameservers as Docker copies them: loopback ones cannot
/// work in the container, and none left means Google's public servers.
/// The host's search domains and options follow unless `--dns-search` /
/// `--dns-option` replace them.
fn resolv_conf(resolver: Option<&str>, etc: &EtcOptions) -> Result<String> {
    let host = match netns::read_etc(None, EtcFile::ResolvConf) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => String::new(),
        Err(e) => return Err(e),
    };
    let host_lines = |words: &[&str]| -> Vec<String> {
        host.lines().filter(|l| words.contains(&l.split_whitespace().next().unwrap_or(""))).map(String::from).collect()
    };
    let usable = |l: &String| {
        l.split_whitespace().nth(1).and_then(|ip| ip.parse::<IpAddr>().ok()).is_some_and(|ip| !ip.is_loopback())
    };
    let mut lines: Vec<String> = match (etc.dns.is_empty(), resolver) {
        (false, _) => etc.dns.iter().map(|ip| format!("nameserver {ip}")).collect(),
        (true, Some(resolver)) => vec![format!("nameserver {resolver}")],
        (true, None) => host_lines(&["nameserver"]).into_iter().filter(usable).collect(),
    };
    if lines.is_empty() {
        lines = vec!["nameserver 8.8.8.8".into(), "nameserver 8.8.4.4".into()];
    }
    match etc.search.is_empty() {
        true => lines.extend(host_lines(&["search", "domain"])),
        false => lines.push(format!("search {}", etc.search.join(" "))),
    }
    match etc.options.is_empty() {
        true => lines.extend(host_lines(&["options"])),
        false => lines.push(format!("options {}", etc.options.join(" "))),
    }
    Ok(lines.join("\n") + "\n")
}
