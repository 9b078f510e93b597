//! `netsh:host/neigh`.

use super::{done, ifname, ip, mac, ns};
use crate::error::CapResult;
use crate::ops::{self, Op, Reply};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::neigh::{FdbEntry, Host, NeighInfo};
use crate::runtime::bindings::netsh::host::types::Error;

fn fdb(entry: FdbEntry) -> CapResult<ops::Fdb> {
    Ok(ops::Fdb { dev: ifname(entry.dev)?, mac: mac(&entry.mac)?, dst: entry.dst.as_deref().map(ip).transpose()? })
}

fn fdb_to_wit(entry: ops::Fdb) -> FdbEntry {
    FdbEntry { dev: entry.dev, mac: entry.mac, dst: entry.dst.map(|d| d.to_string()) }
}

impl Host for RecipeState {
    async fn add(
        &mut self,
        ns_: Option<String>,
        dev: String,
        ip_: String,
        mac_: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::NeighAdd { ns: ns(ns_)?, dev: ifname(dev)?, ip: ip(&ip_)?, mac: mac(&mac_)? }))();
        self.call(op, done).await
    }

    async fn delete(&mut self, ns_: Option<String>, dev: String, ip_: String) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::NeighDelete { ns: ns(ns_)?, dev: ifname(dev)?, ip: ip(&ip_)? }))();
        self.call(op, done).await
    }

    async fn list(
        &mut self,
        ns_: Option<String>,
        dev: Option<String>,
    ) -> wasmtime::Result<Result<Vec<NeighInfo>, Error>> {
        let op = (|| Ok(Op::NeighList { ns: ns(ns_)?, dev: dev.map(ifname).transpose()? }))();
        self.call(op, |r| match r {
            Reply::Neighs(n) => Ok(n
                .into_iter()
                .map(|n| NeighInfo { dev: n.dev, ip: n.ip.to_string(), mac: n.mac, state: n.state })
                .collect()),
            other => Err(other.mismatch()),
        })
        .await
    }

    async fn fdb_append(&mut self, ns_: Option<String>, entry: FdbEntry) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::FdbAdd { ns: ns(ns_)?, entry: fdb(entry)? }))();
        self.call(op, done).await
    }

    async fn fdb_delete(&mut self, ns_: Option<String>, entry: FdbEntry) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::FdbDelete { ns: ns(ns_)?, entry: fdb(entry)? }))();
        self.call(op, done).await
    }

    async fn fdb_list(
        &mut self,
        ns_: Option<String>,
        dev: Option<String>,
    ) -> wasmtime::Result<Result<Vec<FdbEntry>, Error>> {
        let op = (|| Ok(Op::FdbList { ns: ns(ns_)?, dev: dev.map(ifname).transpose()? }))();
        self.call(op, |r| match r {
            Reply::Fdb(f) => Ok(f.into_iter().map(fdb_to_wit).collect()),
            other => Err(other.mismatch()),
        })
        .await
    }
}
