//! What every host agrees on, in the store under `overlay/`:
//! - `net/NAME`: subnet, gateway, VNI, internal;
//! - `vni/VNI` and `subnet/ADDR-PREFIX`: who holds them (created once, so
//!   two networks never share one);
//! - `ip/NAME/ADDR`: an address taken (created once, across hosts);
//! - `ep/NAME/CONTAINER`: an endpoint: its address, MAC, aliases and the
//!   underlay address of its host.

use std::net::IpAddr;

use netsh_guest::meta::{Meta, short_hash};
use netsh_guest::{Cidr, Error, Result, kv};

const ROOT: &str = "overlay";

/// An overlay network's definition.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub subnet: Cidr,
    pub gateway: Cidr,
    pub vni: u32,
    pub internal: bool,
}

/// A container on an overlay network, on some host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub container: String,
    pub ip: IpAddr,
    /// Empty while the endpoint is being set up on its host.
    pub mac: String,
    /// The underlay address of the container's host.
    pub host: IpAddr,
    pub aliases: Vec<String>,
    /// The interface in the container's namespace.
    pub ifname: String,
    /// Whether connect created the namespace (it then goes with disconnect).
    pub created: bool,
}

/// The MTU of an overlay: a 1500-byte underlay less VXLAN's 50 bytes of headers.
pub const MTU: u32 = 1450;

/// VXLAN's IANA port.
pub const VXLAN_PORT: u16 = 4789;

fn corrupt(key: &str) -> Error {
    Error::msg(format!("store entry {key} is malformed; remove it with the network (rm --force)"))
}

/// The bridge of network `name` on a host: `ov-ID`.
pub fn bridge_name(name: &str) -> String {
    format!("ov-{}", short_hash(&[name]))
}

/// The VXLAN device of network `name` on a host: `vx-ID`.
pub fn vxlan_name(name: &str) -> String {
    format!("vx-{}", short_hash(&[name]))
}

fn subnet_key(subnet: &Cidr) -> String {
    format!("{ROOT}/subnet/{}-{}", subnet.addr(), subnet.prefix())
}

impl Network {
    fn key(name: &str) -> String {
        format!("{ROOT}/net/{name}")
    }

    /// The network's bridge on a host.
    pub fn bridge(&self) -> String {
        bridge_name(&self.name)
    }

    /// The network's VXLAN device on a host.
    pub fn vxlan(&self) -> String {
        vxlan_name(&self.name)
    }

    /// The owner of the network's firewall rules on each host.
    pub fn owner(&self) -> String {
        format!("overlay/{}", self.name)
    }

    /// The network named `name`, if the store has it.
    pub fn find(name: &str) -> Result<Option<Network>> {
        let Some(entry) = kv::get(&Network::key(name))? else { return Ok(None) };
        let meta = Meta::parse(&entry.value).ok_or_else(|| corrupt(&entry.key))?;
        let field = |k: &str| meta.get(k).ok_or_else(|| corrupt(&entry.key));
        let subnet: Cidr = field("subnet")?.parse()?;
        let gateway: IpAddr = field("gateway")?.parse().map_err(|_| corrupt(&entry.key))?;
        Ok(Some(Network {
            name: name.to_string(),
            subnet,
            gateway: Cidr::new(gateway, subnet.prefix())?,
            vni: field("vni")?.parse().map_err(|_| corrupt(&entry.key))?,
            internal: meta.flag("internal"),
        }))
    }

    /// The network named `name`.
    pub fn load(name: &str) -> Result<Network> {
        Network::find(name)?.ok_or_else(|| Error::NotFound(format!("overlay network {name} does not exist (see `ls`)")))
    }

    /// Every network's name.
    pub fn names() -> Result<Vec<String>> {
        let prefix = format!("{ROOT}/net/");
        Ok(kv::list(&prefix)?.into_iter().filter_map(|e| e.key.strip_prefix(&prefix).map(String::from)).collect())
    }

    /// Store the definition, if the name is free; false if it is taken.
    pub fn claim(&self) -> Result<bool> {
        let meta = Meta::default()
            .with("subnet", self.subnet)
            .with("gateway", self.gateway.addr())
            .with("vni", self.vni)
            .with("internal", u8::from(self.internal));
        Ok(kv::create(&Network::key(&self.name), &meta.render())?.is_some())
    }

    /// Remove the definition and what it holds.
    pub fn forget(&self) -> Result<()> {
        kv::delete(&format!("{ROOT}/vni/{}", self.vni))?;
        kv::delete(&subnet_key(&self.subnet))?;
        kv::delete(&Network::key(&self.name)).map(drop)
    }

    /// Every endpoint, on every host.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        endpoints(&self.name)
    }

    /// One endpoint.
    pub fn endpoint(&self, container: &str) -> Result<Option<Endpoint>> {
        let prefix = format!("{ROOT}/ep/{}/", self.name);
        kv::get(&format!("{prefix}{container}"))?.map(|e| Endpoint::parse(&prefix, &e)).transpose()
    }

    /// Reserve `container`'s endpoint (no MAC yet); false if it exists, on any host.
    pub fn reserve_endpoint(&self, ep: &Endpoint) -> Result<bool> {
        Ok(kv::create(&self.endpoint_key(&ep.container), &ep.render())?.is_some())
    }

    /// Store the endpoint as it is now.
    pub fn save_endpoint(&self, ep: &Endpoint) -> Result<()> {
        kv::put(&self.endpoint_key(&ep.container), &ep.render()).map(drop)
    }

    fn endpoint_key(&self, container: &str) -> String {
        endpoint_key(&self.name, container)
    }

    fn ip_key(&self, ip: IpAddr) -> String {
        ip_key(&self.name, ip)
    }

    /// Take `ip` for `container`; false if another holds it, on any host.
    pub fn take_ip(&self, ip: IpAddr, container: &str) -> Result<bool> {
        Ok(kv::create(&self.ip_key(ip), container)?.is_some())
    }

    /// The first free address after the gateway, taken for `container`.
    /// Concurrent connects on other hosts race on the same key: the loser
    /// tries the next address.
    pub fn allocate(&self, container: &str) -> Result<IpAddr> {
        let taken: Vec<String> = kv::list(&format!("{ROOT}/ip/{}/", self.name))?.into_iter().map(|e| e.key).collect();
        for n in 1..self.subnet.host_count() {
            let Some(candidate) = self.subnet.nth(n) else { break };
            let ip = candidate.addr();
            if ip == self.gateway.addr() || taken.contains(&self.ip_key(ip)) {
                continue;
            }
            if self.take_ip(ip, container)? {
                return Ok(ip);
            }
        }
        Err(Error::Invalid(format!("overlay network {} has no free address in {}", self.name, self.subnet)))
    }
}

fn endpoint_key(network: &str, container: &str) -> String {
    format!("{ROOT}/ep/{network}/{container}")
}

fn ip_key(network: &str, ip: IpAddr) -> String {
    format!("{ROOT}/ip/{network}/{ip}")
}

/// Every endpoint of `network`, on every host (also after the network's
/// definition went: hosts release their members on their next sync).
pub fn endpoints(network: &str) -> Result<Vec<Endpoint>> {
    let prefix = format!("{ROOT}/ep/{network}/");
    kv::list(&prefix)?.into_iter().map(|e| Endpoint::parse(&prefix, &e)).collect()
}

/// Forget an endpoint of `network` and give back its address.
pub fn forget_endpoint(network: &str, ep: &Endpoint) -> Result<()> {
    kv::delete(&ip_key(network, ep.ip))?;
    kv::delete(&endpoint_key(network, &ep.container)).map(drop)
}

/// Reserve `subnet` for `network`: the network holding it, or `None` if it was free.
pub fn reserve_subnet(subnet: &Cidr, network: &str) -> Result<Option<String>> {
    let key = subnet_key(subnet);
    if kv::create(&key, network)?.is_some() {
        return Ok(None);
    }
    Ok(Some(kv::get(&key)?.map(|e| e.value).unwrap_or_default()))
}

/// Reserve VXLAN id `vni` for `network`; false if another network holds it.
pub fn reserve_vni(vni: u32, network: &str) -> Result<bool> {
    Ok(kv::create(&format!("{ROOT}/vni/{vni}"), network)?.is_some())
}

impl Endpoint {
    fn parse(prefix: &str, entry: &kv::Entry) -> Result<Endpoint> {
        let bad = || corrupt(&entry.key);
        let container = entry.key.strip_prefix(prefix).ok_or_else(bad)?.to_string();
        let meta = Meta::parse(&entry.value).ok_or_else(bad)?;
        let ip = |k: &str| meta.get(k).and_then(|v| v.parse::<IpAddr>().ok()).ok_or_else(bad);
        Ok(Endpoint {
            container,
            ip: ip("ip")?,
            mac: meta.get("mac").unwrap_or_default().to_string(),
            host: ip("host")?,
            aliases: meta
                .get("aliases")
                .unwrap_or_default()
                .split(',')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
            ifname: meta.get("ifname").unwrap_or("eth0").to_string(),
            created: meta.flag("created"),
        })
    }

    fn render(&self) -> String {
        let mut meta = Meta::default().with("ip", self.ip).with("host", self.host).with("ifname", &self.ifname);
        if !self.mac.is_empty() {
            meta = meta.with("mac", &self.mac);
        }
        if !self.aliases.is_empty() {
            meta = meta.with("aliases", self.aliases.join(","));
        }
        meta.with("created", u8::from(self.created)).render()
    }

    /// The host end of the endpoint's veth pair on network `network`.
    pub fn veth(&self, network: &str) -> String {
        format!("veo{}", short_hash(&[network, &self.container]))
    }

    /// Whether the endpoint is set up (its MAC is known).
    pub fn ready(&self) -> bool {
        !self.mac.is_empty()
    }
}
