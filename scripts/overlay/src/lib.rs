//! Multi-host overlay networks as a netsh recipe, mirroring `docker network
//! create -d overlay`: one subnet spanning hosts, carried over VXLAN. The
//! network, its addresses and its endpoints live in the key-value store
//! (etcd with `netsh --kv etcd://...`, so every host sees them); each host
//! with a member gets the network's bridge and VXLAN device, and `sync`
//! makes its FDB, neighbour and DNS entries match the store.

mod host;
mod member;
mod network;
mod store;

use netsh_guest::{Args, Error, Manifest, Opt, Recipe, Result};

struct Overlay;

const USAGE: &str = "overlay COMMAND ...
  create NAME [--subnet CIDR] [--gateway IP] [--vni N] [--internal]
      records the network in the store (default subnet: the first free 10.0.N.0/24,
      default VNI: derived from the name); nothing changes on any host until a
      container connects there
  connect NAME CONTAINER [--ip IP] [--alias A]... [--underlay IP]
      CONTAINER is a named namespace on this host (created if missing); it gets
      eth0 (or the next free ethN) with MTU 1450 (a 1500-byte underlay less
      VXLAN's 50 bytes), an address taken in the store (never twice, across
      hosts), a default route via the gateway and names resolved by netsh's
      resolver. The host joins the network on its first member: bridge ov-ID
      holding the gateway, VXLAN device vx-ID (UDP 4789, no learning, ARP
      answered from static entries), masquerade unless --internal.
      --underlay is this host's address on the underlay (default: the address
      of the interface holding the default route)
  disconnect NAME CONTAINER [--underlay IP]
  sync [NAME] [--underlay IP]
      makes this host's kernel match the store: FDB and neighbour entries for
      every remote member, names for every member, the network's devices only
      while this host has members. Without NAME: every network, and devices of
      networks removed elsewhere
  rm NAME [--force]          refused while containers are connected anywhere, unless --force
  inspect NAME               JSON like `docker network inspect`
  ls";

const OPTIONS: &[Opt] = &[
    Opt::value("--subnet"),
    Opt::value("--gateway"),
    Opt::value("--vni"),
    Opt::switch("--internal"),
    Opt::switch("--force"),
    Opt::value("--ip"),
    Opt::values("--alias").or(&["--network-alias", "--net-alias"]),
    Opt::value("--underlay"),
];

impl Recipe for Overlay {
    fn manifest() -> Manifest {
        Manifest::new("overlay", "Multi-host overlay networks over VXLAN, with state in a shared key-value store")
            .version(env!("CARGO_PKG_VERSION"))
            .usage(USAGE)
            .grant("link:ov-*", "creates each network's bridge on hosts with members")
            .grant("link:vx-*", "creates each network's VXLAN device and its FDB and neighbour entries")
            .grant("link:veo*", "creates the host end of each container's veth pair")
            .grant("link:*/eth*", "names the container end of each veth pair")
            .grant("link:*/lo", "brings up each container's loopback")
            .grant("netns:*", "creates container namespaces and their /etc/netns files")
            .grant("addr:10.0.0.0/8", "assigns gateway and container addresses (default pool)")
            .grant("route:0.0.0.0/0", "adds each container's default route")
            .grant("nat:10.0.0.0/8", "masquerades the networks' outbound traffic through each host")
            .grant("sysctl:net.ipv4.ip_forward", "turns on forwarding")
            .grant("kv:overlay/*", "keeps networks, addresses and endpoints in the shared store")
            .grant("kv:netsh/dns/*", "gives each network a DNS zone and its members names in netsh's resolver")
    }

    fn run(args: Vec<String>) -> Result<()> {
        let args = Args::parse(args, OPTIONS)?;
        match args.positional().first().map(String::as_str) {
            Some("create") => network::create(&args),
            Some("connect") => member::connect(&args),
            Some("disconnect") => member::disconnect(&args),
            Some("sync") => host::sync_command(&args),
            Some("rm") => network::rm(&args),
            Some("inspect") => network::inspect(&args),
            Some("ls") => network::ls(&args),
            Some(other) => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
            None => Err(Error::Usage(USAGE.into())),
        }
    }
}

netsh_guest::export_recipe!(Overlay);
