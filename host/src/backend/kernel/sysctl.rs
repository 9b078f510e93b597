//! sysctl under net.*, read and written from inside the namespace
//! (/proc/sys/net shows the namespace of the thread that opens it).

use std::fs;
use std::io::ErrorKind;

use super::nsfs;
use crate::error::{CapError, CapResult};
use crate::names::sysctl_path;
use crate::ops::Ns;

fn io_error(e: std::io::Error, key: &str, doing: &str) -> CapError {
    match e.kind() {
        ErrorKind::NotFound => CapError::NotFound(format!("sysctl {key} does not exist")),
        _ => CapError::io(&e, format!("{doing} sysctl {key}")),
    }
}

/// `sysctl -n KEY`.
pub async fn get(ns: &Ns, key: &str) -> CapResult<String> {
    let path = sysctl_path(key)?;
    let key = key.to_string();
    nsfs::in_netns(ns, move || {
        fs::read_to_string(&path).map(|v| v.trim_end().to_string()).map_err(|e| io_error(e, &key, "read"))
    })
    .await
}

/// `sysctl -w KEY=VALUE`.
pub async fn set(ns: &Ns, key: &str, value: &str) -> CapResult<()> {
    let path = sysctl_path(key)?;
    let (key, value) = (key.to_string(), value.to_string());
    nsfs::in_netns(ns, move || {
        fs::write(&path, format!("{value}\n")).map_err(|e| match e.kind() {
            ErrorKind::InvalidInput => CapError::Invalid(format!("sysctl {key} does not accept {value:?}")),
            _ => io_error(e, &key, "write"),
        })
    })
    .await
}
