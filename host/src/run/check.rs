//! `sluice check`: everything `run` verifies before running anything — the file, every stage
//! prepared as a run prepares it (plugin compiled through the cache, linked for its grants,
//! checked against its pin; granted folders and secrets), every plugin described — and nothing
//! is run.

use std::path::PathBuf;

use serde::Serialize;

use crate::model::text::{MAX_FIELD_BYTES, one_line};
use crate::plugin;
use crate::resolve::{CapsStatus, Pin, ResolvedPipeline};
use crate::sandbox::cache::CacheOutcome;
use crate::sandbox::engine::Host;
use crate::stage::{PreparedStage, RunsOn};
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
    /// Whether the stage cache may serve it, and what its key leaves out.
    pub stage_cache: String,
    /// Its capability set (imports and exports, read from the component) beside the one
    /// pipeline.lock records; absent when the pipeline keeps no lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapsStatus>,
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
    let level = crate::model::depth::depths(
        pipeline
            .stages
            .iter()
            .map(|s| (s.name.as_str(), s.depends_on.as_slice())),
    );
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
            stage_cache: stage_cache_line(spec),
            capabilities: stage.capabilities.clone(),
            problem: None,
        };
        let prepared =
            PreparedStage::of_pipeline(host, pipeline, spec, stage, RunsOn::Here(&secrets));
        match prepared {
            Err(problem) => {
                // What the component is and asks for, shown even when it cannot run.
                if let Ok(compiled) = plugin::compile(host, &stage.plugin_path) {
                    entry.sha256 = Some(compiled.sha256.clone());
                    entry.cache_hit = Some(compiled.cache == CacheOutcome::Hit);
                    entry.imports = compiled.imports(host);
                }
                entry.problem = Some(problem);
            }
            Ok(prepared) => {
                let plugin = &prepared.plugin;
                entry.sha256 = Some(plugin.sha256.clone());
                entry.cache_hit = Some(plugin.cache == CacheOutcome::Hit);
                entry.imports = plugin.imports(host);
                match plugin.describe(host).await {
                    Ok(info) => {
                        entry.name = Some(one_line(&info.name, MAX_FIELD_BYTES));
                        entry.version = Some(one_line(&info.version, MAX_FIELD_BYTES));
                        entry.phase =
                            Some(crate::sandbox::trap::phase_name(info.phase).to_string());
                        entry.description = Some(one_line(&info.description, MAX_FIELD_BYTES));
                    }
                    Err(err) => entry.problem = Some(err.to_string()),
                }
            }
        }
        // Asking for more than the lock records refuses the stage, whatever its grants.
        if let Some(CapsStatus::Differs { diff, .. }) = &stage.capabilities {
            let refused = format!(
                "its plugin {} asks for more than pipeline.lock records: {}\n  = help: if that \
                 is expected, accept it: sluice lock {} --accept {}",
                spec.plugin_ref,
                diff.describe(),
                crate::shell::quote(&pipeline.file.display().to_string()),
                crate::shell::quote(&spec.name)
            );
            entry.problem = Some(match entry.problem.take() {
                None => refused,
                Some(other) => format!("{refused}\n{other}"),
            });
        }
        stages.push(entry);
    }
    CheckReport {
        pipeline: pipeline.name.clone(),
        stages,
        waves: waves(pipeline),
    }
}

/// `cached`, with what the key leaves out and what the stage makes, or why it never is.
fn stage_cache_line(spec: &crate::config::pipeline::StageSpec) -> String {
    if let Some(why) = crate::stage::uncacheable(spec) {
        return format!("never served from the stage cache: {why}");
    }
    let mut line = "served from the stage cache while its key is unchanged".to_string();
    if !spec.cache_ignore.is_empty() {
        line.push_str(&format!(
            "; the key leaves out {}",
            spec.cache_ignore.join(", ")
        ));
    }
    if !spec.makes.is_empty() {
        line.push_str(&format!(
            "; makes {} (a hit needs it there)",
            spec.makes.join(", ")
        ));
    }
    line
}
