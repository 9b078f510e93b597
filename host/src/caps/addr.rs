//! `netsh:host/addr`.

use super::{cidr, done, ifname, ns};
use crate::ops::{Op, Reply};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::addr::{AddFlags, AddrInfo, Host};
use crate::runtime::bindings::netsh::host::types::Error;

impl Host for RecipeState {
    async fn add(
        &mut self,
        ns_: Option<String>,
        dev: String,
        cidr_: String,
        opts: AddFlags,
    ) -> wasmtime::Result<Result<(), Error>> {
        let nodad = opts.contains(AddFlags::NODAD);
        let op = (|| Ok(Op::AddrAdd { ns: ns(ns_)?, dev: ifname(dev)?, cidr: cidr(&cidr_)?, nodad }))();
        self.call(op, done).await
    }

    async fn delete(&mut self, ns_: Option<String>, dev: String, cidr_: String) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::AddrDelete { ns: ns(ns_)?, dev: ifname(dev)?, cidr: cidr(&cidr_)? }))();
        self.call(op, done).await
    }

    async fn list(
        &mut self,
        ns_: Option<String>,
        dev: Option<String>,
    ) -> wasmtime::Result<Result<Vec<AddrInfo>, Error>> {
        let op = (|| Ok(Op::AddrList { ns: ns(ns_)?, dev: dev.map(ifname).transpose()? }))();
        self.call(op, |r| match r {
            Reply::Addrs(a) => Ok(a.into_iter().map(|a| AddrInfo { dev: a.dev, cidr: a.cidr.to_string() }).collect()),
            other => Err(other.mismatch()),
        })
        .await
    }
}
