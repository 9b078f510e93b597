//! `ip route` over rtnetlink: the main table, or others by number.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::link;
use super::netlink::nl_error;
use crate::error::{CapError, CapResult};
use crate::ops::{LOCAL_TABLE, MAIN_TABLE, Ns, RouteSpec, STATIC_PROTO};

/// Build the netlink message for a route, resolving `dev` to its index. A
/// deletion leaves an unnamed protocol and scope open (any matches), as `ip
/// route del` does; an addition gives them netsh's usual values.
async fn message(h: &Handle, ns: &Ns, route: &RouteSpec, deleting: bool) -> CapResult<RouteMessage> {
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.dest.ip(), route.dest.prefix())
        .map_err(|e| CapError::Invalid(format!("route {route}: {e}")))?;
    if let Some(via) = route.via {
        builder = builder.gateway(via).map_err(|e| CapError::Invalid(format!("route {route}: {e}")))?;
    }
    let (any_scope, any_proto) = (u8::from(RouteScope::NoWhere), u8::from(RouteProtocol::Unspec));
    let (scope, proto) = match deleting {
        true => (route.scope.unwrap_or(any_scope), route.proto.unwrap_or(any_proto)),
        false => (route.scope.unwrap_or(route.usual_scope()), route.proto.unwrap_or(STATIC_PROTO)),
    };
    builder = builder.scope(RouteScope::from(scope)).protocol(RouteProtocol::from(proto));
    if let Some(dev) = &route.dev {
        builder = builder.output_interface(link::index_of(h, ns, dev).await?);
    }
    if route.onlink {
        builder = builder.onlink();
    }
    if let Some(metric) = route.metric {
        builder = builder.priority(metric);
    }
    if let Some(src) = route.src {
        builder = builder.pref_source(src).map_err(|e| CapError::Invalid(format!("route {route}: {e}")))?;
    }
    if let Some(table) = route.table {
        builder = builder.table_id(table);
    }
    Ok(builder.build())
}

/// `ip route add ...`.
pub async fn add(h: &Handle, ns: &Ns, route: &RouteSpec) -> CapResult<()> {
    let msg = message(h, ns, route, false).await?;
    let what = format!("route {route}");
    h.route().add(msg).execute().await.map_err(|e| nl_error(e, &what, "add"))
}

/// `ip route del ...`.
pub async fn delete(h: &Handle, ns: &Ns, route: &RouteSpec) -> CapResult<()> {
    let msg = message(h, ns, route, true).await?;
    let what = format!("route {route}");
    h.route().del(msg).execute().await.map_err(|e| nl_error(e, &what, "delete"))
}

/// `ip route get DEST [from SRC]`: the route the kernel picks, policy rules included.
pub async fn get(h: &Handle, ns: &Ns, dest: IpAddr, from: Option<IpAddr>) -> CapResult<RouteSpec> {
    let what = format!("a route to {dest}");
    let mut msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dest, if dest.is_ipv6() { 128 } else { 32 })
        .map_err(|e| CapError::Invalid(format!("{what}: {e}")))?
        .build();
    if let Some(from) = from {
        if from.is_ipv6() != dest.is_ipv6() {
            return Err(CapError::Invalid(format!("{what} from {from}: the addresses are of different IP versions")));
        }
        msg.header.source_prefix_length = if from.is_ipv6() { 128 } else { 32 };
        msg.attributes.push(RouteAttribute::Source(RouteAddress::from(from)));
    }
    let names: HashMap<u32, String> = link::list(h, ns).await?.into_iter().map(|l| (l.index, l.name)).collect();
    let found: Vec<RouteMessage> =
        h.route().get(msg).execute().try_collect().await.map_err(|e| nl_error(e, &what, "look up"))?;
    let route = found.first().and_then(|m| to_spec(m, &names));
    // A lookup's answer is no route one made: it has neither protocol nor scope.
    let route = route.map(|r| RouteSpec { proto: None, scope: None, ..r });
    route.ok_or_else(|| CapError::NotFound(format!("{what}: the kernel answered with no route")))
}

/// `ip route show [table N|all]` + `ip -6 ...`: unicast routes of the main
/// table (`table` none), of table N, or of every table but local (`Some(0)`).
pub async fn list(h: &Handle, ns: &Ns, table: Option<u32>) -> CapResult<Vec<RouteSpec>> {
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
        .filter(|m| m.header.kind == RouteType::Unicast && wanted(table, table_of(m)))
        .filter_map(|m| to_spec(m, &names))
        .collect())
}

fn wanted(asked: Option<u32>, table: u32) -> bool {
    match asked {
        None => table == MAIN_TABLE,
        Some(0) => table != LOCAL_TABLE,
        Some(t) => table == t,
    }
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
    let table = table_of(msg);
    let mut spec = RouteSpec {
        dest: IpNetwork::new(unspecified, 0).ok()?,
        via: None,
        dev: None,
        onlink: false,
        metric: None,
        src: None,
        table: (table != MAIN_TABLE).then_some(table),
        proto: None,
        scope: None,
    };
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dest_ip = to_ip(a)?,
            RouteAttribute::Gateway(a) => spec.via = to_ip(a),
            RouteAttribute::Oif(idx) => spec.dev = names.get(idx).cloned(),
            RouteAttribute::Priority(p) => spec.metric = Some(*p),
            RouteAttribute::PrefSource(a) => spec.src = to_ip(a),
            _ => {}
        }
    }
    spec.dest = IpNetwork::new(dest_ip, msg.header.destination_prefix_length).ok()?;
    spec.onlink = msg.header.flags.contains(RouteFlags::Onlink);
    spec.proto = Some(u8::from(msg.header.protocol)).filter(|p| *p != STATIC_PROTO);
    spec.scope = Some(u8::from(msg.header.scope)).filter(|s| *s != spec.usual_scope());
    Some(spec)
}
