//! Docker's bridge networking as a netsh recipe, mirroring `docker network`.

mod container;
mod inspect;
mod meta;
mod network;
mod ports;
mod session;

use netsh_guest::{Args, Error, Manifest, Recipe, Result};
use session::Session;

struct DockerBridge;

const USAGE: &str = "docker-bridge COMMAND ...
  create NAME [--subnet CIDR] [--gateway IP] [--ip-range CIDR] [--internal]
              [--icc=false] [--mtu N] [--bridge IFNAME]
      a bridge (br-NAME) holding the gateway (first host address), ip_forward on,
      MASQUERADE unless --internal, isolated from every other network
  connect NAME CONTAINER [--ip IP] [--alias A]... [--pid PID]
              [--publish [HOSTIP:]HOSTPORT[-END]:PORT[/tcp|udp]]...
      CONTAINER is a named namespace (created if missing) or, with --pid, a
      running process's; it gets eth0 (or the next free ethN), an address, a
      default route via the gateway and /etc/netns/CONTAINER/{hosts,resolv.conf,hostname}
  disconnect NAME CONTAINER
  rm NAME [--force]          refused while containers are attached, unless --force
  inspect NAME               JSON like `docker network inspect`
  ls
Several commands can run in one invocation, separated by a lone ';' argument
(one state read, one firewall batch), e.g.
  connect net c1 --publish 8001:80 ';' connect net c2 --publish 8002:80";

const VALUED: &[&str] =
    &["--subnet", "--gateway", "--ip-range", "--icc", "--mtu", "--bridge", "--ip", "--alias", "--publish", "--pid"];
const SWITCHES: &[&str] = &["--internal", "--force"];

impl Recipe for DockerBridge {
    fn manifest() -> Manifest {
        Manifest::new("docker-bridge", "Docker-style bridge networks: create, connect, publish, disconnect, rm")
            .version(env!("CARGO_PKG_VERSION"))
            .usage(USAGE)
            .grant("link:br-*", "creates each network's bridge")
            .grant("link:veth*", "creates the host end of each container's veth pair")
            .grant("link:*/eth*", "names the container end of each veth pair")
            .grant("link:*/lo", "brings up each container's loopback")
            .grant("netns:*", "creates container namespaces and their /etc/netns files")
            .grant("addr:172.16.0.0/12", "assigns gateway and container addresses (default pools)")
            .grant("addr:192.168.0.0/16", "assigns addresses from the second default pool")
            .grant("route:0.0.0.0/0", "adds each container's default route")
            .grant("nat:172.16.0.0/12", "masquerades the networks' outbound traffic")
            .grant("publish:tcp/1-65535", "publishes container ports (--publish)")
            .grant("publish:udp/1-65535", "publishes container ports (--publish .../udp)")
            .grant("sysctl:net.ipv4.ip_forward", "turns on forwarding")
            .grant("sysctl:net.ipv4.conf.*.route_localnet", "lets 127.0.0.1:PORT reach published ports")
    }

    fn run(args: Vec<String>) -> Result<()> {
        let commands: Vec<Args> =
            args.split(|a| a == ";").map(|c| Args::parse(c.to_vec(), VALUED, SWITCHES)).collect::<Result<_>>()?;
        let mut session = Session::start()?;
        let outcome = commands.iter().try_for_each(|c| command(&mut session, c));
        let files = session.finish();
        outcome.and(files)
    }
}

fn command(session: &mut Session, args: &Args) -> Result<()> {
    match args.positional().first().map(String::as_str) {
        Some("create") => network::create(session, args),
        Some("connect") => container::connect(session, args),
        Some("disconnect") => container::disconnect(session, args),
        Some("rm") => network::rm(session, args),
        Some("inspect") => inspect::inspect(&session.host, args.required(1, "network NAME")?),
        Some("ls") => network::ls(session),
        Some(other) => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
        None => Err(Error::Usage(USAGE.into())),
    }
}

netsh_guest::export_recipe!(DockerBridge);
