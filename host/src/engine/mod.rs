//! The workflows every front end shares: run a recipe or shell commands under
//! the gate, journal and audit log; plan; undo and confirm; list runs; show
//! state. The CLI, the shell and the agent call these and only render what
//! they return, so a command behaves the same whichever front end took it.

pub mod grammar;
pub mod iptables_lines;
pub mod plan;
pub mod render;
pub mod run;
pub mod runs;
pub mod shell;
pub mod show;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::audit::{Audit, AuditError};
use crate::backend::kernel::Kernel;
use crate::console::Console;
use crate::error::CapError;
use crate::gate::Gate;
use crate::journal::{Journal, JournalError};
use crate::plugins::{PluginError, Store};
use crate::policy::{self, GrantError, Policy, PolicyError};
use crate::runtime::{Cache, Loaded, RunError, Runtime};
pub use crate::runtime::{GrantInfo, RecipeInfo};
use crate::trust::{self, TrustError};

/// Why a workflow failed.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Runtime(#[from] RunError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Cap(#[from] CapError),
    #[error("state directory {path} is not trusted: {err}")]
    State { path: String, err: TrustError },
    #[error("recipe {recipe} declares an invalid grant: {err}")]
    BadManifest { recipe: String, err: GrantError },
    /// The command was used wrongly; the message says how to use it.
    #[error("{0}")]
    Usage(String),
    /// A run or command did not succeed; what happened was already reported.
    #[error("{0}")]
    Failed(String),
}

impl EngineError {
    /// The process exit code for this error: 2 for usage errors, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            EngineError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Result of a workflow.
pub type EngineResult<T> = Result<T, EngineError>;

/// Where grants come from: flags, and policy files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSpec {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub allow_all: bool,
    /// Read grants from this file instead of the default policy files.
    pub policy: Option<PathBuf>,
    /// Of the default policy files, read only the system's (no user's).
    #[serde(default)]
    pub system_only: bool,
}

impl GrantSpec {
    /// Parse the flags and read the policy files. A default policy file that
    /// cannot be trusted is skipped with a warning; a file given with
    /// `--policy` must be trusted.
    pub fn load(&self, console: &dyn Console) -> EngineResult<Policy> {
        let mut policy = Policy::from_flags(&self.allow, &self.deny, self.allow_all)?;
        match &self.policy {
            Some(file) => policy.add_file(file)?,
            None => {
                let files = if self.system_only { policy::system_files() } else { policy::default_files() };
                for file in files {
                    match policy.add_file(&file) {
                        Err(e @ PolicyError::Untrusted { .. }) => {
                            console.errln(&format!("netsh: warning: skipping {e}"))
                        }
                        other => other?,
                    }
                }
            }
        }
        if policy.allows_all() {
            console.errln("netsh: warning: --allow-all grants everything not denied to this recipe");
        }
        Ok(policy)
    }
}

/// A loaded recipe and its manifest.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub loaded: Loaded,
    pub info: RecipeInfo,
}

/// The shared state of the workflows: the kernel backend, the state
/// directory, and the wasmtime runtime (made on first use).
pub struct Engine {
    kernel: Arc<Kernel>,
    state: PathBuf,
    trusted: OnceLock<Result<(), TrustError>>,
    runtime: OnceLock<Result<Arc<Runtime>, String>>,
    /// `--confirm` returns at once and [`Engine::keep_deadlines`] settles the
    /// run later (the agent); otherwise the run waits for its confirmation.
    keeps_deadlines: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("state", &self.state).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine keeping its audit log, journals and plugins in `state`.
    pub fn new(state: PathBuf, kernel: Kernel) -> Engine {
        let kernel = kernel.with_store(state.join("kv.sqlite"));
        Engine {
            kernel: Arc::new(kernel),
            state,
            trusted: OnceLock::new(),
            runtime: OnceLock::new(),
            keeps_deadlines: false,
        }
    }

    /// An engine for a long-lived process: runs started with `--confirm`
    /// return at once, and the process calls [`Engine::keep_deadlines`].
    pub fn keeping_deadlines(mut self) -> Engine {
        self.keeps_deadlines = true;
        self
    }

    /// The state directory, created and checked on first use: journals,
    /// the audit log, plugins and the key are trusted only if it is.
    pub fn state_dir(&self) -> EngineResult<&Path> {
        let checked = self.trusted.get_or_init(|| trust::ensure_dir(&self.state).map(drop));
        match checked {
            Ok(()) => Ok(&self.state),
            Err(err) => Err(EngineError::State { path: self.state.display().to_string(), err: err.clone() }),
        }
    }

    /// The run journals.
    pub fn journal(&self) -> EngineResult<Journal> {
        Ok(Journal::new(self.state_dir()?))
    }

    /// The audit log.
    pub fn audit(&self) -> EngineResult<Audit> {
        Ok(Audit::new(self.state_dir()?))
    }

    /// Installed plugins.
    pub fn plugins(&self) -> EngineResult<Store> {
        Ok(Store::new(self.state_dir()?))
    }

    /// The kernel backend.
    pub fn kernel(&self) -> Arc<Kernel> {
        self.kernel.clone()
    }

    /// A gate that may only read.
    pub fn reader(&self, principal: &str) -> Gate {
        Gate::new(self.kernel.clone(), principal)
    }

    /// A gate that may do anything (undo, rollback, sandbox set-up), audited
    /// when the log can be written: taking changes back must not stop on it.
    pub fn trusted_gate(&self, principal: &str) -> EngineResult<Gate> {
        let all = Policy::from_flags(&[], &[], true)?;
        Ok(Gate::new(self.kernel.clone(), principal).with_policy(&all, None).with_audit_best_effort(self.audit()?))
    }

    /// The audit log, checked writable: a run must not change anything it cannot record.
    pub fn writable_audit(&self) -> EngineResult<Audit> {
        let audit = self.audit()?;
        audit.ensure_writable()?;
        Ok(audit)
    }

    /// The wasmtime runtime, made once.
    pub fn runtime(&self) -> EngineResult<Arc<Runtime>> {
        let made =
            self.runtime.get_or_init(|| Runtime::new(Cache::for_user()).map(Arc::new).map_err(|e| e.to_string()));
        made.clone().map_err(|e| EngineError::Runtime(RunError::Engine(e)))
    }

    /// A recipe path, or an installed plugin's stored file (warning when
    /// its bytes changed since it was added).
    pub fn resolve(&self, target: &Path, console: &dyn Console) -> EngineResult<PathBuf> {
        if target.exists() || target.components().count() > 1 || target.extension().is_some() {
            return Ok(target.to_path_buf());
        }
        let name = target.display().to_string();
        let store = self.plugins()?;
        let plugin = store.get(&name)?;
        let now = store.current_digest(&plugin)?;
        if now != plugin.recipe.sha256 {
            console.errln(&format!(
                "netsh: warning: plugin {name}'s file changed since it was added (sha256 {} -> {}); grants pinned to the old digest do not apply",
                crate::names::short_digest(&plugin.recipe.sha256),
                crate::names::short_digest(&now)
            ));
        }
        Ok(store.blob(&plugin.recipe.sha256))
    }

    /// Load a recipe and read its manifest; every grant it declares must parse.
    pub async fn load(&self, target: &Path, console: Arc<dyn Console>) -> EngineResult<Recipe> {
        let path = self.resolve(target, &*console)?;
        let runtime = self.runtime()?;
        let mut loaded = runtime.load(&path)?;
        loaded.path = target.display().to_string();
        let info = match runtime.cached_manifest(&loaded.sha256) {
            Some(info) => info,
            None => {
                let m = runtime.describe(&loaded, self.reader("inspect"), console).await?;
                let info = RecipeInfo {
                    name: m.name,
                    version: m.version,
                    summary: m.summary,
                    usage: m.usage,
                    sha256: loaded.sha256.clone(),
                    grants: m.grants.into_iter().map(|g| GrantInfo { grant: g.grant, reason: g.reason }).collect(),
                };
                runtime.cache_manifest(&info);
                info
            }
        };
        for g in &info.grants {
            g.grant
                .parse::<policy::Grant>()
                .map_err(|err| EngineError::BadManifest { recipe: info.name.clone(), err })?;
        }
        Ok(Recipe { loaded, info })
    }
}
