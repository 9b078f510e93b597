//! `inspect NAME`: JSON shaped like `docker network inspect`.

use netsh_guest::{Args, Result, firewall, link};

use crate::store::Network;
use netsh_guest::json::{list, string as s};
use netsh_guest::meta::long_hash;

/// Published ports of a container as "HOSTIP:HOSTPORT->PORT/PROTO".
fn published(rules: &[firewall::RuleInfo], owner: &str) -> Vec<String> {
    let mut out = Vec::new();
    for rule in rules.iter().filter(|r| r.owner == owner) {
        if let firewall::RuleSpec::Publish(p) = &rule.spec {
            let host_ip = crate::ports::host_label(p.host_ip.as_deref(), &p.to_ip);
            for (i, port) in (p.host_ports.first..=p.host_ports.last).enumerate() {
                let to = u32::from(p.to_port) + i as u32;
                out.push(s(&format!("{host_ip}:{port}->{to}/{}", firewall::proto_name(p.proto))));
            }
        }
    }
    out
}

fn containers(net: &Network) -> Result<String> {
    let mut entries = Vec::new();
    for p in net.endpoints()? {
        let rules: Vec<firewall::RuleInfo> =
            p.rules.iter().filter_map(|id| firewall::get(None, id).transpose()).collect::<Result<_>>()?;
        let mac = link::get(Some(&p.netns), &p.ifname).map(|l| l.mac).unwrap_or_default();
        let ipv4 = format!("{}/{}", p.ip, net.subnet.prefix());
        let ipv6 = p.ip6.zip(net.ipv6).map(|(ip, v6)| format!("{ip}/{}", v6.subnet.prefix())).unwrap_or_default();
        let aliases: Vec<String> = p.aliases.iter().map(|a| s(a)).collect();
        entries.push(format!(
            "      {}: {{\"Name\": {}, \"EndpointID\": {}, \"Interface\": {}, \"HostInterface\": {}, \"MacAddress\": {}, \"IPv4Address\": {}, \"IPv6Address\": {}, \"Aliases\": {}, \"Ports\": {}}}",
            s(&p.container),
            s(&p.container),
            s(&long_hash(&[&net.id(), &p.container])),
            s(&p.ifname),
            s(&p.veth),
            s(&mac),
            s(&ipv4),
            s(&ipv6),
            list(&aliases),
            list(&published(&rules, &net.container_owner(&p.container)))
        ));
    }
    Ok(if entries.is_empty() { "{}".into() } else { format!("{{\n{}\n    }}", entries.join(",\n")) })
}

/// IPAM's configuration: the IPv4 pool, then the IPv6 one, each with its
/// auxiliary addresses.
fn ipam_config(net: &Network) -> String {
    let pools = std::iter::once(net.v4()).chain(net.ipv6);
    let entries: Vec<String> = pools
        .map(|p| {
            let aux = net.aux.iter().filter(|(_, ip)| p.subnet.contains(*ip));
            let aux: Vec<(String, String)> = aux.map(|(name, ip)| (name.clone(), ip.to_string())).collect();
            format!(
                r#"{{"Subnet": {}, "Gateway": {}, "IPRange": {}, "AuxiliaryAddresses": {}}}"#,
                s(&p.subnet.to_string()),
                s(&p.gateway.addr().to_string()),
                s(&p.ip_range.to_string()),
                object(&aux)
            )
        })
        .collect();
    list(&entries)
}

/// A JSON object of string values.
fn object(pairs: &[(String, String)]) -> String {
    let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{}: {}", s(k), s(v))).collect();
    format!("{{{}}}", fields.join(", "))
}

/// `inspect NAME`: the network as JSON.
pub fn inspect(args: &Args) -> Result<()> {
    args.at_most(2)?;
    let net = Network::load(args.required(1, "network NAME")?)?;
    println!(
        r#"[
  {{
    "Name": {},
    "Id": {},
    "Created": {},
    "Driver": "bridge",
    "EnableIPv6": {},
    "Scope": "local",
    "Internal": {},
    "IPAM": {{"Driver": "default", "Config": {}}},
    "Options": {{
      "com.docker.network.bridge.name": {},
      "com.docker.network.bridge.enable_icc": {},
      "com.docker.network.bridge.enable_ip_masquerade": {},
      "com.docker.network.bridge.host_binding_ipv4": {},
      "com.docker.network.driver.mtu": {}
    }},
    "Containers": {},
    "Labels": {}
  }}
]"#,
        s(&net.name),
        s(&net.id()),
        s(&net.created),
        net.ipv6.is_some(),
        net.internal,
        ipam_config(&net),
        s(&net.bridge),
        s(&net.icc.to_string()),
        s(&(net.masquerade && !net.internal).to_string()),
        s(net.host_binding.as_deref().unwrap_or("0.0.0.0")),
        s(&net.mtu.to_string()),
        containers(&net)?,
        object(&net.labels()?)
    );
    Ok(())
}
