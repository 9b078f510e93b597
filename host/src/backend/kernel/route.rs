//! `ip route` (main table) over rtnetlink.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::link;
use super::netlink::nl_error;
use crate::error::{CapError, CapResult};
use crate::ops::{Ns, RouteSpec};

/// Build the netlink message for a route, resolving `dev` to its index.
async fn message(h: &Handle, ns: &Ns, route: &RouteSpec) -> CapResult<RouteMessage> {
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.dest.ip(), route.dest.prefix())
        .map_err(|e| CapError::Invalid(format!("route {route}: {e}")))?;
    if let Some(via) = route.via {
        builder = builder.gateway(via).map_err(|e| CapError::Invalid(format!("route {route}: {e}")))?;
    } else {
        builder = builder.scope(RouteScope::Link);
    }
    if let Some(dev) = &route.dev {
        builder = builder.output_interface(link::index_of(h, ns, dev).await?);
    }
    if route.onlink {
        builder = builder.onlink();
    }
    if let Some(metric) = route.metric {
        builder = builder.priority(metric);
    }
    Ok(builder.build())
}

/// `ip route add ...`.
pub async fn add(h: &Handle, ns: &Ns, route: &RouteSpec) -> CapResult<()> {
    let msg = message(h, ns, route).await?;
    let what = format!("route {route}");
    h.route().add(msg).execute().await.map_err(|e| nl_error(e, &what, "add"))
}

/// `ip route del ...`.
pub async fn delete(h: &Handle, ns: &Ns, route: &RouteSpec) -> CapResult<()> {
    let msg = message(h, ns, route).await?;
    let what = format!("route {route}");
    h.route().del(msg).execute().await.map_err(|e| nl_error(e, &what, "delete"))
}

/// `ip route show` + `ip -6 route show`: unicast routes of the main table.
pub async fn list(h: &Handle, ns: &Ns) -> CapResult<Vec<RouteSpec>> {
    let names: HashMap<u32, String> = link::list(h, ns).await?.into_iter().map(|l| (l.index, l.name)).collect();
    let mut msgs: Vec<RouteMessage> = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl_error(e, "routes", "list"))?;
    let v6: Vec<RouteMessage> = h
        .route()
        .get(RouteMessageBuilder::<Ipv6Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl_error(e, "routes", "list"))?;
    msgs.extend(v6);
    Ok(msgs
        .iter()
        .filter(|m| table_of(m) == u32::from(RouteHeader::RT_TABLE_MAIN) && m.header.kind == RouteType::Unicast)
        .filter_map(|m| to_spec(m, &names))
        .collect())
}

fn table_of(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

fn to_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn to_spec(msg: &RouteMessage, names: &HashMap<u32, String>) -> Option<RouteSpec> {
    let v6 = msg.header.address_family == netlink_packet_route::AddressFamily::Inet6;
    let unspecified = if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
    let mut dest_ip = unspecified;
    let mut spec =
        RouteSpec { dest: IpNetwork::new(unspecified, 0).ok()?, via: None, dev: None, onlink: false, metric: None };
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dest_ip = to_ip(a)?,
            RouteAttribute::Gateway(a) => spec.via = to_ip(a),
            RouteAttribute::Oif(idx) => spec.dev = names.get(idx).cloned(),
            RouteAttribute::Priority(p) => spec.metric = Some(*p),
            _ => {}
        }
    }
    spec.dest = IpNetwork::new(dest_ip, msg.header.destination_prefix_length).ok()?;
    spec.onlink = msg.header.flags.contains(RouteFlags::Onlink);
    Some(spec)
}
