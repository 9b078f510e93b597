//! The real backend: rtnetlink for links, addresses and routes, bind mounts
//! for namespaces, /proc/sys for sysctls, iptables for the firewall.

mod addr;
mod aliases;
mod conntrack;
mod exec;
mod iptables;
mod link;
mod neigh;
pub mod netlink;
mod nft;
pub mod nsfs;
mod route;
mod rule;
mod sockets;
mod sysctl;

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Backend, FirewallBackend};
use crate::error::{CapError, CapResult};
use crate::firewall::nft::Family;
use crate::kv::KvStore;
use crate::kv::sqlite::Sqlite;
use crate::ops::{ChainPolicy, LayoutGap, Ns, Op, Reply};

pub use crate::firewall::FirewallKind;

/// Carries out operations on the running kernel (and keeps recipes'
/// key-value state beside it).
pub struct Kernel {
    handles: netlink::Handles,
    creator: nsfs::Creator,
    firewall: Arc<dyn FirewallBackend>,
    kind: FirewallKind,
    store: Store,
    /// A run wrote the resolver's records: wake it at the flush.
    dns_changed: std::sync::atomic::AtomicBool,
}

/// The key-value stores, opened on first use: the embedded one in the
/// state directory, and the shared one (etcd) when `--kv` names it. Keys
/// under `netsh/` describe this host (its resolver's records) and always
/// stay in the embedded store; the rest go to the shared store if there is one.
#[derive(Default)]
struct Store {
    path: Option<std::path::PathBuf>,
    local: std::sync::OnceLock<Result<Arc<dyn KvStore>, CapError>>,
    shared: Option<Arc<dyn KvStore>>,
}

/// Keys that always stay in the embedded store.
const HOST_KEYS: &str = "netsh/";

impl Store {
    fn local(&self) -> CapResult<Arc<dyn KvStore>> {
        self.local
            .get_or_init(|| {
                let path =
                    self.path.as_ref().ok_or_else(|| CapError::Failed("no key-value store is configured".into()))?;
                Ok(Arc::new(Sqlite::open(path)?) as Arc<dyn KvStore>)
            })
            .clone()
    }

    /// The store that holds `key`.
    fn get(&self, key: &str) -> CapResult<Arc<dyn KvStore>> {
        match &self.shared {
            Some(shared) if !key.starts_with(HOST_KEYS) => Ok(shared.clone()),
            _ => self.local(),
        }
    }

    /// Entries under `prefix`, from whichever stores can hold such keys.
    fn list(&self, prefix: &str) -> CapResult<Vec<crate::kv::Entry>> {
        let Some(shared) = &self.shared else { return self.local()?.list(prefix) };
        if prefix.starts_with(HOST_KEYS) {
            return self.local()?.list(prefix);
        }
        let mut entries: Vec<_> = shared.list(prefix)?.into_iter().filter(|e| !e.key.starts_with(HOST_KEYS)).collect();
        if HOST_KEYS.starts_with(prefix) {
            entries.extend(self.local()?.list(HOST_KEYS)?);
            entries.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(entries)
    }
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("firewall", &self.kind).finish_non_exhaustive()
    }
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel::new(FirewallKind::detect())
    }
}

impl Kernel {
    /// The kernel backend with firewall backend `kind`.
    pub fn new(kind: FirewallKind) -> Kernel {
        let firewall: Arc<dyn FirewallBackend> = match kind {
            FirewallKind::Nftables => Arc::new(nft::Nftables::default()),
            FirewallKind::Iptables => Arc::new(iptables::Iptables::default()),
        };
        Kernel {
            handles: netlink::Handles::default(),
            creator: nsfs::Creator::default(),
            firewall,
            kind,
            store: Store::default(),
            dns_changed: Default::default(),
        }
    }

    /// The kernel backend with firewall backend `kind` and, when `kv` names
    /// one (`etcd://HOST:PORT[,...]`), a shared key-value store.
    pub fn configured(kind: FirewallKind, kv: Option<&str>) -> CapResult<Kernel> {
        let kernel = Kernel::new(kind);
        match kv {
            Some(url) => kernel.with_shared_store(url),
            None => Ok(kernel),
        }
    }

    /// Keep recipes' key-value state in the embedded store at `path`.
    pub fn with_store(mut self, path: std::path::PathBuf) -> Kernel {
        self.store.path = Some(path);
        self
    }

    /// Keep recipes' shared state (all but `netsh/` keys) in etcd at `url`
    /// (`etcd://HOST:PORT[,...]`).
    pub fn with_shared_store(mut self, url: &str) -> CapResult<Kernel> {
        self.store.shared = Some(Arc::new(crate::kv::etcd::Etcd::new(url)?));
        Ok(self)
    }

    /// The firewall backend in use.
    pub fn firewall_kind(&self) -> FirewallKind {
        self.kind
    }
}

impl Backend for Kernel {
    fn apply(&self, op: Op) -> BoxFuture<'_, CapResult<Reply>> {
        self.run(op).boxed()
    }

    fn flush(&self) -> BoxFuture<'_, CapResult<Vec<(Ns, String)>>> {
        async move {
            let mut first_error = None;
            let mut gone = Vec::new();
            for ns in self.firewall.pending() {
                match self.in_fw_ns(ns.clone(), |fw, ns| fw.flush(ns)).await {
                    Ok(ids) => gone.extend(ids.into_iter().map(|id| (ns.clone(), id))),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            self.handles.release_named().await;
            self.wake_resolver();
            first_error.map_or(Ok(gone), Err)
        }
        .boxed()
    }
}

impl Kernel {
    /// After writes of the resolver's records: tell it (starting it if need
    /// be). The records are stored either way, so a failure only warns.
    fn wake_resolver(&self) {
        if !self.dns_changed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(state) = self.store.path.as_deref().and_then(|p| p.parent()) else { return };
        if let Err(e) = crate::dns::lifecycle::wake(state) {
            eprintln!(
                "netsh: warning: the DNS resolver was not told about the change: {e}; `netsh dns status` shows it"
            );
        }
    }

    /// Note a key-value write; the resolver's records need a wake.
    fn kv_written(&self, key: &str) {
        if key.starts_with(crate::dns::PREFIX) {
            self.dns_changed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Run a firewall call inside `ns`.
    async fn in_fw_ns<T, F>(&self, ns: Ns, f: F) -> CapResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn FirewallBackend, &Ns) -> CapResult<T> + Send + 'static,
    {
        let (fw, key) = (self.firewall.clone(), ns.clone());
        nsfs::in_netns(&ns, move || f(fw.as_ref(), &key)).await
    }

    async fn run(&self, op: Op) -> CapResult<Reply> {
        let done = |()| Reply::Done;
        match op {
            Op::NetnsCreate { name } => {
                let socket = nsfs::create(&self.creator, &name, netlink::open_socket).await?;
                self.handles.insert(&name, socket).await.map(done)
            }
            Op::NetnsDelete { name } => {
                self.handles.forget(&name).await;
                nsfs::delete(&name).map(done)
            }
            Op::NetnsList => nsfs::list().map(Reply::Names),
            Op::NetnsExists { name } => Ok(Reply::Bool(nsfs::exists(&name))),
            Op::NetnsAttach { name, pid } => nsfs::attach(&name, pid).map(done),
            Op::NetnsAlias { name, of } => aliases::alias(&name, &of).map(done),
            Op::NetnsNames { name } => aliases::others(&name).map(Reply::Names),
            Op::NetnsIdentify { pid } => nsfs::identify(pid).map(Reply::Names),
            Op::ConntrackList { ns } => nsfs::in_netns(&ns, conntrack::list).await.map(Reply::Flows),
            Op::NetnsExec { name, argv } => exec::run(&name, &argv).await.map(Reply::Exited),
            Op::NetnsWriteEtc { name, file, contents } => nsfs::write_etc(&name, file, &contents).map(done),
            Op::NetnsReadEtc { name, file } => nsfs::read_etc(name.as_deref(), file).map(Reply::Text),
            Op::NetnsRemoveEtc { name, file } => nsfs::remove_etc(&name, file).map(done),
            Op::LinkAddBridge { ns, name, mtu } => {
                link::add_bridge(&self.handles.get(&ns).await?, &ns, &name, mtu).await.map(done)
            }
            Op::LinkAddVeth { ns, spec } => link::add_veth(&self.handles.get(&ns).await?, &ns, &spec).await.map(done),
            Op::LinkAddVxlan { ns, spec } => link::add_vxlan(&self.handles.get(&ns).await?, &ns, &spec).await.map(done),
            Op::LinkAddMacvlan { ns, name, parent, mode } => {
                link::add_macvlan(&self.handles.get(&ns).await?, &ns, &name, &parent, mode).await.map(done)
            }
            Op::LinkSetUp { ns, name, up } => {
                link::set_up(&self.handles.get(&ns).await?, &ns, &name, up).await.map(done)
            }
            Op::LinkSetMaster { ns, name, master } => {
                link::set_master(&self.handles.get(&ns).await?, &ns, &name, master.as_deref()).await.map(done)
            }
            Op::LinkSetNetns { ns, name, target } => {
                link::set_netns(&self.handles.get(&ns).await?, &ns, &name, &target).await.map(done)
            }
            Op::LinkSetMac { ns, name, mac } => {
                link::set_mac(&self.handles.get(&ns).await?, &ns, &name, &mac).await.map(done)
            }
            Op::LinkSetMtu { ns, name, mtu } => {
                link::set_mtu(&self.handles.get(&ns).await?, &ns, &name, mtu).await.map(done)
            }
            Op::LinkSetAlias { ns, name, alias } => {
                link::set_alias(&self.handles.get(&ns).await?, &ns, &name, &alias).await.map(done)
            }
            Op::LinkRename { ns, name, new_name } => {
                link::rename(&self.handles.get(&ns).await?, &ns, &name, &new_name).await.map(done)
            }
            Op::LinkDelete { ns, name } => link::delete(&self.handles.get(&ns).await?, &ns, &name).await.map(done),
            Op::LinkGet { ns, name } => {
                link::get(&self.handles.get(&ns).await?, &ns, &name).await.map(|l| Reply::Link(Box::new(l)))
            }
            Op::LinkList { ns } => link::list(&self.handles.get(&ns).await?, &ns).await.map(Reply::Links),
            Op::AddrAdd { ns, dev, cidr, nodad } => {
                addr::add(&self.handles.get(&ns).await?, &ns, &dev, cidr, nodad).await.map(done)
            }
            Op::AddrDelete { ns, dev, cidr } => {
                addr::delete(&self.handles.get(&ns).await?, &ns, &dev, cidr).await.map(done)
            }
            Op::AddrList { ns, dev } => {
                addr::list(&self.handles.get(&ns).await?, &ns, dev.as_deref()).await.map(Reply::Addrs)
            }
            Op::RouteAdd { ns, route } => route::add(&self.handles.get(&ns).await?, &ns, &route).await.map(done),
            Op::RouteDelete { ns, route } => route::delete(&self.handles.get(&ns).await?, &ns, &route).await.map(done),
            Op::RouteList { ns, table } => {
                route::list(&self.handles.get(&ns).await?, &ns, table).await.map(Reply::Routes)
            }
            Op::RouteGet { ns, dest, from } => {
                route::get(&self.handles.get(&ns).await?, &ns, dest, from).await.map(|r| Reply::Routes(vec![r]))
            }
            Op::RoutingRuleAdd { ns, rule } => rule::add(&self.handles.get(&ns).await?, &rule).await.map(done),
            Op::RoutingRuleDelete { ns, rule } => rule::delete(&self.handles.get(&ns).await?, &rule).await.map(done),
            Op::RoutingRuleList { ns } => rule::list(&self.handles.get(&ns).await?).await.map(Reply::RoutingRules),
            Op::NeighAdd { ns, dev, ip, mac } => {
                neigh::add(&self.handles.get(&ns).await?, &ns, &dev, ip, &mac).await.map(done)
            }
            Op::NeighDelete { ns, dev, ip } => {
                neigh::delete(&self.handles.get(&ns).await?, &ns, &dev, ip).await.map(done)
            }
            Op::NeighList { ns, dev } => {
                neigh::list(&self.handles.get(&ns).await?, &ns, dev.as_deref()).await.map(Reply::Neighs)
            }
            Op::FdbAdd { ns, entry } => neigh::fdb_add(&self.handles.get(&ns).await?, &ns, &entry).await.map(done),
            Op::FdbDelete { ns, entry } => {
                neigh::fdb_delete(&self.handles.get(&ns).await?, &ns, &entry).await.map(done)
            }
            Op::FdbList { ns, dev } => {
                neigh::fdb_list(&self.handles.get(&ns).await?, &ns, dev.as_deref()).await.map(Reply::Fdb)
            }
            Op::SysctlGet { ns, key } => sysctl::get(&ns, &key).await.map(Reply::Text),
            Op::SysctlSet { ns, key, value } => sysctl::set(&ns, &key, &value).await.map(done),
            Op::FwAdd { ns, owner, rule } => self
                .in_fw_ns(ns, move |fw, ns| {
                    sockets::refuse_held(&rule)?;
                    fw.add(ns, &owner, &rule)
                })
                .await
                .map(|(id, added)| Reply::Rule { id, added }),
            Op::FwFreePort { ns, proto, host_ip } => {
                nsfs::in_netns(&ns, move || sockets::free_port(proto, host_ip)).await.map(Reply::Port)
            }
            Op::FwRemove { ns, id } => self.in_fw_ns(ns, move |fw, ns| fw.remove(ns, &id)).await.map(done),
            Op::FwGet { ns, id } => {
                self.in_fw_ns(ns, move |fw, ns| fw.get(ns, &id)).await.map(|r| Reply::Rules(r.into_iter().collect()))
            }
            Op::FwList { ns } => self.in_fw_ns(ns, |fw, ns| fw.list(ns)).await.map(Reply::Rules),
            Op::FwSetForwardPolicy { ns, v6, policy } => self
                .in_fw_ns(ns, move |fw, ns| {
                    iptables::set_forward_policy(v6, policy)?;
                    match policy {
                        ChainPolicy::Drop => fw.forward_drops(ns, if v6 { Family::V6 } else { Family::V4 }),
                        ChainPolicy::Accept => Ok(()),
                    }
                })
                .await
                .map(done),
            Op::FwLayoutGaps { ns } => self.in_fw_ns(ns, |fw, ns| fw.missing_sets(ns)).await.map(|gaps| {
                let gap = |(family, set): (Family, &str)| LayoutGap { v6: family == Family::V6, set: set.into() };
                Reply::Gaps(gaps.into_iter().map(gap).collect())
            }),
            Op::FwForeignList { ns } => nsfs::in_netns(&ns, || {
                let mut lines = nft::foreign_tables();
                lines.extend(iptables::foreign_rules());
                Ok(lines)
            })
            .await
            .map(Reply::Lines),
            Op::FwForwardPolicy { ns, v6 } => nsfs::in_netns(&ns, move || iptables::forward_policy(v6))
                .await
                .map(|policy| Reply::Policy { v6, policy }),
            Op::HostsAdd { group, line } => nsfs::hosts_add(&group, &line).map(Reply::Edited),
            Op::HostsRemove { group, line } => nsfs::hosts_remove(&group, &line).map(Reply::Edited),
            Op::HostsShare { name, group } => nsfs::hosts_share(&name, &group).map(done),
            Op::KvGet { key } => self.store.get(&key)?.get(&key).map(Reply::Entry),
            Op::KvList { prefix } => self.store.list(&prefix).map(Reply::Entries),
            Op::KvPut { key, value } => {
                self.kv_written(&key);
                self.store.get(&key)?.put(&key, &value).map(|v| Reply::Written(Some(v)))
            }
            Op::KvPutLease { key, value, ttl_secs } => {
                self.kv_written(&key);
                let ttl = std::time::Duration::from_secs(ttl_secs.into());
                self.store.get(&key)?.put_lease(&key, &value, ttl).map(|v| Reply::Written(Some(v)))
            }
            Op::KvCreate { key, value } => {
                self.kv_written(&key);
                self.store.get(&key)?.create(&key, &value).map(Reply::Written)
            }
            Op::KvSwap { key, version, value } => {
                self.kv_written(&key);
                self.store.get(&key)?.swap(&key, version, &value).map(Reply::Written)
            }
            Op::KvDelete { key } => {
                self.kv_written(&key);
                self.store.get(&key)?.delete(&key).map(Reply::Edited)
            }
            Op::KvRevert { key, expect, restore } => {
                self.kv_written(&key);
                self.store.get(&key)?.revert(&key, expect.as_deref(), restore.as_deref()).map(Reply::Edited)
            }
        }
    }
}

/// The path of a system tool (iptables-restore, ...): the first root-owned
/// file of that name in the system directories. The caller's `$PATH` is not
/// consulted: it is input, and a CNI runtime may pass none at all.
pub(crate) fn system_tool(name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| std::path::Path::new(dir).join(name))
        .find(|path| std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.uid() == 0))
        .unwrap_or_else(|| std::path::PathBuf::from(name))
}
