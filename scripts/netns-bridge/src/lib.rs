//! Namespaces attached to one bridge (seed 004): a bridge holding the
//! subnet's first host address, and per namespace a veth pair, the next free
//! address and a default route via the bridge.

use netsh_guest::{Args, Cidr, Error, Manifest, Recipe, Result, addr, link, log, netns, route};

struct NetnsBridge;

const USAGE: &str = "netns-bridge [down] [--count N] [--subnet CIDR] [--bridge NAME] [--prefix P]
  up (default): bridge NAME (br0) with the subnet's first host address
                (192.168.56.0/24 -> .1), namespaces P1..PN (netns1..netns2), each
                with eth0 (peer veth-PI on the bridge), the next address and a
                default route via the bridge
  down:         delete namespaces P1..PN and the bridge";

struct Plan {
    count: u32,
    subnet: Cidr,
    bridge: String,
    prefix: String,
}

impl Plan {
    fn ns(&self, i: u32) -> String {
        format!("{}{i}", self.prefix)
    }

    fn gateway(&self) -> Result<Cidr> {
        self.subnet.nth(1).ok_or_else(|| Error::Invalid(format!("subnet {} is too small", self.subnet)))
    }
}

fn plan(args: &Args) -> Result<Plan> {
    let p = Plan {
        count: args.parsed("--count", 2)?,
        subnet: args.value("--subnet").unwrap_or("192.168.56.0/24").parse()?,
        bridge: args.value("--bridge").unwrap_or("br0").into(),
        prefix: args.value("--prefix").unwrap_or("netns").into(),
    };
    if p.count == 0 || p.count >= p.subnet.host_count() {
        return Err(Error::Invalid(format!(
            "--count {} does not fit subnet {} ({} host addresses, one for the bridge)",
            p.count,
            p.subnet,
            p.subnet.host_count()
        )));
    }
    Ok(p)
}

fn attach(p: &Plan, i: u32, gateway: &Cidr) -> Result<()> {
    let ns = p.ns(i);
    let address = p.subnet.nth(i + 1).ok_or_else(|| Error::Invalid("subnet exhausted".into()))?;
    netns::create(&ns)?;
    let veth = link::Veth {
        name: format!("veth-{ns}"),
        peer: "eth0".into(),
        peer_ns: Some(ns.clone()),
        master: Some(p.bridge.clone()),
        up: true,
        mtu: None,
    };
    link::add_veth(None, &veth)?;
    link::set_up(Some(&ns), "lo", true)?;
    addr::add(Some(&ns), "eth0", &address)?;
    link::set_up(Some(&ns), "eth0", true)?;
    route::add(Some(&ns), &route::default_via(&gateway.addr().to_string()))
}

fn up(p: &Plan) -> Result<()> {
    let gateway = p.gateway()?;
    link::add_bridge(None, &p.bridge, None)?;
    let built = (|| {
        addr::add(None, &p.bridge, &gateway)?;
        link::set_up(None, &p.bridge, true)?;
        (1..=p.count).try_for_each(|i| attach(p, i, &gateway))
    })();
    if let Err(e) = built {
        let _ = down(p);
        return Err(e);
    }
    log::info(&format!("{} namespaces on {} ({gateway})", p.count, p.bridge));
    Ok(())
}

/// Delete what exists; deleting a namespace removes its veth pair.
fn down(p: &Plan) -> Result<()> {
    let mut first_error = None;
    for i in 1..=p.count {
        match netns::delete(&p.ns(i)) {
            Err(e) if !e.is_not_found() => first_error = first_error.or(Some(e)),
            _ => {}
        }
    }
    match link::delete(None, &p.bridge) {
        Err(e) if !e.is_not_found() => first_error = first_error.or(Some(e)),
        _ => {}
    }
    first_error.map_or(Ok(()), Err)
}

impl Recipe for NetnsBridge {
    fn manifest() -> Manifest {
        Manifest::new("netns-bridge", "namespaces attached to one bridge, with addresses and default routes")
            .version(env!("CARGO_PKG_VERSION"))
            .usage(USAGE)
            .grant("netns:*", "creates and deletes the namespaces P1..PN")
            .grant("link:*", "creates the bridge and the veth pairs")
            .grant("addr:*", "assigns addresses from the subnet")
            .grant("route:0.0.0.0/0", "adds each namespace's default route")
    }

    fn run(args: Vec<String>) -> Result<()> {
        let args = Args::parse(args, &["--count", "--subnet", "--bridge", "--prefix"], &[])?;
        let p = plan(&args)?;
        match args.positional().first().map(String::as_str) {
            None | Some("up") => up(&p),
            Some("down") => down(&p),
            Some(other) => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
        }
    }
}

netsh_guest::export_recipe!(NetnsBridge);
