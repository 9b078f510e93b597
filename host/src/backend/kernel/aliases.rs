//! Second names of one network namespace (Docker's `--net container:NAME`).
//!
//! A name is a grant's scope, so every name a namespace has must be known
//! cheaply: the gate asks for them on each call inside a namespace. They are
//! kept in one record per namespace, /etc/netns/.names/DEV-INODE, a line per
//! name, changed under a lock on the record. A listed name counts only while
//! it still leads to that namespace, so a stale record (a name removed by
//! `ip netns del`, an inode reused after a reboot) never adds or hides one.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MsFlags, mount, umount2};

use super::nsfs::{self, NsId};
use crate::error::{CapError, CapResult};

/// Where the records live.
pub const NAMES_DIR: &str = "/etc/netns/.names";

fn record_path(id: NsId) -> PathBuf {
    Path::new(NAMES_DIR).join(format!("{}-{}", id.0, id.1))
}

/// The namespace `name` leads to, if it exists.
fn id_of(name: &str) -> CapResult<Option<NsId>> {
    match fs::metadata(nsfs::ns_path(name)) {
        Ok(meta) => Ok(Some(nsfs::ns_id(&meta))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CapError::io(&e, format!("stat namespace {name}"))),
    }
}

/// The names in `text` that still lead to namespace `id`.
fn valid_names(text: &str, id: NsId) -> CapResult<Vec<String>> {
    let mut names = Vec::new();
    for name in text.lines().filter(|l| crate::names::check_netns(l).is_ok()) {
        if id_of(name)? == Some(id) && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// The other names of the namespace `name` leads to (none for a missing one).
pub fn others(name: &str) -> CapResult<Vec<String>> {
    let Some(id) = id_of(name)? else { return Ok(Vec::new()) };
    let path = record_path(id);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CapError::io(&e, format!("read {}", path.display()))),
    };
    crate::trust::check(&path).map_err(|e| CapError::Denied(format!("namespace names: {e}")))?;
    Ok(valid_names(&text, id)?.into_iter().filter(|n| n != name).collect())
}

/// `ip netns alias NAME OF`: give the namespace named `of` the second name `name`.
pub fn alias(name: &str, of: &str) -> CapResult<()> {
    let Some(id) = id_of(of)? else {
        return Err(CapError::NotFound(format!("namespace {of} does not exist (see `ip netns list`)")));
    };
    if id == nsfs::own_ns()? {
        return Err(nsfs::host_alias(&format!("namespace {of}")));
    }
    let path = nsfs::create_mount_point(name)?;
    let source = nsfs::ns_path(of);
    let named = mount(Some(&source), &path, Some("none"), MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| CapError::os(e, format!("bind-mount {}", source.display())))
        .and_then(|()| edit(id, |names| add_names(names, &[of, name])));
    if named.is_err() {
        let _ = umount2(&path, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&path);
    }
    named
}

fn add_names(names: &mut Vec<String>, new: &[&str]) {
    for name in new {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
}

/// Drop `name` (about to be deleted) from its namespace's record.
pub fn forget(name: &str) -> CapResult<()> {
    match id_of(name)? {
        Some(id) if record_path(id).exists() => edit(id, |names| names.retain(|n| n != name)),
        _ => Ok(()),
    }
}

/// Change the record of namespace `id` under its lock; a record left with
/// fewer than two names goes.
fn edit(id: NsId, change: impl FnOnce(&mut Vec<String>)) -> CapResult<()> {
    let path = record_path(id);
    let (mut file, text) = lock_record(&path)?;
    let mut names = valid_names(&text, id)?;
    change(&mut names);
    let io = |e: std::io::Error| CapError::io(&e, format!("write {}", path.display()));
    if names.len() < 2 {
        return fs::remove_file(&path).map_err(io);
    }
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    file.set_len(0).and_then(|()| file.rewind()).and_then(|_| file.write_all(text.as_bytes())).map_err(io)
}

/// Open, lock and read a record, making it if missing. Locking again when
/// another process removed the file while this one waited.
fn lock_record(path: &Path) -> CapResult<(Flock<File>, String)> {
    let io = |e: std::io::Error| CapError::io(&e, format!("open {}", path.display()));
    fs::create_dir_all(NAMES_DIR).map_err(|e| CapError::io(&e, format!("create {NAMES_DIR}")))?;
    loop {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let mut file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| CapError::os(e, format!("lock {}", path.display())))?;
        let still_there = fs::metadata(path).is_ok_and(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0));
        if !still_there {
            continue;
        }
        crate::trust::check(path).map_err(|e| CapError::Denied(format!("namespace names: {e}")))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        return Ok((file, text));
    }
}
