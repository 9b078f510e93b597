//! Backends carry out [`Op`]s: `kernel` on the real system, `model` on an
//! in-memory copy for `netsh plan`.

pub mod kernel;
pub mod model;

use futures::future::BoxFuture;

use crate::error::CapResult;
use crate::firewall::nft::Family;
use crate::ops::{FwRule, Ns, Op, Reply, RuleInfo};

/// Carries out typed operations. Everything above this trait (caps, the
/// choke point) is shared by every backend.
pub trait Backend: Send + Sync {
    /// Perform one operation.
    fn apply(&self, op: Op) -> BoxFuture<'_, CapResult<Reply>>;
    /// Apply whatever the backend queued (firewall batches); called when a
    /// run ends. Returns the ids of rules it was to remove that another run
    /// removed first: this run took nothing of them away.
    fn flush(&self) -> BoxFuture<'_, CapResult<Vec<(Ns, String)>>>;
}

/// How firewall rules reach the kernel (iptables today; nftables could
/// follow). Changes are checked at once and queued per namespace until
/// [`FirewallBackend::flush`]. Methods run on a thread already inside `ns`.
pub trait FirewallBackend: Send + Sync {
    /// Add a rule tagged with `owner`; adding an existing rule is a no-op.
    /// Returns its id and whether it was added.
    fn add(&self, ns: &Ns, owner: &str, rule: &FwRule) -> CapResult<(String, bool)>;
    /// Remove a rule by id (and netsh's chains once none is left).
    fn remove(&self, ns: &Ns, id: &str) -> CapResult<()>;
    /// Rules netsh owns, including queued changes.
    fn list(&self, ns: &Ns) -> CapResult<Vec<RuleInfo>>;
    /// One rule by id, including queued changes.
    fn get(&self, ns: &Ns, id: &str) -> CapResult<Option<RuleInfo>>;
    /// Apply the queued changes of `ns` as one batch; the ids of queued
    /// removals whose rules were gone already.
    fn flush(&self, ns: &Ns) -> CapResult<Vec<String>>;
    /// iptables' FORWARD policy of `family` became DROP: let what netsh
    /// accepts past it.
    fn forward_drops(&self, ns: &Ns, family: Family) -> CapResult<()>;
    /// The later sets (family, name) that netsh's existing tables lack.
    fn missing_sets(&self, ns: &Ns) -> CapResult<Vec<(Family, &'static str)>>;
    /// Namespaces with queued changes.
    fn pending(&self) -> Vec<Ns>;
}
