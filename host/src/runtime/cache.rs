//! On-disk cache of compiled components, keyed by the wasm's sha256 and the
//! engine's compatibility hash, so a second run skips compilation.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `$NETSH_CACHE_DIR`, else `$XDG_CACHE_HOME/netsh`, else `~/.cache/netsh`.
    pub fn from_env() -> Self {
        let dir = std::env::var_os("NETSH_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("netsh")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/netsh")))
            .unwrap_or_else(|| PathBuf::from("/var/cache/netsh"));
        Cache { dir }
    }

    fn path(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
    }

    /// The compiled component for `wasm`, from the cache or compiled now.
    pub fn load(&self, engine: &Engine, sha256: &str, wasm: &[u8]) -> wasmtime::Result<Component> {
        let path = self.path(engine, sha256);
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (part of its name).
            if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
                return Ok(component);
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        store(&path, &compiled);
        // SAFETY: the bytes were just produced by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }
}

/// Best effort: a cache that cannot be written only costs a recompile.
fn store(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::debug!("cannot cache compiled component at {}: {e}", path.display());
        let _ = std::fs::remove_file(&tmp);
    }
}
