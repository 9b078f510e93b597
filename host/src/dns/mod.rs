//! netsh's DNS resolver for container networks, like Docker's embedded
//! resolver and Podman's aardvark-dns: it answers for the containers of each
//! network (names, aliases, reverse lookups) and forwards every other query
//! to the host's upstream servers.
//!
//! What it serves lives in the key-value store, under a documented prefix,
//! so a recipe declares it with a `kv:netsh/dns/*` grant and every change is
//! planned, audited, journaled and rolled back like any other write:
//!
//! ```text
//! netsh/dns/zone/ZONE               listen=IP clients=CIDR [forward=no]
//!                                   serve ZONE on IP:53 to CIDR (forward=no: an
//!                                   internal network's, other names are refused)
//! netsh/dns/name/ZONE/NAME/ADDR     ptr | alias              NAME (and NAME.ZONE) is ADDR
//! netsh/dns/link/ZONE/CLIENT/ALIAS  TARGET                   for CLIENT only, ALIAS is whatever
//!                                                            TARGET is in ZONE (Docker's --link),
//!                                                            or TARGET itself if an address (--add-host)
//! ```
//!
//! A `ptr` name is also the answer to ADDR's reverse lookup. A link is
//! resolved when asked, so it follows its target (which need not exist yet). [`lifecycle`]
//! starts the one resolver process of a state directory when the first zone
//! appears; it stops itself after the last one goes.

pub mod lifecycle;
pub mod server;

use std::collections::HashMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::kv::Entry;

/// Where the resolver's records start in the key-value store.
pub const PREFIX: &str = "netsh/dns/";

/// One network's zone: where it listens and whom it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub listen: IpAddr,
    pub clients: IpNetwork,
    /// Names it does not hold are asked upstream (not for internal networks).
    pub forward: bool,
}

/// A name's address in a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub zone: String,
    pub name: String,
    pub addr: IpAddr,
    /// The container's own name (the reverse lookup's answer), not an alias.
    pub ptr: bool,
}

/// Everything the store says, indexed for one lookup per query.
#[derive(Debug, Default)]
pub struct Table {
    zones: Vec<Zone>,
    /// zone → lower-case name → its addresses.
    names: HashMap<String, HashMap<String, Vec<IpAddr>>>,
    /// zone → address → the container's own name there.
    owners: HashMap<String, HashMap<IpAddr, String>>,
    /// lower-case container name → the zones it is on.
    memberships: HashMap<String, Vec<String>>,
    /// (zone, client, lower-case alias) → the lower-case name it stands for.
    links: HashMap<(String, IpAddr, String), String>,
    /// Entries that did not parse (reported, otherwise ignored).
    pub damaged: Vec<String>,
}

/// What the table says about a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The client is not in any zone served at that address.
    Refused,
    /// The name is a container's: these addresses (maybe none of the asked family).
    Addrs(Vec<IpAddr>),
    /// The address is a container's: its name in its zone.
    Ptr(String),
    /// The name or address belongs to a zone but nothing has it.
    NxDomain,
    /// Not the zones' business: ask upstream.
    Forward,
}

impl Table {
    /// Build the table from the entries under [`PREFIX`].
    pub fn load(entries: &[Entry]) -> Table {
        let mut table = Table::default();
        for entry in entries {
            let rest = entry.key.strip_prefix(PREFIX).unwrap_or(&entry.key);
            let parsed = match rest.split_once('/') {
                Some(("zone", zone)) => parse_zone(zone, &entry.value).map(|z| table.zones.push(z)),
                Some(("name", path)) => parse_record(path, &entry.value).map(|r| table.insert(r)),
                Some(("link", path)) => parse_link(path, &entry.value).map(|l| {
                    table.links.insert(l.0, l.1);
                }),
                _ => None,
            };
            if parsed.is_none() {
                table.damaged.push(format!("{} = {}", entry.key, entry.value));
            }
        }
        table
    }

    fn insert(&mut self, record: Record) {
        let name = record.name.to_ascii_lowercase();
        self.names.entry(record.zone.clone()).or_default().entry(name.clone()).or_default().push(record.addr);
        if record.ptr {
            self.owners.entry(record.zone.clone()).or_default().insert(record.addr, record.name.clone());
            self.memberships.entry(name).or_default().push(record.zone);
        }
    }

    /// The container whose own address in `zone` is `addr`.
    fn owner(&self, zone: &str, addr: IpAddr) -> Option<&String> {
        self.owners.get(zone).and_then(|owners| owners.get(&addr))
    }

    /// The zones served.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// How many names a zone holds.
    pub fn names_in(&self, zone: &str) -> usize {
        self.names.get(zone).map_or(0, HashMap::len)
    }

    /// The addresses to listen on.
    pub fn listen_addrs(&self) -> Vec<IpAddr> {
        let mut addrs: Vec<IpAddr> = self.zones.iter().map(|z| z.listen).collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// The zones a client asking at `listen` may see: those served there to
    /// it and, when it is a container, every other network it is on.
    fn visible(&self, listen: IpAddr, client: IpAddr) -> Vec<&str> {
        let mut zones: Vec<&str> = self
            .zones
            .iter()
            .filter(|z| z.listen == listen && z.clients.contains(client))
            .map(|z| z.name.as_str())
            .collect();
        let own_name = zones.iter().find_map(|z| self.owner(z, client));
        if let Some(name) = own_name {
            for zone in self.memberships.get(&name.to_ascii_lowercase()).into_iter().flatten() {
                if !zones.contains(&zone.as_str()) {
                    zones.push(zone);
                }
            }
        }
        zones
    }

    /// Look `name` (no trailing dot) up for `client`, asking at `listen`.
    pub fn lookup(&self, listen: IpAddr, client: IpAddr, name: &str) -> Answer {
        let zones = self.visible(listen, client);
        if zones.is_empty() {
            return Answer::Refused;
        }
        let name = name.to_ascii_lowercase();
        let outward = self.forwards(&zones);
        let in_zone = |n: &str, z: &str| self.names.get(z).and_then(|names| names.get(n)).cloned();
        if let Some((zone, target)) = self.link(&zones, client, &name) {
            if let Ok(addr) = target.parse::<IpAddr>() {
                return Answer::Addrs(vec![addr]);
            }
            return in_zone(target, zone).map_or(Answer::NxDomain, Answer::Addrs);
        }
        let found: Vec<IpAddr> = zones.iter().filter_map(|z| in_zone(&name, z)).flatten().collect();
        if !found.is_empty() {
            return Answer::Addrs(found);
        }
        for zone in &zones {
            let short = name.strip_suffix(zone.to_ascii_lowercase().as_str()).and_then(|n| n.strip_suffix('.'));
            if let Some(short) = short {
                return match in_zone(short, zone) {
                    Some(addrs) => Answer::Addrs(addrs),
                    None => Answer::NxDomain,
                };
            }
        }
        outward
    }

    /// The link `name` (or `name` less `.ZONE`) of `client` in one of `zones`, and its zone.
    fn link<'a>(&'a self, zones: &[&'a str], client: IpAddr, name: &str) -> Option<(&'a str, &'a String)> {
        zones.iter().find_map(|zone| {
            let short = name.strip_suffix(zone.to_ascii_lowercase().as_str()).and_then(|n| n.strip_suffix('.'));
            [Some(name), short]
                .into_iter()
                .flatten()
                .find_map(|n| self.links.get(&(zone.to_string(), client, n.to_string())).map(|target| (*zone, target)))
        })
    }

    /// What to do with a name none of `zones` holds: ask upstream, unless
    /// every one is an internal network's (Docker forwards nothing for those).
    fn forwards(&self, zones: &[&str]) -> Answer {
        let forwarding = |name: &&str| self.zones.iter().any(|z| z.name == *name && z.forward);
        if zones.iter().any(forwarding) { Answer::Forward } else { Answer::Refused }
    }

    /// The reverse lookup of `addr` for `client`, asking at `listen`.
    pub fn reverse(&self, listen: IpAddr, client: IpAddr, addr: IpAddr) -> Answer {
        let zones = self.visible(listen, client);
        if zones.is_empty() {
            return Answer::Refused;
        }
        if let Some((zone, name)) = zones.iter().find_map(|z| self.owner(z, addr).map(|n| (z, n))) {
            return Answer::Ptr(format!("{name}.{zone}"));
        }
        let ours = self.zones.iter().any(|z| zones.contains(&z.name.as_str()) && z.clients.contains(addr));
        if ours { Answer::NxDomain } else { self.forwards(&zones) }
    }
}

/// `listen=IP clients=CIDR [forward=yes|no]`.
fn parse_zone(name: &str, value: &str) -> Option<Zone> {
    let mut listen = None;
    let mut clients = None;
    let mut forward = Some(true);
    for word in value.split_whitespace() {
        match word.split_once('=')? {
            ("listen", ip) => listen = ip.parse().ok(),
            ("clients", cidr) => clients = cidr.parse().ok(),
            ("forward", "yes") => forward = Some(true),
            ("forward", "no") => forward = Some(false),
            _ => return None,
        }
    }
    (!name.contains('/')).then_some(())?;
    Some(Zone { name: name.to_string(), listen: listen?, clients: clients?, forward: forward? })
}

/// `ZONE/NAME/ADDR` = `ptr` | `alias`.
fn parse_record(path: &str, value: &str) -> Option<Record> {
    let mut parts = path.splitn(3, '/');
    let (zone, name, addr) = (parts.next()?, parts.next()?, parts.next()?);
    let ptr = match value {
        "ptr" => true,
        "alias" => false,
        _ => return None,
    };
    Some(Record { zone: zone.into(), name: name.into(), addr: addr.parse().ok()?, ptr })
}

/// `ZONE/CLIENT/ALIAS` = `TARGET`.
fn parse_link(path: &str, target: &str) -> Option<((String, IpAddr, String), String)> {
    let mut parts = path.splitn(3, '/');
    let (zone, client, alias) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?);
    let lower = |s: &str| (!s.is_empty() && !s.contains('/')).then(|| s.to_ascii_lowercase());
    Some(((zone.into(), client, lower(alias)?), lower(target)?))
}

/// The store value of a zone.
pub fn zone_value(listen: IpAddr, clients: IpNetwork, forward: bool) -> String {
    let internal = if forward { "" } else { " forward=no" };
    format!("listen={listen} clients={clients}{internal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> Entry {
        Entry { key: format!("{PREFIX}{key}"), value: value.into(), version: 1 }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Two networks; c1 on both, c2 on `front` only, c3 on `back` only.
    fn table() -> Table {
        Table::load(&[
            entry("zone/front", "listen=10.1.0.1 clients=10.1.0.0/24"),
            entry("zone/back", "listen=10.2.0.1 clients=10.2.0.0/24"),
            entry("name/front/c1/10.1.0.2", "ptr"),
            entry("name/front/web/10.1.0.2", "alias"),
            entry("name/front/c2/10.1.0.3", "ptr"),
            entry("name/back/c1/10.2.0.2", "ptr"),
            entry("name/back/c3/10.2.0.3", "ptr"),
            entry("name/back/broken", "ptr"),
        ])
    }

    #[test]
    fn names_aliases_and_zones() {
        let t = table();
        let at_front = |client: &str, name: &str| t.lookup(ip("10.1.0.1"), ip(client), name);
        let addrs = |a: &[&str]| Answer::Addrs(a.iter().map(|s| ip(s)).collect());
        assert_eq!(at_front("10.1.0.3", "C1"), addrs(&["10.1.0.2"]));
        assert_eq!(at_front("10.1.0.3", "web.front"), addrs(&["10.1.0.2"]));
        assert_eq!(at_front("10.1.0.3", "nobody.front"), Answer::NxDomain);
        assert_eq!(at_front("10.1.0.3", "example.org"), Answer::Forward);
        // c2 is not on back: c3 is not its business.
        assert_eq!(at_front("10.1.0.3", "c3"), Answer::Forward);
        // c1 is on both networks and sees both.
        assert_eq!(at_front("10.1.0.2", "c3"), addrs(&["10.2.0.3"]));
        assert_eq!(at_front("10.1.0.2", "c1"), addrs(&["10.1.0.2", "10.2.0.2"]));
        // Outside every zone served there: refused.
        assert_eq!(at_front("192.168.1.5", "c1"), Answer::Refused);
        assert_eq!(t.lookup(ip("10.2.0.1"), ip("10.1.0.3"), "c1"), Answer::Refused);
        assert_eq!(t.damaged.len(), 1);
    }

    #[test]
    fn internal_networks_forward_nothing_unless_a_container_is_also_elsewhere() {
        let t = Table::load(&[
            entry("zone/front", "listen=10.1.0.1 clients=10.1.0.0/24"),
            entry("zone/vault", "listen=10.3.0.1 clients=10.3.0.0/24 forward=no"),
            entry("name/vault/db/10.3.0.2", "ptr"),
            entry("name/vault/app/10.3.0.3", "ptr"),
            entry("name/front/app/10.1.0.3", "ptr"),
        ]);
        let at_vault = |client: &str, name: &str| t.lookup(ip("10.3.0.1"), ip(client), name);
        assert_eq!(at_vault("10.3.0.2", "app"), Answer::Addrs(vec![ip("10.3.0.3")]));
        assert_eq!(at_vault("10.3.0.2", "example.org"), Answer::Refused);
        assert_eq!(t.reverse(ip("10.3.0.1"), ip("10.3.0.2"), ip("192.0.2.1")), Answer::Refused);
        // app is on front too: it may ask for the outside.
        assert_eq!(at_vault("10.3.0.3", "example.org"), Answer::Forward);
    }

    #[test]
    fn links_answer_only_their_client_and_follow_their_target() {
        let mut entries = vec![
            entry("zone/front", "listen=10.1.0.1 clients=10.1.0.0/24"),
            entry("name/front/c1/10.1.0.2", "ptr"),
            entry("name/front/c2/10.1.0.3", "ptr"),
            entry("link/front/10.1.0.3/DB/c1", "c1"),
            entry("link/front/10.1.0.3/later", "c9"),
            entry("link/front/10.1.0.3/host.docker.internal", "10.1.0.1"),
            entry("link/front/not-an-ip/db", "c1"),
        ];
        let t = Table::load(&entries);
        let at_front = |t: &Table, client: &str, name: &str| t.lookup(ip("10.1.0.1"), ip(client), name);
        assert_eq!(t.damaged.len(), 2, "{:?}", t.damaged);
        assert_eq!(at_front(&t, "10.1.0.3", "host.docker.internal"), Answer::Addrs(vec![ip("10.1.0.1")]));
        entries.truncate(3);
        entries.push(entry("link/front/10.1.0.3/db", "C1"));
        entries.push(entry("link/front/10.1.0.3/later", "c9"));
        let t = Table::load(&entries);
        assert_eq!(at_front(&t, "10.1.0.3", "DB"), Answer::Addrs(vec![ip("10.1.0.2")]));
        assert_eq!(at_front(&t, "10.1.0.3", "db.front"), Answer::Addrs(vec![ip("10.1.0.2")]));
        assert_eq!(at_front(&t, "10.1.0.2", "db.front"), Answer::NxDomain);
        // Another container does not see c2's link.
        assert_eq!(at_front(&t, "10.1.0.2", "db"), Answer::Forward);
        // A link to a container not there (yet) is a name that does not exist.
        assert_eq!(at_front(&t, "10.1.0.3", "later"), Answer::NxDomain);
        entries.push(entry("name/front/c9/10.1.0.9", "ptr"));
        assert_eq!(at_front(&Table::load(&entries), "10.1.0.3", "later"), Answer::Addrs(vec![ip("10.1.0.9")]));
    }

    #[test]
    fn reverse_lookups() {
        let t = table();
        let rev = |client: &str, addr: &str| t.reverse(ip("10.1.0.1"), ip(client), ip(addr));
        assert_eq!(rev("10.1.0.3", "10.1.0.2"), Answer::Ptr("c1.front".into()));
        assert_eq!(rev("10.1.0.3", "10.1.0.99"), Answer::NxDomain);
        assert_eq!(rev("10.1.0.3", "10.2.0.3"), Answer::Forward);
        assert_eq!(rev("10.1.0.2", "10.2.0.3"), Answer::Ptr("c3.back".into()));
    }

    #[test]
    fn zone_values_round_trip() {
        let value = zone_value(ip("fd00::1"), "fd00::/64".parse().unwrap(), true);
        let zone = parse_zone("v6", &value).unwrap();
        assert!(zone.forward);
        let internal = parse_zone("v6", &zone_value(ip("fd00::1"), "fd00::/64".parse().unwrap(), false)).unwrap();
        assert!(!internal.forward);
        assert!(parse_zone("x", "listen=10.0.0.1 clients=10.0.0.0/24 forward=maybe").is_none());
        assert_eq!((zone.listen, zone.clients.to_string()), (ip("fd00::1"), "fd00::/64".into()));
        assert!(parse_zone("x", "listen=10.0.0.1").is_none());
        assert!(parse_zone("x", "listen=10.0.0.1 clients=10.0.0.0/24 extra=1").is_none());
    }
}
