//! Docker's network modes that are not networks: `none` (a namespace with
//! only its loopback, up) and `host` (the host's own namespace: nothing to
//! make). Both names are reserved; a container on `none` joins no network.

use netsh_guest::meta::check_name;
use netsh_guest::netns::EtcFile;
use netsh_guest::{Args, Error, Result, kv, link, netns};

/// The names `create` refuses.
pub const RESERVED: [&str; 2] = ["none", "host"];

/// connect's options that shape an endpoint: none of them applies here.
const ENDPOINT_OPTIONS: [&str; 10] = [
    "--ip",
    "--ip6",
    "--alias",
    "--publish",
    "--publish-all",
    "--expose",
    "--pid",
    "--dns",
    "--dns-search",
    "--dns-option",
];

/// Refuse options that would be ignored on `mode`.
fn refuse_options(mode: &str, args: &Args) -> Result<()> {
    let hostname = (mode == "host").then_some("--hostname");
    match ENDPOINT_OPTIONS.iter().copied().chain(hostname).find(|o| args.given(o)) {
        Some(option) => Err(Error::Usage(format!("{option} does not apply to network {mode} (Docker's --net {mode})"))),
        None => Ok(()),
    }
}

fn none_key(container: &str) -> String {
    format!("docker-bridge/none/{container}")
}

/// Whether `container` is on `none`.
pub fn on_none(container: &str) -> Result<bool> {
    Ok(kv::get(&none_key(container))?.is_some())
}

/// `connect none CONTAINER [--hostname H]` and `connect host CONTAINER`.
pub fn connect(mode: &str, args: &Args) -> Result<()> {
    args.at_most(3)?;
    let container = args.required(2, "CONTAINER")?;
    check_name("container", container)?;
    refuse_options(mode, args)?;
    if mode == "host" {
        println!("{container} uses the host's network namespace (Docker's --net host): nothing to create");
        return Ok(());
    }
    if netns::exists(container)? {
        return Err(Error::Exists(format!(
            "namespace {container} already exists; --net none gives a new namespace only its loopback"
        )));
    }
    if kv::create(&none_key(container), "")?.is_none() {
        return Err(Error::Exists(format!("container {container} is already on network none")));
    }
    netns::create(container)?;
    link::set_up(Some(container), "lo", true)?;
    let hostname = args.value("--hostname").unwrap_or(container);
    check_name("host", hostname)?;
    netns::write_etc(container, EtcFile::Hostname, &format!("{hostname}\n"))?;
    println!("{container} lo (network none: loopback only)");
    Ok(())
}

/// `disconnect none CONTAINER` (its namespace goes) and `disconnect host CONTAINER`.
pub fn disconnect(mode: &str, args: &Args) -> Result<()> {
    args.at_most(3)?;
    let container = args.required(2, "CONTAINER")?;
    if mode == "host" {
        println!("{container} uses the host's network namespace: nothing to take down");
        return Ok(());
    }
    if !kv::delete(&none_key(container))? {
        return Err(Error::NotFound(format!("container {container} is not on network none")));
    }
    match netns::delete(container) {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}
