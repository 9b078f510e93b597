//! `netsh:host/firewall`.

use super::{cidr, done, ifname, ip, ns};
use crate::error::CapResult;
use crate::firewall::check_owner;
use crate::ops::{self, FwRule, Isolation, Op, Proto, Reply};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::firewall::{
    ForwardSpec, Host, IsolateSpec, Isolation as WitIsolation, LinkSpec, MasqueradeSpec, PortRange, Proto as WitProto,
    PublishSpec, RuleInfo, RuleSpec, SnatSpec,
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

fn proto_of(proto: WitProto) -> Proto {
    match proto {
        WitProto::Tcp => Proto::Tcp,
        WitProto::Udp => Proto::Udp,
    }
}

fn publish(spec: PublishSpec) -> CapResult<FwRule> {
    Ok(FwRule::Publish {
        proto: proto_of(spec.proto),
        host_ip: spec.host_ip.as_deref().map(ip).transpose()?.and_then(crate::ops::published_on),
        first: spec.host_ports.first,
        last: spec.host_ports.last,
        to_ip: ip(&spec.to_ip)?,
        to_port: spec.to_port,
    })
}

fn wit_proto(proto: Proto) -> WitProto {
    match proto {
        Proto::Tcp => WitProto::Tcp,
        Proto::Udp => WitProto::Udp,
    }
}

fn link_accept(spec: LinkSpec) -> CapResult<FwRule> {
    Ok(FwRule::LinkAccept {
        bridge: ifname(spec.bridge)?,
        client: ip(&spec.client)?,
        server: ip(&spec.server)?,
        proto: proto_of(spec.proto),
        first: spec.ports.first,
        last: spec.ports.last,
    })
}

fn snat(spec: SnatSpec) -> CapResult<FwRule> {
    Ok(FwRule::Snat {
        source: cidr(&spec.source)?,
        out: spec.out.map(ifname).transpose()?,
        to: spec.to.as_deref().map(ip).transpose()?,
    })
}

fn isolation(mode: WitIsolation) -> Isolation {
    match mode {
        WitIsolation::Networks => Isolation::Networks,
        WitIsolation::Ports => Isolation::Ports,
        WitIsolation::External => Isolation::External,
    }
}

/// A typed rule as the WIT shows it.
fn spec_of(rule: FwRule) -> RuleSpec {
    match rule {
        FwRule::Masquerade { source, out_not } => {
            RuleSpec::Masquerade(MasqueradeSpec { source: source.to_string(), out_not })
        }
        FwRule::Publish { proto, host_ip, first, last, to_ip, to_port } => RuleSpec::Publish(PublishSpec {
            proto: wit_proto(proto),
            host_ip: host_ip.map(|i| i.to_string()),
            host_ports: PortRange { first, last },
            to_ip: to_ip.to_string(),
            to_port,
        }),
        FwRule::ForwardAccept { input, output } => RuleSpec::ForwardAccept(ForwardSpec { input, output }),
        FwRule::LinkAccept { bridge, client, server, proto, first, last } => RuleSpec::LinkAccept(LinkSpec {
            bridge,
            client: client.to_string(),
            server: server.to_string(),
            proto: wit_proto(proto),
            ports: PortRange { first, last },
        }),
        FwRule::Snat { source, out, to } => {
            RuleSpec::Snat(SnatSpec { source: source.to_string(), out, to: to.map(|ip| ip.to_string()) })
        }
        FwRule::Isolate { bridge, mode } => RuleSpec::Isolate(IsolateSpec {
            bridge,
            mode: match mode {
                Isolation::Networks => WitIsolation::Networks,
                Isolation::Ports => WitIsolation::Ports,
                Isolation::External => WitIsolation::External,
            },
        }),
    }
}

fn info(r: ops::RuleInfo) -> RuleInfo {
    RuleInfo { id: r.id, owner: r.owner, spec: spec_of(r.rule), commands: r.commands }
}

fn rules(reply: Reply) -> CapResult<Vec<RuleInfo>> {
    match reply {
        Reply::Rules(rules) => Ok(rules.into_iter().map(info).collect()),
        other => Err(other.mismatch()),
    }
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
        let rule = ifname(bridge).map(|bridge| FwRule::Isolate { bridge, mode: isolation(mode) });
        self.call(add(ns_, owner, rule), rule_id).await
    }

    async fn snat(
        &mut self,
        ns_: Option<String>,
        owner: String,
        spec: SnatSpec,
    ) -> wasmtime::Result<Result<String, Error>> {
        self.call(add(ns_, owner, snat(spec)), rule_id).await
    }

    async fn link_accept(
        &mut self,
        ns_: Option<String>,
        owner: String,
        spec: LinkSpec,
    ) -> wasmtime::Result<Result<String, Error>> {
        self.call(add(ns_, owner, link_accept(spec)), rule_id).await
    }

    async fn free_port(
        &mut self,
        ns_: Option<String>,
        proto: WitProto,
        host_ip: Option<String>,
    ) -> wasmtime::Result<Result<u16, Error>> {
        let op = (|| {
            Ok(Op::FwFreePort {
                ns: ns(ns_)?,
                proto: proto_of(proto),
                host_ip: host_ip.as_deref().map(ip).transpose()?,
            })
        })();
        self.call(op, |r| match r {
            Reply::Port(port) => Ok(port),
            other => Err(other.mismatch()),
        })
        .await
    }

    async fn remove(&mut self, ns_: Option<String>, id: String) -> wasmtime::Result<Result<(), Error>> {
        self.call(ns(ns_).map(|ns| Op::FwRemove { ns, id }), done).await
    }

    async fn get(&mut self, ns_: Option<String>, id: String) -> wasmtime::Result<Result<Option<RuleInfo>, Error>> {
        self.call(ns(ns_).map(|ns| Op::FwGet { ns, id }), |r| Ok(rules(r)?.pop())).await
    }

    async fn list(&mut self, ns_: Option<String>) -> wasmtime::Result<Result<Vec<RuleInfo>, Error>> {
        self.call(ns(ns_).map(|ns| Op::FwList { ns }), rules).await
    }
}
