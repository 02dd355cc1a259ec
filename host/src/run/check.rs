//! `sluice check`: everything `run` verifies before running anything — the file, every plugin
//! (compiled through the cache, linked, described) — and nothing is run.

use std::path::PathBuf;

use serde::Serialize;

use crate::model::text::{MAX_FIELD_BYTES, one_line};
use crate::plugin;
use crate::resolve::{Pin, ResolvedPipeline};
use crate::sandbox::caps::CapSet;
use crate::sandbox::engine::Host;
use crate::trust::secrets::SecretValues;

#[derive(Debug, Clone, Serialize)]
pub struct StageCheck {
    pub stage: String,
    pub plugin: PathBuf,
    /// As written in the pipeline file.
    pub reference: String,
    /// For a registry plugin: the manifest digest it is pinned to, and who signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signed_by: Vec<String>,
    /// What the plugin says it is, when it could be loaded.
    pub name: Option<String>,
    pub version: Option<String>,
    /// The phase the plugin says it is.
    pub phase: Option<String>,
    /// The phase the pipeline file gives the stage: the one provenance trusts.
    pub pipeline_phase: Option<String>,
    /// The stages it waits for.
    pub depends_on: Vec<String>,
    pub description: Option<String>,
    pub sha256: Option<String>,
    pub cache_hit: Option<bool>,
    pub imports: Vec<String>,
    /// What its pipeline entry grants, one capability per line.
    pub grants: Vec<String>,
    /// Why the stage cannot run, if it cannot.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub pipeline: String,
    pub stages: Vec<StageCheck>,
    /// The stages in waves: each wave's stages wait only for earlier waves, so with enough
    /// `--jobs` they run side by side.
    pub waves: Vec<Vec<String>>,
}

/// Each stage in the wave after the latest of its dependencies (the graph has no cycles:
/// the pipeline was validated).
pub fn waves(pipeline: &crate::config::pipeline::Pipeline) -> Vec<Vec<String>> {
    let mut level: Vec<usize> = vec![0; pipeline.stages.len()];
    // Dependencies can point forward (`needs`), so settle levels until nothing moves.
    for _ in 0..pipeline.stages.len() {
        let mut moved = false;
        for (index, spec) in pipeline.stages.iter().enumerate() {
            let want = spec
                .depends_on
                .iter()
                .filter_map(|d| pipeline.stages.iter().position(|s| &s.name == d))
                .map(|d| level[d] + 1)
                .max()
                .unwrap_or(0);
            if want > level[index] {
                level[index] = want;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut waves: Vec<Vec<String>> = vec![Vec::new(); level.iter().max().map_or(0, |m| m + 1)];
    for (spec, level) in pipeline.stages.iter().zip(level) {
        waves[level].push(spec.name.clone());
    }
    waves
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.stages.iter().all(|s| s.problem.is_none())
    }
}

/// Loads and describes every stage's plugin; problems are collected, not returned early, so
/// one `check` shows every broken stage at once.
pub async fn check(host: &Host, resolved: &ResolvedPipeline) -> CheckReport {
    let pipeline = &resolved.pipeline;
    let secrets = SecretValues::load(&pipeline.secrets);
    let mut stages = Vec::with_capacity(pipeline.stages.len());
    for (spec, stage) in resolved.stages() {
        let (manifest_digest, signed_by) = Pin::recorded(stage.pin.as_ref());
        let mut entry = StageCheck {
            stage: spec.name.clone(),
            plugin: stage.plugin_path.clone(),
            reference: spec.plugin_ref.clone(),
            manifest_digest,
            signed_by,
            name: None,
            version: None,
            phase: None,
            pipeline_phase: spec.phase.clone(),
            depends_on: spec.depends_on.clone(),
            description: None,
            sha256: None,
            cache_hit: None,
            imports: Vec::new(),
            grants: spec.grants.describe(),
            problem: None,
        };
        let loaded = plugin::compile(host, &stage.plugin_path).and_then(|compiled| {
            entry.sha256 = Some(compiled.sha256.clone());
            entry.cache_hit = Some(compiled.cache == crate::sandbox::cache::CacheOutcome::Hit);
            entry.imports = compiled.imports(host);
            compiled.link(host, &spec.name, CapSet::of(&spec.grants))
        });
        let loaded = loaded
            .map_err(|err| err.to_string())
            .and_then(|plugin| super::preflight(spec, &secrets).map(|_| plugin));
        match loaded {
            Err(err) => entry.problem = Some(err),
            Ok(loaded) => match loaded.describe(host).await {
                Ok(info) => {
                    entry.name = Some(one_line(&info.name, MAX_FIELD_BYTES));
                    entry.version = Some(one_line(&info.version, MAX_FIELD_BYTES));
                    entry.phase = Some(crate::sandbox::trap::phase_name(info.phase).to_string());
                    entry.description = Some(one_line(&info.description, MAX_FIELD_BYTES));
                }
                Err(err) => entry.problem = Some(err.to_string()),
            },
        }
        stages.push(entry);
    }
    CheckReport {
        pipeline: pipeline.name.clone(),
        stages,
        waves: waves(pipeline),
    }
}
