//! Host programs (`sluice:pipeline/process`), granted by `allow.exec`: the stage's exec policy
//! (programs, mounts, environment, deadline) built from its grants; [`crate::sandbox::process`]
//! runs them.

use std::time::Instant;

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};

use crate::config::grants::Grants;
use crate::sandbox::bindings::sluice::pipeline::process;
use crate::sandbox::capability::{Capability, StageSetup};
use crate::sandbox::process::{ExecPolicy, base_env};
use crate::sandbox::state::StageState;
use crate::sandbox::trap::into_anyhow;

pub struct Exec;

impl Capability for Exec {
    fn grant_key(&self) -> &'static str {
        "allow.exec"
    }

    fn needed_by(&self, import: &str) -> bool {
        import.starts_with("sluice:pipeline/process")
    }

    fn granted(&self, grants: &Grants) -> bool {
        !grants.exec.is_empty()
    }

    fn link(&self, linker: &mut Linker<StageState>) -> Result<()> {
        process::add_to_linker::<StageState, HasSelf<StageState>>(linker, |s| s)
            .map_err(into_anyhow)
    }

    fn prepare(&self, setup: &mut StageSetup<'_>) -> Result<()> {
        let grants = setup.spec.grants;
        setup.state.insert(ExecPolicy {
            programs: grants.exec.clone(),
            mounts: setup.mounts.to_vec(),
            env: base_env(&grants.env)
                .into_iter()
                .chain(setup.spec.caches.iter().map(|cache| {
                    let host = std::path::absolute(&cache.host).unwrap_or(cache.host.clone());
                    (cache.env.clone(), host.display().to_string())
                }))
                .collect(),
            settable_env: grants.exec_env.clone(),
            deadline: Instant::now() + setup.spec.limits.timeout,
            denials: setup.denials.clone(),
            log: setup.log.clone(),
        });
        Ok(())
    }
}

impl process::Host for StageState {
    async fn run(
        &mut self,
        command: process::Command,
    ) -> wasmtime::Result<Result<process::Completed, String>> {
        match self.capability::<ExecPolicy>() {
            Some(policy) => {
                let completed = policy.run(command).await;
                if self.log.overflowed() {
                    // Like WASI output past the limit: the stage is stopped, not told.
                    return Err(wasmtime::Error::msg("the stage's log limit was exceeded"));
                }
                Ok(completed)
            }
            // Not linked for stages without the grant; refuse anyway.
            None => Ok(Err("this stage is not granted allow.exec".to_string())),
        }
    }
}
