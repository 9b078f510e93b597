//! `netsh:host/route`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::{cidr, done, ifname, ip, ns};
use crate::error::{CapError, CapResult};
use crate::ops::{Op, Reply, RouteSpec};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::route::{Host, RouteInfo};
use crate::runtime::bindings::netsh::host::types::Error;

/// Convert a WIT route; "default" takes its family from `via` (IPv4 without one).
pub fn spec(r: RouteInfo) -> CapResult<RouteSpec> {
    let via = r.via.as_deref().map(ip).transpose()?;
    let dest = if r.dest == "default" {
        let any = match via {
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        IpNetwork::new(any, 0).map_err(|e| CapError::Invalid(e.to_string()))?
    } else {
        cidr(&r.dest)?
    };
    if via.is_some_and(|v| v.is_ipv4() != dest.is_ipv4()) {
        return Err(CapError::Invalid(format!(
            "route {}: gateway and destination are of different IP versions",
            r.dest
        )));
    }
    if via.is_none() && r.dev.is_none() {
        return Err(CapError::Invalid(format!("route {} needs a gateway (via) or a device (dev)", r.dest)));
    }
    let src = r.src.as_deref().map(ip).transpose()?;
    if src.is_some_and(|s| s.is_ipv4() != dest.is_ipv4()) {
        return Err(CapError::Invalid(format!(
            "route {}: source and destination are of different IP versions",
            r.dest
        )));
    }
    let table = r.table.filter(|t| *t != crate::ops::MAIN_TABLE);
    Ok(RouteSpec { dest, via, dev: r.dev.map(ifname).transpose()?, onlink: r.onlink, metric: r.metric, src, table })
}

fn to_wit(r: RouteSpec) -> RouteInfo {
    RouteInfo {
        dest: if r.dest.prefix() == 0 { "default".into() } else { r.dest.to_string() },
        via: r.via.map(|v| v.to_string()),
        dev: r.dev,
        onlink: r.onlink,
        metric: r.metric,
        src: r.src.map(|s| s.to_string()),
        table: r.table,
    }
}

impl Host for RecipeState {
    async fn add(&mut self, ns_: Option<String>, route: RouteInfo) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::RouteAdd { ns: ns(ns_)?, route: spec(route)? }))();
        self.call(op, done).await
    }

    async fn delete(&mut self, ns_: Option<String>, route: RouteInfo) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::RouteDelete { ns: ns(ns_)?, route: spec(route)? }))();
        self.call(op, done).await
    }

    async fn list(&mut self, ns_: Option<String>) -> wasmtime::Result<Result<Vec<RouteInfo>, Error>> {
        self.call(ns(ns_).map(|ns| Op::RouteList { ns, table: None }), |r| match r {
            Reply::Routes(r) => Ok(r.into_iter().map(to_wit).collect()),
            other => Err(other.mismatch()),
        })
        .await
    }
}
