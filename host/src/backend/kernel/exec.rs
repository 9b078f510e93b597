//! `ip netns exec`: a program in a named namespace, in a private mount
//! namespace where each file of /etc/netns/NAME is bound over its /etc
//! twin and /sys shows the namespace's own devices, and, when
//! /etc/netns/NAME/hostname names one, a UTS namespace with that hostname
//! (what `hostname` prints inside, as in a container).

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use super::nsfs;
use crate::error::{CapError, CapResult};

/// Run `argv` in namespace `name` with this process's stdio; its exit
/// status (128 + N when signal N ended it).
pub async fn run(name: &str, argv: &[String]) -> CapResult<i32> {
    let (program, args) = argv.split_first().ok_or_else(|| CapError::Invalid("exec needs a program to run".into()))?;
    let ns = nsfs::open_ns(&Some(name.to_string()))?;
    let binds = etc_binds(name)?;
    let hostname = hostname(name)?;
    let mut command = std::process::Command::new(program);
    command.args(args);
    // SAFETY: the closure runs in the forked child before exec and only
    // makes system calls on data prepared above (no allocation, no locks).
    unsafe {
        command.pre_exec(move || {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
            if let Some(hostname) = &hostname {
                unshare(CloneFlags::CLONE_NEWUTS)?;
                nix::unistd::sethostname(hostname)?;
            }
            unshare(CloneFlags::CLONE_NEWNS)?;
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)?;
            for (source, target) in &binds {
                mount(Some(source.as_c_str()), target.as_c_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            }
            // Like ip netns exec: a sysfs of this namespace, when the kernel allows it.
            if umount2("/sys", MntFlags::MNT_DETACH).is_ok() {
                let _ = mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>);
            }
            Ok(())
        });
    }
    let program = program.clone();
    let status = tokio::task::spawn_blocking(move || command.status())
        .await
        .map_err(|e| CapError::Failed(format!("running {program}: {e}")))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CapError::NotFound(format!("program {program} not found")),
            _ => CapError::io(&e, format!("running {program} in namespace {name}")),
        })?;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// The hostname /etc/netns/NAME/hostname gives, if any (its first line).
fn hostname(name: &str) -> CapResult<Option<String>> {
    let path = Path::new("/etc/netns").join(name).join("hostname");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CapError::io(&e, format!("reading {}", path.display()))),
    };
    crate::trust::check(&path).map_err(|e| CapError::Denied(format!("hostname of namespace {name}: {e}")))?;
    let hostname = text.lines().next().unwrap_or("").trim();
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(CapError::Invalid(format!("{} must name a hostname of 1-64 bytes", path.display())));
    }
    Ok(Some(hostname.to_string()))
}

/// (/etc/netns/NAME/FILE, /etc/FILE) for each file there whose twin exists.
fn etc_binds(name: &str) -> CapResult<Vec<(CString, CString)>> {
    let dir = Path::new("/etc/netns").join(name);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CapError::io(&e, format!("reading {}", dir.display()))),
    };
    let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).ok();
    let mut binds = Vec::new();
    for entry in entries.flatten() {
        let target = Path::new("/etc").join(entry.file_name());
        if target.exists()
            && let (Some(source), Some(target)) = (c(&entry.path()), c(&target))
        {
            binds.push((source, target));
        }
    }
    Ok(binds)
}
