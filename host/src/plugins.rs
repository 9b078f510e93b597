//! Installed recipes ("plugins"): a content-addressed store of `.wasm` files
//! under `STATE/plugins/`, and an index of name → sha256 + manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why the store could not be used.
#[derive(Debug, Error)]
pub enum PluginError {
    #[error("plugin store {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("plugin index {path} is corrupt: {err}")]
    Index { path: String, err: String },
    #[error("no plugin named {0} (see `netsh plugin ls`)")]
    Unknown(String),
    #[error("plugin name {0:?} must be 1-64 letters, digits, '-' or '_'")]
    BadName(String),
    #[error("plugin index {path} is not trusted: {err}")]
    Untrusted { path: String, err: crate::trust::TrustError },
}

/// What the index keeps about a plugin: its manifest (the same JSON shape
/// as `netsh inspect --json`) and when it was added.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plugin {
    #[serde(flatten)]
    pub recipe: crate::runtime::RecipeInfo,
    pub added: String,
}

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn valid_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    !name.is_empty() && name.len() <= 64 && name.chars().all(ok)
}

fn io(path: &Path, err: std::io::Error) -> PluginError {
    PluginError::Io { path: path.display().to_string(), err }
}

impl Store {
    /// The store under `state_dir/plugins`.
    pub fn new(state_dir: &Path) -> Store {
        Store { dir: state_dir.join("plugins") }
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// Where a plugin's bytes live.
    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{sha256}.wasm"))
    }

    /// Every plugin by name. The index is trusted only if root (or this
    /// user) owns it, and every entry must name a well-formed digest.
    pub fn index(&self) -> Result<BTreeMap<String, Plugin>, PluginError> {
        let path = self.index_path();
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io(&path, e)),
        };
        crate::trust::check(&path).map_err(|err| PluginError::Untrusted { path: shown.clone(), err })?;
        let index: BTreeMap<String, Plugin> =
            serde_json::from_str(&text).map_err(|e| PluginError::Index { path: shown.clone(), err: e.to_string() })?;
        for (name, plugin) in &index {
            let hex = plugin.recipe.sha256.len() == 64 && plugin.recipe.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex || !valid_name(name) {
                return Err(PluginError::Index {
                    path: shown,
                    err: format!("entry {name:?} has a malformed name or digest"),
                });
            }
        }
        Ok(index)
    }

    fn save(&self, index: &BTreeMap<String, Plugin>) -> Result<(), PluginError> {
        let path = self.index_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(index).map_err(|e| io(&path, e.into()))?;
        std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|e| io(&path, e))
    }

    /// Store `wasm` under `name`; returns the plugin it replaced, if any.
    pub fn add(&self, name: &str, wasm: &[u8], plugin: Plugin) -> Result<Option<Plugin>, PluginError> {
        if !valid_name(name) {
            return Err(PluginError::BadName(name.into()));
        }
        let blob = self.blob(&plugin.recipe.sha256);
        if let Some(dir) = blob.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::write(&blob, wasm).map_err(|e| io(&blob, e))?;
        let mut index = self.index()?;
        let old = index.insert(name.into(), plugin);
        self.save(&index)?;
        Ok(old)
    }

    /// Look a plugin up.
    pub fn get(&self, name: &str) -> Result<Plugin, PluginError> {
        self.index()?.remove(name).ok_or_else(|| PluginError::Unknown(name.into()))
    }

    /// Remove a plugin (and its bytes, once no other name uses them).
    pub fn remove(&self, name: &str) -> Result<Plugin, PluginError> {
        let mut index = self.index()?;
        let plugin = index.remove(name).ok_or_else(|| PluginError::Unknown(name.into()))?;
        self.save(&index)?;
        if !index.values().any(|p| p.recipe.sha256 == plugin.recipe.sha256) {
            let _ = std::fs::remove_file(self.blob(&plugin.recipe.sha256));
        }
        Ok(plugin)
    }

    /// The sha256 of the stored bytes now (they may have been changed on disk).
    pub fn current_digest(&self, plugin: &Plugin) -> Result<String, PluginError> {
        let blob = self.blob(&plugin.recipe.sha256);
        let bytes = std::fs::read(&blob).map_err(|e| io(&blob, e))?;
        Ok(hex::encode(Sha256::digest(&bytes)))
    }
}
