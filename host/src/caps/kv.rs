//! `netsh:host/kv`.

use crate::error::{CapError, CapResult};
use crate::kv::{self, check_key};
use crate::ops::{Op, Reply};
use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::kv::{Entry, Host};
use crate::runtime::bindings::netsh::host::types::Error;

fn entry(e: kv::Entry) -> Entry {
    Entry { key: e.key, value: e.value, version: e.version }
}

fn key(k: String) -> CapResult<String> {
    check_key(&k)?;
    Ok(k)
}

fn written(reply: Reply) -> CapResult<Option<u64>> {
    match reply {
        Reply::Written(v) => Ok(v),
        other => Err(other.mismatch()),
    }
}

impl Host for RecipeState {
    async fn get(&mut self, k: String) -> wasmtime::Result<Result<Option<Entry>, Error>> {
        self.call(key(k).map(|key| Op::KvGet { key }), |r| match r {
            Reply::Entry(e) => Ok(e.map(entry)),
            other => Err(other.mismatch()),
        })
        .await
    }

    async fn list(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<Entry>, Error>> {
        self.call(Ok(Op::KvList { prefix }), |r| match r {
            Reply::Entries(e) => Ok(e.into_iter().map(entry).collect()),
            other => Err(other.mismatch()),
        })
        .await
    }

    async fn put(&mut self, k: String, value: String) -> wasmtime::Result<Result<u64, Error>> {
        self.call(key(k).map(|key| Op::KvPut { key, value }), |r| {
            written(r)?.ok_or_else(|| CapError::Failed("internal error: a put wrote nothing".into()))
        })
        .await
    }

    async fn put_lease(&mut self, k: String, value: String, ttl: u32) -> wasmtime::Result<Result<u64, Error>> {
        let op = key(k).and_then(|key| match ttl {
            0 => Err(CapError::Invalid(format!("a lease on {key} needs a time to live of at least 1 second"))),
            ttl_secs => Ok(Op::KvPutLease { key, value, ttl_secs }),
        });
        self.call(op, |r| written(r)?.ok_or_else(|| CapError::Failed("internal error: a put wrote nothing".into())))
            .await
    }

    async fn create(&mut self, k: String, value: String) -> wasmtime::Result<Result<Option<u64>, Error>> {
        self.call(key(k).map(|key| Op::KvCreate { key, value }), written).await
    }

    async fn swap(&mut self, k: String, version: u64, value: String) -> wasmtime::Result<Result<Option<u64>, Error>> {
        self.call(key(k).map(|key| Op::KvSwap { key, version, value }), written).await
    }

    async fn delete(&mut self, k: String) -> wasmtime::Result<Result<bool, Error>> {
        self.call(key(k).map(|key| Op::KvDelete { key }), |r| match r {
            Reply::Edited(existed) => Ok(existed),
            other => Err(other.mismatch()),
        })
        .await
    }
}
