//! `netsh:host/netns`.

use super::{done, ns, text};
use crate::error::CapError;
use crate::names::check_netns;
use crate::ops::{EtcFile, Op, Reply};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::netns::{EtcFile as WitEtcFile, Host};
use crate::runtime::bindings::netsh::host::types::Error;

fn named(name: String) -> Result<String, CapError> {
    check_netns(&name)?;
    Ok(name)
}

fn edited(reply: Reply) -> Result<bool, CapError> {
    match reply {
        Reply::Edited(b) => Ok(b),
        other => Err(other.mismatch()),
    }
}

fn etc(file: WitEtcFile) -> EtcFile {
    match file {
        WitEtcFile::Hosts => EtcFile::Hosts,
        WitEtcFile::ResolvConf => EtcFile::ResolvConf,
        WitEtcFile::Hostname => EtcFile::Hostname,
    }
}

impl Host for RecipeState {
    async fn create(&mut self, name: String) -> wasmtime::Result<Result<(), Error>> {
        self.call(named(name).map(|name| Op::NetnsCreate { name }), done).await
    }

    async fn delete(&mut self, name: String) -> wasmtime::Result<Result<(), Error>> {
        self.call(named(name).map(|name| Op::NetnsDelete { name }), done).await
    }

    async fn list(&mut self) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.call(Ok(Op::NetnsList), |r| match r {
            Reply::Names(n) => Ok(n),
            other => Err(other.mismatch()),
        })
        .await
    }

    async fn exists(&mut self, name: String) -> wasmtime::Result<Result<bool, Error>> {
        self.call(named(name).map(|name| Op::NetnsExists { name }), |r| match r {
            Reply::Bool(b) => Ok(b),
            other => Err(other.mismatch()),
        })
        .await
    }

    async fn attach(&mut self, name: String, pid: u32) -> wasmtime::Result<Result<(), Error>> {
        self.call(named(name).map(|name| Op::NetnsAttach { name, pid }), done).await
    }

    async fn alias(&mut self, name: String, target: String) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::NetnsAlias { name: named(name)?, of: named(target)? }))();
        self.call(op, done).await
    }

    async fn write_etc(
        &mut self,
        name: String,
        file: WitEtcFile,
        contents: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let op = named(name).map(|name| Op::NetnsWriteEtc { name, file: etc(file), contents });
        self.call(op, done).await
    }

    async fn hosts_add(&mut self, group: String, line: String) -> wasmtime::Result<Result<bool, Error>> {
        self.call(named(group).map(|group| Op::HostsAdd { group, line }), edited).await
    }

    async fn hosts_remove(&mut self, group: String, line: String) -> wasmtime::Result<Result<bool, Error>> {
        self.call(named(group).map(|group| Op::HostsRemove { group, line }), edited).await
    }

    async fn hosts_share(&mut self, name: String, group: String) -> wasmtime::Result<Result<(), Error>> {
        let op = (|| Ok(Op::HostsShare { name: named(name)?, group: named(group)? }))();
        self.call(op, done).await
    }

    async fn read_etc(&mut self, name: Option<String>, file: WitEtcFile) -> wasmtime::Result<Result<String, Error>> {
        self.call(ns(name).map(|name| Op::NetnsReadEtc { name, file: etc(file) }), text).await
    }
}
