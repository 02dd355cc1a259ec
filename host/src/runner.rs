//! Runs a pipeline: prepares every plugin up front, runs the stages in order, hands each the
//! artifacts of earlier ones, stops at the first stage that does not succeed, and records it all.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use wasmtime::Store;

use crate::artifacts::{self, ArtifactRecord};
use crate::bindings::sluice::pipeline::types::{Artifact, Phase};
use crate::bindings::{StageContext, StageResult};
use crate::capture::StageLog;
use crate::engine::Host;
use crate::events::{Event, EventSink};
use crate::layout::RunLayout;
use crate::manifest::{InputSelection, Pipeline, StageSpec};
use crate::plugin::{self, Plugin};
use crate::report::{PluginRecord, REPORT_SCHEMA, RunReport, RunStatus, StageRecord, StageStatus};
use crate::sandbox::{GUEST_INPUT_DIR, GUEST_OUTPUT_DIR, Mounts, StageState};

/// How a run is set up beyond what the pipeline file says.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where run folders go; default `<pipeline dir>/.sluice/runs`.
    pub runs_dir: Option<PathBuf>,
}

/// What a finished run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    pub report_path: PathBuf,
}

/// Runs `pipeline` to its end or to the first stage that does not succeed.
pub async fn run(
    host: &Host,
    pipeline: &Pipeline,
    options: &RunOptions,
    events: &EventSink,
) -> Result<RunOutcome> {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let runs_root = options
        .runs_dir
        .clone()
        .unwrap_or_else(|| pipeline.dir.join(".sluice").join("runs"));
    let layout = RunLayout::create(&runs_root)?;
    events.emit(Event::RunStarted {
        run_id: layout.run_id.clone(),
        pipeline: pipeline.name.clone(),
        run_dir: layout.dir.clone(),
        stages: pipeline.stages.iter().map(|s| s.name.clone()).collect(),
        at: started_at,
    });

    let mut records: Vec<StageRecord> = pipeline.stages.iter().map(pending_record).collect();
    // Every plugin is loaded before anything runs: a typo in the last stage's plugin path
    // should not cost the user a full build first.
    let mut plugins: Vec<Plugin> = Vec::with_capacity(pipeline.stages.len());
    let mut stopped_by: Option<(String, StageStatus)> = None;
    for (spec, record) in pipeline.stages.iter().zip(records.iter_mut()) {
        match plugin::load(host, &spec.plugin_path) {
            Ok(plugin) => {
                record.plugin.sha256 = Some(plugin.sha256.clone());
                record.plugin.size = Some(plugin.size);
                record.plugin.cache_hit = Some(plugin.cache == crate::cache::CacheOutcome::Hit);
                record.plugin.load_ms = Some(millis(plugin.load_time));
                events.emit(Event::PluginReady {
                    stage: spec.name.clone(),
                    plugin: spec.plugin_ref.clone(),
                    cache_hit: plugin.cache == crate::cache::CacheOutcome::Hit,
                    load_time: plugin.load_time,
                });
                plugins.push(plugin);
            }
            Err(err) => {
                let message = err.to_string();
                record.status = StageStatus::Error;
                record.message = Some(message.clone());
                events.emit(Event::StageFinished {
                    stage: spec.name.clone(),
                    status: StageStatus::Error,
                    elapsed: Duration::ZERO,
                    message: Some(message),
                });
                stopped_by = Some((spec.name.clone(), StageStatus::Error));
                break;
            }
        }
    }

    let mut published: Vec<ArtifactRecord> = Vec::new();
    for (index, spec) in pipeline.stages.iter().enumerate() {
        if let Some((stopper, status)) = &stopped_by {
            if records[index].status == StageStatus::Pending {
                let message = format!("not run: stage `{stopper}` {}", status.label());
                records[index].status = StageStatus::Skipped;
                records[index].message = Some(message.clone());
                events.emit(Event::StageFinished {
                    stage: spec.name.clone(),
                    status: StageStatus::Skipped,
                    elapsed: Duration::ZERO,
                    message: Some(message),
                });
            }
            continue;
        }
        let record = &mut records[index];
        let plugin = &plugins[index];
        let stage_run = StageRun {
            host,
            pipeline,
            spec,
            plugin,
            layout: &layout,
            events,
        };
        stage_run.execute(&published, record).await;
        if record.status == StageStatus::Succeeded {
            published.extend(record.outputs.iter().cloned());
        } else {
            stopped_by = Some((spec.name.clone(), record.status));
        }
    }

    let status = match &stopped_by {
        None => RunStatus::Succeeded,
        Some((_, stage_status)) => RunStatus::from_stopping_stage(*stage_status),
    };
    let elapsed = clock.elapsed();
    let report = RunReport {
        schema: REPORT_SCHEMA,
        pipeline: pipeline.name.clone(),
        pipeline_file: pipeline.file.display().to_string(),
        run_id: layout.run_id.clone(),
        run_dir: layout.dir.display().to_string(),
        status,
        exit_code: status.exit_code(),
        started_at: rfc3339(started_at),
        finished_at: rfc3339(SystemTime::now()),
        duration_ms: millis(elapsed),
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        stages: records,
    };
    let report_path = layout.report_path();
    report.write_to(&report_path)?;
    events.emit(Event::RunFinished {
        status,
        stopped_by: stopped_by.map(|(stage, _)| stage),
        elapsed,
        report: report_path.clone(),
    });
    Ok(RunOutcome {
        report,
        report_path,
    })
}

fn pending_record(spec: &StageSpec) -> StageRecord {
    StageRecord {
        name: spec.name.clone(),
        phase: None,
        status: StageStatus::Pending,
        plugin: PluginRecord {
            reference: spec.plugin_ref.clone(),
            sha256: None,
            size: None,
            name: None,
            version: None,
            cache_hit: None,
            load_ms: None,
        },
        started_at: None,
        duration_ms: None,
        outputs: Vec::new(),
        inputs: Vec::new(),
        summary: None,
        message: None,
        log: None,
    }
}

/// One stage's execution, with everything it needs borrowed from the run.
struct StageRun<'a> {
    host: &'a Host,
    pipeline: &'a Pipeline,
    spec: &'a StageSpec,
    plugin: &'a Plugin,
    layout: &'a RunLayout,
    events: &'a EventSink,
}

/// How a stage ended, before it is written into its record.
struct Ending {
    status: StageStatus,
    message: Option<String>,
}

impl Ending {
    fn error(message: String) -> Self {
        Self {
            status: StageStatus::Error,
            message: Some(message),
        }
    }
}

impl StageRun<'_> {
    /// Runs the stage and fills in `record`. Never fails: whatever goes wrong becomes the
    /// stage's status and message, so the run can still be recorded.
    async fn execute(&self, published: &[ArtifactRecord], record: &mut StageRecord) {
        let name = &self.spec.name;
        self.events.emit(Event::StageStarted {
            stage: name.clone(),
        });
        record.started_at = Some(rfc3339(SystemTime::now()));
        let clock = Instant::now();
        let log_rel = self.layout.log_rel(name);
        let ending = match StageLog::new(
            name,
            Some(&self.layout.dir.join(&log_rel)),
            self.events.clone(),
        ) {
            Ok(log) => {
                record.log = Some(log_rel);
                let ending = self.run_in_sandbox(published, &log, record).await;
                if let Err(err) = log.finish() {
                    tracing_note(&log, &format!("{err:#}"));
                }
                ending
            }
            Err(err) => Ending::error(format!("cannot create its log: {err:#}")),
        };
        let _ = std::fs::remove_dir_all(self.layout.work_of(name));
        let elapsed = clock.elapsed();
        record.status = ending.status;
        record.duration_ms = Some(millis(elapsed));
        record.message = ending.message.clone();
        let message = if ending.status == StageStatus::Succeeded {
            record.summary.clone()
        } else {
            ending.message
        };
        self.events.emit(Event::StageFinished {
            stage: name.clone(),
            status: ending.status,
            elapsed,
            message,
        });
    }

    async fn run_in_sandbox(
        &self,
        published: &[ArtifactRecord],
        log: &StageLog,
        record: &mut StageRecord,
    ) -> Ending {
        let name = &self.spec.name;
        let inputs = match select_inputs(&self.spec.inputs, published) {
            Ok(inputs) => inputs,
            Err(message) => return Ending::error(message),
        };
        record.inputs = inputs.iter().map(|a| a.reference()).collect();
        let in_dir = self.layout.work_of(name).join("in");
        let out_dir = self.layout.artifacts_of(name);
        if let Err(err) = self.stage_files(&inputs, &in_dir, &out_dir) {
            return Ending::error(format!("cannot prepare its files: {err:#}"));
        }
        let mounts = Mounts {
            inputs: (!inputs.is_empty()).then_some(in_dir.as_path()),
            outputs: Some(out_dir.as_path()),
        };
        let state = match StageState::new(name, log.clone(), mounts) {
            Ok(state) => state,
            Err(err) => return Ending::error(format!("{err:#}")),
        };
        let mut store = Store::new(&self.host.engine, state);
        store.epoch_deadline_async_yield_and_update(1);

        let guest_inputs: Vec<Artifact> = inputs
            .iter()
            .map(|a| Artifact {
                stage: a.stage.clone(),
                name: a.name.clone(),
                path: format!("{GUEST_INPUT_DIR}/{}/{}", a.stage, a.name),
                media_type: a.media_type.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
            })
            .collect();
        let call = async {
            let instance = self.plugin.pre.instantiate_async(&mut store).await?;
            let info = instance.call_describe(&mut store).await?;
            let context = StageContext {
                pipeline: self.pipeline.name.clone(),
                run_id: self.layout.run_id.clone(),
                stage: name.clone(),
                phase: info.phase,
                config: self.spec.config_json.clone(),
                inputs: guest_inputs,
                output_dir: GUEST_OUTPUT_DIR.to_string(),
            };
            let result = instance.call_run(&mut store, &context).await?;
            wasmtime::Result::Ok((info, result))
        };
        let (info, result) = match tokio::time::timeout(self.spec.timeout, call).await {
            Err(_) => {
                return Ending::error(format!(
                    "exceeded its {} timeout and was stopped",
                    humantime::format_duration(self.spec.timeout)
                ));
            }
            Ok(Err(trap)) => {
                // The wasm backtrace helps plugin authors; it is kept in the log, shown with -v.
                log.message(crate::events::LogSource::Debug, &format!("{trap:?}"));
                let mut message = format!("the plugin trapped: {}", trap_message(&trap));
                if let Some(tail) = log.stderr_tail() {
                    message.push_str(&format!("; it printed: {tail}"));
                }
                return Ending {
                    status: StageStatus::Crashed,
                    message: Some(message),
                };
            }
            Ok(Ok(done)) => done,
        };
        record.phase = Some(phase_name(info.phase).to_string());
        record.plugin.name = Some(info.name);
        record.plugin.version = Some(info.version);
        match result {
            Err(failure) => Ending {
                status: StageStatus::Failed,
                message: Some(failure.message),
            },
            Ok(result) => self.publish(result, &out_dir, record),
        }
    }

    fn stage_files(&self, inputs: &[&ArtifactRecord], in_dir: &Path, out_dir: &Path) -> Result<()> {
        for artifact in inputs {
            artifacts::link_or_copy(
                &self.layout.dir.join(&artifact.path),
                &in_dir.join(&artifact.stage).join(&artifact.name),
            )?;
        }
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))
    }

    /// Checks and hashes what the stage declared; any broken promise fails the stage.
    fn publish(&self, result: StageResult, out_dir: &Path, record: &mut StageRecord) -> Ending {
        let name = &self.spec.name;
        record.summary = result.summary;
        let mut outputs = Vec::with_capacity(result.outputs.len());
        for output in result.outputs {
            if outputs
                .iter()
                .any(|o: &ArtifactRecord| o.name == output.name)
            {
                let err = artifacts::OutputError::Duplicate { name: output.name };
                return Ending::error(format!("broke the output contract: {err}"));
            }
            if let Err(err) = artifacts::check_output(out_dir, &output.name) {
                return Ending::error(format!("broke the output contract: {err}"));
            }
            let (sha256, size) = match artifacts::sha256_file(&out_dir.join(&output.name)) {
                Ok(digest) => digest,
                Err(err) => return Ending::error(format!("{err:#}")),
            };
            let media_type = if output.media_type.trim().is_empty() {
                "application/octet-stream".to_string()
            } else {
                output.media_type
            };
            let artifact = ArtifactRecord {
                stage: name.clone(),
                path: format!("artifacts/{name}/{}", output.name),
                name: output.name,
                media_type,
                size,
                sha256,
            };
            self.events.emit(Event::ArtifactWritten {
                stage: name.clone(),
                artifact: artifact.clone(),
            });
            outputs.push(artifact);
        }
        record.outputs = outputs;
        Ending {
            status: StageStatus::Succeeded,
            message: None,
        }
    }
}

/// The artifacts a stage may read, or why its `inputs` cannot be met.
fn select_inputs<'a>(
    selection: &InputSelection,
    published: &'a [ArtifactRecord],
) -> Result<Vec<&'a ArtifactRecord>, String> {
    let InputSelection::Only(refs) = selection else {
        return Ok(published.iter().collect());
    };
    let mut chosen: Vec<&ArtifactRecord> = Vec::new();
    for input in refs {
        let from_stage: Vec<&ArtifactRecord> = published
            .iter()
            .filter(|a| a.stage == input.stage)
            .collect();
        let matching: Vec<&ArtifactRecord> = match &input.name {
            None => from_stage.clone(),
            Some(name) => from_stage
                .iter()
                .copied()
                .filter(|a| &a.name == name)
                .collect(),
        };
        if matching.is_empty() && input.name.is_some() {
            let produced: Vec<&str> = from_stage.iter().map(|a| a.name.as_str()).collect();
            return Err(format!(
                "input `{input}` was not produced: stage `{}` published {}",
                input.stage,
                if produced.is_empty() {
                    "no outputs".to_string()
                } else {
                    produced.join(", ")
                }
            ));
        }
        for artifact in matching {
            if !chosen.iter().any(|c| std::ptr::eq(*c, artifact)) {
                chosen.push(artifact);
            }
        }
    }
    Ok(chosen)
}

/// A one-line reason for a trap or host error, without the wasm backtrace.
pub fn trap_message(err: &wasmtime::Error) -> String {
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        let text = trap.to_string();
        return match trap {
            wasmtime::Trap::UnreachableCodeReached => {
                format!("{text} (a Rust panic or C abort ends this way)")
            }
            _ => text,
        };
    }
    err.root_cause().to_string()
}

fn tracing_note(log: &StageLog, message: &str) {
    log.message(crate::events::LogSource::Warn, message);
}

pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Code => "code",
        Phase::Build => "build",
        Phase::Test => "test",
        Phase::Release => "release",
        Phase::Deploy => "deploy",
        Phase::Monitor => "monitor",
        Phase::Other => "other",
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::InputRef;

    fn artifact(stage: &str, name: &str) -> ArtifactRecord {
        ArtifactRecord {
            stage: stage.into(),
            name: name.into(),
            path: format!("artifacts/{stage}/{name}"),
            media_type: "text/plain".into(),
            size: 1,
            sha256: "00".into(),
        }
    }

    #[test]
    fn selects_named_wildcard_and_all_inputs() {
        let published = [artifact("a", "x"), artifact("a", "y"), artifact("b", "z")];
        let all = select_inputs(&InputSelection::AllEarlier, &published).unwrap_or_default();
        assert_eq!(all.len(), 3);
        let refs = InputSelection::Only(vec![
            InputRef {
                stage: "b".into(),
                name: Some("z".into()),
            },
            InputRef {
                stage: "a".into(),
                name: None,
            },
            InputRef {
                stage: "b".into(),
                name: None,
            },
        ]);
        let chosen = select_inputs(&refs, &published).unwrap_or_default();
        let names: Vec<String> = chosen.iter().map(|a| a.reference()).collect();
        assert_eq!(names, ["b/z", "a/x", "a/y"]);
    }

    #[test]
    fn a_missing_named_input_says_what_exists() {
        let published = [artifact("a", "x")];
        let refs = InputSelection::Only(vec![InputRef {
            stage: "a".into(),
            name: Some("nope".into()),
        }]);
        let err = select_inputs(&refs, &published).err().unwrap_or_default();
        assert!(err.contains("`a/nope` was not produced"), "{err}");
        assert!(err.contains("published x"), "{err}");
    }
}
