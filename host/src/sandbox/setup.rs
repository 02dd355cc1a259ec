//! Building a stage's sandbox from its grants: inputs read-only, one writable output dir, the
//! workspace and dirs it is granted, its environment and network policy, and the per-stage
//! state of every capability it is granted — nothing else.

use std::path::Path;

use anyhow::{Result, anyhow};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::config::grants::Access;
use crate::model::events::LogSource;
use crate::sandbox::capability::StageSetup;
use crate::sandbox::caps::CapSet;
use crate::sandbox::capture::StageLog;
use crate::sandbox::limits::StageLimiter;
use crate::sandbox::net::{Denials, NetPolicy};
use crate::sandbox::process::Mount;
use crate::sandbox::spec::{GUEST_OUTPUT_DIR, GUEST_WORKSPACE_DIR, SandboxSpec};
use crate::sandbox::state::{CapabilityState, StageState};

/// Whether every file the stage can open is a regular file or folder sluice made: its inputs
/// (published artifacts, checked regular files) and its own output folder, which only WASI
/// writes into (and WASI cannot make a FIFO or a device). Then file I/O runs on the stage's
/// own thread — each hand-off to tokio's blocking pool costs more than a small write itself.
/// Otherwise (a workspace, a granted folder, or host programs that could `mkfifo` under /out)
/// it goes through the pool, so a read that never returns cannot stop the timeout from firing.
fn only_regular_files(spec: &SandboxSpec<'_>) -> bool {
    let grants = spec.grants;
    let workspace = spec.workspace.is_some() && grants.workspace != Access::None;
    !workspace && grants.dirs.is_empty() && grants.exec.is_empty()
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
            .allow_blocking_current_thread(only_regular_files(spec))
            .allow_udp(false)
            // Learning, every connect and lookup reaches the policy, which refuses and records it.
            .allow_tcp(!net.is_empty() || spec.learn)
            .allow_ip_name_lookup(!net.is_empty() || spec.learn)
            .socket_addr_check(net.socket_check());
        let mut env = Vec::new();
        for name in &grants.env {
            let value = std::env::var(name).ok();
            if let Some(value) = &value {
                builder.env(name, value);
            }
            env.push((name.clone(), value));
        }
        let mut mounts = Vec::new();
        let mut mount =
            |host: &Path, guest: &str, access: Access, filled_by_plugins| -> Result<()> {
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
                    filled_by_plugins,
                });
                Ok(())
            };
        for input in spec.inputs {
            mount(&input.host, &input.guest, Access::Read, true)?;
        }
        if let Some(dir) = spec.outputs {
            mount(dir, GUEST_OUTPUT_DIR, Access::Write, true)?;
        }
        if let Some(dir) = spec.workspace
            && grants.workspace != Access::None
        {
            mount(dir, GUEST_WORKSPACE_DIR, grants.workspace, false)?;
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
            mount(&dir.host, &dir.guest, dir.access, false)?;
        }
        for cache in spec.caches {
            mount(&cache.host, &cache.guest, Access::Write, true)?;
        }
        // The plugin finds each volume where it sees it, under the same variable.
        for cache in spec.caches {
            builder.env(&cache.env, &cache.guest);
            env.push((cache.env.clone(), Some(cache.guest.clone())));
        }
        let mut capabilities = CapabilityState::default();
        // Learning, every capability is there, holding only what the stage is granted.
        let caps = if spec.learn {
            CapSet::all()
        } else {
            CapSet::of(grants)
        };
        for capability in caps.iter() {
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
            mounts,
            env,
        })
    }
}
