//! A stage locked for running: everything resolution and loading decided about it — the plugin
//! by digest, its config, grants, limits, phase, input selection, the workspace it reads and
//! where its granted secrets come from — in one serializable value. A local run executes it; a
//! distributed run sends it to an agent as it is, so the agent never re-reads the pipeline.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::grants::{Access, Grants, SecretSource};
use crate::config::limits::Limits;
use crate::config::pipeline::quarantine::Quarantine;
use crate::config::pipeline::{InputSelection, Pipeline, StageSpec, When};

/// One stage, as decided before it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedStage {
    /// The pipeline's name (what the plugin is told).
    pub pipeline: String,
    /// The stage's name (a matrix instance's full name).
    pub name: String,
    /// The plugin reference as written, for messages and records.
    pub plugin_ref: String,
    /// The sha256 of the component that runs: the bytes every machine must load.
    pub plugin_sha256: String,
    /// The phase the pipeline file gives the stage.
    pub phase: Option<String>,
    /// The `[stage.config]` table as JSON.
    pub config_json: String,
    pub grants: Grants,
    pub limits: Limits,
    pub inputs: InputSelection,
    /// The project checkout, mounted at `/workspace` when granted.
    pub workspace: PathBuf,
    pub retries: u32,
    pub allow_failure: bool,
    /// Why the stage cache never serves this stage, when it does not.
    pub uncacheable: Option<String>,
    /// Commands whose output joins its stage-cache key (`cache_key`).
    #[serde(default)]
    pub cache_key: Vec<Vec<String>>,
    /// Paths its stage-cache key leaves out of the workspace and granted folders
    /// (`cache_ignore`, `.gitignore` patterns).
    #[serde(default)]
    pub cache_ignore: Vec<String>,
    /// What it makes in the workspace for later stages (`makes`): left out of its key, and
    /// needed there for a hit.
    #[serde(default)]
    pub makes: Vec<String>,
    /// Labels an agent needs to run it.
    pub runs_on: Vec<String>,
    /// Where the values of the secrets it is granted come from (never the values).
    pub secrets: BTreeMap<String, SecretSource>,
    /// The folder its cache volumes are kept in, on whichever machine runs it.
    #[serde(default)]
    pub volume_scope: String,
    /// Known-flaky tests that may fail without failing it, each until a date (`quarantine`).
    #[serde(default)]
    pub quarantine: Vec<Quarantine>,
}

impl LockedStage {
    /// `spec` of `pipeline`, running the component whose sha256 is `plugin_sha256`.
    pub fn new(pipeline: &Pipeline, spec: &StageSpec, plugin_sha256: &str) -> Self {
        Self {
            pipeline: pipeline.name.clone(),
            name: spec.name.clone(),
            plugin_ref: spec.plugin_ref.clone(),
            plugin_sha256: plugin_sha256.to_string(),
            phase: spec.phase.clone(),
            config_json: spec.config_json.clone(),
            grants: spec.grants.clone(),
            limits: spec.limits,
            inputs: spec.inputs.clone(),
            workspace: pipeline.workspace.clone(),
            retries: spec.retries,
            allow_failure: spec.allow_failure,
            uncacheable: uncacheable(spec).map(str::to_string),
            cache_key: spec.cache_key.clone(),
            cache_ignore: spec.cache_ignore.clone(),
            makes: spec.makes.clone(),
            runs_on: spec.runs_on.clone(),
            secrets: pipeline
                .secrets
                .iter()
                .filter(|(name, _)| spec.grants.secrets.contains(name))
                .map(|(name, source)| (name.clone(), source.clone()))
                .collect(),
            volume_scope: super::volumes::scope_of(pipeline),
            quarantine: spec.quarantine.clone(),
        }
    }
}

/// Why a stage is not served from the stage cache, when it is not.
pub fn uncacheable(spec: &StageSpec) -> Option<&'static str> {
    match spec.cache {
        Some(true) => return None,
        Some(false) => return Some("cache = false"),
        None => {}
    }
    let grants = &spec.grants;
    if !grants.net.is_empty() {
        Some("it may use the network")
    } else if !grants.exec.is_empty() {
        Some("it runs host programs (set `cache = true` if they are deterministic)")
    } else if !grants.secrets.is_empty() {
        Some("it reads secrets")
    } else if grants.workspace == Access::Write
        || grants.dirs.iter().any(|d| d.access == Access::Write)
    {
        Some("it writes to host folders")
    } else if matches!(spec.phase.as_deref(), Some("deploy" | "monitor")) {
        Some("deploy and monitor stages act on the world")
    } else if spec.when != When::OnSuccess || spec.manual_approval {
        Some("on-failure, always and gated stages always run")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_stage_round_trips_and_carries_only_its_own_secrets() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("pipeline.toml");
        let text = r#"
version = 1
[pipeline]
name = "p"
[secrets]
TOKEN = { env = "T" }
OTHER = { env = "O" }
[[stage]]
name = "a"
plugin = "a.wasm"
[stage.allow]
secrets = ["TOKEN"]
workspace = "read"
[stage.limits]
timeout = "5s"
"#;
        let pipeline =
            crate::config::pipeline::parse(&file, text).map_err(|d| anyhow::anyhow!("{d}"))?;
        let locked = LockedStage::new(&pipeline, &pipeline.stages[0], "ab12");
        assert_eq!(locked.secrets.keys().collect::<Vec<_>>(), ["TOKEN"]);
        assert_eq!(locked.uncacheable.as_deref(), Some("it reads secrets"));
        let back: LockedStage = serde_json::from_str(&serde_json::to_string(&locked)?)?;
        assert_eq!(back.grants, locked.grants);
        assert_eq!(back.limits, locked.limits);
        assert_eq!(back.plugin_sha256, "ab12");
        assert_eq!(back.workspace, pipeline.workspace);
        Ok(())
    }
}
