//! `netsh:host/link`.

use super::{done, ifname, ns};
use crate::error::{CapError, CapResult};
use crate::ops::{self, MacvlanMode, Op, Reply, VethSpec, VxlanSpec};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::link::{Host, LinkInfo, MacvlanMode as WitMacvlanMode, Veth, Vxlan};
use crate::runtime::bindings::netsh::host::types::Error;

fn to_wit(l: ops::LinkInfo) -> LinkInfo {
    LinkInfo {
        name: l.name,
        index: l.index,
        kind: l.kind,
        mtu: l.mtu,
        up: l.up,
        oper_state: l.oper_state,
        master: l.master,
        mac: l.mac,
        addresses: l.addresses.iter().map(|a| a.to_string()).collect(),
        alias: l.alias,
    }
}

fn veth(spec: Veth) -> CapResult<VethSpec> {
    Ok(VethSpec {
        name: ifname(spec.name)?,
        peer: ifname(spec.peer)?,
        peer_ns: ns(spec.peer_ns)?,
        peer_mac: spec.peer_mac.as_deref().map(super::mac).transpose()?,
        master: spec.master.map(ifname).transpose()?,
        up: spec.up,
        mtu: spec.mtu,
        hairpin: spec.hairpin,
    })
}

/// Largest VXLAN network identifier (24 bits).
const VNI_MAX: u32 = (1 << 24) - 1;

fn vxlan(spec: Vxlan) -> CapResult<VxlanSpec> {
    if spec.vni == 0 || spec.vni > VNI_MAX {
        return Err(CapError::Invalid(format!("VXLAN id {} must be 1-{VNI_MAX}", spec.vni)));
    }
    if spec.port == 0 {
        return Err(CapError::Invalid("VXLAN port must not be 0 (4789 is the standard one)".into()));
    }
    Ok(VxlanSpec {
        name: ifname(spec.name)?,
        vni: spec.vni,
        port: spec.port,
        local: spec.local.as_deref().map(super::ip).transpose()?,
        dev: spec.dev.map(ifname).transpose()?,
        learning: spec.learning,
        proxy: spec.proxy,
        mtu: spec.mtu,
        master: spec.master.map(ifname).transpose()?,
        up: spec.up,
    })
}

impl Host for RecipeState {
    async fn add_bridge(
        &mut self,
        ns_: Option<String>,
        name: String,
        mtu: Option<u32>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::LinkAddBridge { ns: ns(ns_)?, name: ifname(name)?, mtu }))();
        self.call(op, done).await
    }

    async fn add_veth(&mut self, ns_: Option<String>, spec: Veth) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::LinkAddVeth { ns: ns(ns_)?, spec: veth(spec)? }))();
        self.call(op, done).await
    }

    async fn add_vxlan(&mut self, ns_: Option<String>, spec: Vxlan) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::LinkAddVxlan { ns: ns(ns_)?, spec: vxlan(spec)? }))();
        self.call(op, done).await
    }

    async fn add_macvlan(
        &mut self,
        ns_: Option<String>,
        name: String,
        parent: String,
        mode: WitMacvlanMode,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mode = match mode {
            WitMacvlanMode::Private => MacvlanMode::Private,
            WitMacvlanMode::Vepa => MacvlanMode::Vepa,
            WitMacvlanMode::Bridge => MacvlanMode::Bridge,
            WitMacvlanMode::Passthru => MacvlanMode::Passthru,
        };
        let op = (|| Ok(Op::LinkAddMacvlan { ns: ns(ns_)?, name: ifname(name)?, parent: ifname(parent)?, mode }))();
        self.call(op, done).await
    }

    async fn set_up(&mut self, ns_: Option<String>, name: String, up: bool) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::LinkSetUp { ns: ns(ns_)?, name: ifname(name)?, up }))();
        self.call(op, done).await
    }

    async fn set_master(
        &mut self,
        ns_: Option<String>,
        name: String,
        master: Option<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let op =
            (|| Ok(Op::LinkSetMaster { ns: ns(ns_)?, name: ifname(name)?, master: master.map(ifname).transpose()? }))();
        self.call(op, done).await
    }

    async fn set_netns(
        &mut self,
        ns_: Option<String>,
        name: String,
        target: Option<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::LinkSetNetns { ns: ns(ns_)?, name: ifname(name)?, target: ns(target)? }))();
        self.call(op, done).await
    }

    async fn set_mtu(&mut self, ns_: Option<String>, name: String, mtu: u32) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::LinkSetMtu { ns: ns(ns_)?, name: ifname(name)?, mtu }))();
        self.call(op, done).await
    }

    async fn set_alias(
        &mut self,
        ns_: Option<String>,
        name: String,
        alias: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| {
            if alias.len() > 255 || alias.contains('\0') {
                return Err(CapError::Invalid(format!("alias for {name} must be at most 255 bytes without NUL")));
            }
            Ok(Op::LinkSetAlias { ns: ns(ns_)?, name: ifname(name)?, alias })
        })();
        self.call(op, done).await
    }

    async fn rename(
        &mut self,
        ns_: Option<String>,
        name: String,
        new_name: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::LinkRename { ns: ns(ns_)?, name: ifname(name)?, new_name: ifname(new_name)? }))();
        self.call(op, done).await
    }

    async fn delete(&mut self, ns_: Option<String>, name: String) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::LinkDelete { ns: ns(ns_)?, name: ifname(name)? }))();
        self.call(op, done).await
    }

    async fn get(&mut self, ns_: Option<String>, name: String) -> wasmtime::Result<Result<LinkInfo, Error>> {
        let op = (|| Ok(Op::LinkGet { ns: ns(ns_)?, name: ifname(name)? }))();
        self.call(op, |r| match r {
            Reply::Link(l) => Ok(to_wit(*l)),
            other => Err(other.mismatch()),
        })
        .await
    }

    async fn list(&mut self, ns_: Option<String>) -> wasmtime::Result<Result<Vec<LinkInfo>, Error>> {
        self.call(ns(ns_).map(|ns| Op::LinkList { ns }), |r| match r {
            Reply::Links(l) => Ok(l.into_iter().map(to_wit).collect()),
            other => Err(other.mismatch()),
        })
        .await
    }
}
