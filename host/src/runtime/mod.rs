//! The wasmtime side: engine, component loading with a compile cache, the
//! sandboxed store (WASI with no files, sockets or environment) and limits.

pub mod bindings;
mod cache;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use bindings::Manifest;
use bindings::Recipe;
pub use cache::Cache;

use crate::gate::Gate;

/// How often the epoch ticks: how often a computing guest yields.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why loading or running a recipe failed.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0} is not a WebAssembly file (no \\0asm header)")]
    NotWasm(String),
    #[error("{0} is a core WebAssembly module, not a component; build recipes for wasm32-wasip2")]
    CoreModule(String),
    #[error("{path} is not a valid component: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path} is not a netsh recipe (world netsh:host/recipe@0.1.0): {reason}")]
    WrongWorld { path: String, reason: String },
    #[error("recipe exceeded its time limit of {0:?} (raise it with --timeout)")]
    Timeout(Duration),
    #[error("recipe exceeded its memory limit of {0} MiB (raise it with --max-memory)")]
    OutOfMemory(usize),
    #[error("recipe trapped: {0}")]
    Trap(String),
    #[error("recipe failed: {0}")]
    Failed(String),
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
    #[error("wasmtime: {0}")]
    Engine(String),
}

/// Time and memory bounds for one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_memory_mib: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(10), max_memory_mib: 64 }
    }
}

/// A recipe ready to instantiate.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: String,
    pub sha256: String,
    pub component: Component,
}

/// The wasmtime engine and the linker with every netsh capability.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RecipeState>,
    cache: Cache,
    /// Send the recipe's stdout to stderr (keeps `plan --json` clean).
    stdout_to_stderr: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("cache", &self.cache).finish_non_exhaustive()
    }
}

/// Per-run store data: WASI context, resources, limits and the gate.
pub struct RecipeState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryLimit,
    /// Where capability calls go.
    pub gate: Gate,
}

impl std::fmt::Debug for RecipeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipeState").field("gate", &self.gate).finish_non_exhaustive()
    }
}

impl WasiView for RecipeState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory and remembers whether the cap was hit (a failed grow
/// traps without a trap code, so this is how the error is recognised).
struct MemoryLimit {
    max_bytes: usize,
    hit: Arc<AtomicBool>,
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit.store(true, Ordering::Relaxed);
            return Err(wasmtime::format_err!("memory limit reached"));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

fn engine_error(e: impl std::fmt::Display) -> RunError {
    RunError::Engine(e.to_string())
}

impl Runtime {
    /// An engine with epoch interruption, and a linker with WASI p2 and netsh's imports.
    pub fn new(cache: Cache) -> Result<Self, RunError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        Recipe::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_error)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("netsh-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(engine_error)?;
        Ok(Runtime { engine, linker, cache, stdout_to_stderr: false })
    }

    /// Send recipes' stdout to stderr, so that netsh's own stdout stays machine-readable.
    pub fn stdout_to_stderr(mut self) -> Self {
        self.stdout_to_stderr = true;
        self
    }

    /// Read, check and compile (or fetch from the cache) a recipe file.
    pub fn load(&self, path: &Path) -> Result<Loaded, RunError> {
        let shown = path.display().to_string();
        let wasm = std::fs::read(path).map_err(|source| RunError::Read { path: shown.clone(), source })?;
        if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
            return Err(RunError::NotWasm(shown));
        }
        if wasm[4..8] == [1, 0, 0, 0] {
            return Err(RunError::CoreModule(shown));
        }
        let sha256 = hex::encode(Sha256::digest(&wasm));
        let component = self
            .cache
            .load(&self.engine, &sha256, &wasm)
            .map_err(|e| RunError::Invalid { path: shown.clone(), reason: first_line(&e) })?;
        Ok(Loaded { path: shown, sha256, component })
    }

    fn store(&self, gate: Gate, limits: Limits, hit: Arc<AtomicBool>) -> Store<RecipeState> {
        let mut wasi = WasiCtxBuilder::new();
        if self.stdout_to_stderr {
            wasi.stdout(wasmtime_wasi::cli::stderr());
        } else {
            wasi.inherit_stdout();
        }
        let wasi = wasi.inherit_stderr().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        let memory = MemoryLimit { max_bytes: limits.max_memory_mib << 20, hit };
        let mut store = Store::new(&self.engine, RecipeState { wasi, table: ResourceTable::new(), memory, gate });
        store.limiter(|s| &mut s.memory);
        // Yield to the executor at every epoch tick, so that the time limit
        // and Ctrl-C are noticed even while the guest computes without calling out.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    async fn instantiate(&self, loaded: &Loaded, store: &mut Store<RecipeState>) -> Result<Recipe, RunError> {
        Recipe::instantiate_async(&mut *store, &loaded.component, &self.linker)
            .await
            .map_err(|e| RunError::WrongWorld { path: loaded.path.clone(), reason: first_line(&e) })
    }

    /// Call the recipe's `describe` export.
    pub async fn describe(&self, loaded: &Loaded, gate: Gate) -> Result<Manifest, RunError> {
        let limits = Limits::default();
        let hit = Arc::new(AtomicBool::new(false));
        let mut store = self.store(gate, limits, hit.clone());
        let recipe = self.instantiate(loaded, &mut store).await?;
        match tokio::time::timeout(limits.timeout, recipe.call_describe(&mut store)).await {
            Ok(result) => result.map_err(|e| classify(e, limits, &hit)),
            Err(_) => Err(RunError::Timeout(limits.timeout)),
        }
    }

    /// Call the recipe's `run` export with `args` under `limits`.
    pub async fn run(&self, loaded: &Loaded, args: Vec<String>, gate: Gate, limits: Limits) -> Result<(), RunError> {
        let hit = Arc::new(AtomicBool::new(false));
        let mut store = self.store(gate, limits, hit.clone());
        let recipe = self.instantiate(loaded, &mut store).await?;
        match tokio::time::timeout(limits.timeout, recipe.call_run(&mut store, &args)).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(message))) => Err(RunError::Failed(message)),
            Ok(Err(e)) => Err(classify(e, limits, &hit)),
            Err(_) => Err(RunError::Timeout(limits.timeout)),
        }
    }
}

/// Turn a wasmtime error into a one-line, typed reason.
fn classify(err: wasmtime::Error, limits: Limits, memory_hit: &AtomicBool) -> RunError {
    if memory_hit.load(Ordering::Relaxed) {
        return RunError::OutOfMemory(limits.max_memory_mib);
    }
    match err.downcast_ref::<Trap>() {
        Some(trap) => RunError::Trap(trap.to_string().trim_start_matches("wasm trap: ").to_string()),
        None => RunError::Trap(first_line(&err)),
    }
}

fn first_line(err: &wasmtime::Error) -> String {
    let text = format!("{err:#}");
    text.lines().next().unwrap_or_default().to_string()
}
