//! One stage alone, outside a run of its pipeline: for plugin authors trying a stage, and for
//! replaying a stage of a failed run with exactly the inputs it had. Same sandbox, grants,
//! limits and records as in a run; the inputs are files given by the caller.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::config::pipeline::{InputSelection, Pipeline};
use crate::model::events::{Event, EventSink};
use crate::model::layout::RunLayout;
use crate::model::report::{StageRecord, StageStatus};
use crate::resolve::ResolvedStage;
use crate::sandbox::engine::Host;
use crate::stage::cache::StageCache;
use crate::stage::{
    Interrupt, PreparedStage, RunsOn, StageExecution, StageSurroundings, pending_record,
};
use crate::trust::secrets::SecretValues;

pub use crate::stage::GivenInput;

/// The stage's record in its run folder (not a `report.json`: this is not a pipeline run).
pub const RECORD_FILE: &str = "stage.json";

/// Runs stage `index` of `pipeline` with `plugin` on `inputs`, in a fresh run folder under
/// `runs_root`; returns its record and the run folder (its outputs are under
/// `artifacts/<stage>/`).
pub async fn run_stage(
    host: &Host,
    pipeline: &Pipeline,
    index: usize,
    plugin_path: &Path,
    inputs: &[GivenInput],
    runs_root: &Path,
    events: &EventSink,
) -> Result<(StageRecord, PathBuf)> {
    let spec = pipeline
        .stages
        .get(index)
        .context("no such stage in the pipeline")?;
    let layout = RunLayout::create(runs_root)?;
    events.emit(Event::RunStarted {
        run_id: layout.run_id.clone(),
        pipeline: pipeline.name.clone(),
        run_dir: layout.dir.clone(),
        stages: vec![spec.name.clone()],
        at: SystemTime::now(),
    });
    let available = inputs
        .iter()
        .map(|input| input.place(&layout, &spec.name))
        .collect::<Result<Vec<_>>>()?;
    let secret_values = SecretValues::load(&pipeline.secrets);
    let masker = secret_values.masker();
    let mut record = pending_record(spec, None);
    record.depends_on = Vec::new();
    let stage = ResolvedStage {
        plugin_path: plugin_path.to_path_buf(),
        pin: None,
        checked_sha256: None,
        capabilities: None,
    };
    let mut prepared = match PreparedStage::of_pipeline(
        host,
        pipeline,
        spec,
        &stage,
        RunsOn::Here(&secret_values),
    ) {
        Ok(prepared) => prepared,
        Err(message) => {
            // As in a pipeline run: a stage whose plugin cannot be prepared is an error.
            super::slot::refuse_unprepared(&mut record, message, events);
            return finish(record, &layout, events);
        }
    };
    record.plugin.sha256 = Some(prepared.plugin.sha256.clone());
    record.plugin.size = Some(prepared.plugin.size);
    // Every given input is what the stage may read, whatever its `inputs` say.
    prepared.locked.inputs = InputSelection::AllEarlier;
    let stage_cache = StageCache::new(None);
    let volumes = crate::stage::volumes::CacheVolumes::new(
        crate::stage::volumes::CacheVolumes::default_root(),
    );
    let around = StageSurroundings {
        host,
        layout: &layout,
        events,
        masker: &masker,
        stage_cache: &stage_cache,
        volumes: &volumes,
        // Ctrl-C ends the process; the watchman kills what the stage started.
        interrupt: None,
    };
    StageExecution::new(&around, &prepared, &[], Interrupt::new())
        .execute(&available, &mut record)
        .await;
    finish(record, &layout, events)
}

/// Says how the stage ended and writes its record into the run folder.
fn finish(
    record: StageRecord,
    layout: &RunLayout,
    events: &EventSink,
) -> Result<(StageRecord, PathBuf)> {
    let status = if record.status == StageStatus::Succeeded {
        crate::model::report::RunStatus::Succeeded
    } else {
        super::schedule::run_status(None, &Some((record.name.clone(), record.status)))
    };
    events.emit(Event::RunFinished {
        status,
        stopped_by: (status != crate::model::report::RunStatus::Succeeded)
            .then(|| record.name.clone()),
        elapsed: std::time::Duration::from_secs_f64(record.duration_ms.unwrap_or(0.0) / 1000.0),
        report: layout.dir.join(RECORD_FILE),
        provenance: None,
    });
    let json = serde_json::to_vec_pretty(&record).context("cannot encode the stage record")?;
    crate::atomic_file::write(&layout.dir.join(RECORD_FILE), &json)?;
    Ok((record, layout.dir.clone()))
}
