//! What a capability beyond plain WASI is (one module each under [`super::caps`]): which imports need
//! it, which grant turns it on, how it links, and what per-stage state it builds from the grants.
//! The host links a capability only for stages granted it, and refuses, before running, a
//! plugin that imports something its stage was not granted. A new capability is one new module
//! plus one line in [`super::caps::CAPABILITIES`].

use anyhow::Result;
use wasmtime::component::Linker;

use crate::config::grants::Grants;
use crate::sandbox::capture::StageLog;
use crate::sandbox::net::Denials;
use crate::sandbox::process::Mount;
use crate::sandbox::spec::SandboxSpec;
use crate::sandbox::state::{CapabilityState, StageState};

/// A capability a plugin can import and a stage must be granted.
pub trait Capability: Send + Sync {
    /// The `[stage.allow]` key that grants it, e.g. `allow.net`.
    fn grant_key(&self) -> &'static str;
    /// Whether importing `import` (e.g. `wasi:http/types@0.2.6`) needs this capability.
    fn needed_by(&self, import: &str) -> bool;
    /// Whether a stage's grants turn it on.
    fn granted(&self, grants: &Grants) -> bool;
    /// Adds its host functions to a linker (only linkers for stages granted it).
    fn link(&self, linker: &mut Linker<StageState>) -> Result<()>;
    /// Builds its per-stage state from the grants, for a stage granted it.
    fn prepare(&self, setup: &mut StageSetup<'_>) -> Result<()> {
        let _ = setup;
        Ok(())
    }
}

/// What a capability's `prepare` may read, and where it puts its state.
pub struct StageSetup<'a> {
    pub spec: &'a SandboxSpec<'a>,
    pub log: &'a StageLog,
    pub denials: &'a Denials,
    /// The stage's folders, host and guest side.
    pub mounts: &'a [Mount],
    pub state: &'a mut CapabilityState,
}
