//! One module per WIT interface: convert the WIT types into a typed
//! [`Op`](crate::ops::Op) (validating names and CIDRs), pass it through the
//! gate, and convert the reply back.

mod addr;
mod firewall;
mod kv;
mod link;
mod log;
mod neigh;
mod netns;
mod route;
mod sysctl;

use ipnetwork::IpNetwork;

use crate::error::{CapError, CapResult};
use crate::names;
use crate::ops::{Ns, Reply};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::types::{self, Error as WitError, OsError};

impl From<CapError> for WitError {
    fn from(e: CapError) -> Self {
        match e {
            CapError::Denied(m) => WitError::Denied(m),
            CapError::NotFound(m) => WitError::NotFound(m),
            CapError::Exists(m) => WitError::Exists(m),
            CapError::Invalid(m) => WitError::Invalid(m),
            CapError::Os { code, message } => WitError::Os(OsError { code, message }),
            CapError::Failed(m) | CapError::Unanswered(m) => WitError::Failed(m),
        }
    }
}

impl types::Host for RecipeState {}

/// Validate an optional namespace name.
pub fn ns(ns: Option<String>) -> CapResult<Ns> {
    if let Some(name) = &ns {
        names::check_netns(name)?;
    }
    Ok(ns)
}

/// Validate an interface name.
pub fn ifname(name: String) -> CapResult<String> {
    names::check_ifname(&name)?;
    Ok(name)
}

/// Parse a CIDR such as "172.17.0.2/16" (a bare address means /32 or /128).
pub fn cidr(text: &str) -> CapResult<IpNetwork> {
    text.parse().map_err(|e| CapError::Invalid(format!("{text:?} is not a CIDR like 172.17.0.2/16: {e}")))
}

/// Parse an IP address.
pub fn ip(text: &str) -> CapResult<std::net::IpAddr> {
    text.parse().map_err(|_| CapError::Invalid(format!("{text:?} is not an IP address")))
}

/// A MAC address, checked, in the kernel's notation.
pub fn mac(text: &str) -> CapResult<String> {
    Ok(names::format_mac(&names::parse_mac(text)?))
}

/// Expect [`Reply::Done`].
pub fn done(reply: Reply) -> CapResult<()> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(other.mismatch()),
    }
}

/// Expect [`Reply::Text`].
pub fn text(reply: Reply) -> CapResult<String> {
    match reply {
        Reply::Text(t) => Ok(t),
        other => Err(other.mismatch()),
    }
}

impl RecipeState {
    /// Run an op through the gate and convert its reply; errors become WIT
    /// errors. A stopped run traps here, before the op reaches the gate.
    async fn call<T>(
        &mut self,
        op: CapResult<crate::ops::Op>,
        convert: impl FnOnce(Reply) -> CapResult<T>,
    ) -> wasmtime::Result<Result<T, WitError>> {
        if let Some(reason) = self.gate.stop().reason() {
            return Err(crate::stop::StopTrap(reason).into());
        }
        let op = match op {
            Ok(op) => op,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(self.gate.call(op).await.and_then(convert).map_err(WitError::from))
    }
}
