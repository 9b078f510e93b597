//! Networks: a bridge holding the gateway, NAT and isolation rules, and the
//! network's record in the store. `create` reserves the name and the subnet
//! in the store first, so concurrent creates never share a subnet.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use netsh_guest::firewall::{self, Isolation};
use netsh_guest::meta::{check_name, long_hash};
use netsh_guest::{Args, Cidr, Error, Result, addr, dns, json, link, log, sysctl};

use crate::container;
use crate::store::{self, Endpoint, Network, Pool};

/// Docker's default pools: 172.17-31.0.0/16, then 192.168.X.0/20.
fn default_subnets() -> impl Iterator<Item = Cidr> {
    let b = (17..=31).map(|o| format!("172.{o}.0.0/16"));
    let c = (0..16).map(|i| format!("192.168.{}.0/20", i * 16));
    b.chain(c).filter_map(|s| s.parse().ok())
}

/// IPv6 defaults when `--ipv6` names no subnet: unique local /64s whose
/// global id is a hash of the network's name (so a plan and its run agree),
/// rehashed when one is taken.
fn default_subnets6(name: &str) -> impl Iterator<Item = Cidr> {
    (0..64).filter_map(move |i| {
        let h = long_hash(&[name, "ipv6", &i.to_string()]);
        format!("fd{}:{}:{}::/64", &h[0..2], &h[2..6], &h[6..10]).parse().ok()
    })
}

/// Whether an interface address names a network: not loopback or link-local.
fn routable(c: &Cidr) -> bool {
    let link_local = Cidr::new(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0).into(), 10);
    !c.addr().is_loopback() && !link_local.is_ok_and(|l| l.contains(c.addr()))
}

/// Networks of one family in use: on the host's interfaces (but the
/// bridge being adopted), and by netsh's networks.
fn used_subnets(v6: bool, adopting: Option<&str>) -> Result<Vec<(Cidr, String)>> {
    let mut used: Vec<(Cidr, String)> = addr::list(None, None)?
        .into_iter()
        .filter(|a| Some(a.dev.as_str()) != adopting)
        .filter_map(|a| a.cidr.parse::<Cidr>().ok().map(|c| (c.network(), a.dev)))
        .filter(|(c, _)| c.addr().is_ipv6() == v6 && routable(c))
        .collect();
    for net in Network::all()? {
        let subnet = if v6 { net.ipv6.map(|p| p.subnet) } else { Some(net.subnet) };
        if let Some(subnet) = subnet.filter(|s| !used.iter().any(|(c, _)| c == s)) {
            used.push((subnet, net.bridge));
        }
    }
    Ok(used)
}

fn parse_subnet(text: &str, v6: bool) -> Result<Cidr> {
    let subnet: Cidr = text.parse()?;
    let (family, longest) = if v6 { ("IPv6", 126) } else { ("IPv4", 30) };
    if subnet.addr().is_ipv6() != v6 || subnet.prefix() > longest {
        return Err(Error::Invalid(format!("subnet {text} must be {family} with a prefix of at most /{longest}")));
    }
    Ok(subnet.network())
}

/// Pick and reserve a subnet of one family: the one asked for, or the first free default.
fn reserve_subnet(wanted: Option<&str>, name: &str, v6: bool, adopting: Option<&str>) -> Result<Cidr> {
    let used = used_subnets(v6, adopting)?;
    let overlap = |s: &Cidr| used.iter().find(|(u, _)| u.overlaps(s)).cloned();
    if let Some(text) = wanted {
        let subnet = parse_subnet(text, v6)?;
        if let Some((other, dev)) = overlap(&subnet) {
            return Err(Error::Invalid(format!("subnet {subnet} overlaps {other} on {dev}")));
        }
        return match store::reserve_subnet(&subnet, name)? {
            None => Ok(subnet),
            Some(owner) => Err(Error::Exists(format!("subnet {subnet} is taken by network {owner}"))),
        };
    }
    let defaults: Vec<Cidr> = if v6 { default_subnets6(name).collect() } else { default_subnets().collect() };
    for candidate in defaults.into_iter().filter(|c| overlap(c).is_none()) {
        // Another create may take the same pool at the same moment: then try the next.
        if store::reserve_subnet(&candidate, name)?.is_none() {
            return Ok(candidate);
        }
    }
    Err(Error::Invalid("no free default subnet; give one with --subnet".into()))
}

fn ip_range(wanted: Option<&str>, subnet: &Cidr) -> Result<Cidr> {
    match wanted {
        Some(r) => {
            let range: Cidr = r.parse()?;
            if range.prefix() < subnet.prefix() || !subnet.contains(range.addr()) {
                return Err(Error::Invalid(format!("ip-range {r} is not inside subnet {subnet}")));
            }
            Ok(range.network())
        }
        None => Ok(*subnet),
    }
}

/// What `--subnet`, `--gateway` and `--ip-range` ask of one family.
#[derive(Default)]
struct Addressing<'a> {
    subnet: Option<&'a str>,
    gateway: Option<&'a str>,
    ip_range: Option<&'a str>,
}

impl Addressing<'_> {
    /// Reserve the subnet, then check the gateway and range inside it. On
    /// an adopted bridge, an address it has of this family is the gateway,
    /// and its network the subnet unless one is given.
    fn reserve(&self, name: &str, v6: bool, adopted: Option<&link::LinkInfo>) -> Result<Pool> {
        if self.subnet.is_none() && (self.gateway.is_some() || self.ip_range.is_some()) {
            let family = if v6 { "IPv6" } else { "IPv4" };
            return Err(Error::Usage(format!(
                "--gateway and --ip-range need the {family} --subnet they lie in; give it too"
            )));
        }
        let existing = adopted.and_then(|l| {
            l.addresses.iter().filter_map(|a| a.parse::<Cidr>().ok()).find(|c| c.addr().is_ipv6() == v6 && routable(c))
        });
        let from_bridge = existing.map(|c| c.network().to_string());
        let wanted = self.subnet.or(from_bridge.as_deref());
        let subnet = reserve_subnet(wanted, name, v6, adopted.map(|l| l.name.as_str()))?;
        let own = existing.filter(|c| subnet.contains(c.addr())).map(|c| c.addr().to_string());
        let gateway = subnet.gateway(self.gateway.or(own.as_deref()))?;
        Ok(Pool { subnet, gateway, ip_range: ip_range(self.ip_range, &subnet)? })
    }
}

/// The IPv4 and (with `--ipv6`) IPv6 addressing asked for: each of
/// `--subnet`, `--gateway`, `--ip-range` at most once per family.
fn addressing(args: &Args) -> Result<(Addressing<'_>, Option<Addressing<'_>>)> {
    let (mut v4, mut v6) = (Addressing::default(), Addressing::default());
    for flag in ["--subnet", "--gateway", "--ip-range"] {
        for value in args.values(flag) {
            let is_v6 = value.contains(':');
            let family = if is_v6 { &mut v6 } else { &mut v4 };
            let slot = match flag {
                "--subnet" => &mut family.subnet,
                "--gateway" => &mut family.gateway,
                _ => &mut family.ip_range,
            };
            if slot.replace(value).is_some() {
                return Err(Error::Usage(format!(
                    "{flag} given twice for {}; give at most one IPv4 and one IPv6",
                    if is_v6 { "IPv6" } else { "IPv4" }
                )));
            }
        }
    }
    if args.has("--ipv6") {
        return Ok((v4, Some(v6)));
    }
    match v6.subnet.or(v6.gateway).or(v6.ip_range) {
        Some(value) => Err(Error::Usage(format!("{value} is IPv6: add --ipv6 to make the network dual-stack"))),
        None => Ok((v4, None)),
    }
}

/// `--label KEY[=VALUE]`, each key once.
fn labels(args: &Args) -> Result<Vec<(String, String)>> {
    let mut labels: Vec<(String, String)> = Vec::new();
    for given in args.values("--label") {
        let (key, value) = given.split_once('=').unwrap_or((given, ""));
        if key.is_empty() || given.contains(['\n', '\r']) {
            return Err(Error::Invalid(format!("--label {given:?} must be KEY or KEY=VALUE on one line")));
        }
        if labels.iter().any(|(k, _)| k == key) {
            return Err(Error::Usage(format!("--label {key} given twice; give it once")));
        }
        labels.push((key.into(), value.into()));
    }
    Ok(labels)
}

/// `--aux-address NAME=IP`: host addresses of the network's subnets that
/// connect never hands out (a router, a host already on the segment).
fn aux_addresses(args: &Args, net: &Network) -> Result<Vec<(String, IpAddr)>> {
    let mut aux: Vec<(String, IpAddr)> = Vec::new();
    for given in args.values("--aux-address") {
        let bad = || Error::Invalid(format!("--aux-address {given:?} must be NAME=IP"));
        let (name, ip) = given.split_once('=').ok_or_else(bad)?;
        check_name("--aux-address", name)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let pool = if ip.is_ipv6() { net.ipv6 } else { Some(net.v4()) };
        let inside = pool.filter(|p| p.subnet.is_host(ip) && p.gateway.addr() != ip);
        if inside.is_none() {
            return Err(Error::Invalid(format!(
                "--aux-address {given}: {ip} is not a host address of the network's subnets (or is its gateway)"
            )));
        }
        if aux.iter().any(|(n, a)| n == name || *a == ip) {
            return Err(Error::Usage(format!("--aux-address {given}: that name or address is given twice")));
        }
        aux.push((name.into(), ip));
    }
    Ok(aux)
}

/// Now, as Docker shows times: `2026-12-03T12:52:30.123456789Z`.
fn now() -> String {
    timestamp(SystemTime::now())
}

/// `t` as Docker shows times (fixed width: their text order is their time order).
fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_nanos()
    )
}

/// The date `days` after 1970-01-01, proleptic Gregorian (days from civil,
/// inverted through 400-year eras).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// What `create` was asked for, checked before anything is reserved.
struct Spec {
    name: String,
    bridge: String,
    icc: bool,
    mtu: Option<u32>,
    masquerade: bool,
    host_binding: Option<String>,
    firewall: bool,
    ip_forward: bool,
}

/// The options of `create`, with Docker's bridge driver options (`-o KEY=VALUE`).
fn spec(args: &Args) -> Result<Spec> {
    args.at_most(2)?;
    let name = args.required(1, "network NAME")?.to_string();
    check_name("network", &name)?;
    if crate::modes::RESERVED.contains(&name.as_str()) {
        return Err(Error::Invalid(format!(
            "network name {name} is reserved: `connect {name} CONTAINER` is Docker's --net {name}"
        )));
    }
    match args.value("--driver") {
        None | Some("bridge") => {}
        Some("overlay") => {
            return Err(Error::Invalid(
                "docker-bridge makes bridge networks; for -d overlay (several hosts, VXLAN) run recipes/overlay.wasm"
                    .into(),
            ));
        }
        Some(other) => {
            return Err(Error::Invalid(format!(
                "driver {other:?} is not supported; docker-bridge is the bridge driver"
            )));
        }
    }
    let opts = DriverOptions::parse(args)?;
    let pick = |flag: &str, opt: Option<String>| match (args.value(flag), opt) {
        (Some(_), Some(_)) => Err(Error::Usage(format!("{flag} and its -o driver option both given; give one"))),
        (flag, opt) => Ok(flag.map(String::from).or(opt)),
    };
    let default_bridge = if name == store::DEFAULT_NETWORK { "docker0".into() } else { format!("br-{name}") };
    let bridge = pick("--bridge", opts.bridge)?.unwrap_or(default_bridge);
    if bridge.len() > 15 {
        return Err(Error::Invalid(format!(
            "bridge name {bridge:?} is longer than 15 bytes; choose a shorter one with --bridge"
        )));
    }
    let icc = pick("--icc", opts.icc)?.map_or(Ok(true), |v| boolean("--icc", &v))?;
    let mtu = match pick("--mtu", opts.mtu)? {
        Some(m) => Some(m.parse().map_err(|_| Error::Invalid(format!("--mtu {m:?} is not a number")))?),
        None => None,
    };
    let flag = |name: &str| args.value(name).map_or(Ok(true), |v| boolean(name, v));
    let (firewall, ip_forward) = (flag("--iptables")?, flag("--ip-forward")?);
    if !firewall && (!icc || !opts.masquerade || args.has("--internal")) {
        return Err(Error::Usage(
            "--iptables=false makes no firewall rules: --internal, --icc=false and enable_ip_masquerade need them"
                .into(),
        ));
    }
    Ok(Spec {
        name,
        bridge,
        icc,
        mtu,
        masquerade: opts.masquerade,
        host_binding: opts.host_binding,
        firewall,
        ip_forward,
    })
}

/// `true` or `false`.
fn boolean(what: &str, value: &str) -> Result<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::Invalid(format!("{what} must be true or false, not {other:?}"))),
    }
}

/// Docker's bridge driver options, as `docker network create -o` takes them.
#[derive(Default)]
struct DriverOptions {
    bridge: Option<String>,
    icc: Option<String>,
    mtu: Option<String>,
    masquerade: bool,
    host_binding: Option<String>,
}

const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
const ENABLE_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
const HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
const DRIVER_MTU: &str = "com.docker.network.driver.mtu";

impl DriverOptions {
    fn parse(args: &Args) -> Result<DriverOptions> {
        let mut opts = DriverOptions { masquerade: true, ..Default::default() };
        let mut seen = Vec::new();
        for given in args.values("--opt") {
            let (key, value) =
                given.split_once('=').ok_or_else(|| Error::Usage(format!("-o {given:?} is not KEY=VALUE")))?;
            if seen.contains(&key) {
                return Err(Error::Usage(format!("-o {key} given twice; give it once")));
            }
            seen.push(key);
            match key {
                BRIDGE_NAME => opts.bridge = Some(value.into()),
                ENABLE_ICC => opts.icc = Some(value.into()),
                DRIVER_MTU => opts.mtu = Some(value.into()),
                ENABLE_MASQUERADE => opts.masquerade = boolean(ENABLE_MASQUERADE, value)?,
                HOST_BINDING => {
                    let ip: std::net::Ipv4Addr = value
                        .parse()
                        .map_err(|_| Error::Invalid(format!("{HOST_BINDING} {value:?} is not an IPv4 address")))?;
                    opts.host_binding = Some(ip.to_string());
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "driver option {other:?} is not supported; the bridge driver takes {BRIDGE_NAME}, {ENABLE_ICC}, {ENABLE_MASQUERADE}, {HOST_BINDING} and {DRIVER_MTU}"
                    )));
                }
            }
        }
        Ok(opts)
    }
}

/// `create NAME [--ipv6] [--subnet CIDR]... [--gateway IP]... [--ip-range CIDR]... [--internal] [--icc=false] [--mtu N] [--bridge IFNAME]`.
pub fn create(args: &Args) -> Result<()> {
    let net = make(args)?;
    let v6 = net.ipv6.map(|p| format!(" subnet {} gateway {}", p.subnet, p.gateway.addr())).unwrap_or_default();
    println!("{} {} subnet {} gateway {}{v6}", net.name, net.bridge, net.subnet, net.gateway.addr());
    Ok(())
}

/// The default network, made with Docker's defaults if missing.
pub fn default_network() -> Result<Network> {
    match Network::load(store::DEFAULT_NETWORK) {
        Err(e) if e.is_not_found() => {}
        other => return other,
    }
    let args = Args::parse(vec!["create".into(), store::DEFAULT_NETWORK.into()], crate::OPTIONS)?;
    match make(&args) {
        Ok(net) => {
            log::info(&format!("made the default network {} on {} ({})", net.name, net.bridge, net.subnet));
            Ok(net)
        }
        // Another connect is making it at this moment: its record follows.
        Err(e @ Error::Exists(_)) => made_elsewhere(e),
        Err(e) => Err(e),
    }
}

/// The default network another run is making: its record, once stored
/// (moments after its bridge), or `e` if it does not come.
fn made_elsewhere(e: Error) -> Result<Network> {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if let Ok(net) = Network::load(store::DEFAULT_NETWORK) {
            return Ok(net);
        }
        // Asking again at once would only keep a core and the store busy.
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(e)
}

/// Make the network `create` asks for.
fn make(args: &Args) -> Result<Network> {
    let Spec { name, bridge, icc, mtu, masquerade, host_binding, firewall, ip_forward } = spec(args)?;
    if store::Network::load(&name).is_ok() {
        return Err(Error::Exists(format!("network {name} already exists")));
    }
    let adopted = adoptable(&bridge, args)?;
    let labels = labels(args)?;
    if adopted.is_none() {
        // First, so that of runs making the same network the kernel picks one.
        match link::add_bridge(None, &bridge, mtu) {
            Err(Error::Exists(_)) => {
                return Err(Error::Exists(format!("network {name} is being made by another run at this moment")));
            }
            other => other?,
        }
    }
    let (v4, v6) = addressing(args)?;
    let Pool { subnet, gateway, ip_range } = v4.reserve(&name, false, adopted.as_ref())?;
    let mut net = Network {
        name: name.clone(),
        bridge,
        subnet,
        gateway,
        ip_range,
        ipv6: v6.map(|a| a.reserve(&name, true, adopted.as_ref())).transpose()?,
        adopted: adopted.is_some(),
        added: Vec::new(),
        raised: adopted.as_ref().is_some_and(|l| !l.up),
        aux: Vec::new(),
        created: now(),
        internal: args.has("--internal"),
        icc,
        mtu: mtu.or(adopted.as_ref().map(|l| l.mtu)).unwrap_or(1500),
        masquerade,
        host_binding,
        firewall,
        rules: Vec::new(),
    };
    net.aux = aux_addresses(args, &net)?;
    if !net.claim()? {
        // Another create took the name meanwhile: the subnets go back.
        net.release_subnets()?;
        return Err(Error::Exists(format!("network {name} already exists")));
    }
    for (aux_name, ip) in &net.aux {
        net.take_ip(*ip, &format!("aux-address {aux_name}"))?;
    }
    net.save_labels(&labels)?;
    set_up_bridge(&mut net, adopted.as_ref(), mtu)?;
    if !net.is_default() {
        dns::serve(&net.name, &net.gateway.addr().to_string(), &net.subnet, !net.internal)?;
    }
    if ip_forward {
        sysctl::set(None, "net.ipv4.ip_forward", "1")?;
        if net.ipv6.is_some() {
            sysctl::set(None, "net.ipv6.conf.all.forwarding", "1")?;
        }
    }
    if firewall {
        // Lets 127.0.0.1:PORT be DNATed to containers on this bridge.
        sysctl::set(None, &format!("net/ipv4/conf/{}/route_localnet", net.bridge), "1")?;
        net.rules = add_rules(&net)?;
    }
    net.save()?;
    Ok(net)
}

/// The network's own firewall rules; returns their ids.
pub fn add_rules(net: &Network) -> Result<Vec<String>> {
    let owner = net.owner();
    let mut ids = Vec::new();
    if net.internal {
        ids.push(firewall::forward_accept(None, &owner, Some(&net.bridge), Some(&net.bridge))?);
        ids.push(firewall::isolate(None, &owner, &net.bridge, Isolation::External)?);
    } else {
        if net.masquerade {
            for subnet in std::iter::once(net.subnet).chain(net.ipv6.map(|p| p.subnet)) {
                ids.push(firewall::masquerade(None, &owner, &subnet.to_string(), Some(&net.bridge))?);
            }
        }
        ids.push(firewall::forward_accept(None, &owner, Some(&net.bridge), None)?);
    }
    ids.push(firewall::isolate(None, &owner, &net.bridge, Isolation::Networks)?);
    if !net.icc {
        ids.push(firewall::isolate(None, &owner, &net.bridge, Isolation::Ports)?);
    }
    Ok(ids)
}

/// Re-add the network's rules if the firewall lost them (a flushed ruleset),
/// saying so: traffic would otherwise break without a word.
pub fn repair_rules(net: &Network) -> Result<()> {
    let Some(first) = net.rules.first() else { return Ok(()) };
    if firewall::get(None, first)?.is_some() || just_made(net) {
        return Ok(());
    }
    log::warn(&format!(
        "network {}'s firewall rules were missing (was the ruleset flushed?); restoring them",
        net.name
    ));
    add_rules(net).map(drop)
}

/// Whether this is the default network, made moments ago: connects make it
/// on first use, and its record is stored before that run commits its
/// firewall batch, so its rules may not be there *yet* while concurrent
/// first connects join it (networks you create are made before their
/// containers connect).
fn just_made(net: &Network) -> bool {
    if !net.is_default() {
        return false;
    }
    let moments_ago = SystemTime::now().checked_sub(Duration::from_secs(10)).unwrap_or(SystemTime::UNIX_EPOCH);
    net.created > timestamp(moments_ago)
}

/// Remove a rule; one that is gone already counts as removed.
pub fn remove_rule(id: &str) -> Result<()> {
    match firewall::remove(None, id) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// `rm NAME [--force]`.
pub fn rm(args: &Args) -> Result<()> {
    args.at_most(2)?;
    let name = args.required(1, "network NAME")?;
    let net = Network::load(name)?;
    let endpoints = net.endpoints()?;
    if !endpoints.is_empty() && !args.has("--force") {
        let names: Vec<&str> = endpoints.iter().map(|p| p.container.as_str()).collect();
        return Err(Error::Invalid(format!(
            "network {name} has active endpoints ({}); disconnect them first or use --force",
            names.join(", ")
        )));
    }
    remove(&net, &endpoints)
}

/// Release the network's `endpoints`, then take the network down.
fn remove(net: &Network, endpoints: &[Endpoint]) -> Result<()> {
    // Everything that can be taken back first; deleting namespaces and the bridge last.
    let mut doomed = Vec::new();
    for ep in endpoints {
        doomed.push(container::release(net, ep)?);
    }
    net.rules.iter().try_for_each(|id| remove_rule(id))?;
    dns::unserve(&net.name)?;
    net.forget()?;
    doomed.into_iter().try_for_each(|d| d.carry_out())?;
    let gone = |r: Result<()>| match r {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    };
    if !net.adopted {
        return gone(link::delete(None, &net.bridge));
    }
    // An adopted bridge stays, as it was.
    net.added.iter().try_for_each(|a| gone(addr::delete(None, &net.bridge, a)))?;
    match net.raised {
        true => gone(link::set_up(None, &net.bridge, false)),
        false => Ok(()),
    }
}

/// Give the new (or adopted) bridge its MTU and the gateways it lacks, and bring it up.
fn set_up_bridge(net: &mut Network, adopted: Option<&link::LinkInfo>, mtu: Option<u32>) -> Result<()> {
    if let (Some(_), Some(mtu)) = (adopted, mtu) {
        link::set_mtu(None, &net.bridge, mtu)?;
    }
    let has = |c: &Cidr| adopted.is_some_and(|l| l.addresses.contains(&c.to_string()));
    for gateway in std::iter::once(net.gateway).chain(net.ipv6.map(|p| p.gateway)).filter(|g| !has(g)) {
        match gateway.addr().is_ipv6() {
            // No duplicate address detection: the gateway answers at once.
            true => addr::add_nodad(None, &net.bridge, &gateway)?,
            false => addr::add(None, &net.bridge, &gateway)?,
        }
        if net.adopted {
            net.added.push(gateway);
        }
    }
    link::set_up(None, &net.bridge, true)
}

/// The existing bridge `create` adopts (`--bridge` naming one): it must be
/// a bridge, no network's already, and named explicitly (the default
/// network never takes over a docker0 it did not make).
fn adoptable(bridge: &str, args: &Args) -> Result<Option<link::LinkInfo>> {
    let found = match link::get(None, bridge) {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let named = args.value("--bridge").is_some() || args.values("--opt").iter().any(|o| o.starts_with(BRIDGE_NAME));
    if !named {
        return Err(Error::Exists(format!(
            "interface {bridge} already exists; choose another name with --bridge, or adopt it with --bridge {bridge}"
        )));
    }
    if found.kind != "bridge" {
        return Err(Error::Invalid(format!(
            "interface {bridge} is a {}, not a bridge; name a bridge to adopt",
            found.kind
        )));
    }
    if let Some(owner) = Network::all()?.into_iter().find(|n| n.bridge == bridge) {
        return Err(Error::Exists(format!("bridge {bridge} is network {}'s already", owner.name)));
    }
    Ok(Some(found))
}

/// `ls [-q|--quiet] [--format json]`: a table, names only, or one JSON
/// object per network and line, like `docker network ls`.
pub fn ls(args: &Args) -> Result<()> {
    args.at_most(1)?;
    let json = match args.value("--format") {
        None | Some("table") => false,
        Some("json") => true,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "--format {other:?}: use json or table (Docker's Go templates are not supported)"
            )));
        }
    };
    let networks = Network::all()?;
    if args.has("--quiet") {
        networks.iter().for_each(|n| println!("{}", n.name));
        return Ok(());
    }
    if json {
        return networks.iter().try_for_each(|n| ls_json(n).map(|line| println!("{line}")));
    }
    println!("{:<20} {:<15} {:<18} {:<15} CONTAINERS", "NAME", "BRIDGE", "SUBNET", "GATEWAY");
    for n in networks {
        let mut flags = Vec::new();
        if n.internal {
            flags.push("internal");
        }
        if !n.icc {
            flags.push("icc=false");
        }
        if !n.masquerade && !n.internal {
            flags.push("no masquerade");
        }
        if !n.firewall {
            flags.push("iptables=false");
        }
        let ipv6 = n.ipv6.map(|p| format!("IPv6 {}", p.subnet));
        flags.extend(ipv6.as_deref());
        println!(
            "{:<20} {:<15} {:<18} {:<15} {}{}",
            n.name,
            n.bridge,
            n.subnet.to_string(),
            n.gateway.addr().to_string(),
            n.endpoints()?.len(),
            if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(", ")) }
        );
    }
    Ok(())
}

/// One network as `docker network ls --format json` prints it (times as
/// Go prints them: `2026-12-03 12:52:30.123456789 +0000 UTC`).
fn ls_json(n: &Network) -> Result<String> {
    let labels: Vec<String> = n.labels()?.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let created = n.created.replace('T', " ").replace('Z', " +0000 UTC");
    Ok(format!(
        r#"{{"CreatedAt":{},"Driver":"bridge","ID":{},"IPv6":{},"Internal":{},"Labels":{},"Name":{},"Scope":"local"}}"#,
        json::string(&created),
        json::string(&n.id()[..12]),
        json::string(&n.ipv6.is_some().to_string()),
        json::string(&n.internal.to_string()),
        json::string(&labels.join(",")),
        json::string(&n.name)
    ))
}

/// `prune`: remove every network without containers (connected or
/// connecting), like `docker network prune -f`.
pub fn prune(args: &Args) -> Result<()> {
    args.at_most(1)?;
    let mut deleted = Vec::new();
    for net in Network::all()? {
        if !net.in_use()? {
            remove(&net, &[])?;
            deleted.push(net.name);
        }
    }
    match deleted.is_empty() {
        true => println!("no unused networks"),
        false => println!("Deleted Networks:\n{}", deleted.join("\n")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        for (days, date) in [(0, (1970, 1, 1)), (59, (1970, 3, 1)), (11_016, (2000, 2, 29)), (20_790, (2026, 12, 3))] {
            assert_eq!(super::civil_from_days(days), date);
        }
    }
}
