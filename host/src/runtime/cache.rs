//! On-disk cache of compiled components. A compiled component is native code
//! that wasmtime loads without checking, so an artifact is used only when
//! the cache directory is trusted (see [`crate::trust`]) and the artifact's
//! MAC, keyed with netsh's secret and binding it to the wasm's digest and
//! the engine, matches; anything else is ignored, with a warning, and the
//! recipe is compiled again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::RecipeInfo;
use crate::secret::Secret;
use crate::trust;

/// Where compiled components are kept, and the key that vouches for them.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
    secret: Option<Arc<Secret>>,
}

/// Why the cache is not used, printed once.
fn warn(what: impl std::fmt::Display) {
    eprintln!("netsh: warning: {what}; compiling recipes without the cache");
}

impl Cache {
    /// No cache: every load compiles.
    pub fn none() -> Self {
        Cache { dir: None, secret: None }
    }

    /// The cache for this user: `$NETSH_CACHE_DIR`, else /var/cache/netsh as
    /// root, else `$XDG_CACHE_HOME/netsh` or `~/.cache/netsh`; artifacts are
    /// vouched for by the cache's own root-only key.
    pub fn for_user() -> Self {
        let dir = std::env::var_os("NETSH_CACHE_DIR").map(PathBuf::from).or_else(|| {
            if nix::unistd::geteuid().is_root() {
                return Some(PathBuf::from("/var/cache/netsh"));
            }
            std::env::var_os("XDG_CACHE_HOME")
                .map(|d| PathBuf::from(d).join("netsh"))
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/netsh")))
        });
        let Some(dir) = dir else { return Cache::none() };
        Cache::at(&dir)
    }

    /// A cache in `dir`, if it and its key can be trusted.
    pub fn at(dir: &Path) -> Self {
        if let Err(e) = trust::ensure_dir(dir) {
            warn(format_args!("the compile cache {} is not trusted ({e})", dir.display()));
            return Cache::none();
        }
        match Secret::load_or_create(dir) {
            Ok(secret) => Cache { dir: Some(dir.to_path_buf()), secret: Some(Arc::new(secret)) },
            Err(e) => {
                warn(e);
                Cache::none()
            }
        }
    }

    fn path(dir: &Path, engine: &Engine, sha256: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
    }

    /// The MAC an artifact at `path` for `sha256` must carry: over its
    /// name (wasm digest and engine hash) and its bytes.
    fn mac(secret: &Secret, path: &Path, sha256: &str, bytes: &[u8]) -> String {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut data = format!("{name} {sha256}\n").into_bytes();
        data.extend_from_slice(bytes);
        secret.mac_fast("netsh compiled component", &data)
    }

    /// The manifest recorded for the wasm with `sha256`, if the cache holds
    /// one with a good MAC (it saves instantiating the recipe to ask it).
    pub fn manifest(&self, sha256: &str) -> Option<RecipeInfo> {
        let (Some(dir), Some(secret)) = (&self.dir, &self.secret) else { return None };
        let text = std::fs::read_to_string(dir.join(format!("{sha256}.manifest"))).ok()?;
        let (json, mac) = text.rsplit_once('\n')?;
        if secret.mac("netsh recipe manifest", format!("{sha256} {json}").as_bytes()) != mac {
            return None;
        }
        serde_json::from_str::<RecipeInfo>(json).ok().filter(|info| info.sha256 == sha256)
    }

    /// Record a recipe's manifest (best effort).
    pub fn store_manifest(&self, info: &RecipeInfo) {
        let (Some(dir), Some(secret)) = (&self.dir, &self.secret) else { return };
        let Ok(json) = serde_json::to_string(info) else { return };
        let mac = secret.mac("netsh recipe manifest", format!("{} {json}", info.sha256).as_bytes());
        let path = dir.join(format!("{}.manifest", info.sha256));
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, format!("{json}\n{mac}")).and_then(|()| std::fs::rename(&tmp, &path)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// The compiled component for `wasm`, from the cache or compiled now.
    pub fn load(&self, engine: &Engine, sha256: &str, wasm: &[u8]) -> wasmtime::Result<Component> {
        let (Some(dir), Some(secret)) = (&self.dir, &self.secret) else {
            return Component::new(engine, wasm);
        };
        let path = Self::path(dir, engine, sha256);
        if let Ok(bytes) = std::fs::read(&path) {
            let expected = std::fs::read_to_string(path.with_extension("mac")).unwrap_or_default();
            if expected.trim() == Self::mac(secret, &path, sha256, &bytes) {
                // SAFETY: the bytes carry a MAC only netsh's key can make, over
                // this wasm's digest and this engine's compatibility hash.
                if let Ok(component) = unsafe { Component::deserialize(engine, &bytes) } {
                    return Ok(component);
                }
            } else {
                eprintln!("netsh: warning: ignoring {}: its MAC does not match; compiling again", path.display());
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        store(&path, &compiled, &Self::mac(secret, &path, sha256, &compiled));
        // SAFETY: the bytes were just produced by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }
}

/// Best effort: a cache that cannot be written only costs a recompile.
fn store(path: &Path, bytes: &[u8], mac: &str) {
    let write = |target: &Path, data: &[u8]| {
        let tmp = target.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, target)).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    };
    if let Err(e) = write(path, bytes).and_then(|()| write(&path.with_extension("mac"), mac.as_bytes())) {
        tracing::debug!("cannot cache compiled component at {}: {e}", path.display());
    }
}
