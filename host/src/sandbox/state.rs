//! What a stage instance holds: its WASI and HTTP contexts, network policy, the state of each
//! granted capability, its log and limiter (built from its grants by [`super::setup`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::model::events::LogSource;
use crate::sandbox::bindings::sluice::pipeline::{log, types};
use crate::sandbox::capture::{LogFull, StageLog};
use crate::sandbox::limits::StageLimiter;
use crate::sandbox::net::{Denials, NetPolicy};

/// Per-stage state of the granted capabilities, one value per type.
#[derive(Default)]
pub struct CapabilityState(HashMap<TypeId, Box<dyn Any + Send>>);

impl CapabilityState {
    pub fn insert<T: Any + Send>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.0.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }
}

/// The data of one stage's `Store`: a fresh one per run, dropped after it.
pub struct StageState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) http: WasiHttpCtx,
    pub(super) net: NetPolicy,
    /// The state of each granted capability (exec policy, secret values, ...).
    pub(super) capabilities: CapabilityState,
    pub(super) log: StageLog,
    pub(crate) limiter: StageLimiter,
    pub(super) denials: Denials,
    /// Where each guest folder is on the host (for `digest`).
    pub(super) mounts: Vec<super::process::Mount>,
    /// The variables the stage is granted (`allow.env`, cache volumes) and their values (none
    /// when unset on the host), for `env.get`.
    pub(super) env: Vec<(String, Option<String>)>,
}

impl StageState {
    /// What the stage tried and was refused.
    pub fn denials(&self) -> Vec<String> {
        self.denials.list()
    }

    pub fn memory_exceeded(&self) -> bool {
        self.limiter.memory_exceeded
    }

    /// The per-stage state of a granted capability.
    pub(crate) fn capability<T: std::any::Any + Send>(&mut self) -> Option<&mut T> {
        self.capabilities.get_mut::<T>()
    }

    /// What the stage was refused that a grant would have allowed.
    pub fn wanted(&self) -> Vec<super::net::Wanted> {
        self.denials.wanted()
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

impl WasiHttpView for StageState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.net,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl types::Host for StageState {}

impl log::Host for StageState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let source = match level {
            log::Level::Trace => LogSource::Trace,
            log::Level::Debug => LogSource::Debug,
            log::Level::Info => LogSource::Info,
            log::Level::Warn => LogSource::Warn,
            log::Level::Error => LogSource::Error,
        };
        self.log
            .message(source, &message)
            .map_err(|LogFull| wasmtime::format_err!("log limit exceeded"))
    }
}
