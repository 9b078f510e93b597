//! What netsh reads back from disk is input too. A file or directory is
//! trusted only when it, and every directory above it, belongs to root or to
//! the user netsh runs as and cannot be written by anyone else; otherwise
//! whoever can write there could steer a process that runs as root.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a path is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrustError {
    #[error("{path} belongs to uid {uid}, not to root or to uid {me}")]
    Owner { path: String, uid: u32, me: u32 },
    #[error("{path} is writable by {who} (mode {mode:o}); `chmod go-w {path}` fixes it")]
    Writable { path: String, who: &'static str, mode: u32 },
    #[error("cannot check {path}: {err}")]
    Unreadable { path: String, err: String },
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Check one path's own owner and mode (not its parents).
fn check_one(path: &Path, meta: &std::fs::Metadata) -> Result<(), TrustError> {
    let shown = path.display().to_string();
    let me = euid();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(TrustError::Owner { path: shown, uid: meta.uid(), me });
    }
    let mode = meta.permissions().mode() & 0o7777;
    // A root-owned sticky directory (/tmp) lets others create, not replace, entries.
    let sticky_root_dir = meta.is_dir() && mode & 0o1000 != 0 && meta.uid() == 0;
    if mode & 0o022 != 0 && !sticky_root_dir {
        let who = if mode & 0o002 != 0 { "everyone" } else { "its group" };
        return Err(TrustError::Writable { path: shown, who, mode });
    }
    Ok(())
}

/// Check `path` (which must exist) and every directory above it, after
/// resolving symbolic links; a link itself must belong to root or to us.
pub fn check(path: &Path) -> Result<(), TrustError> {
    let unreadable =
        |p: &Path, e: std::io::Error| TrustError::Unreadable { path: p.display().to_string(), err: e.to_string() };
    let link = std::fs::symlink_metadata(path).map_err(|e| unreadable(path, e))?;
    if link.file_type().is_symlink() && link.uid() != 0 && link.uid() != euid() {
        return Err(TrustError::Owner { path: path.display().to_string(), uid: link.uid(), me: euid() });
    }
    let real = std::fs::canonicalize(path).map_err(|e| unreadable(path, e))?;
    for p in real.ancestors() {
        let meta = std::fs::metadata(p).map_err(|e| unreadable(p, e))?;
        check_one(p, &meta)?;
    }
    Ok(())
}

/// Create `dir` (mode 0700 for what is created) and check that it is trusted.
pub fn ensure_dir(dir: &Path) -> Result<PathBuf, TrustError> {
    let unreadable = |e: std::io::Error| TrustError::Unreadable { path: dir.display().to_string(), err: e.to_string() };
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(unreadable)?;
    }
    check(dir)?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netsh-trust-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ensure_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn own_private_dirs_are_trusted() {
        let dir = tmp("ok");
        assert_eq!(check(&dir), Ok(()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn writable_by_others_is_not() {
        let dir = tmp("w");
        let file = dir.join("f");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(check(&file), Err(TrustError::Writable { who: "everyone", .. })));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(matches!(check(&file), Err(TrustError::Writable { who: "its group", .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn foreign_owner_is_not() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tmp("owner");
        let file = dir.join("f");
        std::fs::write(&file, "x").unwrap();
        nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(matches!(check(&file), Err(TrustError::Owner { uid: 65534, .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
