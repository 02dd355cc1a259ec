//! A run's records: each stage's record from pending to finished, what the next stage is told
//! about earlier ones, and the run report with its provenance, written once at the end.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::provenance;
use crate::config::pipeline::{Pipeline, StageSpec};
use crate::model::artifacts;
use crate::model::journal::JournalWriter;
use crate::model::layout::RunLayout;
use crate::model::report::{
    PluginRecord, REPORT_SCHEMA, RunReport, RunStatus, StageRecord, StageStatus,
};
use crate::resolve::{Pin, ResolvedPipeline};
use crate::sandbox::bindings::sluice::pipeline::types::StageRun as EarlierStage;
use crate::trust::secrets::SecretValues;

/// What a report keeps across a resume.
#[derive(Clone)]
pub(crate) struct RunHistory {
    pub started_at: String,
    pub resumed_at: Vec<String>,
    pub pipeline_sha256: String,
    pub trigger: String,
}

pub(crate) fn pipeline_digest(pipeline: &Pipeline) -> Result<String> {
    let bytes = std::fs::read(&pipeline.file)
        .with_context(|| format!("cannot read {}", pipeline.file.display()))?;
    Ok(artifacts::sha256_bytes(&bytes))
}

/// What a stage is told about the stages that ran before it.
pub(crate) fn earlier_stages(records: &[StageRecord]) -> Vec<EarlierStage> {
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

pub(crate) fn pending_record(spec: &StageSpec, pin: Option<&Pin>) -> StageRecord {
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
        depends_on: spec.depends_on.clone(),
        matrix: spec.matrix.clone(),
        cache: None,
        earlier_attempts: Vec::new(),
        failure_allowed: false,
    }
}

/// The journal of the run in progress: the whole report, status `running`, when the stages
/// start, then each stage record that changes appended to the journal beside it — so a run
/// killed at any moment leaves a record `sluice resume` can continue from.
#[derive(Default)]
pub(crate) struct RunJournal {
    writer: Option<JournalWriter>,
}

impl RunJournal {
    pub(crate) fn record(
        &mut self,
        resolved: &ResolvedPipeline,
        layout: &RunLayout,
        history: &RunHistory,
        records: &[StageRecord],
        elapsed: Duration,
    ) -> Result<()> {
        if let Some(writer) = &mut self.writer {
            return writer.append(records, millis(elapsed));
        }
        let report = build_report(
            resolved,
            layout,
            history.clone(),
            records.to_vec(),
            RunStatus::Running,
            elapsed,
        );
        report.write_to(&layout.report_path())?;
        // Without a journal file, the next transition rewrites the whole report again.
        self.writer = Some(JournalWriter::start(&layout.dir, records)?);
        Ok(())
    }
}

/// The finished run's report, with provenance written beside it when a release succeeded;
/// also returns one line about that provenance for the reporters.
pub(crate) fn finish_report(
    resolved: &ResolvedPipeline,
    layout: &RunLayout,
    history: RunHistory,
    records: Vec<StageRecord>,
    status: RunStatus,
    elapsed: Duration,
    secrets: &SecretValues,
) -> (RunReport, Option<String>) {
    let mut report = build_report(resolved, layout, history, records, status, elapsed);
    let note = match provenance::write_for_run(resolved, &report, &layout.dir, secrets) {
        None => None,
        Some(Ok(record)) => {
            let note = match (&record.envelope, &record.signed_by, &record.problem) {
                (Some(envelope), Some(key), _) => format!("{envelope} (signed by {key})"),
                (_, _, Some(problem)) => format!("{} ({problem})", record.statement),
                _ => format!(
                    "{} (unsigned: the pipeline names no provenance_key)",
                    record.statement
                ),
            };
            report.provenance = Some(record);
            Some(note)
        }
        Some(Err(err)) => Some(format!("could not be written: {err:#}")),
    };
    (report, note)
}

pub(crate) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn build_report(
    resolved: &ResolvedPipeline,
    layout: &RunLayout,
    history: RunHistory,
    records: Vec<StageRecord>,
    status: RunStatus,
    elapsed: Duration,
) -> RunReport {
    let pipeline = &resolved.pipeline;
    RunReport {
        schema: REPORT_SCHEMA,
        pipeline: pipeline.name.clone(),
        pipeline_file: std::path::absolute(&pipeline.file)
            .unwrap_or_else(|_| pipeline.file.clone())
            .display()
            .to_string(),
        pipeline_sha256: history.pipeline_sha256,
        run_id: layout.run_id.clone(),
        run_dir: layout.dir.display().to_string(),
        status,
        exit_code: status.exit_code(),
        started_at: history.started_at,
        resumed_at: history.resumed_at,
        trigger: history.trigger,
        finished_at: rfc3339(SystemTime::now()),
        duration_ms: millis(elapsed),
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        stages: records,
        provenance: None,
    }
}
