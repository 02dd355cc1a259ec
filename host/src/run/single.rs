//! One stage alone, outside a run of its pipeline: for plugin authors trying a stage, and for
//! replaying a stage of a failed run with exactly the inputs it had. Same sandbox, grants,
//! limits and records as in a run; the inputs are files given by the caller.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::config::pipeline::Pipeline;
use crate::model::artifacts::{ArtifactRecord, sha256_file};
use crate::model::events::{Event, EventSink};
use crate::model::layout::RunLayout;
use crate::model::report::{StageRecord, StageStatus};
use crate::plugin;
use crate::sandbox::caps::CapSet;
use crate::sandbox::engine::Host;
use crate::trust::secrets::SecretValues;

use super::options::Interrupt;
use super::record::pending_record;
use super::stage::StageExecution;
use super::stage_cache::StageCache;

/// The stage's record in its run folder (not a `report.json`: this is not a pipeline run).
pub const RECORD_FILE: &str = "stage.json";

/// A file handed to the stage as the output `name` of stage `stage`.
#[derive(Debug, Clone)]
pub struct GivenInput {
    pub stage: String,
    pub name: String,
    pub file: PathBuf,
}

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
    let mut available = Vec::with_capacity(inputs.len());
    for input in inputs {
        crate::config::names::check_stage_name(&input.stage)
            .map_err(|why| anyhow::anyhow!("input stage `{}`: {why}", input.stage))?;
        crate::config::names::check_relative_name(&input.name)
            .map_err(|why| anyhow::anyhow!("input name `{}`: {why}", input.name))?;
        if input.stage == spec.name {
            bail!(
                "an input cannot come from the stage itself (`{}`)",
                spec.name
            );
        }
        let relative = format!("artifacts/{}/{}", input.stage, input.name);
        let dest = layout.dir.join(&relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&input.file, &dest)
            .with_context(|| format!("cannot read input {}", input.file.display()))?;
        let (sha256, size) = sha256_file(&dest)?;
        available.push(ArtifactRecord {
            stage: input.stage.clone(),
            name: input.name.clone(),
            path: relative,
            media_type: "application/octet-stream".into(),
            size,
            sha256,
        });
    }
    let secret_values = SecretValues::load(&pipeline.secrets);
    let masker = secret_values.masker();
    let mut record = pending_record(spec, None);
    record.depends_on = Vec::new();
    let prepared = super::preflight(spec, &secret_values).and_then(|secrets| {
        plugin::load(host, plugin_path, &spec.name, CapSet::of(&spec.grants))
            .map(|plugin| (secrets, plugin))
            .map_err(|err| err.to_string())
    });
    let (secrets, plugin) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            // As in a pipeline run: a stage whose plugin cannot be prepared is an error.
            super::prepare::refuse_unprepared(&mut record, message, events);
            return finish(record, &layout, events);
        }
    };
    record.plugin.sha256 = Some(plugin.sha256.clone());
    record.plugin.size = Some(plugin.size);
    let cache = StageCache::new(None);
    // Every given input is what the stage may read, whatever its `inputs` say.
    let mut spec = spec.clone();
    spec.inputs = crate::config::pipeline::InputSelection::AllEarlier;
    let execution = StageExecution {
        host,
        pipeline,
        spec: &spec,
        plugin: &plugin,
        layout: &layout,
        events,
        secrets: &secrets,
        masker: &masker,
        earlier: Vec::new(),
        // Ctrl-C ends the process; the watchman kills what the stage started.
        interrupt: None,
        cancel: Interrupt::new(),
        stage_cache: &cache,
    };
    execution.execute(&available, &mut record).await;
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
