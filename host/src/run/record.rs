//! A run's records: the journal while it runs, and the run report with its provenance, written
//! once at the end.

use std::borrow::Borrow;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::provenance;
use crate::model::journal::JournalWriter;
use crate::model::layout::RunLayout;
use crate::model::report::{REPORT_SCHEMA, RunReport, RunStatus, StageRecord, millis, rfc3339};
use crate::resolve::ResolvedPipeline;
use crate::trust::secrets::SecretValues;

/// What a report keeps across a resume.
#[derive(Clone)]
pub(crate) struct RunHistory {
    pub started_at: String,
    pub resumed_at: Vec<String>,
    pub pipeline_sha256: String,
    pub trigger: String,
}

/// The journal of the run in progress: the whole report, status `running`, when the stages
/// start, then each stage record that changes appended to the journal beside it — so a run
/// killed at any moment leaves a record `sluice resume` can continue from.
#[derive(Default)]
pub(crate) struct RunJournal {
    writer: Option<JournalWriter>,
}

impl RunJournal {
    pub(crate) fn record<R: Borrow<StageRecord>>(
        &mut self,
        resolved: &ResolvedPipeline,
        layout: &RunLayout,
        history: &RunHistory,
        records: &[R],
        elapsed: Duration,
    ) -> Result<()> {
        if let Some(writer) = &mut self.writer {
            return writer.append(records, millis(elapsed));
        }
        let report = build_report(
            resolved,
            layout,
            history.clone(),
            records.iter().map(|r| r.borrow().clone()).collect(),
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
        pipeline_file: super::origin::recorded_pipeline_file(pipeline),
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
