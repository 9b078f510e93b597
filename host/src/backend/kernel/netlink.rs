//! rtnetlink handles, one per namespace, and netlink error mapping.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd};

use netlink_sys::{Socket, TokioSocket, protocols::NETLINK_ROUTE};
use nix::errno::Errno;
use rtnetlink::Handle;
use tokio::sync::Mutex;

use super::nsfs;
use crate::error::{CapError, CapResult};
use crate::ops::Ns;

/// Netlink handles keyed by namespace, opened on first use.
///
/// A socket keeps its namespace alive, so [`Handles::forget`] must be called
/// when a namespace is deleted.
#[derive(Debug, Default)]
pub struct Handles {
    by_ns: Mutex<HashMap<Ns, Handle>>,
}

impl Handles {
    /// The handle for `ns`, opening a socket inside it if needed.
    pub async fn get(&self, ns: &Ns) -> CapResult<Handle> {
        let mut map = self.by_ns.lock().await;
        if let Some(handle) = map.get(ns) {
            return Ok(handle.clone());
        }
        let socket = nsfs::in_netns(ns, open_socket).await?;
        let handle = connect(socket)?;
        map.insert(ns.clone(), handle.clone());
        Ok(handle)
    }

    /// Keep a handle for a namespace whose socket was opened elsewhere.
    pub async fn insert(&self, name: &str, socket: Socket) -> CapResult<()> {
        let handle = connect(socket)?;
        self.by_ns.lock().await.insert(Some(name.to_string()), handle);
        Ok(())
    }

    /// Drop the handles of named namespaces: a socket keeps its namespace
    /// alive, and a long-lived process must not keep deleted containers'.
    pub async fn release_named(&self) {
        self.by_ns.lock().await.retain(|ns, _| ns.is_none());
    }

    /// Drop the handle of a namespace (before deleting it).
    pub async fn forget(&self, name: &str) {
        self.by_ns.lock().await.remove(&Some(name.to_string()));
    }
}

/// Open a route netlink socket in the calling thread's namespace.
pub fn open_socket() -> CapResult<Socket> {
    Socket::new(NETLINK_ROUTE).map_err(|e| CapError::io(&e, "open netlink socket"))
}

fn connect(socket: Socket) -> CapResult<Handle> {
    // SAFETY: the fd comes from a freshly opened netlink socket whose
    // ownership is moved here.
    let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
    let (connection, handle, _) = rtnetlink::from_socket(socket);
    tokio::spawn(connection);
    Ok(handle)
}

/// Map a netlink error to a [`CapError`]; `what` names the object, `doing` the action.
pub fn nl_error(err: rtnetlink::Error, what: &str, doing: &str) -> CapError {
    match err {
        rtnetlink::Error::NetlinkError(msg) => match msg.code {
            Some(code) => errno_error(Errno::from_raw(-code.get()), what, doing),
            None => CapError::Failed(format!("{doing} {what}: unexpected ack")),
        },
        other => CapError::Failed(format!("{doing} {what}: {other}")),
    }
}

/// A deleted object that was not there is "not found", not an OS error.
pub fn absent(err: rtnetlink::Error, what: &str) -> CapError {
    match nl_error(err, what, "delete") {
        CapError::Os { code, .. } if code == Errno::ENOENT as i32 => {
            CapError::NotFound(format!("{what} does not exist"))
        }
        other => other,
    }
}

/// Map an errno from the kernel to a [`CapError`].
pub fn errno_error(errno: Errno, what: &str, doing: &str) -> CapError {
    match errno {
        Errno::EEXIST => CapError::Exists(format!("{what} already exists")),
        Errno::ENODEV => CapError::NotFound(format!("{what} does not exist")),
        Errno::ESRCH => CapError::NotFound(format!("{what} does not exist")),
        Errno::EADDRNOTAVAIL => CapError::NotFound(format!("{what} does not exist")),
        _ => CapError::os(errno, format!("{doing} {what}")),
    }
}
