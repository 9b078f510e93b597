//! Docker's network modes that are not networks: `none` (a namespace with
//! only its loopback, up), `host` (the host's own namespace: nothing to
//! make) and `container:NAME` (a second name for another container's
//! namespace). `none` and `host` are reserved names; a container in any of
//! these modes joins no network.

use netsh_guest::meta::check_name;
use netsh_guest::netns::EtcFile;
use netsh_guest::{Args, Error, Result, kv, link, netns};

use crate::store;

/// The names `create` refuses.
pub const RESERVED: [&str; 2] = ["none", "host"];

/// connect's options that shape an endpoint: none of them applies here.
const ENDPOINT_OPTIONS: [&str; 12] = [
    "--ip",
    "--ip6",
    "--alias",
    "--link",
    "--add-host",
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
    // On `host` and `container:` the hostname is the host's or the owner's, as in Docker.
    let shared: &[&str] = if mode == "none" { &[] } else { &["--hostname"] };
    match ENDPOINT_OPTIONS.iter().chain(shared).find(|o| args.given(o)) {
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
    refuse_while_shared(container)?;
    if !kv::delete(&none_key(container))? {
        return Err(Error::NotFound(format!("container {container} is not on network none")));
    }
    match netns::delete(container) {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

fn shares_key(container: &str) -> String {
    format!("docker-bridge/shares/{container}")
}

fn sharers_prefix(owner: &str) -> String {
    format!("docker-bridge/sharers/{owner}/")
}

/// The container whose namespace `container` shares (`--net container:`), if any.
pub fn shares(container: &str) -> Result<Option<String>> {
    Ok(kv::get(&shares_key(container))?.map(|e| e.value))
}

/// Refuse to delete `owner`'s namespace while other containers share it.
pub fn refuse_while_shared(owner: &str) -> Result<()> {
    let prefix = sharers_prefix(owner);
    let sharers: Vec<String> =
        kv::list(&prefix)?.into_iter().map(|e| e.key.trim_start_matches(&prefix).to_string()).collect();
    match sharers.first() {
        Some(first) => Err(Error::Invalid(format!(
            "{} share{} {owner}'s namespace (--net container:{owner}); `disconnect container:{owner} {first}` first",
            sharers.join(", "),
            if sharers.len() == 1 { "s" } else { "" }
        ))),
        None => Ok(()),
    }
}

/// `connect container:OWNER CONTAINER`: CONTAINER becomes a second name of
/// OWNER's namespace (of the namespace OWNER itself shares, if it does),
/// with OWNER's resolv.conf, hosts and hostname. Calls under either name
/// then need grants on both.
pub fn connect_shared(owner: &str, args: &Args) -> Result<()> {
    args.at_most(3)?;
    let container = args.required(2, "CONTAINER")?;
    check_name("container", owner)?;
    check_name("container", container)?;
    refuse_options(&format!("container:{owner}"), args)?;
    let owner = shares(owner)?.unwrap_or_else(|| owner.to_string());
    if !on_none(&owner)? && store::memberships(&owner)?.is_empty() {
        return Err(Error::NotFound(format!("container {owner} is on no network (not even none); connect it first")));
    }
    if netns::exists(container)? {
        return Err(Error::Exists(format!(
            "namespace {container} already exists; --net container:{owner} names {owner}'s namespace instead"
        )));
    }
    if kv::create(&shares_key(container), &owner)?.is_none() {
        return Err(Error::Exists(format!("container {container} already shares another container's namespace")));
    }
    kv::put(&format!("{}{container}", sharers_prefix(&owner)), "")?;
    netns::alias(container, &owner)?;
    for file in [EtcFile::ResolvConf, EtcFile::Hosts, EtcFile::Hostname] {
        match netns::read_etc(Some(&owner), file) {
            Ok(text) => netns::write_etc(container, file, &text)?,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    println!("{container} shares {owner}'s network namespace (Docker's --net container:{owner})");
    Ok(())
}

/// `disconnect container:OWNER CONTAINER`: the second name goes; OWNER keeps its namespace.
pub fn disconnect_shared(owner: &str, args: &Args) -> Result<()> {
    args.at_most(3)?;
    let container = args.required(2, "CONTAINER")?;
    check_name("container", owner)?;
    let owner = shares(owner)?.unwrap_or_else(|| owner.to_string());
    match shares(container)? {
        Some(o) if o == owner => {}
        Some(o) => return Err(Error::Invalid(format!("container {container} shares {o}'s namespace, not {owner}'s"))),
        None => return Err(Error::NotFound(format!("container {container} shares no container's namespace"))),
    }
    kv::delete(&shares_key(container))?;
    kv::delete(&format!("{}{container}", sharers_prefix(&owner)))?;
    match netns::delete(container) {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}
