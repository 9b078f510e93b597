//! `--sandbox`: move the whole process into a throwaway network and mount
//! namespace before any thread starts, so every thread netsh creates later
//! inherits it and the caller's network stays untouched.

use std::fs;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use thiserror::Error;

/// Why the sandbox could not be set up.
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("cannot create the sandbox namespaces ({0}); --sandbox needs root (CAP_SYS_ADMIN)")]
    Unshare(nix::errno::Errno),
    #[error("cannot set up {what} in the sandbox: {err}")]
    Mount { what: String, err: String },
}

/// Directories that get a private tmpfs inside the sandbox.
const PRIVATE_DIRS: &[&str] = &["/run/netns", "/etc/netns"];

/// Enter a fresh network + mount namespace with private /run/netns and
/// /etc/netns. Must be called while the process has a single thread.
pub fn enter() -> Result<(), SandboxError> {
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).map_err(SandboxError::Unshare)?;
    let fail = |what: &str, err: String| SandboxError::Mount { what: what.into(), err };
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| fail("a private mount tree", e.to_string()))?;
    for dir in PRIVATE_DIRS {
        fs::create_dir_all(dir).map_err(|e| fail(dir, e.to_string()))?;
        mount(Some("tmpfs"), *dir, Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))
            .map_err(|e| fail(dir, e.to_string()))?;
    }
    Ok(())
}

/// A private state directory for a sandboxed run (journal, audit log, key),
/// removed by [`discard_state`] when the run ends: its changes vanish with
/// the sandbox, so its records must not land in netsh's real state.
pub fn state_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("netsh-sandbox-{}", std::process::id()))
}

/// Stop the sandbox's resolver (it would keep the sandbox's namespaces
/// alive) and remove its state directory.
pub fn discard_state() {
    let _ = crate::dns::lifecycle::stop(&state_dir(), std::time::Duration::from_secs(3));
    let _ = fs::remove_dir_all(state_dir());
}
