//! `ip link` over rtnetlink.

use std::collections::HashMap;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::link::MacVlanMode as NlMacvlanMode;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkLayerType, LinkMessage, State,
};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};

use super::addr;
use super::netlink::nl_error;
use super::nsfs;
use crate::error::{CapError, CapResult};
use crate::names::format_mac;
use crate::ops::{LinkInfo, MacvlanMode, Ns, VethSpec, VxlanSpec};

/// "link NAME in namespace NS", for messages.
pub fn describe(ns: &Ns, name: &str) -> String {
    match ns {
        Some(ns) => format!("link {name} in namespace {ns}"),
        None => format!("link {name}"),
    }
}

/// The index of link `name`.
pub async fn index_of(h: &Handle, ns: &Ns, name: &str) -> CapResult<u32> {
    Ok(fetch(h, ns, name).await?.header.index)
}

/// `ip link add NAME type bridge`, then the MTU (a bridge's creation MTU does
/// not survive its first port joining).
pub async fn add_bridge(h: &Handle, ns: &Ns, name: &str, mtu: Option<u32>) -> CapResult<()> {
    let what = describe(ns, name);
    // An address of its own, set at creation: otherwise the bridge takes its
    // lowest port's, and changes it when that port leaves, which strands
    // every other port's neighbour entry for the gateway for seconds.
    let msg = LinkBridge::new(name).address(random_mac(name).to_vec()).build();
    h.link().add(msg).execute().await.map_err(|e| nl_error(e, &what, "create"))?;
    if let Some(mtu) = mtu {
        set(h, ns, name, LinkUnspec::new_with_name(name).mtu(mtu)).await?;
    }
    Ok(())
}

/// A random, locally administered unicast MAC address.
fn random_mac(seed: &str) -> [u8; 6] {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let hash = blake3::hash(format!("{seed} {} {}", std::process::id(), now.as_nanos()).as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&hash.as_bytes()[..6]);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Create a veth pair in one message: the peer directly inside its
/// namespace, this end with its master and already up.
pub async fn add_veth(h: &Handle, ns: &Ns, spec: &VethSpec) -> CapResult<()> {
    let peer_ns_file = match &spec.peer_ns {
        Some(_) => Some(nsfs::open_ns(&spec.peer_ns)?),
        None => None,
    };
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name(spec.peer.clone());
    if let Some(file) = &peer_ns_file {
        peer = peer.setns_by_fd(file.as_raw_fd());
    }
    if let Some(mtu) = spec.mtu {
        peer = peer.mtu(mtu);
    }
    if let Some(mac) = &spec.peer_mac {
        peer = peer.address(crate::names::parse_mac(mac)?.to_vec());
    }
    let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(spec.name.clone())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
    if let Some(master) = &spec.master {
        msg = msg.controller(index_of(h, ns, master).await?);
    }
    if let Some(mtu) = spec.mtu {
        msg = msg.mtu(mtu);
    }
    if spec.up {
        msg = msg.up();
    }
    let what = format!("{} (peer {})", describe(ns, &spec.name), spec.peer);
    let msg = msg.build();
    match h.link().add(msg.clone()).execute().await.map_err(|e| nl_error(e, &what, "create")) {
        // The name's last holder may be a veth whose namespace the kernel is
        // still tearing down (deleted a moment ago): wait for it to go.
        Err(CapError::Exists(_)) if vanishes(h, ns, &spec.name).await => {
            h.link().add(msg).execute().await.map_err(|e| nl_error(e, &what, "create"))?
        }
        other => other?,
    }
    if spec.hairpin && spec.master.is_some() {
        let port = LinkBridgePort::new(0).name(spec.name.clone()).hairpin(true);
        h.link().set_port(port.build()).execute().await.map_err(|e| nl_error(e, &what, "set hairpin mode on"))?;
    }
    Ok(())
}

/// `ip link add NAME type vxlan id VNI dstport PORT [local IP] [dev IF]
/// [nolearning] [proxy]`, with its MTU, master and state in the same message.
pub async fn add_vxlan(h: &Handle, ns: &Ns, spec: &VxlanSpec) -> CapResult<()> {
    let mut msg = LinkVxlan::new(&spec.name, spec.vni).port(spec.port).learning(spec.learning).proxy(spec.proxy);
    match spec.local {
        Some(std::net::IpAddr::V4(ip)) => msg = msg.local(ip),
        Some(std::net::IpAddr::V6(ip)) => msg = msg.local6(ip),
        None => {}
    }
    if let Some(dev) = &spec.dev {
        msg = msg.dev(index_of(h, ns, dev).await?);
    }
    if let Some(mtu) = spec.mtu {
        msg = msg.mtu(mtu);
    }
    if let Some(master) = &spec.master {
        msg = msg.controller(index_of(h, ns, master).await?);
    }
    if spec.up {
        msg = msg.up();
    }
    h.link().add(msg.build()).execute().await.map_err(|e| nl_error(e, &describe(ns, &spec.name), "create"))
}

/// A macvlan device on `parent`, down, as iproute2 makes it.
pub async fn add_macvlan(h: &Handle, ns: &Ns, name: &str, parent: &str, mode: MacvlanMode) -> CapResult<()> {
    let mode = match mode {
        MacvlanMode::Private => NlMacvlanMode::Private,
        MacvlanMode::Vepa => NlMacvlanMode::Vepa,
        MacvlanMode::Bridge => NlMacvlanMode::Bridge,
        MacvlanMode::Passthru => NlMacvlanMode::Passthrough,
    };
    let msg = LinkMacVlan::new(name, index_of(h, ns, parent).await?, mode).build();
    h.link().add(msg).execute().await.map_err(|e| nl_error(e, &describe(ns, name), "create"))
}

/// How long a link being torn down by the kernel is waited for (a deleted
/// namespace's veths go in a batched kernel work queue: seconds under load).
const TEARDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the veth `name` disappears within [`TEARDOWN_WAIT`].
async fn vanishes(h: &Handle, ns: &Ns, name: &str) -> bool {
    let is_veth = |m: &LinkMessage| {
        m.attributes.iter().any(|a| {
            matches!(a, LinkAttribute::LinkInfo(info) if info.iter().any(|i| matches!(i, NlLinkInfo::Kind(InfoKind::Veth))))
        })
    };
    let started = std::time::Instant::now();
    while started.elapsed() < TEARDOWN_WAIT {
        match fetch(h, ns, name).await {
            Err(CapError::NotFound(_)) => return true,
            Ok(link) if !is_veth(&link) => return false,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            Err(_) => return false,
        }
    }
    false
}

/// Apply a link-set message addressed by name.
async fn set(h: &Handle, ns: &Ns, name: &str, msg: LinkMessageBuilder<LinkUnspec>) -> CapResult<()> {
    h.link().set(msg.build()).execute().await.map_err(|e| nl_error(e, &describe(ns, name), "change"))
}

/// `ip link set NAME up|down`.
pub async fn set_up(h: &Handle, ns: &Ns, name: &str, up: bool) -> CapResult<()> {
    let msg = LinkUnspec::new_with_name(name);
    set(h, ns, name, if up { msg.up() } else { msg.down() }).await
}

/// `ip link set NAME master BR` / `nomaster`.
pub async fn set_master(h: &Handle, ns: &Ns, name: &str, master: Option<&str>) -> CapResult<()> {
    let msg = LinkUnspec::new_with_name(name);
    let msg = match master {
        Some(master) => msg.controller(index_of(h, ns, master).await?),
        None => msg.nocontroller(),
    };
    set(h, ns, name, msg).await
}

/// `ip link set NAME netns TARGET`.
pub async fn set_netns(h: &Handle, ns: &Ns, name: &str, target: &Ns) -> CapResult<()> {
    let file = nsfs::open_ns(target)?;
    set(h, ns, name, LinkUnspec::new_with_name(name).setns_by_fd(file.as_raw_fd())).await
}

/// `ip link set NAME mtu M`.
pub async fn set_mtu(h: &Handle, ns: &Ns, name: &str, mtu: u32) -> CapResult<()> {
    set(h, ns, name, LinkUnspec::new_with_name(name).mtu(mtu)).await
}

/// `ip link set NAME address MAC`.
pub async fn set_mac(h: &Handle, ns: &Ns, name: &str, mac: &str) -> CapResult<()> {
    let mac = crate::names::parse_mac(mac)?;
    set(h, ns, name, LinkUnspec::new_with_name(name).address(mac.to_vec())).await
}

/// `ip link set NAME alias TEXT`.
pub async fn set_alias(h: &Handle, ns: &Ns, name: &str, alias: &str) -> CapResult<()> {
    set(h, ns, name, LinkUnspec::new_with_name(name).alias(alias)).await
}

/// `ip link set NAME name NEW`.
pub async fn rename(h: &Handle, ns: &Ns, name: &str, new_name: &str) -> CapResult<()> {
    let index = index_of(h, ns, name).await?;
    let msg = LinkUnspec::new_with_index(index).name(new_name.to_string());
    h.link().set(msg.build()).execute().await.map_err(|e| nl_error(e, &describe(ns, new_name), "rename to"))
}

/// `ip link del NAME`.
pub async fn delete(h: &Handle, ns: &Ns, name: &str) -> CapResult<()> {
    let index = index_of(h, ns, name).await?;
    h.link().del(index).execute().await.map_err(|e| nl_error(e, &describe(ns, name), "delete"))
}

/// `ip addr show NAME`: one link request, its master's name and its addresses.
pub async fn get(h: &Handle, ns: &Ns, name: &str) -> CapResult<LinkInfo> {
    let msg = fetch(h, ns, name).await?;
    let mut names = HashMap::new();
    let master = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(idx) => Some(*idx),
        _ => None,
    });
    if let Some(idx) = master {
        let mut reply = h.link().get().match_index(idx).execute();
        if let Ok(Some(m)) = reply.try_next().await {
            names.insert(idx, link_name(&m));
        }
    }
    let index = msg.header.index;
    let addresses = addr::dump(h, ns).await?.into_iter().filter(|(i, _)| *i == index).map(|(_, c)| c).collect();
    Ok(to_info(&msg, &names, addresses))
}

/// The link message of `name`.
async fn fetch(h: &Handle, ns: &Ns, name: &str) -> CapResult<LinkMessage> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(msg),
        Ok(None) => Err(CapError::NotFound(format!("{} does not exist", describe(ns, name)))),
        Err(e) => Err(nl_error(e, &describe(ns, name), "look up")),
    }
}

/// `ip addr show`: every link with its addresses, by index.
pub async fn list(h: &Handle, ns: &Ns) -> CapResult<Vec<LinkInfo>> {
    let msgs: Vec<LinkMessage> =
        h.link().get().execute().try_collect().await.map_err(|e| nl_error(e, "links", "list"))?;
    let names: HashMap<u32, String> = msgs.iter().map(|m| (m.header.index, link_name(m))).collect();
    let mut addrs: HashMap<u32, Vec<IpNetwork>> = HashMap::new();
    for (index, cidr) in addr::dump(h, ns).await? {
        addrs.entry(index).or_default().push(cidr);
    }
    let mut links: Vec<LinkInfo> =
        msgs.iter().map(|m| to_info(m, &names, addrs.remove(&m.header.index).unwrap_or_default())).collect();
    links.sort_by_key(|l| l.index);
    Ok(links)
}

/// Every link's name, by index (no addresses).
pub async fn names(h: &Handle) -> CapResult<HashMap<u32, String>> {
    let msgs: Vec<LinkMessage> =
        h.link().get().execute().try_collect().await.map_err(|e| nl_error(e, "links", "list"))?;
    Ok(msgs.iter().map(|m| (m.header.index, link_name(m))).collect())
}

fn link_name(msg: &LinkMessage) -> String {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn to_info(msg: &LinkMessage, names: &HashMap<u32, String>, addresses: Vec<IpNetwork>) -> LinkInfo {
    let mut info = LinkInfo {
        name: link_name(msg),
        index: msg.header.index,
        kind: if msg.header.link_layer_type == LinkLayerType::Loopback { "loopback" } else { "device" }.into(),
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
        oper_state: "unknown".into(),
        master: None,
        mac: String::new(),
        addresses,
        alias: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Mtu(mtu) => info.mtu = *mtu,
            LinkAttribute::Controller(idx) => info.master = names.get(idx).cloned(),
            LinkAttribute::Address(mac) => info.mac = format_mac(mac),
            LinkAttribute::IfAlias(alias) => info.alias = Some(alias.clone()),
            LinkAttribute::OperState(state) => info.oper_state = oper_state(*state).into(),
            LinkAttribute::LinkInfo(infos) => {
                if let Some(kind) = infos.iter().find_map(|i| match i {
                    NlLinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                }) {
                    info.kind = kind;
                }
            }
            _ => {}
        }
    }
    info
}

fn oper_state(state: State) -> &'static str {
    match state {
        State::Up => "up",
        State::Down => "down",
        State::LowerLayerDown => "lowerlayerdown",
        State::Dormant => "dormant",
        State::Testing => "testing",
        State::NotPresent => "notpresent",
        _ => "unknown",
    }
}
