//! Misbehaves on request, so the tests can check that netsh contains it.

use netsh_guest::firewall::{PortRange, Proto, PublishSpec};
use netsh_guest::{Error, Manifest, Recipe, Result, addr, firewall, link, netns, sysctl};

struct Misbehave;

/// Changes of every kind, so rollback has something to undo.
fn some_changes() -> Result<()> {
    netns::create("half-ns")?;
    link::add_bridge(None, "br-half", None)?;
    addr::add(None, "br-half", &"10.66.0.1/24".parse()?)?;
    link::set_up(None, "br-half", true)?;
    let veth = link::Veth {
        name: "veth-half".into(),
        peer: "eth0".into(),
        peer_ns: Some("half-ns".into()),
        peer_mac: None,
        master: Some("br-half".into()),
        up: true,
        mtu: None,
        hairpin: false,
    };
    link::add_veth(None, &veth)?;
    addr::add(Some("half-ns"), "eth0", &"10.66.0.2/24".parse()?)?;
    sysctl::set(None, "net.ipv4.ip_forward", "1")?;
    firewall::masquerade(None, "misbehave", "10.66.0.0/24", Some("br-half"))?;
    netns::write_etc("half-ns", netns::EtcFile::Hostname, "half\n")?;
    Ok(())
}

fn publish(port: u16) -> Result<()> {
    let spec = PublishSpec {
        proto: Proto::Tcp,
        host_ip: None,
        host_ports: PortRange { first: port, last: port },
        to_ip: "10.66.0.2".into(),
        to_port: 80,
    };
    firewall::publish(None, "misbehave", &spec).map(drop)
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn mode(mode: &str) -> Result<()> {
    match mode {
        "changes" => some_changes(),
        "bridge" => link::add_bridge(None, "br-ok", None),
        "half-fail" => some_changes().and(Err(Error::msg("failing on purpose after some changes"))),
        "half-trap" => some_changes().map(|()| core::arch::wasm32::unreachable()),
        "half-loop" => some_changes().map(|()| spin()),
        "bridge-then-eth9" => {
            link::add_bridge(None, "br-ok", None)?;
            link::add_bridge(None, "eth9", None)
        }
        "bridge-then-del-uplink" => {
            link::add_bridge(None, "br-ok", None)?;
            link::delete(None, "uplink")
        }
        "bridge-then-publish-9000" => {
            link::add_bridge(None, "br-ok", None)?;
            publish(8000)?;
            publish(9000)
        }
        "bridge-then-sysctl" => {
            link::add_bridge(None, "br-ok", None)?;
            sysctl::set(None, "net.ipv4.ip_forward", "1")?;
            sysctl::set(None, "net.ipv4.conf.all.forwarding", "1")
        }
        // Changes back to back for a while, so a signal most likely lands inside one.
        "many" => {
            for i in 0..40 {
                link::add_bridge(None, &format!("br-m{i}"), None)?;
                for _ in 0..100 {
                    link::set_up(None, "lo", true)?;
                }
            }
            spin()
        }
        "trap" => core::arch::wasm32::unreachable(),
        "panic" => panic!("deliberate panic"),
        "loop" => spin(),
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
            }
        }
        "long-name" => link::add_bridge(None, "a234567890123456", None),
        // The raw binding, to send a malformed CIDR past the SDK's typed API.
        "bad-cidr" => netsh_guest::bindings::netsh::host::addr::add(
            None,
            "lo",
            "10.0.0.300/24",
            netsh_guest::bindings::netsh::host::addr::AddFlags::empty(),
        )
        .map_err(Error::from),
        "missing-ns" => link::set_up(Some("no-such-ns"), "lo", true),
        "exists" => link::add_bridge(None, "lo", None),
        "addr" => addr::add(None, "lo", &"10.9.9.9/32".parse()?),
        "netns" => netns::create("misbehave-ns"),
        other => Err(Error::Usage(format!("unknown mode {other}"))),
    }
}

impl Recipe for Misbehave {
    fn manifest() -> Manifest {
        Manifest::new("misbehave", "misbehaves on request").usage("misbehave MODE")
    }

    fn run(args: Vec<String>) -> Result<()> {
        mode(args.first().map(String::as_str).unwrap_or(""))
    }
}

netsh_guest::export_recipe!(Misbehave);
