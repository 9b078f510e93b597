//! One invocation's state: the host view, read once and kept current, and
//! the /etc/netns files to rewrite when the commands are done.

use std::collections::BTreeSet;
use std::net::IpAddr;

use netsh_guest::Result;
use netsh_guest::netns::{self, EtcFile};

use crate::network::{Host, Network};

/// Shared by every command of one invocation.
pub struct Session {
    pub host: Host,
    /// Containers that need resolv.conf and hostname.
    new: BTreeSet<String>,
    /// Containers whose hosts file must be rewritten.
    touched: BTreeSet<String>,
    /// Containers whose namespace was deleted.
    deleted: BTreeSet<String>,
}

impl Session {
    /// Read the host's links.
    pub fn start() -> Result<Session> {
        Ok(Session { host: Host::read()?, new: BTreeSet::new(), touched: BTreeSet::new(), deleted: BTreeSet::new() })
    }

    /// A container joined a network: it needs its files, its peers new hosts files.
    pub fn joined(&mut self, container: &str, net: &Network) {
        self.new.insert(container.into());
        self.touched.insert(container.into());
        self.touched.extend(net.ports.iter().map(|p| p.container.clone()));
        self.deleted.remove(container);
    }

    /// A container left a network; `deleted` if its namespace went with it.
    pub fn left(&mut self, container: &str, net: &Network, deleted: bool) {
        self.touched.extend(net.ports.iter().map(|p| p.container.clone()));
        if deleted {
            self.deleted.insert(container.into());
        }
    }

    /// Forget a port's link after deleting it.
    pub fn forget_link(&mut self, name: &str) {
        self.host.forget(name);
    }

    /// Write resolv.conf and hostname for new containers and hosts for every touched one.
    pub fn finish(self) -> Result<()> {
        let networks = self.host.networks();
        let alive = |c: &&String| !self.deleted.contains(*c);
        if !self.new.is_empty() {
            let resolv = resolv_conf()?;
            for c in self.new.iter().filter(alive) {
                netns::write_etc(c, EtcFile::ResolvConf, &resolv)?;
                netns::write_etc(c, EtcFile::Hostname, &format!("{c}\n"))?;
            }
        }
        for c in self.touched.iter().filter(alive) {
            netns::write_etc(c, EtcFile::Hosts, &hosts_for(&networks, c))?;
        }
        Ok(())
    }
}

/// localhost, then every container (with aliases) on each network `container` is on.
fn hosts_for(networks: &[Network], container: &str) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for net in networks.iter().filter(|n| n.port(container).is_some()) {
        for p in &net.ports {
            let names: Vec<&str> =
                std::iter::once(p.container.as_str()).chain(p.aliases.iter().map(String::as_str)).collect();
            out.push_str(&format!("{}\t{}\n", p.ip, names.join(" ")));
        }
    }
    out
}

/// The host's resolv.conf without loopback resolvers (unreachable from a
/// container); Docker's public fallback when none is left.
fn resolv_conf() -> Result<String> {
    let host = match netns::read_etc(None, EtcFile::ResolvConf) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => String::new(),
        Err(e) => return Err(e),
    };
    let is_loopback = |line: &str| {
        line.split_whitespace().nth(1).and_then(|ip| ip.parse::<IpAddr>().ok()).is_some_and(|ip| ip.is_loopback())
    };
    let kept: Vec<&str> =
        host.lines().filter(|l| !(l.trim_start().starts_with("nameserver") && is_loopback(l))).collect();
    let mut out = kept.join("\n");
    if !kept.iter().any(|l| l.trim_start().starts_with("nameserver")) {
        out.push_str("\nnameserver 8.8.8.8\nnameserver 8.8.4.4");
    }
    out.push('\n');
    Ok(out.trim_start().to_string())
}
