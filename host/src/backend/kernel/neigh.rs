//! `ip neigh` and `bridge fdb` over rtnetlink: both are neighbour messages,
//! IPv4/IPv6 for the first, the bridge family for the second.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::Handle;

use super::link::{describe, index_of};
use super::netlink::{absent, nl_error};
use crate::error::CapResult;
use crate::names::{format_mac, parse_mac};
use crate::ops::{Fdb, Neigh, Ns};

fn neigh_what(ns: &Ns, dev: &str, ip: IpAddr) -> String {
    format!("neighbour entry {ip} on {}", describe(ns, dev))
}

fn fdb_what(ns: &Ns, entry: &Fdb) -> String {
    let on = describe(ns, &entry.dev);
    match entry.dst {
        Some(dst) => format!("FDB entry {} dst {dst} on {on}", entry.mac),
        None => format!("FDB entry {} on {on}", entry.mac),
    }
}

/// `ip neigh add IP lladdr MAC dev DEV nud permanent`.
pub async fn add(h: &Handle, ns: &Ns, dev: &str, ip: IpAddr, mac: &str) -> CapResult<()> {
    let index = index_of(h, ns, dev).await?;
    let lladdr = parse_mac(mac)?;
    h.neighbours()
        .add(index, ip)
        .link_layer_address(&lladdr)
        .state(NeighbourState::Permanent)
        .execute()
        .await
        .map_err(|e| nl_error(e, &neigh_what(ns, dev, ip), "add"))
}

/// `ip neigh del IP dev DEV`.
pub async fn delete(h: &Handle, ns: &Ns, dev: &str, ip: IpAddr) -> CapResult<()> {
    let index = index_of(h, ns, dev).await?;
    let mut msg = NeighbourMessage::default();
    msg.header.family = family(ip);
    msg.header.ifindex = index;
    msg.attributes.push(NeighbourAttribute::Destination(ip.into()));
    let what = neigh_what(ns, dev, ip);
    h.neighbours().del(msg).execute().await.map_err(|e| absent(e, &what))
}

/// `ip neigh show [dev DEV]`: entries with a link-layer address, IPv4 and IPv6.
pub async fn list(h: &Handle, ns: &Ns, dev: Option<&str>) -> CapResult<Vec<Neigh>> {
    let devices = devices(h, ns, dev).await?;
    let mut found = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        for msg in dump(h, family, "neighbour entries").await? {
            let (Some(dev), Some(ip), Some(mac)) = (devices.get(&msg.header.ifindex), destination(&msg), lladdr(&msg))
            else {
                continue;
            };
            found.push(Neigh { dev: dev.clone(), ip, mac, state: state(msg.header.state).into() });
        }
    }
    Ok(found)
}

/// `bridge fdb append MAC dev DEV [dst IP] self permanent`.
pub async fn fdb_add(h: &Handle, ns: &Ns, entry: &Fdb) -> CapResult<()> {
    let msg = fdb_message(h, ns, entry).await?;
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND | NLM_F_EXCL;
    let what = fdb_what(ns, entry);
    let mut replies = h.clone().request(req).map_err(|e| nl_error(e, &what, "add"))?;
    while let Some(reply) = replies.next().await {
        if let netlink_packet_core::NetlinkPayload::Error(err) = reply.payload
            && err.code.is_some()
        {
            return Err(nl_error(rtnetlink::Error::NetlinkError(err), &what, "add"));
        }
    }
    Ok(())
}

/// `bridge fdb del MAC dev DEV [dst IP] self`.
pub async fn fdb_delete(h: &Handle, ns: &Ns, entry: &Fdb) -> CapResult<()> {
    let msg = fdb_message(h, ns, entry).await?;
    let what = fdb_what(ns, entry);
    h.neighbours().del(msg).execute().await.map_err(|e| absent(e, &what))
}

/// `bridge fdb show [dev DEV]`: the device's own entries (`self`), by MAC and destination.
pub async fn fdb_list(h: &Handle, ns: &Ns, dev: Option<&str>) -> CapResult<Vec<Fdb>> {
    let devices = devices(h, ns, dev).await?;
    let msgs = dump(h, AddressFamily::Bridge, "FDB entries").await?;
    let entries = msgs
        .iter()
        .filter(|m| m.header.flags.contains(NeighbourFlags::Own))
        .filter_map(|m| {
            Some(Fdb { dev: devices.get(&m.header.ifindex)?.clone(), mac: lladdr(m)?, dst: destination(m) })
        })
        .collect();
    Ok(entries)
}

async fn fdb_message(h: &Handle, ns: &Ns, entry: &Fdb) -> CapResult<NeighbourMessage> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index_of(h, ns, &entry.dev).await?;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes.push(NeighbourAttribute::LinkLayerAddress(parse_mac(&entry.mac)?.to_vec()));
    if let Some(dst) = entry.dst {
        msg.attributes.push(NeighbourAttribute::Destination(dst.into()));
    }
    Ok(msg)
}

async fn dump(h: &Handle, family: AddressFamily, what: &str) -> CapResult<Vec<NeighbourMessage>> {
    h.neighbours().get().set_address_family(family).execute().try_collect().await.map_err(|e| nl_error(e, what, "list"))
}

/// The devices a listing covers, by index: `dev` alone, or every link.
async fn devices(h: &Handle, ns: &Ns, dev: Option<&str>) -> CapResult<HashMap<u32, String>> {
    match dev {
        Some(dev) => Ok(HashMap::from([(index_of(h, ns, dev).await?, dev.to_string())])),
        None => super::link::names(h).await,
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The entry's IP address (for the bridge family, the raw VXLAN destination).
fn destination(msg: &NeighbourMessage) -> Option<IpAddr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        NeighbourAttribute::Destination(NeighbourAddress::Other(raw)) => match raw.len() {
            4 => <[u8; 4]>::try_from(&raw[..]).ok().map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            16 => <[u8; 16]>::try_from(&raw[..]).ok().map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            _ => None,
        },
        _ => None,
    })
}

fn lladdr(msg: &NeighbourMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(mac) if mac.len() == 6 => Some(format_mac(mac)),
        _ => None,
    })
}

fn state(state: NeighbourState) -> &'static str {
    match state {
        NeighbourState::Permanent => "permanent",
        NeighbourState::Reachable => "reachable",
        NeighbourState::Stale => "stale",
        NeighbourState::Delay => "delay",
        NeighbourState::Probe => "probe",
        NeighbourState::Failed => "failed",
        NeighbourState::Noarp => "noarp",
        NeighbourState::Incomplete => "incomplete",
        _ => "none",
    }
}
