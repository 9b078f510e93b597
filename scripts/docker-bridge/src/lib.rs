//! Docker's bridge networking as a netsh recipe, mirroring `docker network`.
//! State lives in netsh's key-value store, one key per network, address and
//! endpoint, so each command reads and writes only what it touches.

mod container;
mod inspect;
mod modes;
mod network;
mod plugin;
mod ports;
mod store;

use netsh_guest::{Args, Error, Manifest, Opt, Recipe, Result, cni};

struct DockerBridge;

const USAGE: &str = "docker-bridge COMMAND ...
  create NAME [--subnet CIDR] [--gateway IP] [--ip-range CIDR] [--internal]
              [--ipv6 [--subnet CIDR6] [--gateway IP6] [--ip-range CIDR6]]
              [--aux-address NAME=IP]... [--label KEY[=VALUE]]...
              [--icc=false] [--mtu N] [--bridge IFNAME] [-d|--driver bridge]
              [-o|--opt KEY=VALUE]... [--iptables=false] [--ip-forward=false]
      a bridge (br-NAME) holding the gateway (first host address), ip_forward on,
      MASQUERADE unless --internal, isolated from every other network, and a
      DNS zone NAME served by netsh's resolver on the gateway (`netsh dns status`).
      --ipv6 makes it dual-stack: an IPv6 subnet too (the --subnet given in IPv6,
      else a unique local fdXX:XXXX:XXXX::/64 derived from NAME), IPv6 forwarding
      on, MASQUERADE for it as well; containers get an address and a default
      route of each family. IPv6 rules need the nftables firewall backend.
      --aux-address keeps an address from containers (inspect lists it under
      IPAM); --label annotates the network (inspect, ls --format json).
      --bridge naming an existing bridge adopts it: its address is the gateway
      (and its network the subnet unless --subnet says otherwise); rm leaves
      it as it was, taking back only what netsh added
      -o takes Docker's bridge driver options: com.docker.network.bridge.name,
      .bridge.enable_icc, .bridge.enable_ip_masquerade (false: no MASQUERADE),
      .bridge.host_binding_ipv4 (the address ports are published on by default)
      and com.docker.network.driver.mtu. dockerd's --iptables=false (no firewall
      rules: no NAT, no isolation, no publishing) and --ip-forward=false (leave
      net.ipv4.ip_forward as it is) apply per network here
  connect NAME CONTAINER [--ip IP] [--ip6 IP6] [--alias|--network-alias A]... [--pid PID]
              [--link CONTAINER[:ALIAS]]... [--add-host NAME:IP|host-gateway]...
              [--publish|-p [[HOSTIP:]HOSTPORT[-END]:]PORT[-END][/tcp|udp]]...
              [--expose PORT[-END][/tcp|udp]]... [--publish-all|-P]
              [--hostname H] [--dns IP]... [--dns-search DOMAIN]... [--dns-option OPT]...
      CONTAINER is a named namespace (created if missing) or, with --pid, a
      running process's; it gets eth0 (or the next free ethN), an address, a
      default route via the gateway, /etc/netns/CONTAINER/{resolv.conf,hostname}
      and a line in the network's hosts file (shared by its containers); its
      name and aliases resolve (also as NAME.NETWORK, and in reverse) for the
      containers of its networks, through the resolver on the gateway.
      --hostname, --dns (replaces the resolver: peers then resolve only through
      the hosts file), --dns-search and --dns-option shape the files of a
      namespace connect creates. --link C:ALIAS makes ALIAS resolve to C for
      this container alone (C may come later, and may move); --add-host NAME:IP
      does so for a fixed address (host-gateway: the gateway, i.e. the host, as
      --add-host host.docker.internal:host-gateway asks). --expose records a
      container's ports: on an --icc=false network a container that --links
      to it (once it is connected) may open connections to those ports, and
      to nothing else of it, as Docker's legacy links allow
      -p PORT, -p HOSTIP::PORT and -P (each --expose'd port) publish on a free
      host port netsh picks from the ephemeral range; connect prints every
      mapping as `docker port` does (80/tcp -> 0.0.0.0:49153). A host port a
      process listens on is refused, naming the process. On a dual-stack
      network a port published on no host address answers on IPv6 too (the
      same host port); [IP6]:HOSTPORT:PORT publishes on one IPv6 address
  connect bridge CONTAINER ...
      Docker's default network: made on first use (docker0, 172.17.0.0/16 or
      the first free pool; `create bridge --subnet ...` first to choose, like
      dockerd --bip). It has no names: containers reach each other by address,
      resolve through the host's nameservers, and get a hosts file of their own
      with the --link lines, whose containers must be connected already
  connect none CONTAINER [--hostname H]
      Docker's --net none: a new namespace with only its loopback, up; it joins
      no network until `disconnect none CONTAINER` removes it
  connect host CONTAINER     Docker's --net host: the host's namespace, nothing to make
  connect container:OWNER CONTAINER
      Docker's --net container:OWNER: CONTAINER becomes a second name of
      OWNER's namespace (same interfaces, addresses and localhost; OWNER's
      resolv.conf, hosts and hostname), so `netsh exec CONTAINER -- CMD`
      runs beside OWNER's programs. A call under either name needs grants
      on both. `disconnect container:OWNER CONTAINER` takes the name back;
      OWNER cannot leave its last network while a container shares it
  disconnect NAME CONTAINER
  rm NAME [--force]          refused while containers are attached, unless --force
  inspect NAME               JSON like `docker network inspect`
  ls [-q|--quiet] [--format json|table]
                             a table; names only; or JSON lines like `docker network ls`
  prune                      remove every network without containers
Several commands can run in one invocation, separated by a lone ';' argument
(one run, one firewall batch), e.g.
  connect net c1 --publish 8001:80 ';' connect net c2 --publish 8002:80";

const OPTIONS: &[Opt] = &[
    Opt::values("--subnet"),
    Opt::value("--driver").short('d'),
    Opt::values("--gateway"),
    Opt::values("--ip-range"),
    Opt::switch("--ipv6"),
    Opt::values("--aux-address"),
    Opt::values("--label"),
    Opt::value("--icc"),
    Opt::value("--mtu"),
    Opt::value("--bridge"),
    Opt::values("--opt").short('o'),
    Opt::value("--iptables"),
    Opt::value("--ip-forward"),
    Opt::switch("--internal"),
    Opt::switch("--force"),
    Opt::value("--ip"),
    Opt::value("--ip6"),
    Opt::values("--alias").or(&["--network-alias", "--net-alias"]),
    Opt::values("--link"),
    Opt::values("--add-host"),
    Opt::value("--hostname"),
    Opt::values("--dns"),
    Opt::values("--dns-search"),
    Opt::values("--dns-option"),
    Opt::values("--publish").short('p'),
    Opt::switch("--publish-all").short('P'),
    Opt::values("--expose"),
    Opt::value("--pid"),
    Opt::switch("--quiet").short('q'),
    Opt::value("--format"),
];

impl Recipe for DockerBridge {
    fn manifest() -> Manifest {
        Manifest::new("docker-bridge", "Docker-style bridge networks: create, connect, publish, disconnect, rm")
            .version(env!("CARGO_PKG_VERSION"))
            .usage(USAGE)
            .grant("link:br-*", "creates each network's bridge")
            .grant("link:docker0", "creates the default network's bridge")
            .grant("link:veth*", "creates the host end of each container's veth pair")
            .grant("link:*/eth*", "names the container end of each veth pair")
            .grant("link:*/lo", "brings up each container's loopback")
            .grant("netns:*", "creates container namespaces, their /etc/netns files and each network's hosts file")
            .grant("addr:172.16.0.0/12", "assigns gateway and container addresses (default pools)")
            .grant("addr:192.168.0.0/16", "assigns addresses from the second default pool")
            .grant("addr:fd00::/8", "assigns IPv6 addresses of dual-stack networks (unique local)")
            .grant("route:0.0.0.0/0", "adds each container's default route")
            .grant("route:::/0", "adds each container's IPv6 default route (--ipv6)")
            .grant("nat:172.16.0.0/12", "masquerades the networks' outbound traffic")
            .grant("nat:fd00::/8", "masquerades dual-stack networks' IPv6 traffic")
            .grant("publish:tcp/1-65535", "publishes container ports (--publish)")
            .grant("publish:udp/1-65535", "publishes container ports (--publish .../udp)")
            .grant("sysctl:net.ipv4.ip_forward", "turns on forwarding")
            .grant("sysctl:net.ipv6.conf.all.forwarding", "turns on IPv6 forwarding (--ipv6)")
            .grant("sysctl:net.ipv4.conf.*.route_localnet", "lets 127.0.0.1:PORT reach published ports")
            .grant("kv:docker-bridge/*", "keeps networks, addresses and endpoints in netsh's store")
            .grant("kv:netsh/dns/*", "gives each network a DNS zone and its containers names in netsh's resolver")
    }

    fn run(args: Vec<String>) -> Result<()> {
        let commands: Vec<Args> =
            args.split(|a| a == ";").map(|c| Args::parse(c.to_vec(), OPTIONS)).collect::<Result<_>>()?;
        commands.iter().try_for_each(command)
    }

    fn cni(request: cni::Request) -> Result<cni::Reply> {
        plugin::answer(request)
    }
}

fn command(args: &Args) -> Result<()> {
    match (positional(args, 0), positional(args, 1)) {
        ("create", _) => network::create(args),
        ("connect", mode @ ("none" | "host")) => modes::connect(mode, args),
        ("disconnect", mode @ ("none" | "host")) => modes::disconnect(mode, args),
        ("connect", mode) if mode.starts_with("container:") => {
            modes::connect_shared(mode.trim_start_matches("container:"), args)
        }
        ("disconnect", mode) if mode.starts_with("container:") => {
            modes::disconnect_shared(mode.trim_start_matches("container:"), args)
        }
        ("connect", _) => container::connect(args),
        ("disconnect", _) => container::disconnect(args),
        ("rm", _) => network::rm(args),
        ("inspect", _) => inspect::inspect(args),
        ("ls", _) => network::ls(args),
        ("prune", _) => network::prune(args),
        ("", _) => Err(Error::Usage(USAGE.into())),
        (other, _) => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
    }
}

/// The `i`th positional word, or "".
fn positional(args: &Args, i: usize) -> &str {
    args.positional().get(i).map_or("", String::as_str)
}

netsh_guest::export_recipe!(DockerBridge);
