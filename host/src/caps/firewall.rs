//! `netsh:host/firewall`.

use super::{cidr, done, ifname, ip, ns};
use crate::error::CapResult;
use crate::firewall::check_owner;
use crate::ops::{FwRule, Isolation, Op, Proto, Reply};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::firewall::{
    Host, Isolation as WitIsolation, Proto as WitProto, PublishSpec, RuleInfo,
};
use crate::runtime::bindings::netsh::host::types::Error;

fn add(ns_: Option<String>, owner: String, rule: CapResult<FwRule>) -> CapResult<Op> {
    check_owner(&owner)?;
    Ok(Op::FwAdd { ns: ns(ns_)?, owner, rule: rule? })
}

/// The id in a rule reply.
fn rule_id(reply: Reply) -> CapResult<String> {
    match reply {
        Reply::Rule { id, .. } => Ok(id),
        other => Err(other.mismatch()),
    }
}

fn publish(spec: PublishSpec) -> CapResult<FwRule> {
    Ok(FwRule::Publish {
        proto: match spec.proto {
            WitProto::Tcp => Proto::Tcp,
            WitProto::Udp => Proto::Udp,
        },
        host_ip: spec.host_ip.as_deref().map(ip).transpose()?,
        first: spec.host_ports.first,
        last: spec.host_ports.last,
        to_ip: ip(&spec.to_ip)?,
        to_port: spec.to_port,
    })
}

impl Host for RecipeState {
    async fn masquerade(
        &mut self,
        ns_: Option<String>,
        owner: String,
        source: String,
        out_not: Option<String>,
    ) -> wasmtime::Result<Result<String, Error>> {
        let rule = (|| Ok(FwRule::Masquerade { source: cidr(&source)?, out_not: out_not.map(ifname).transpose()? }))();
        self.call(add(ns_, owner, rule), rule_id).await
    }

    async fn publish(
        &mut self,
        ns_: Option<String>,
        owner: String,
        spec: PublishSpec,
    ) -> wasmtime::Result<Result<String, Error>> {
        self.call(add(ns_, owner, publish(spec)), rule_id).await
    }

    async fn forward_accept(
        &mut self,
        ns_: Option<String>,
        owner: String,
        input: Option<String>,
        output: Option<String>,
    ) -> wasmtime::Result<Result<String, Error>> {
        let rule = (|| {
            Ok(FwRule::ForwardAccept { input: input.map(ifname).transpose()?, output: output.map(ifname).transpose()? })
        })();
        self.call(add(ns_, owner, rule), rule_id).await
    }

    async fn isolate(
        &mut self,
        ns_: Option<String>,
        owner: String,
        bridge: String,
        mode: WitIsolation,
    ) -> wasmtime::Result<Result<String, Error>> {
        let mode = match mode {
            WitIsolation::Networks => Isolation::Networks,
            WitIsolation::Ports => Isolation::Ports,
            WitIsolation::External => Isolation::External,
        };
        let rule = ifname(bridge).map(|bridge| FwRule::Isolate { bridge, mode });
        self.call(add(ns_, owner, rule), rule_id).await
    }

    async fn remove(&mut self, ns_: Option<String>, id: String) -> wasmtime::Result<Result<(), Error>> {
        self.call(ns(ns_).map(|ns| Op::FwRemove { ns, id }), done).await
    }

    async fn list(&mut self, ns_: Option<String>) -> wasmtime::Result<Result<Vec<RuleInfo>, Error>> {
        self.call(ns(ns_).map(|ns| Op::FwList { ns }), |r| match r {
            Reply::Rules(rules) => {
                Ok(rules.into_iter().map(|r| RuleInfo { id: r.id, owner: r.owner, commands: r.commands }).collect())
            }
            other => Err(other.mismatch()),
        })
        .await
    }
}
