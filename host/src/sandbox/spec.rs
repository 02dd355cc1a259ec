//! What shapes one stage's sandbox: its folders, grants, limits and secret values, and where
//! it sees its inputs, outputs and the project checkout.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::grants::Grants;
use crate::config::limits::Limits;

/// Where a stage sees its inputs, outputs and the project checkout.
pub const GUEST_INPUT_DIR: &str = "/in";
pub const GUEST_OUTPUT_DIR: &str = "/out";
pub const GUEST_WORKSPACE_DIR: &str = "/workspace";

/// Everything that shapes one stage's sandbox.
#[derive(Debug, Clone, Copy)]
pub struct SandboxSpec<'a> {
    pub stage: &'a str,
    /// The inputs, one read-only folder per earlier stage, each at `/in/<stage>`.
    pub inputs: &'a [InputMount],
    /// The stage's output folder, visible read-write at `/out`.
    pub outputs: Option<&'a Path>,
    /// The project checkout, mounted at `/workspace` per `grants.workspace`.
    pub workspace: Option<&'a Path>,
    pub grants: &'a Grants,
    pub limits: Limits,
    /// Values of the secrets this stage is granted.
    pub secrets: &'a BTreeMap<String, String>,
    /// The cache volumes it is granted, each taken (locked) for it.
    pub caches: &'a [CacheMount],
    /// `sluice run --learn`: every capability is linked and prepared with the stage's own
    /// grants, so what it asks beyond them is refused and recorded rather than never asked.
    pub learn: bool,
}

/// Where a stage sees the artifacts it reads of one earlier stage: the host folder `host`,
/// read-only at `guest` (`/in/<stage>`).
#[derive(Debug, Clone)]
pub struct InputMount {
    pub host: std::path::PathBuf,
    pub guest: String,
}

/// A cache volume as a stage gets it: mounted read-write at `guest`, and its host folder in the
/// variable `env` of every program the stage runs.
#[derive(Debug, Clone)]
pub struct CacheMount {
    pub guest: String,
    pub host: std::path::PathBuf,
    pub env: String,
}
