//! A stage's record before it runs, and what a stage is told about the stages that ran before it.

use crate::config::pipeline::StageSpec;
use crate::model::report::{PluginRecord, StageRecord, StageStatus};
use crate::resolve::Pin;
use crate::sandbox::bindings::sluice::pipeline::types::StageRun as EarlierStage;

/// The record of `spec` before anything happened to it.
pub fn pending_record(spec: &StageSpec, pin: Option<&Pin>) -> StageRecord {
    let (manifest_digest, signed_by) = Pin::recorded(pin);
    StageRecord {
        name: spec.name.clone(),
        phase: spec.phase.clone(),
        status: StageStatus::Pending,
        plugin: PluginRecord {
            reference: spec.plugin_ref.clone(),
            sha256: None,
            size: None,
            name: None,
            version: None,
            phase: None,
            cache_hit: None,
            load_ms: None,
            manifest_digest,
            signed_by,
        },
        started_at: None,
        duration_ms: None,
        outputs: Vec::new(),
        inputs: Vec::new(),
        summary: None,
        message: None,
        log: None,
        grants: spec.grants.describe(),
        gate: spec.manual_approval,
        denied: Vec::new(),
        learned: None,
        depends_on: spec.depends_on.clone(),
        matrix: spec.matrix.clone(),
        cache: None,
        earlier_attempts: Vec::new(),
        failure_allowed: false,
        ran_on: None,
        flaky: Vec::new(),
        quarantined: Vec::new(),
    }
}

/// What a stage is told about the stages that ran before it.
pub fn earlier_stages(records: &[StageRecord]) -> Vec<EarlierStage> {
    records
        .iter()
        .filter(|r| !matches!(r.status, StageStatus::Pending | StageStatus::Skipped))
        .map(|r| EarlierStage {
            name: r.name.clone(),
            plugin: r
                .plugin
                .name
                .clone()
                .unwrap_or_else(|| r.plugin.reference.clone()),
            plugin_version: r.plugin.version.clone().unwrap_or_default(),
            plugin_sha256: r.plugin.sha256.clone().unwrap_or_default(),
            status: r.status.label().to_string(),
        })
        .collect()
}
