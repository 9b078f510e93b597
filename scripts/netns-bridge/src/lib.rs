//! Namespaces attached to one bridge (seed 004): a bridge holding the
//! subnet's first host address, and per namespace a veth pair, the next free
//! address and a default route via the bridge.

use netsh_guest::{Args, Cidr, Error, Manifest, Opt, Recipe, Result, addr, link, log, netns, route};

struct NetnsBridge;

const USAGE: &str = "netns-bridge [down] [--count N] [--subnet CIDR] [--bridge NAME] [--prefix P]
  up (default): bridge NAME (br0) with the subnet's first host address
                (192.168.60.0/24 -> .1), namespaces P1..PN (brns1..brns2), each
                with eth0 (peer veth-PI on the bridge), the next address and a
                default route via the bridge
  down:         delete the namespaces P1..PN whose veth-PI is a port of the bridge,
                then the bridge once no other port is left on it";

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
        subnet: args.value("--subnet").unwrap_or("192.168.60.0/24").parse()?,
        bridge: args.value("--bridge").unwrap_or("br0").into(),
        prefix: args.value("--prefix").unwrap_or("brns").into(),
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
        peer_mac: None,
        master: Some(p.bridge.clone()),
        up: true,
        mtu: None,
        hairpin: false,
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

/// Whether namespace `ns` is one this recipe attached to the bridge.
fn ours(p: &Plan, ns: &str) -> Result<bool> {
    match link::get(None, &format!("veth-{ns}")) {
        Ok(l) => Ok(l.master.as_deref() == Some(p.bridge.as_str())),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Delete what this recipe made: namespaces attached to the bridge through
/// their veth-NS (deleting one removes its pair), then the bridge if it is
/// left without ports.
fn down(p: &Plan) -> Result<()> {
    let mut deleted = Vec::new();
    for i in 1..=p.count {
        let ns = p.ns(i);
        if ours(p, &ns)? {
            netns::delete(&ns)?;
            deleted.push(format!("veth-{ns}"));
        } else if netns::exists(&ns)? {
            log::warn(&format!("namespace {ns} is not attached to {} by this recipe; left alone", p.bridge));
        }
    }
    // The kernel removes a deleted namespace's veth pairs a moment later: those ports do not count.
    let foreign_port =
        |l: &link::LinkInfo| l.master.as_deref() == Some(p.bridge.as_str()) && !deleted.contains(&l.name);
    match link::list(None) {
        Ok(links) if links.iter().any(foreign_port) => {
            log::warn(&format!("{} still has ports; left alone", p.bridge));
            Ok(())
        }
        Ok(_) => match link::delete(None, &p.bridge) {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        },
        Err(e) => Err(e),
    }
}

impl Recipe for NetnsBridge {
    fn manifest() -> Manifest {
        Manifest::new("netns-bridge", "namespaces attached to one bridge, with addresses and default routes")
            .version(env!("CARGO_PKG_VERSION"))
            .usage(USAGE)
            .grant("netns:*", "creates and deletes the namespaces P1..PN")
            .grant("link:*", "creates the bridge (--bridge names it) and the veth-P* host ends")
            .grant("link:*/eth0", "names and brings up each namespace's end")
            .grant("link:*/lo", "brings each namespace's loopback up")
            .grant("addr:0.0.0.0/0", "assigns addresses from the subnet (any --subnet)")
            .grant("route:0.0.0.0/0", "adds each namespace's default route")
    }

    fn run(args: Vec<String>) -> Result<()> {
        let args = Args::parse(
            args,
            &[Opt::value("--count"), Opt::value("--subnet"), Opt::value("--bridge"), Opt::value("--prefix")],
        )?;
        args.at_most(1)?;
        let p = plan(&args)?;
        match args.positional().first().map(String::as_str) {
            None | Some("up") => up(&p),
            Some("down") => down(&p),
            Some(other) => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
        }
    }
}

netsh_guest::export_recipe!(NetnsBridge);
