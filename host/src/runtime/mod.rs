//! The wasmtime side: engine, component loading with a compile cache, the
//! sandboxed store (WASI with no files, sockets or environment) and limits.

pub mod bindings;
mod cache;
mod output;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use bindings::Manifest;
pub use bindings::{CniCommand, CniError, CniInterface, CniIp, CniPort, CniRequest, CniResult, CniRoute};
use bindings::{Recipe, RecipePre};
pub use cache::Cache;

use crate::console::Console;
use crate::gate::Gate;
use crate::stop::{StopReason, StopTrap};

/// How often the epoch ticks: how often a computing guest yields.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long past its time limit a run stuck inside one host call is given
/// before it is abandoned (its intent is already journaled).
const BACKSTOP: Duration = Duration::from_secs(30);

/// The largest recipe file netsh reads.
pub const MAX_WASM_BYTES: u64 = 256 << 20;

/// Why loading or running a recipe failed.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path} is not a regular file; give the path of a .wasm component")]
    NotAFile { path: String },
    #[error("{path} is {size} bytes, more than the {} MiB a recipe may have", MAX_WASM_BYTES >> 20)]
    TooLarge { path: String, size: u64 },
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
    #[error("usage: {0}")]
    Usage(String),
    #[error("interrupted (Ctrl-C, SIGTERM or the caller went away)")]
    Interrupted,
    /// The recipe's answer to a CNI call was an error (CNI code, message, details).
    #[error("{msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
    Cni { code: u32, msg: String, details: String },
    #[error("wasmtime: {0}")]
    Engine(String),
}

/// Which export a run calls.
#[derive(Debug, Clone)]
pub enum Call {
    /// `run`, with the arguments given after `--`.
    Run(Vec<String>),
    /// `cni`, with a container runtime's request.
    Cni(Box<CniRequest>),
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

/// A recipe's manifest, as every front end shows it (one JSON shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeInfo {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub usage: String,
    pub sha256: String,
    pub grants: Vec<GrantInfo>,
}

/// A grant a recipe asks for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    pub grant: String,
    pub reason: String,
}

impl RecipeInfo {
    /// `NAME@SHORT-DIGEST`, the principal in journals and the audit log.
    pub fn principal(&self) -> String {
        format!("{}@{}", self.name, crate::names::short_digest(&self.sha256))
    }

    /// The grants it declares, as text.
    pub fn declared(&self) -> Vec<String> {
        self.grants.iter().map(|g| g.grant.clone()).collect()
    }
}

/// A recipe ready to instantiate: compiled and linked against netsh's imports.
#[derive(Clone)]
pub struct Loaded {
    pub path: String,
    pub sha256: String,
    pre: RecipePre<RecipeState>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("path", &self.path).field("sha256", &self.sha256).finish_non_exhaustive()
    }
}

/// A file as the kernel identifies it, with the times any write changes:
/// the same identity means the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// How many loaded recipes a long-lived process keeps.
const LOADED_KEPT: usize = 64;

/// The wasmtime engine and the linker with every netsh capability.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RecipeState>,
    cache: Cache,
    /// Recipes this process loaded, so a long-lived one (the agent) reads,
    /// hashes and links each file once, until it changes.
    loaded: Mutex<HashMap<FileId, Loaded>>,
    /// Manifests by sha256, likewise.
    manifests: Mutex<HashMap<String, RecipeInfo>>,
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
    /// Where the recipe's messages go.
    pub console: Arc<dyn Console>,
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
        Ok(Runtime { engine, linker, cache, loaded: Mutex::new(HashMap::new()), manifests: Mutex::new(HashMap::new()) })
    }

    /// The cached manifest of the wasm with `sha256`, if any.
    pub fn cached_manifest(&self, sha256: &str) -> Option<RecipeInfo> {
        let mut kept = self.manifests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = kept.get(sha256) {
            return Some(info.clone());
        }
        let info = self.cache.manifest(sha256)?;
        kept.insert(sha256.to_string(), info.clone());
        Some(info)
    }

    /// Remember a recipe's manifest in the cache.
    pub fn cache_manifest(&self, info: &RecipeInfo) {
        self.cache.store_manifest(info);
        self.manifests.lock().unwrap_or_else(|p| p.into_inner()).insert(info.sha256.clone(), info.clone());
    }

    /// Read, check and compile (or fetch from the cache) a recipe file.
    pub fn load(&self, path: &Path) -> Result<Loaded, RunError> {
        let id = FileId::of(path);
        let mut kept = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(loaded) = id.and_then(|id| kept.get(&id)) {
            return Ok(Loaded { path: path.display().to_string(), ..loaded.clone() });
        }
        let wasm = read_wasm(path)?;
        let loaded = self.load_bytes(&path.display().to_string(), &wasm)?;
        // Kept only if the file did not change while it was read.
        if let Some(id) = id.filter(|id| FileId::of(path) == Some(*id)) {
            if kept.len() >= LOADED_KEPT {
                kept.clear();
            }
            kept.insert(id, loaded.clone());
        }
        Ok(loaded)
    }

    /// Check and compile a recipe already read.
    pub fn load_bytes(&self, shown: &str, wasm: &[u8]) -> Result<Loaded, RunError> {
        let shown = shown.to_string();
        if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
            return Err(RunError::NotWasm(shown));
        }
        if wasm[4..8] == [1, 0, 0, 0] {
            return Err(RunError::CoreModule(shown));
        }
        let sha256 = hex::encode(Sha256::digest(wasm));
        let component = self
            .cache
            .load(&self.engine, &sha256, wasm)
            .map_err(|e| RunError::Invalid { path: shown.clone(), reason: first_line(&e) })?;
        let wrong_world = |e: wasmtime::Error| RunError::WrongWorld { path: shown.clone(), reason: first_line(&e) };
        let pre = self.linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = RecipePre::new(pre).map_err(wrong_world)?;
        Ok(Loaded { path: shown, sha256, pre })
    }

    fn store(&self, gate: Gate, console: Arc<dyn Console>, limits: Limits, hit: Arc<AtomicBool>) -> Store<RecipeState> {
        let wasi = WasiCtxBuilder::new()
            .stdout(output::Out::stdout(console.clone()))
            .stderr(output::Out::stderr(console.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let memory = MemoryLimit { max_bytes: limits.max_memory_mib << 20, hit };
        let stop = gate.stop().clone();
        let mut store =
            Store::new(&self.engine, RecipeState { wasi, table: ResourceTable::new(), memory, gate, console });
        store.limiter(|s| &mut s.memory);
        // At every epoch tick: end a stopped run, else yield to the executor,
        // so the time limit and Ctrl-C reach a guest that computes without calling out.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| match stop.reason() {
            Some(reason) => Err(StopTrap(reason).into()),
            None => Ok(UpdateDeadline::Yield(1)),
        });
        store
    }

    async fn instantiate(&self, loaded: &Loaded, store: &mut Store<RecipeState>) -> Result<Recipe, RunError> {
        loaded
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|e| RunError::WrongWorld { path: loaded.path.clone(), reason: first_line(&e) })
    }

    /// Call the recipe's `describe` export.
    pub async fn describe(&self, loaded: &Loaded, gate: Gate, console: Arc<dyn Console>) -> Result<Manifest, RunError> {
        let limits = Limits::default();
        let hit = Arc::new(AtomicBool::new(false));
        let stop = gate.stop().clone();
        let mut store = self.store(gate, console, limits, hit.clone());
        let recipe = self.instantiate(loaded, &mut store).await?;
        let result = bounded(&stop, limits, recipe.call_describe(&mut store)).await?;
        result.map_err(|e| classify(e, limits, &hit))
    }

    /// Call the recipe's `run` or `cni` export under `limits`; a CNI call
    /// returns its result. The gate's stop request ends the run between host calls.
    pub async fn run(
        &self,
        loaded: &Loaded,
        call: Call,
        gate: Gate,
        console: Arc<dyn Console>,
        limits: Limits,
    ) -> Result<Option<CniResult>, RunError> {
        let hit = Arc::new(AtomicBool::new(false));
        let stop = gate.stop().clone();
        let mut store = self.store(gate, console, limits, hit.clone());
        let recipe = self.instantiate(loaded, &mut store).await?;
        let answer = match call {
            Call::Run(args) => bounded(&stop, limits, recipe.call_run(&mut store, &args)).await?.map(|r| match r {
                Ok(()) => Ok(None),
                Err(bindings::RunError::Usage(message)) => Err(RunError::Usage(message)),
                Err(bindings::RunError::Failed(message)) => Err(RunError::Failed(message)),
            }),
            Call::Cni(request) => bounded(&stop, limits, recipe.call_cni(&mut store, &request))
                .await?
                .map(|r| r.map(Some).map_err(|e| RunError::Cni { code: e.code, msg: e.msg, details: e.details })),
        };
        answer.unwrap_or_else(|e| Err(classify(e, limits, &hit)))
    }
}

/// Read a recipe file: a regular file of sane size (never a FIFO or a device).
pub fn read_wasm(path: &Path) -> Result<Vec<u8>, RunError> {
    let shown = path.display().to_string();
    let read = |err| RunError::Read { path: shown.clone(), err };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let mut file =
        std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(RunError::NotAFile { path: shown });
    }
    if meta.len() > MAX_WASM_BYTES {
        return Err(RunError::TooLarge { path: shown, size: meta.len() });
    }
    let mut wasm = vec![0; meta.len() as usize];
    file.read_exact(&mut wasm).map_err(read)?;
    Ok(wasm)
}

/// Run `call` until it ends; past the time limit, `stop` asks it to end at the
/// next host call or epoch tick, and past the backstop it is abandoned.
async fn bounded<T>(
    stop: &crate::stop::Stop,
    limits: Limits,
    call: impl std::future::Future<Output = T>,
) -> Result<T, RunError> {
    let timer = stop.clone();
    let deadline = tokio::spawn(async move {
        tokio::time::sleep(limits.timeout).await;
        timer.request(StopReason::Timeout(limits.timeout));
    });
    let result = tokio::time::timeout(limits.timeout + BACKSTOP, call).await;
    deadline.abort();
    result.map_err(|_| RunError::Timeout(limits.timeout))
}

/// Turn a wasmtime error into a one-line, typed reason.
fn classify(err: wasmtime::Error, limits: Limits, memory_hit: &AtomicBool) -> RunError {
    if memory_hit.load(Ordering::Relaxed) {
        return RunError::OutOfMemory(limits.max_memory_mib);
    }
    if let Some(StopTrap(reason)) = err.downcast_ref::<StopTrap>() {
        return match reason {
            StopReason::Interrupted => RunError::Interrupted,
            StopReason::Timeout(limit) => RunError::Timeout(*limit),
        };
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
