//! `ip addr` over rtnetlink.

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::Handle;

use super::link::{self, describe};
use super::netlink::nl_error;
use crate::error::{CapError, CapResult};
use crate::ops::{AddrInfo, Ns};

/// Every address in the namespace as (link index, CIDR).
pub async fn dump(h: &Handle, ns: &Ns) -> CapResult<Vec<(u32, IpNetwork)>> {
    Ok(messages(h, ns).await?.iter().filter_map(|m| Some((m.header.index, cidr_of(m)?))).collect())
}

async fn messages(h: &Handle, ns: &Ns) -> CapResult<Vec<AddressMessage>> {
    let what = match ns {
        Some(ns) => format!("addresses in namespace {ns}"),
        None => "addresses".to_string(),
    };
    h.address().get().execute().try_collect().await.map_err(|e| nl_error(e, &what, "list"))
}

/// The CIDR an address message describes (IFA_LOCAL wins over IFA_ADDRESS, as in iproute2).
fn cidr_of(msg: &AddressMessage) -> Option<IpNetwork> {
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    IpNetwork::new(local.or(address)?, msg.header.prefix_len).ok()
}

/// `ip addr add CIDR dev DEV [nodad]`.
pub async fn add(h: &Handle, ns: &Ns, dev: &str, cidr: IpNetwork, nodad: bool) -> CapResult<()> {
    let index = link::index_of(h, ns, dev).await?;
    let what = format!("address {cidr} on {}", describe(ns, dev));
    let mut request = h.address().add(index, cidr.ip(), cidr.prefix());
    if nodad {
        let msg = request.message_mut();
        msg.header.flags |= AddressHeaderFlags::Nodad;
        msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    request.execute().await.map_err(|e| nl_error(e, &what, "add"))
}

/// `ip addr del CIDR dev DEV`.
pub async fn delete(h: &Handle, ns: &Ns, dev: &str, cidr: IpNetwork) -> CapResult<()> {
    let index = link::index_of(h, ns, dev).await?;
    let what = format!("address {cidr} on {}", describe(ns, dev));
    let msg = messages(h, ns)
        .await?
        .into_iter()
        .find(|m| m.header.index == index && cidr_of(m) == Some(cidr))
        .ok_or_else(|| CapError::NotFound(format!("{what} does not exist")))?;
    h.address().del(msg).execute().await.map_err(|e| nl_error(e, &what, "delete"))
}

/// `ip addr show [dev DEV]`.
pub async fn list(h: &Handle, ns: &Ns, dev: Option<&str>) -> CapResult<Vec<AddrInfo>> {
    let links = link::list(h, ns).await?;
    if let Some(dev) = dev
        && !links.iter().any(|l| l.name == dev)
    {
        return Err(CapError::NotFound(format!("{} does not exist", describe(ns, dev))));
    }
    Ok(links
        .into_iter()
        .filter(|l| dev.is_none_or(|d| d == l.name))
        .flat_map(|l| l.addresses.into_iter().map(move |cidr| AddrInfo { dev: l.name.clone(), cidr }))
        .collect())
}
