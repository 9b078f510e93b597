//! docker-bridge's state in netsh's key-value store, one key per thing so
//! that every call reads and writes only what it touches:
//!
//! ```text
//! docker-bridge/net/NET            the network (bridge, subnets, gateways, options, rule ids)
//! docker-bridge/subnet/CIDR        NET: the subnet is taken (created once: no two networks share it)
//! docker-bridge/ip/NET/ADDR        CONTAINER: the address is taken (created once: no duplicate address)
//! docker-bridge/next/NET           where the next free IPv4 address search starts (a hint)
//! docker-bridge/next6/NET          the same for IPv6
//! docker-bridge/labels/NET         the network's --label KEY=VALUE lines
//! docker-bridge/ep/NET/CONTAINER   the endpoint (veth, interface, address, aliases, rule ids)
//! docker-bridge/in/CONTAINER/NET   the container is on NET (to know its other networks)
//! docker-bridge/made/CONTAINER     connect made (or named) its namespace: the last disconnect removes it
//! ```

use std::net::IpAddr;

use netsh_guest::{Cidr, Error, Result, dns, kv};

use netsh_guest::meta::{Meta, long_hash};

const ROOT: &str = "docker-bridge";

/// Docker's default network: made on its first connect, on docker0, and
/// without names (its containers reach each other by address, or by the
/// names `--link` writes into their hosts files).
pub const DEFAULT_NETWORK: &str = "bridge";

/// The endpoint record of a connect still under way.
const CONNECTING: &str = "connecting";

fn key(parts: &[&str]) -> String {
    std::iter::once(ROOT).chain(parts.iter().copied()).collect::<Vec<_>>().join("/")
}

/// A network's addresses of one family.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// The network address with its prefix.
    pub subnet: Cidr,
    /// The gateway (the bridge's address) with the subnet's prefix.
    pub gateway: Cidr,
    /// Where container addresses are allocated (`--ip-range`).
    pub ip_range: Cidr,
}

/// A network's definition.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub bridge: String,
    /// The network address with its prefix.
    pub subnet: Cidr,
    /// The gateway (the bridge's address) with the subnet's prefix.
    pub gateway: Cidr,
    pub ip_range: Cidr,
    /// Its IPv6 addresses (`--ipv6`), if dual-stack.
    pub ipv6: Option<Pool>,
    /// The bridge was there before (`--bridge` naming one): `rm` leaves it.
    pub adopted: bool,
    /// The gateway addresses netsh added to an adopted bridge (`rm` takes them back).
    pub added: Vec<Cidr>,
    /// netsh brought an adopted bridge up (`rm` sets it down again).
    pub raised: bool,
    /// `--aux-address NAME=IP`: addresses no container gets.
    pub aux: Vec<(String, IpAddr)>,
    /// When it was made, as Docker shows it (RFC 3339, UTC).
    pub created: String,
    pub internal: bool,
    pub icc: bool,
    pub mtu: u32,
    /// Outbound traffic is masqueraded (`enable_ip_masquerade`, unless internal).
    pub masquerade: bool,
    /// The host address ports are published on when a spec names none.
    pub host_binding: Option<String>,
    /// netsh keeps firewall rules for it (`--iptables=false`: none at all).
    pub firewall: bool,
    /// The network's own firewall rules.
    pub rules: Vec<String>,
}

/// One container on one network.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub container: String,
    /// The namespace it lives in: the container's name, or the runtime's
    /// namespace for a CNI attachment.
    pub netns: String,
    /// The namespace is a container runtime's (CNI): netsh writes none of its files.
    pub runtime: bool,
    pub veth: String,
    pub ifname: String,
    pub ip: IpAddr,
    /// Its IPv6 address on a dual-stack network.
    pub ip6: Option<IpAddr>,
    /// connect created the namespace (so the last disconnect removes it).
    pub created: bool,
    /// The namespace is a running process's, named with --pid.
    pub pid: bool,
    pub aliases: Vec<String>,
    /// `--link TARGET:ALIAS`: names only this container gives its peers.
    pub links: Vec<Link>,
    /// `--add-host NAME:IP`: names only this container knows, with their addresses.
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// `--expose` ports (`PORT[-END][/PROTO]`), which `--link` clients may
    /// reach under `--icc=false`.
    pub exposed: Vec<String>,
    /// The container's firewall rules: published ports, link exceptions.
    pub rules: Vec<String>,
}

/// A legacy link, `--link TARGET[:ALIAS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    pub alias: String,
}

impl std::str::FromStr for Link {
    type Err = Error;

    fn from_str(text: &str) -> Result<Link> {
        let (target, alias) = text.split_once(':').unwrap_or((text, text));
        netsh_guest::meta::check_name("--link container", target)?;
        netsh_guest::meta::check_name("--link alias", alias)?;
        Ok(Link { target: target.into(), alias: alias.into() })
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.target, self.alias)
    }
}

fn list(text: &[String]) -> String {
    if text.is_empty() { "-".into() } else { text.join(",") }
}

fn unlist(text: Option<&str>) -> Vec<String> {
    match text {
        None | Some("-") | Some("") => Vec::new(),
        Some(t) => t.split(',').map(String::from).collect(),
    }
}

fn damaged(what: &str) -> Error {
    Error::msg(format!("the stored record of {what} is damaged; `docker-bridge rm` it and create it again"))
}

impl Network {
    /// 64 hex digits like Docker's network ids, derived from the name and
    /// subnet (a stored creation time would make a plan differ from its run).
    pub fn id(&self) -> String {
        long_hash(&[&self.name, &self.subnet.to_string()])
    }

    /// Whether it is Docker's default network ([`DEFAULT_NETWORK`]).
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NETWORK
    }

    /// Owner label of the network's own firewall rules.
    pub fn owner(&self) -> String {
        format!("docker-bridge/{}", self.name)
    }

    /// Owner label of a container's published ports on this network.
    pub fn container_owner(&self, container: &str) -> String {
        format!("docker-bridge/{}/{container}", self.name)
    }

    /// Its IPv4 addresses.
    pub fn v4(&self) -> Pool {
        Pool { subnet: self.subnet, gateway: self.gateway, ip_range: self.ip_range }
    }

    fn render(&self) -> String {
        let mut meta = Meta::default()
            .with("bridge", &self.bridge)
            .with("subnet", self.subnet)
            .with("gateway", self.gateway)
            .with("ip-range", self.ip_range);
        if let Some(v6) = &self.ipv6 {
            meta = meta.with("subnet6", v6.subnet).with("gateway6", v6.gateway).with("ip-range6", v6.ip_range);
        }
        let aux: Vec<String> = self.aux.iter().map(|(name, ip)| format!("{name}:{ip}")).collect();
        let added: Vec<String> = self.added.iter().map(Cidr::to_string).collect();
        meta.with("adopted", u8::from(self.adopted))
            .with("added", list(&added))
            .with("raised", u8::from(self.raised))
            .with("aux", list(&aux))
            .with("created", if self.created.is_empty() { "-" } else { &self.created })
            .with("internal", u8::from(self.internal))
            .with("icc", u8::from(self.icc))
            .with("mtu", self.mtu)
            .with("masquerade", u8::from(self.masquerade))
            .with("host-binding", self.host_binding.as_deref().unwrap_or("-"))
            .with("firewall", u8::from(self.firewall))
            .with("rules", list(&self.rules))
            .render()
    }

    fn parse(name: &str, text: &str) -> Result<Network> {
        let m = Meta::parse(text).ok_or_else(|| damaged(&format!("network {name}")))?;
        let cidr =
            |k: &str| m.get(k).and_then(|v| v.parse::<Cidr>().ok()).ok_or_else(|| damaged(&format!("network {name}")));
        let ipv6 = match m.get("subnet6") {
            None => None,
            Some(_) => {
                Some(Pool { subnet: cidr("subnet6")?, gateway: cidr("gateway6")?, ip_range: cidr("ip-range6")? })
            }
        };
        Ok(Network {
            name: name.into(),
            bridge: m.get("bridge").ok_or_else(|| damaged(name))?.into(),
            subnet: cidr("subnet")?,
            gateway: cidr("gateway")?,
            ip_range: cidr("ip-range")?,
            ipv6,
            adopted: m.flag("adopted"),
            raised: m.flag("raised"),
            added: unlist(m.get("added"))
                .iter()
                .map(|c| c.parse())
                .collect::<Result<_>>()
                .map_err(|_| damaged(&format!("network {name}")))?,
            aux: unlist(m.get("aux"))
                .iter()
                .map(|a| a.split_once(':').and_then(|(n, ip)| Some((n.to_string(), ip.parse().ok()?))))
                .collect::<Option<_>>()
                .ok_or_else(|| damaged(&format!("network {name}")))?,
            created: m.get("created").filter(|c| *c != "-").unwrap_or_default().into(),
            internal: m.flag("internal"),
            icc: m.flag("icc"),
            mtu: m.get("mtu").and_then(|v| v.parse().ok()).unwrap_or(1500),
            // Records from before these options: masquerading, every address.
            masquerade: m.get("masquerade") != Some("0"),
            host_binding: m.get("host-binding").filter(|v| *v != "-").map(String::from),
            firewall: m.get("firewall") != Some("0"),
            rules: unlist(m.get("rules")),
        })
    }

    /// The network called `name`.
    pub fn load(name: &str) -> Result<Network> {
        match kv::get(&key(&["net", name]))? {
            Some(e) => Network::parse(name, &e.value),
            None => Err(Error::NotFound(format!("network {name} not found (see `docker-bridge ls`)"))),
        }
    }

    /// Every network, by name.
    pub fn all() -> Result<Vec<Network>> {
        let prefix = key(&["net", ""]);
        kv::list(&prefix)?.into_iter().map(|e| Network::parse(e.key.trim_start_matches(&prefix), &e.value)).collect()
    }

    /// Claim the name: false if a network of that name exists.
    pub fn claim(&self) -> Result<bool> {
        Ok(kv::create(&key(&["net", &self.name]), &self.render())?.is_some())
    }

    /// Store the definition (after its rules were made).
    pub fn save(&self) -> Result<()> {
        kv::put(&key(&["net", &self.name]), &self.render()).map(drop)
    }

    /// Forget the network, its subnets, auxiliary addresses, labels and address hints.
    pub fn forget(&self) -> Result<()> {
        kv::delete(&key(&["net", &self.name]))?;
        kv::delete(&key(&["labels", &self.name]))?;
        for (_, ip) in &self.aux {
            kv::delete(&key(&["ip", &self.name, &ip.to_string()]))?;
        }
        kv::delete(&key(&["next", &self.name]))?;
        if self.ipv6.is_some() {
            kv::delete(&key(&["next6", &self.name]))?;
        }
        self.release_subnets()
    }

    /// Give back its subnets' reservations.
    pub fn release_subnets(&self) -> Result<()> {
        std::iter::once(self.subnet)
            .chain(self.ipv6.map(|p| p.subnet))
            .try_for_each(|s| kv::delete(&subnet_key(&s)).map(drop))
    }

    /// The endpoints of the network's containers (not those still connecting).
    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let prefix = key(&["ep", &self.name, ""]);
        kv::list(&prefix)?
            .into_iter()
            .filter(|e| e.value != CONNECTING)
            .map(|e| Endpoint::parse(e.key.trim_start_matches(&prefix), &e.value))
            .collect()
    }

    /// Whether any container is connected or connecting.
    pub fn in_use(&self) -> Result<bool> {
        Ok(!kv::list(&key(&["ep", &self.name, ""]))?.is_empty())
    }

    /// The endpoint of `container`, if connected.
    pub fn endpoint(&self, container: &str) -> Result<Option<Endpoint>> {
        match kv::get(&key(&["ep", &self.name, container]))? {
            Some(e) if e.value != CONNECTING => Endpoint::parse(container, &e.value).map(Some),
            _ => Ok(None),
        }
    }

    /// Reserve the endpoint slot of `container`: false if it is connected (or connecting) already.
    pub fn reserve_endpoint(&self, container: &str) -> Result<bool> {
        Ok(kv::create(&key(&["ep", &self.name, container]), CONNECTING)?.is_some())
    }

    /// Store a connected endpoint and the container's membership.
    pub fn save_endpoint(&self, ep: &Endpoint) -> Result<()> {
        kv::put(&key(&["ep", &self.name, &ep.container]), &ep.render())?;
        kv::put(&key(&["in", &ep.container, &self.name]), "")?;
        Ok(())
    }

    /// Forget an endpoint, its addresses and the membership.
    pub fn forget_endpoint(&self, ep: &Endpoint) -> Result<()> {
        for ip in ep.ips() {
            kv::delete(&key(&["ip", &self.name, &ip.to_string()]))?;
        }
        kv::delete(&key(&["ep", &self.name, &ep.container]))?;
        kv::delete(&key(&["in", &ep.container, &self.name]))?;
        Ok(())
    }

    /// Its labels, `KEY=VALUE` in the order given.
    pub fn labels(&self) -> Result<Vec<(String, String)>> {
        let text = kv::get(&key(&["labels", &self.name]))?.map(|e| e.value).unwrap_or_default();
        Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// Store its labels (none: nothing stored).
    pub fn save_labels(&self, labels: &[(String, String)]) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        kv::put(&key(&["labels", &self.name]), &text.join("\n")).map(drop)
    }

    /// Take `ip` for `container`; `Err(Exists)` names who holds it.
    pub fn take_ip(&self, ip: IpAddr, container: &str) -> Result<()> {
        let k = key(&["ip", &self.name, &ip.to_string()]);
        if kv::create(&k, container)?.is_some() {
            return Ok(());
        }
        let holder = kv::get(&k)?.map(|e| e.value).unwrap_or_default();
        let flag = if ip.is_ipv6() { "--ip6" } else { "--ip" };
        Err(Error::Exists(format!("{flag} {ip} is already in use by {holder}")))
    }

    /// Take the first free address of `pool`'s ip-range for `container`,
    /// from the family's hint on.
    pub fn allocate(&self, pool: &Pool, container: &str) -> Result<IpAddr> {
        let hint = if pool.subnet.addr().is_ipv6() { "next6" } else { "next" };
        let hint_key = key(&[hint, &self.name]);
        let count = pool.ip_range.host_count();
        let start = kv::get(&hint_key)?.and_then(|e| e.value.parse::<u32>().ok()).unwrap_or(1);
        for step in 0..count {
            let n = 1 + (start.saturating_sub(1) + step) % count;
            let Some(c) = pool.ip_range.nth(n) else { continue };
            let ip = c.addr();
            if !pool.subnet.is_host(ip) || ip == pool.gateway.addr() {
                continue;
            }
            if kv::create(&key(&["ip", &self.name, &ip.to_string()]), container)?.is_some() {
                kv::put(&hint_key, &(n + 1).to_string())?;
                return Ok(ip);
            }
        }
        Err(Error::Invalid(format!("network {} has no free address in {}", self.name, pool.ip_range)))
    }
}

/// The key reserving a subnet.
fn subnet_key(subnet: &Cidr) -> String {
    key(&["subnet", &subnet.to_string()])
}

/// Reserve `subnet` for `network`: `Ok(None)` when taken, else the owner.
pub fn reserve_subnet(subnet: &Cidr, network: &str) -> Result<Option<String>> {
    let k = subnet_key(subnet);
    if kv::create(&k, network)?.is_some() {
        return Ok(None);
    }
    Ok(Some(kv::get(&k)?.map(|e| e.value).unwrap_or_default()))
}

/// Remember that connect made (or named, with --pid) the container's namespace.
pub fn made_namespace(container: &str) -> Result<()> {
    kv::put(&key(&["made", container]), "").map(drop)
}

/// Whether connect made the container's namespace, forgetting it (its last
/// network is going, and the namespace with it).
pub fn take_made_namespace(container: &str) -> Result<bool> {
    kv::delete(&key(&["made", container]))
}

/// The networks `container` is on.
pub fn memberships(container: &str) -> Result<Vec<String>> {
    let prefix = key(&["in", container, ""]);
    Ok(kv::list(&prefix)?.into_iter().map(|e| e.key.trim_start_matches(&prefix).to_string()).collect())
}

impl Endpoint {
    /// The names the resolver gives the endpoint's address: its own, then its aliases.
    pub fn dns_names(&self) -> Vec<(&str, dns::Kind)> {
        let own = std::iter::once((self.container.as_str(), dns::Kind::Own));
        let mut names: Vec<(&str, dns::Kind)> = Vec::new();
        for (name, kind) in own.chain(self.aliases.iter().map(|a| (a.as_str(), dns::Kind::Alias))) {
            if !names.iter().any(|(n, _)| *n == name) {
                names.push((name, kind));
            }
        }
        names
    }

    /// Its addresses: IPv4, then IPv6 on a dual-stack network.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> {
        std::iter::once(self.ip).chain(self.ip6)
    }

    /// Its lines in the network's hosts file, one per address.
    pub fn hosts_lines(&self) -> Vec<String> {
        let names: Vec<&str> = self.dns_names().into_iter().map(|(name, _)| name).collect();
        self.ips().map(|ip| format!("{ip}\t{}", names.join(" "))).collect()
    }

    fn render(&self) -> String {
        let mut meta = Meta::default();
        if self.runtime {
            meta = meta.with("netns", &self.netns).with("runtime", 1);
        }
        meta.with("veth", &self.veth)
            .with("ifname", &self.ifname)
            .with("ip", self.ip)
            .with("ip6", self.ip6.map_or("-".into(), |ip| ip.to_string()))
            .with("created", u8::from(self.created))
            .with("pid", u8::from(self.pid))
            .with("aliases", list(&self.aliases))
            .with("links", list(&self.links.iter().map(Link::to_string).collect::<Vec<_>>()))
            .with("add-hosts", list(&self.extra_hosts.iter().map(|(n, ip)| format!("{n}:{ip}")).collect::<Vec<_>>()))
            .with("exposed", list(&self.exposed))
            .with("rules", list(&self.rules))
            .render()
    }

    fn parse(container: &str, text: &str) -> Result<Endpoint> {
        let bad = || damaged(&format!("container {container}'s endpoint"));
        let m = Meta::parse(text).ok_or_else(bad)?;
        Ok(Endpoint {
            container: container.into(),
            netns: m.get("netns").unwrap_or(container).into(),
            runtime: m.flag("runtime"),
            veth: m.get("veth").ok_or_else(bad)?.into(),
            ifname: m.get("ifname").ok_or_else(bad)?.into(),
            ip: m.get("ip").and_then(|v| v.parse().ok()).ok_or_else(bad)?,
            ip6: match m.get("ip6") {
                None | Some("-") => None,
                Some(v) => Some(v.parse().map_err(|_| bad())?),
            },
            created: m.flag("created"),
            pid: m.flag("pid"),
            aliases: unlist(m.get("aliases")),
            links: unlist(m.get("links")).iter().map(|l| l.parse()).collect::<Result<_>>().map_err(|_| bad())?,
            extra_hosts: unlist(m.get("add-hosts"))
                .iter()
                .map(|h| h.split_once(':').and_then(|(n, ip)| Some((n.to_string(), ip.parse().ok()?))))
                .collect::<Option<_>>()
                .ok_or_else(bad)?,
            exposed: unlist(m.get("exposed")),
            rules: unlist(m.get("rules")),
        })
    }
}
