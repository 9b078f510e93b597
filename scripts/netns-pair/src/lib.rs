//! Two network namespaces joined by a veth pair (seed 003):
//! `ip netns add`, `ip link add ... type veth peer ... netns ...`, addresses, up.

use netsh_guest::{Args, Cidr, Error, Manifest, Opt, Recipe, Result, addr, link, log, netns};

struct NetnsPair;

const USAGE: &str = "netns-pair [down] [--left NS] [--right NS] [--subnet CIDR]
  up (default): create namespaces LEFT and RIGHT (netns0, netns1), a veth pair
                veth0 (in LEFT) <-> veth1 (in RIGHT), the subnet's first and
                second host addresses (192.168.56.0/24), and bring lo and both ends up
  down:         delete both namespaces (and with them the veth pair), only if they
                are the pair this recipe made (veth0 in LEFT, veth1 in RIGHT)";

struct Plan {
    left: String,
    right: String,
    subnet: Cidr,
}

fn plan(args: &Args) -> Result<Plan> {
    let subnet: Cidr = args.value("--subnet").unwrap_or("192.168.56.0/24").parse()?;
    if subnet.host_count() < 2 {
        return Err(Error::Invalid(format!("subnet {subnet} has fewer than two host addresses")));
    }
    Ok(Plan {
        left: args.value("--left").unwrap_or("netns0").into(),
        right: args.value("--right").unwrap_or("netns1").into(),
        subnet,
    })
}

fn configure(ns: &str, dev: &str, address: &Cidr) -> Result<()> {
    link::set_up(Some(ns), "lo", true)?;
    addr::add(Some(ns), dev, address)?;
    link::set_up(Some(ns), dev, true)
}

fn up(p: &Plan) -> Result<()> {
    let (Some(left_ip), Some(right_ip)) = (p.subnet.nth(1), p.subnet.nth(2)) else {
        return Err(Error::Invalid(format!("subnet {} is too small", p.subnet)));
    };
    netns::create(&p.left)?;
    if let Err(e) = netns::create(&p.right) {
        let _ = netns::delete(&p.left);
        return Err(e);
    }
    let built = (|| {
        let veth = link::Veth {
            name: "veth0".into(),
            peer: "veth1".into(),
            peer_ns: Some(p.right.clone()),
            peer_mac: None,
            master: None,
            up: true,
            mtu: None,
            hairpin: false,
        };
        link::add_veth(Some(&p.left), &veth)?;
        configure(&p.left, "veth0", &left_ip)?;
        configure(&p.right, "veth1", &right_ip)
    })();
    if let Err(e) = built {
        let _ = netns::delete(&p.left);
        let _ = netns::delete(&p.right);
        return Err(e);
    }
    log::info(&format!("{} ({left_ip}) <-> {} ({right_ip})", p.left, p.right));
    Ok(())
}

/// Delete the pair, but only namespaces that hold this recipe's veth ends.
fn down(p: &Plan) -> Result<()> {
    for (ns, end) in [(&p.left, "veth0"), (&p.right, "veth1")] {
        match link::get(Some(ns), end) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return Err(Error::Invalid(format!(
                    "namespace {ns} has no {end}: it is not a pair netns-pair made; nothing was deleted"
                )));
            }
            Err(e) => return Err(e),
        }
    }
    netns::delete(&p.left)?;
    netns::delete(&p.right)
}

impl Recipe for NetnsPair {
    fn manifest() -> Manifest {
        Manifest::new("netns-pair", "two network namespaces joined by a veth pair")
            .version(env!("CARGO_PKG_VERSION"))
            .usage(USAGE)
            .grant("netns:*", "creates and deletes the LEFT and RIGHT namespaces")
            .grant("link:*/veth?", "creates the veth pair inside the namespaces and brings its ends up")
            .grant("link:*/lo", "brings each namespace's loopback up")
            .grant("addr:0.0.0.0/0", "assigns the subnet's first two host addresses (any --subnet)")
    }

    fn run(args: Vec<String>) -> Result<()> {
        let args = Args::parse(args, &[Opt::value("--left"), Opt::value("--right"), Opt::value("--subnet")])?;
        args.at_most(1)?;
        let p = plan(&args)?;
        match args.positional().first().map(String::as_str) {
            None | Some("up") => up(&p),
            Some("down") => down(&p),
            Some(other) => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
        }
    }
}

netsh_guest::export_recipe!(NetnsPair);
