//! `netsh:host/sysctl`.

use super::{done, ns, text};
use crate::error::CapResult;
use crate::names::sysctl_path;
use crate::ops::Op;
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::sysctl::Host;
use crate::runtime::bindings::netsh::host::types::Error;

fn key(key: String) -> CapResult<String> {
    sysctl_path(&key)?;
    Ok(key)
}

impl Host for RecipeState {
    async fn get(&mut self, ns_: Option<String>, k: String) -> wasmtime::Result<Result<String, Error>> {
        let op = (|| Ok(Op::SysctlGet { ns: ns(ns_)?, key: key(k)? }))();
        self.call(op, text).await
    }

    async fn set(&mut self, ns_: Option<String>, k: String, value: String) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::SysctlSet { ns: ns(ns_)?, key: key(k)?, value }))();
        self.call(op, done).await
    }
}
