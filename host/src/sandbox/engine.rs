//! The wasmtime engine every stage runs on: its configuration, the linker with exactly the
//! imports a stage may use, the compiled-code cache and the epoch ticker behind timeouts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use crate::sandbox::bindings::StageFullPre;
use crate::sandbox::bindings::sluice::pipeline::{digest, env, log};
use crate::sandbox::cache::CompiledCache;
use crate::sandbox::caps::CapSet;
use crate::sandbox::state::StageState;
use crate::sandbox::trap::into_anyhow;

/// How often running guests are interrupted to check their deadline and yield.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine, linker and cache shared by every stage of a process.
pub struct Host {
    pub(crate) engine: Engine,
    /// One linker per set of granted capabilities, built when first needed.
    linkers: Mutex<HashMap<CapSet, Arc<Linker<StageState>>>>,
    /// One pre-linked instance per (plugin sha256, capabilities), however many stages use it.
    linked: Mutex<HashMap<(String, CapSet), StageFullPre<StageState>>>,
    pub(crate) cache: CompiledCache,
    /// `--learn`: every capability is linked with the stage's own grants only, so what a stage
    /// asks beyond them is refused and recorded instead of stopping it at load.
    learning: AtomicBool,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("cache", &self.cache).finish()
    }
}

impl Host {
    /// A host caching compiled code under `cache_root` (`None`: compile every time).
    pub fn new(cache_root: Option<&Path>) -> Result<Self> {
        let engine = new_engine()?;
        let cache = CompiledCache::new(&engine, cache_root);
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Self {
            engine,
            linkers: Mutex::new(HashMap::new()),
            linked: Mutex::new(HashMap::new()),
            cache,
            learning: AtomicBool::new(false),
            _ticker: ticker,
        })
    }

    /// Runs every stage from now on in learning mode (`sluice run --learn`): nothing more is
    /// granted, but a plugin importing a capability its stage lacks is linked (everything it
    /// asks is refused and recorded) instead of being refused before it runs.
    pub fn learn_grants(&self) {
        self.learning.store(true, Ordering::Relaxed);
    }

    /// Whether stages run in learning mode.
    pub fn learning(&self) -> bool {
        self.learning.load(Ordering::Relaxed)
    }

    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.dir()
    }

    /// The linker for stages granted `caps`: WASI p2, `log`, `digest` and `env` always; wasi-http, `process` and
    /// `secrets` only when granted, so an ungranted import cannot even be linked.
    pub(crate) fn linker(&self, caps: CapSet) -> Result<Arc<Linker<StageState>>> {
        let mut linkers = self.linkers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(linker) = linkers.get(&caps) {
            return Ok(linker.clone());
        }
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(into_anyhow)?;
        crate::sandbox::dns::add_to_linker(&mut linker)?;
        log::add_to_linker::<StageState, HasSelf<StageState>>(&mut linker, |s| s)
            .map_err(into_anyhow)?;
        // Reads only what the stage can read: linked for every stage.
        digest::add_to_linker::<StageState, HasSelf<StageState>>(&mut linker, |s| s)
            .map_err(into_anyhow)?;
        // Hands out only granted variables: linked for every stage.
        env::add_to_linker::<StageState, HasSelf<StageState>>(&mut linker, |s| s)
            .map_err(into_anyhow)?;
        for capability in caps.iter() {
            capability.link(&mut linker)?;
        }
        let linker = Arc::new(linker);
        linkers.insert(caps, linker.clone());
        Ok(linker)
    }
}

/// The engine every stage runs on (public so the bare-wasmtime benchmark measures the very
/// same configuration).
pub fn new_engine() -> Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    // Pooled memories, tables and fiber stacks are reused between stages instead of being
    // mapped and unmapped each time: the biggest part of per-stage start-up. The pool only
    // reserves address space; if even that is refused, fall back to on-demand allocation.
    match Engine::new(config.clone().allocation_strategy(pooling())) {
        Ok(engine) => Ok(engine),
        Err(_) => Engine::new(&config).map_err(into_anyhow),
    }
}

impl Host {
    /// The plugin whose digest is `sha256`, pre-linked for stages granted `caps`, if this
    /// process already did it: one per plugin and grants, however many stages use it.
    pub(crate) fn linked(&self, sha256: &str, caps: CapSet) -> Option<StageFullPre<StageState>> {
        let linked = self.linked.lock().unwrap_or_else(|p| p.into_inner());
        linked.get(&(sha256.to_string(), caps)).cloned()
    }

    pub(crate) fn remember_linked(
        &self,
        sha256: &str,
        caps: CapSet,
        pre: &StageFullPre<StageState>,
    ) {
        let mut linked = self.linked.lock().unwrap_or_else(|p| p.into_inner());
        linked.insert((sha256.to_string(), caps), pre.clone());
    }
}

/// Sized for one stage at a time (plus `describe` calls) of any guest language: componentize-py
/// and componentize-js components have many core instances and large tables.
fn pooling() -> wasmtime::InstanceAllocationStrategy {
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(32)
        .total_core_instances(512)
        .total_memories(64)
        .total_tables(512)
        .total_stacks(32)
        .table_elements(200_000)
        .max_core_instance_size(16 << 20)
        .max_component_instance_size(16 << 20)
        // Reset reused slots by scanning for dirty pages and keeping them resident, instead of
        // returning them to the kernel and faulting them back in on the next stage.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(1 << 20)
        .async_stack_keep_resident(256 << 10);
    wasmtime::InstanceAllocationStrategy::Pooling(pool)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] so running guests yield to the runtime
/// (which is what lets a timeout stop a busy loop). Dropping it wakes and ends the thread at
/// once, so process exit never waits for a tick.
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .context("cannot start the epoch thread that enforces stage timeouts")?;
        Ok(Self { stop: Some(stop) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.take();
    }
}
