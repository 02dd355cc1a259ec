//! What a stage instance can reach: the per-store state (WASI context, resource table, its log)
//! and the sandbox built from it — inputs read-only, one writable output dir, nothing else.

use std::path::Path;

use anyhow::{Result, anyhow};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::sluice::pipeline::{log, types};
use crate::capture::StageLog;
use crate::events::LogSource;

/// Where a stage sees its inputs and writes its outputs.
pub const GUEST_INPUT_DIR: &str = "/in";
pub const GUEST_OUTPUT_DIR: &str = "/out";

/// The data of one stage's `Store`: a fresh one per run, dropped after it.
pub struct StageState {
    wasi: WasiCtx,
    table: ResourceTable,
    log: StageLog,
}

/// The host folders a stage gets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mounts<'a> {
    /// Staged inputs, visible read-only at `/in`.
    pub inputs: Option<&'a Path>,
    /// The stage's output folder, visible read-write at `/out`.
    pub outputs: Option<&'a Path>,
}

impl StageState {
    /// A sandbox with only the given mounts: no environment, no arguments, no network, no
    /// host files besides the mounts; stdout/stderr go to the stage log.
    pub fn new(stage: &str, log: StageLog, mounts: Mounts<'_>) -> Result<Self> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(&[stage])
            .stdout(log.stream(LogSource::Stdout))
            .stderr(log.stream(LogSource::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // Stages run one at a time and only touch regular files in their mounts: doing file
            // I/O on this thread saves a thread hand-off per WASI call.
            .allow_blocking_current_thread(true);
        if let Some(dir) = mounts.inputs {
            builder
                .preopened_dir(dir, GUEST_INPUT_DIR, FsPerms::ReadOnly)
                .map_err(|e| anyhow!("cannot open input folder {}: {e:#}", dir.display()))?;
        }
        if let Some(dir) = mounts.outputs {
            builder
                .preopened_dir(dir, GUEST_OUTPUT_DIR, FsPerms::ReadWrite)
                .map_err(|e| anyhow!("cannot open output folder {}: {e:#}", dir.display()))?;
        }
        Ok(Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            log,
        })
    }
}

impl WasiView for StageState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StageState {}

impl log::Host for StageState {
    fn log(&mut self, level: log::Level, message: String) {
        let source = match level {
            log::Level::Trace => LogSource::Trace,
            log::Level::Debug => LogSource::Debug,
            log::Level::Info => LogSource::Info,
            log::Level::Warn => LogSource::Warn,
            log::Level::Error => LogSource::Error,
        };
        self.log.message(source, &message);
    }
}
