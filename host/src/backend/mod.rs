//! Backends carry out [`Op`]s: `kernel` on the real system.

pub mod kernel;

use futures::future::BoxFuture;

use crate::error::CapResult;
use crate::ops::{FwRule, Op, Reply, RuleInfo};

/// Carries out typed operations. Everything above this trait (caps, the
/// choke point) is shared by every backend.
pub trait Backend: Send + Sync {
    /// Perform one operation.
    fn apply(&self, op: Op) -> BoxFuture<'_, CapResult<Reply>>;
}

/// How firewall rules reach the kernel (iptables today; nftables could
/// follow). Methods run on a thread already inside the target namespace.
pub trait FirewallBackend: Send + Sync {
    /// Add a rule tagged with `owner`; adding an existing rule is a no-op. Returns its id.
    fn add(&self, owner: &str, rule: &FwRule) -> CapResult<String>;
    /// Remove a rule by id (and netsh's chains once none is left).
    fn remove(&self, id: &str) -> CapResult<()>;
    /// Rules netsh owns.
    fn list(&self) -> CapResult<Vec<RuleInfo>>;
}
