//! netsh's own secrets: 32 random bytes in `DIR/secret.key`, readable only
//! by the user netsh runs as (root). The state directory's key signs the
//! audit log; the compile cache's key signs compiled components. Someone who
//! can write those files but cannot read the key cannot forge them.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::trust;

const KEY_LEN: usize = 32;

/// Why the key could not be had.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error("key {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("key {path} is not trusted: {0}", path = .1)]
    Untrusted(trust::TrustError, String),
    #[error("key {0} must be readable by its owner only (mode 0600); `chmod 600 {0}` fixes it")]
    Readable(String),
    #[error("key {0} is damaged (not {KEY_LEN} bytes); remove it to start a new audit chain")]
    Damaged(String),
}

/// The loaded key.
#[derive(Clone)]
pub struct Secret {
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where the key of a directory (the state directory, the compile cache) lives.
pub fn key_path(dir: &Path) -> PathBuf {
    dir.join("secret.key")
}

impl Secret {
    /// The key of `dir`, created on first use.
    pub fn load_or_create(dir: &Path) -> Result<Secret, SecretError> {
        let path = key_path(dir);
        if !path.exists() {
            create(&path)?;
        }
        Self::load(&path)
    }

    /// An existing key (for checking, never creating).
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let shown = path.display().to_string();
        let io = |err| SecretError::Io { path: shown.clone(), err };
        trust::check(path).map_err(|e| SecretError::Untrusted(e, shown.clone()))?;
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.mode() & 0o077 != 0 {
            return Err(SecretError::Readable(shown));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io)?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| SecretError::Damaged(shown))?;
        Ok(Secret { key })
    }

    /// Hex keyed BLAKE3 of `data` (fast, for large files), domain-separated by `purpose`.
    pub fn mac_fast(&self, purpose: &str, data: &[u8]) -> String {
        let key = blake3::derive_key(purpose, &self.key);
        blake3::keyed_hash(&key, data).to_hex().to_string()
    }

    /// Hex HMAC-SHA256 of `data`, domain-separated by `purpose`.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Write a fresh key: a private temporary file linked into place, so that
/// concurrent first runs agree on one key and nobody reads a half-written one.
fn create(path: &Path) -> Result<(), SecretError> {
    let shown = path.display().to_string();
    let io = |err| SecretError::Io { path: shown.clone(), err };
    if let Some(dir) = path.parent() {
        trust::ensure_dir(dir).map_err(|e| SecretError::Untrusted(e, shown.clone()))?;
    }
    let mut key = [0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key)).map_err(io)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&key))
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)));
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    });
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_per_state_dir_and_distinct_purposes() {
        let dir = std::env::temp_dir().join(format!("netsh-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Secret::load_or_create(&dir).unwrap();
        let b = Secret::load_or_create(&dir).unwrap();
        assert_eq!(a.mac("audit", b"x"), b.mac("audit", b"x"));
        assert_ne!(a.mac("audit", b"x"), a.mac("cache", b"x"));
        std::fs::set_permissions(key_path(&dir), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Secret::load(&key_path(&dir)), Err(SecretError::Readable(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
