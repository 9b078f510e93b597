//! Misbehaves on request, so the tests can check that netsh contains it.

use netsh_guest::{Error, Manifest, Recipe, Result, addr, link, netns};

struct Misbehave;

fn mode(mode: &str) -> Result<()> {
    match mode {
        "trap" => core::arch::wasm32::unreachable(),
        "panic" => panic!("deliberate panic"),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
            }
        }
        "long-name" => link::add_bridge(None, "a234567890123456", None),
        // The raw binding, to send a malformed CIDR past the SDK's typed API.
        "bad-cidr" => netsh_guest::bindings::netsh::host::addr::add(None, "lo", "10.0.0.300/24").map_err(Error::from),
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
