//! Write netsh recipes in Rust.
//!
//! A recipe is a WebAssembly component (target `wasm32-wasip2`) that the
//! `netsh` host runs in a sandbox. It can only act through the capability
//! modules below ([`netns`], [`link`], [`addr`], [`route`], [`sysctl`],
//! [`firewall`], [`kv`], [`log`]); every call is checked and carried out by the host.
//!
//! ```no_run
//! use netsh_guest::{link, Args, Manifest, Opt, Recipe, Result};
//!
//! struct Hello;
//!
//! impl Recipe for Hello {
//!     fn manifest() -> Manifest {
//!         Manifest::new("hello", "create a bridge")
//!             .usage("hello [--name BR]")
//!             .grant("link:br-*", "creates the bridge")
//!     }
//!
//!     fn run(args: Vec<String>) -> Result<()> {
//!         let args = Args::parse(args, &[Opt::value("--name")])?;
//!         let name = args.value("--name").unwrap_or("br-hello");
//!         link::add_bridge(None, name, None)?;
//!         link::set_up(None, name, true)
//!     }
//! }
//!
//! netsh_guest::export_recipe!(Hello);
//! ```

extern crate self as netsh_guest;

mod args;
mod cidr;
mod error;
pub mod json;
pub mod meta;

pub use args::{Args, Opt, Takes};
pub use cidr::Cidr;
pub use error::{Error, Result};

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Raw bindings generated from `wit/` (the only `generate!` of netsh).
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "recipe",
        pub_export_macro: true,
        export_macro_name: "__export_recipe_world",
        default_bindings_module: "netsh_guest::bindings",
        runtime_path: "netsh_guest::__wit_bindgen::rt",
    });
}

use bindings::netsh::host;

/// A permission a recipe asks for, and why.
pub type GrantRequest = bindings::GrantRequest;

/// What a recipe is and what it needs; built with [`Manifest::new`].
#[derive(Debug, Clone)]
pub struct Manifest(bindings::Manifest);

impl Manifest {
    /// A manifest with the crate's version.
    pub fn new(name: &str, summary: &str) -> Self {
        Manifest(bindings::Manifest {
            name: name.into(),
            version: String::new(),
            summary: summary.into(),
            usage: String::new(),
            grants: Vec::new(),
        })
    }

    /// The recipe's version (use `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: &str) -> Self {
        self.0.version = version.into();
        self
    }

    /// How to call the recipe (shown by `netsh inspect`).
    pub fn usage(mut self, usage: &str) -> Self {
        self.0.usage = usage.into();
        self
    }

    /// Ask for a grant such as `link:br-*`, saying why.
    pub fn grant(mut self, grant: &str, reason: &str) -> Self {
        self.0.grants.push(GrantRequest { grant: grant.into(), reason: reason.into() });
        self
    }

    #[doc(hidden)]
    pub fn into_raw(self) -> bindings::Manifest {
        self.0
    }
}

/// A recipe: implement this and export it with [`export_recipe!`].
pub trait Recipe {
    /// Name, summary, usage and requested grants.
    fn manifest() -> Manifest;
    /// Do the work; `args` are what the user put after `--`.
    fn run(args: Vec<String>) -> Result<()>;
    /// Answer a container runtime's CNI call (`netsh` as a CNI plugin).
    /// Recipes that are not network plugins keep this refusal.
    fn cni(request: cni::Request) -> Result<cni::Reply> {
        let _ = request;
        Err(Error::Invalid("this recipe is not a CNI plugin (it has no `cni` entry point)".into()))
    }
}

/// CNI calls: what the runtime asked ([`cni::Request`]) and the answer to ADD ([`cni::Reply`]).
pub mod cni {
    pub use crate::bindings::{
        CniCommand as Command, CniInterface as Interface, CniIp as Ip, CniPort as Port, CniRequest as Request,
        CniResult as Reply, CniRoute as Route,
    };

    /// The answer of commands other than ADD.
    pub fn empty() -> Reply {
        Reply { interfaces: Vec::new(), ips: Vec::new(), routes: Vec::new(), nameservers: Vec::new() }
    }

    /// The value of `key` in a list of pairs (`options`, `args`).
    pub fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
        pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

/// Export a type implementing [`Recipe`] as the component's `describe`/`run`/`cni`.
#[macro_export]
macro_rules! export_recipe {
    ($recipe:ty) => {
        struct __NetshRecipeExport;

        impl $crate::bindings::Guest for __NetshRecipeExport {
            fn describe() -> $crate::bindings::Manifest {
                <$recipe as $crate::Recipe>::manifest().into_raw()
            }

            fn run(args: ::std::vec::Vec<::std::string::String>) -> ::std::result::Result<(), $crate::bindings::RunError> {
                <$recipe as $crate::Recipe>::run(args).map_err($crate::Error::into_run_error)
            }

            fn cni(
                request: $crate::bindings::CniRequest,
            ) -> ::std::result::Result<$crate::bindings::CniResult, $crate::bindings::CniError> {
                <$recipe as $crate::Recipe>::cni(request).map_err($crate::Error::into_cni_error)
            }
        }

        $crate::bindings::__export_recipe_world!(__NetshRecipeExport with_types_in $crate::bindings);
    };
}

/// Named network namespaces (`ip netns`).
pub mod netns {
    use super::{Result, host::netns as raw};
    pub use raw::EtcFile;

    /// `ip netns add NAME`.
    pub fn create(name: &str) -> Result<()> {
        Ok(raw::create(name)?)
    }
    /// `ip netns del NAME`.
    pub fn delete(name: &str) -> Result<()> {
        Ok(raw::delete(name)?)
    }
    /// `ip netns list`.
    pub fn list() -> Result<Vec<String>> {
        Ok(raw::list()?)
    }
    /// Whether the namespace exists.
    pub fn exists(name: &str) -> Result<bool> {
        Ok(raw::exists(name)?)
    }
    /// `ip netns attach NAME PID`.
    pub fn attach(name: &str, pid: u32) -> Result<()> {
        Ok(raw::attach(name, pid)?)
    }
    /// Give namespace `target` the second name `name` (Docker's `--net container:`);
    /// calls under either name need grants on both.
    pub fn alias(name: &str, target: &str) -> Result<()> {
        Ok(raw::alias(name, target)?)
    }
    /// Write /etc/netns/NAME/FILE.
    pub fn write_etc(name: &str, file: EtcFile, contents: &str) -> Result<()> {
        Ok(raw::write_etc(name, file, contents)?)
    }
    /// Read /etc/netns/NAME/FILE, or the host's /etc/FILE for `None`.
    pub fn read_etc(name: Option<&str>, file: EtcFile) -> Result<String> {
        Ok(raw::read_etc(name, file)?)
    }
    /// Append a line to the shared hosts file of `group`; false if it is there.
    pub fn hosts_add(group: &str, line: &str) -> Result<bool> {
        Ok(raw::hosts_add(group, line)?)
    }
    /// Remove a line from the shared hosts file of `group`; false if absent.
    pub fn hosts_remove(group: &str, line: &str) -> Result<bool> {
        Ok(raw::hosts_remove(group, line)?)
    }
    /// Point /etc/netns/NAME/hosts at the shared hosts file of `group`.
    pub fn hosts_share(name: &str, group: &str) -> Result<()> {
        Ok(raw::hosts_share(name, group)?)
    }
}

/// Network interfaces (`ip link`).
pub mod link {
    use super::{Result, host::link as raw};
    pub use raw::{LinkInfo, MacvlanMode, Veth, Vxlan};

    /// `ip link add NAME type bridge`, with an optional MTU.
    pub fn add_bridge(ns: Option<&str>, name: &str, mtu: Option<u32>) -> Result<()> {
        Ok(raw::add_bridge(ns, name, mtu)?)
    }
    /// A veth pair in one call; see [`Veth`].
    pub fn add_veth(ns: Option<&str>, spec: &Veth) -> Result<()> {
        Ok(raw::add_veth(ns, spec)?)
    }
    /// A VXLAN device in one call; see [`Vxlan`].
    pub fn add_vxlan(ns: Option<&str>, spec: &Vxlan) -> Result<()> {
        Ok(raw::add_vxlan(ns, spec)?)
    }
    /// `ip link add link PARENT name NAME type macvlan mode MODE` (down).
    pub fn add_macvlan(ns: Option<&str>, name: &str, parent: &str, mode: MacvlanMode) -> Result<()> {
        Ok(raw::add_macvlan(ns, name, parent, mode)?)
    }
    /// `ip link set NAME up|down`.
    pub fn set_up(ns: Option<&str>, name: &str, up: bool) -> Result<()> {
        Ok(raw::set_up(ns, name, up)?)
    }
    /// `ip link set NAME master BR|nomaster`.
    pub fn set_master(ns: Option<&str>, name: &str, master: Option<&str>) -> Result<()> {
        Ok(raw::set_master(ns, name, master)?)
    }
    /// `ip link set NAME netns TARGET` (`None`: netsh's namespace).
    pub fn set_netns(ns: Option<&str>, name: &str, target: Option<&str>) -> Result<()> {
        Ok(raw::set_netns(ns, name, target)?)
    }
    /// `ip link set NAME mtu M`.
    pub fn set_mtu(ns: Option<&str>, name: &str, mtu: u32) -> Result<()> {
        Ok(raw::set_mtu(ns, name, mtu)?)
    }
    /// `ip link set NAME alias TEXT` (at most 255 bytes).
    pub fn set_alias(ns: Option<&str>, name: &str, alias: &str) -> Result<()> {
        Ok(raw::set_alias(ns, name, alias)?)
    }
    /// `ip link set NAME name NEW`.
    pub fn rename(ns: Option<&str>, name: &str, new_name: &str) -> Result<()> {
        Ok(raw::rename(ns, name, new_name)?)
    }
    /// `ip link del NAME`.
    pub fn delete(ns: Option<&str>, name: &str) -> Result<()> {
        Ok(raw::delete(ns, name)?)
    }
    /// One link with its addresses.
    pub fn get(ns: Option<&str>, name: &str) -> Result<LinkInfo> {
        Ok(raw::get(ns, name)?)
    }
    /// Every link with its addresses.
    pub fn list(ns: Option<&str>) -> Result<Vec<LinkInfo>> {
        Ok(raw::list(ns)?)
    }
}

/// Interface addresses (`ip addr`).
pub mod addr {
    use super::{Cidr, Result, host::addr as raw};
    pub use raw::AddrInfo;

    /// `ip addr add CIDR dev DEV`.
    pub fn add(ns: Option<&str>, dev: &str, cidr: &Cidr) -> Result<()> {
        Ok(raw::add(ns, dev, &cidr.to_string(), raw::AddFlags::empty())?)
    }
    /// `ip addr add CIDR dev DEV nodad`: an IPv6 address usable at once,
    /// without duplicate address detection (for addresses netsh hands out itself).
    pub fn add_nodad(ns: Option<&str>, dev: &str, cidr: &Cidr) -> Result<()> {
        Ok(raw::add(ns, dev, &cidr.to_string(), raw::AddFlags::NODAD)?)
    }
    /// `ip addr del CIDR dev DEV`.
    pub fn delete(ns: Option<&str>, dev: &str, cidr: &Cidr) -> Result<()> {
        Ok(raw::delete(ns, dev, &cidr.to_string())?)
    }
    /// `ip addr show [dev DEV]`.
    pub fn list(ns: Option<&str>, dev: Option<&str>) -> Result<Vec<AddrInfo>> {
        Ok(raw::list(ns, dev)?)
    }
}

/// Routes (`ip route`).
pub mod route {
    use super::{Result, host::route as raw};
    pub use raw::{RouteInfo, RuleAction, RuleInfo};

    /// A default route via `gateway`.
    pub fn default_via(gateway: &str) -> RouteInfo {
        RouteInfo {
            dest: "default".into(),
            via: Some(gateway.into()),
            dev: None,
            onlink: false,
            metric: None,
            src: None,
            table: None,
        }
    }
    /// `ip route add ...`.
    pub fn add(ns: Option<&str>, route: &RouteInfo) -> Result<()> {
        Ok(raw::add(ns, route)?)
    }
    /// `ip route del ...`.
    pub fn delete(ns: Option<&str>, route: &RouteInfo) -> Result<()> {
        Ok(raw::delete(ns, route)?)
    }
    /// `ip route show`.
    pub fn list(ns: Option<&str>) -> Result<Vec<RouteInfo>> {
        Ok(raw::list(ns)?)
    }

    /// `ip rule add ...`.
    pub fn add_rule(ns: Option<&str>, rule: &RuleInfo) -> Result<()> {
        Ok(raw::add_rule(ns, rule)?)
    }
    /// `ip rule del ...`.
    pub fn delete_rule(ns: Option<&str>, rule: &RuleInfo) -> Result<()> {
        Ok(raw::delete_rule(ns, rule)?)
    }
    /// `ip rule show` + `ip -6 rule show`.
    pub fn rules(ns: Option<&str>) -> Result<Vec<RuleInfo>> {
        Ok(raw::rules(ns)?)
    }
}

/// Neighbour entries (`ip neigh`) and forwarding entries (`bridge fdb`).
pub mod neigh {
    use super::{Result, host::neigh as raw};
    pub use raw::{FdbEntry, NeighInfo};

    /// `ip neigh add IP lladdr MAC dev DEV nud permanent`.
    pub fn add(ns: Option<&str>, dev: &str, ip: &str, mac: &str) -> Result<()> {
        Ok(raw::add(ns, dev, ip, mac)?)
    }
    /// `ip neigh del IP dev DEV`.
    pub fn delete(ns: Option<&str>, dev: &str, ip: &str) -> Result<()> {
        Ok(raw::delete(ns, dev, ip)?)
    }
    /// `ip neigh show [dev DEV]`.
    pub fn list(ns: Option<&str>, dev: Option<&str>) -> Result<Vec<NeighInfo>> {
        Ok(raw::list(ns, dev)?)
    }
    /// `bridge fdb append MAC dev DEV dst IP self permanent`.
    pub fn fdb_append(ns: Option<&str>, entry: &FdbEntry) -> Result<()> {
        Ok(raw::fdb_append(ns, entry)?)
    }
    /// `bridge fdb del MAC dev DEV dst IP self`.
    pub fn fdb_delete(ns: Option<&str>, entry: &FdbEntry) -> Result<()> {
        Ok(raw::fdb_delete(ns, entry)?)
    }
    /// `bridge fdb show [dev DEV]` (the devices' own entries).
    pub fn fdb_list(ns: Option<&str>, dev: Option<&str>) -> Result<Vec<FdbEntry>> {
        Ok(raw::fdb_list(ns, dev)?)
    }
}

/// Kernel parameters under net.* (`sysctl`).
pub mod sysctl {
    use super::{Result, host::sysctl as raw};

    /// `sysctl -n KEY`.
    pub fn get(ns: Option<&str>, key: &str) -> Result<String> {
        Ok(raw::get(ns, key)?)
    }
    /// `sysctl -w KEY=VALUE`.
    pub fn set(ns: Option<&str>, key: &str, value: &str) -> Result<()> {
        Ok(raw::set(ns, key, value)?)
    }
}

/// NAT, port publishing and forwarding rules, in netsh's own nftables tables or iptables chains.
pub mod firewall {
    use super::{Error, Result, host::firewall as raw};
    pub use raw::{
        ForwardSpec, IsolateSpec, Isolation, LinkSpec, MasqueradeSpec, PortRange, Proto, PublishSpec, RuleInfo,
        RuleSpec, SnatSpec,
    };

    /// Masquerade `source` unless it leaves through `out_not`.
    pub fn masquerade(ns: Option<&str>, owner: &str, source: &str, out_not: Option<&str>) -> Result<String> {
        Ok(raw::masquerade(ns, owner, source, out_not)?)
    }
    /// Source NAT to an address, or masquerade, for traffic leaving by one interface or any.
    pub fn snat(ns: Option<&str>, owner: &str, spec: &SnatSpec) -> Result<String> {
        Ok(raw::snat(ns, owner, spec)?)
    }
    /// Publish host ports to a destination (DNAT + forward accept).
    pub fn publish(ns: Option<&str>, owner: &str, spec: &PublishSpec) -> Result<String> {
        Ok(raw::publish(ns, owner, spec)?)
    }
    /// A host port no socket holds for `host_ip`, from the ephemeral range.
    pub fn free_port(ns: Option<&str>, proto: Proto, host_ip: Option<&str>) -> Result<u16> {
        Ok(raw::free_port(ns, proto, host_ip)?)
    }
    /// Publish `spec` on one host port netsh picks (`docker run -p PORT`;
    /// `spec.host_ports` is ignored): another port is tried when a rule
    /// already holds the one picked. The rule's id and its host port.
    pub fn publish_ephemeral(ns: Option<&str>, owner: &str, spec: &PublishSpec) -> Result<(String, u16)> {
        const TRIES: usize = 8;
        let mut taken = None;
        for _ in 0..TRIES {
            let port = free_port(ns, spec.proto, spec.host_ip.as_deref())?;
            let one = PublishSpec { host_ports: PortRange { first: port, last: port }, ..spec.clone() };
            match publish(ns, owner, &one) {
                Ok(id) => return Ok((id, port)),
                Err(e) if e.is_exists() => taken = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(taken.unwrap_or_else(|| Error::msg("no free host port")))
    }
    /// Accept forwarding from `input` to `output`, and the return traffic.
    pub fn forward_accept(ns: Option<&str>, owner: &str, input: Option<&str>, output: Option<&str>) -> Result<String> {
        Ok(raw::forward_accept(ns, owner, input, output)?)
    }
    /// Isolate a bridge (see [`Isolation`]).
    pub fn isolate(ns: Option<&str>, owner: &str, bridge: &str, mode: Isolation) -> Result<String> {
        Ok(raw::isolate(ns, owner, bridge, mode)?)
    }
    /// Let a linked client reach a server's ports within a bridge, ahead of
    /// isolation (Docker's `--link` under `--icc=false`).
    pub fn link_accept(ns: Option<&str>, owner: &str, spec: &LinkSpec) -> Result<String> {
        Ok(raw::link_accept(ns, owner, spec)?)
    }
    /// Remove a rule by id.
    pub fn remove(ns: Option<&str>, id: &str) -> Result<()> {
        Ok(raw::remove(ns, id)?)
    }
    /// One rule by id, if it exists.
    pub fn get(ns: Option<&str>, id: &str) -> Result<Option<RuleInfo>> {
        Ok(raw::get(ns, id)?)
    }
    /// Rules netsh owns.
    pub fn list(ns: Option<&str>) -> Result<Vec<RuleInfo>> {
        Ok(raw::list(ns)?)
    }

    /// Parse `PORT` or `FIRST-LAST` (1-65535, not reversed).
    pub fn parse_ports(text: &str) -> Result<PortRange> {
        let port = |t: &str| match t.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(Error::Invalid(format!("{t:?} is not a port (1-65535)"))),
        };
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(text)?, port(text)?),
        };
        if first > last {
            return Err(Error::Invalid(format!("port range {first}-{last} is reversed")));
        }
        Ok(PortRange { first, last })
    }

    /// Split a trailing `/tcp` or `/udp` (default tcp) off `text`.
    pub fn split_proto(text: &str) -> Result<(&str, Proto)> {
        match text.rsplit_once('/') {
            Some((rest, "tcp")) => Ok((rest, Proto::Tcp)),
            Some((rest, "udp")) => Ok((rest, Proto::Udp)),
            Some((_, other)) => Err(Error::Invalid(format!("unknown protocol {other:?} (use tcp or udp)"))),
            None => Ok((text, Proto::Tcp)),
        }
    }

    /// `tcp` or `udp`.
    pub fn proto_name(proto: Proto) -> &'static str {
        match proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// The recipe's own state in netsh's key-value store.
pub mod kv {
    use super::{Result, host::kv as raw};
    pub use raw::Entry;

    /// The entry at `key`.
    pub fn get(key: &str) -> Result<Option<Entry>> {
        Ok(raw::get(key)?)
    }
    /// Entries under `prefix`, by key.
    pub fn list(prefix: &str) -> Result<Vec<Entry>> {
        Ok(raw::list(prefix)?)
    }
    /// Set `key`; its new version.
    pub fn put(key: &str, value: &str) -> Result<u64> {
        Ok(raw::put(key, value)?)
    }
    /// Set `key` to expire `ttl_seconds` from now unless written again; its new version.
    pub fn put_lease(key: &str, value: &str, ttl_seconds: u32) -> Result<u64> {
        Ok(raw::put_lease(key, value, ttl_seconds)?)
    }
    /// Set `key` only if absent; `None` if it exists.
    pub fn create(key: &str, value: &str) -> Result<Option<u64>> {
        Ok(raw::create(key, value)?)
    }
    /// Set `key` only if its version is `version` (0: absent); `None` if someone wrote in between.
    pub fn swap(key: &str, version: u64, value: &str) -> Result<Option<u64>> {
        Ok(raw::swap(key, version, value)?)
    }
    /// Remove `key`; whether it existed.
    pub fn delete(key: &str) -> Result<bool> {
        Ok(raw::delete(key)?)
    }
}

/// Names for container networks, answered by netsh's resolver (`netsh dns
/// status`): a zone per network, served on one of the host's addresses to
/// the network's clients, and each container's name and aliases in it.
/// Records are keys under `netsh/dns/`, so a recipe declares the grant
/// `kv:netsh/dns/*` and its changes are planned, journaled and undone like
/// every other write. The resolver starts with the first zone and stops
/// after the last.
pub mod dns {
    use super::{Cidr, Result, kv};

    const ROOT: &str = "netsh/dns";

    fn zone_key(zone: &str) -> String {
        format!("{ROOT}/zone/{zone}")
    }

    fn name_key(zone: &str, name: &str, addr: &str) -> String {
        format!("{ROOT}/name/{zone}/{name}/{addr}")
    }

    /// What a name is to its address.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        /// The container's own name: also the answer to the address's reverse lookup.
        Own,
        /// Another name for it.
        Alias,
    }

    /// Serve `zone` on `listen` (UDP port 53) to clients in `clients`;
    /// other names are asked upstream when `forward` (false: an internal
    /// network, whose containers reach nothing outside).
    pub fn serve(zone: &str, listen: &str, clients: &Cidr, forward: bool) -> Result<()> {
        let internal = if forward { "" } else { " forward=no" };
        kv::put(&zone_key(zone), &format!("listen={listen} clients={clients}{internal}")).map(drop)
    }

    /// Stop serving `zone` and forget its names and links.
    pub fn unserve(zone: &str) -> Result<()> {
        for kind in ["name", "link"] {
            for entry in kv::list(&format!("{ROOT}/{kind}/{zone}/"))? {
                kv::delete(&entry.key)?;
            }
        }
        kv::delete(&zone_key(zone)).map(drop)
    }

    /// For the zone's client at `client` only, `alias` resolves to whatever
    /// `target` is in `zone` when asked (Docker's `--link TARGET:ALIAS`).
    pub fn link(zone: &str, client: &str, alias: &str, target: &str) -> Result<()> {
        kv::put(&format!("{ROOT}/link/{zone}/{client}/{alias}"), target).map(drop)
    }

    /// For the zone's client at `client` only, `name` is `addr`
    /// (Docker's `--add-host NAME:ADDR`).
    pub fn pin(zone: &str, client: &str, name: &str, addr: &str) -> Result<()> {
        link(zone, client, name, addr)
    }

    /// Forget `client`'s link or pinned name `alias` in `zone`.
    pub fn unlink(zone: &str, client: &str, alias: &str) -> Result<()> {
        kv::delete(&format!("{ROOT}/link/{zone}/{client}/{alias}")).map(drop)
    }

    /// `name` (and `name.zone`) resolves to `addr` for the zone's clients.
    pub fn add(zone: &str, name: &str, addr: &str, kind: Kind) -> Result<()> {
        let value = match kind {
            Kind::Own => "ptr",
            Kind::Alias => "alias",
        };
        kv::put(&name_key(zone, name, addr), value).map(drop)
    }

    /// Forget that `name` is `addr` in `zone`.
    pub fn remove(zone: &str, name: &str, addr: &str) -> Result<()> {
        kv::delete(&name_key(zone, name, addr)).map(drop)
    }

    /// The names of `zone`, as `(name, addr)` pairs.
    pub fn names(zone: &str) -> Result<Vec<(String, String)>> {
        let prefix = format!("{ROOT}/name/{zone}/");
        let pairs = kv::list(&prefix)?.into_iter().filter_map(|e| {
            let (name, addr) = e.key.strip_prefix(&prefix)?.split_once('/')?;
            Some((name.to_string(), addr.to_string()))
        });
        Ok(pairs.collect())
    }
}

/// Messages to the user.
pub mod log {
    use super::host::log as raw;

    /// Tell the user something.
    pub fn info(message: &str) {
        raw::info(message)
    }
    /// Warn the user.
    pub fn warn(message: &str) {
        raw::warn(message)
    }
}
