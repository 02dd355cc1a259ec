//! What a stage instance can reach: the per-store state (WASI, HTTP, process and secrets
//! contexts, its log, its limiter) built from the stage's grants — inputs read-only, one
//! writable output dir, and only what its pipeline entry allows.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::grants::{Access, Grants};
use crate::config::limits::Limits;
use crate::model::events::LogSource;
use crate::sandbox::bindings::sluice::pipeline::{log, types};
use crate::sandbox::capability::{CapSet, CapabilityState, StageSetup};
use crate::sandbox::capture::{LogFull, StageLog};
use crate::sandbox::limits::StageLimiter;
use crate::sandbox::net::{Denials, NetPolicy};
use crate::sandbox::process::Mount;

/// Where a stage sees its inputs, outputs and the project checkout.
pub const GUEST_INPUT_DIR: &str = "/in";
pub const GUEST_OUTPUT_DIR: &str = "/out";
pub const GUEST_WORKSPACE_DIR: &str = "/workspace";

/// Everything that shapes one stage's sandbox.
#[derive(Debug, Clone, Copy)]
pub struct SandboxSpec<'a> {
    pub stage: &'a str,
    /// Staged inputs, visible read-only at `/in`.
    pub inputs: Option<&'a Path>,
    /// The stage's output folder, visible read-write at `/out`.
    pub outputs: Option<&'a Path>,
    /// The project checkout, mounted at `/workspace` per `grants.workspace`.
    pub workspace: Option<&'a Path>,
    pub grants: &'a Grants,
    pub limits: Limits,
    /// Values of the secrets this stage is granted.
    pub secrets: &'a BTreeMap<String, String>,
}

/// The data of one stage's `Store`: a fresh one per run, dropped after it.
pub struct StageState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    net: NetPolicy,
    /// The state of each granted capability (exec policy, secret values, ...).
    capabilities: CapabilityState,
    log: StageLog,
    pub(crate) limiter: StageLimiter,
    denials: Denials,
}

impl StageState {
    /// A sandbox with nothing but what `spec` grants: no environment but `allow.env`, no
    /// arguments, no network but `allow.net`, no host files besides the mounts.
    pub fn new(spec: &SandboxSpec<'_>, log: StageLog) -> Result<Self> {
        let grants = spec.grants;
        let denials = Denials::default();
        let net = NetPolicy::new(&grants.net, denials.clone(), log.clone());
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(&[spec.stage])
            .stdout(log.stream(LogSource::Stdout))
            .stderr(log.stream(LogSource::Stderr))
            // File I/O goes through tokio's blocking pool, never this thread: a read that never
            // returns (a FIFO in a granted folder) must not stop the timeout from firing.
            .allow_blocking_current_thread(false)
            .allow_udp(false)
            .allow_tcp(!net.is_empty())
            .allow_ip_name_lookup(!net.is_empty())
            .socket_addr_check(net.socket_check());
        for name in &grants.env {
            if let Ok(value) = std::env::var(name) {
                builder.env(name, value);
            }
        }
        let mut mounts = Vec::new();
        let mut mount = |host: &Path, guest: &str, access: Access| -> Result<()> {
            let perms = if access == Access::Write {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(host, guest, perms)
                .map_err(|e| anyhow!("cannot mount {} at {guest}: {e:#}", host.display()))?;
            // Programs run from another working directory: give them absolute paths.
            mounts.push(Mount {
                guest: guest.to_string(),
                host: std::path::absolute(host).unwrap_or_else(|_| host.to_path_buf()),
            });
            Ok(())
        };
        if let Some(dir) = spec.inputs {
            mount(dir, GUEST_INPUT_DIR, Access::Read)?;
        }
        if let Some(dir) = spec.outputs {
            mount(dir, GUEST_OUTPUT_DIR, Access::Write)?;
        }
        if let Some(dir) = spec.workspace
            && grants.workspace != Access::None
        {
            mount(dir, GUEST_WORKSPACE_DIR, grants.workspace)?;
        }
        for dir in &grants.dirs {
            if dir.optional && !dir.host.is_dir() {
                continue;
            }
            if !dir.host.is_dir() {
                return Err(anyhow!(
                    "granted dir {} does not exist (allow.dirs, guest path {})",
                    dir.host.display(),
                    dir.guest
                ));
            }
            mount(&dir.host, &dir.guest, dir.access)?;
        }
        let mut capabilities = CapabilityState::default();
        for capability in CapSet::of(grants).iter() {
            capability.prepare(&mut StageSetup {
                spec,
                log: &log,
                denials: &denials,
                mounts: &mounts,
                state: &mut capabilities,
            })?;
        }
        Ok(Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            net,
            capabilities,
            log,
            limiter: StageLimiter::new(spec.limits.memory),
            denials,
        })
    }

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

    /// Records something the stage was refused, and says so in its log.
    pub(crate) fn deny(&self, what: String, message: &str) {
        let _ = self.log.message(LogSource::Warn, message);
        self.denials.record(what);
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
