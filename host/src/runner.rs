//! Runs a pipeline: prepares every plugin up front, runs the stages in order, hands each the
//! artifacts of earlier ones, stops at the first stage that does not succeed, and records it all.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use wasmtime::Store;

use crate::artifacts::{self, ArtifactRecord};
use crate::bindings::sluice::pipeline::types::{Artifact, Phase, StageRun as EarlierStage};
use crate::bindings::{StageContext, StageResult};
use crate::capabilities::CapSet;
use crate::capture::StageLog;
use crate::engine::Host;
use crate::events::{Event, EventSink};
use crate::layout::RunLayout;
use crate::manifest::{InputSelection, Pipeline, StageSpec, When};
use crate::plugin::{self, Plugin};
use crate::provenance;
use crate::report::{PluginRecord, REPORT_SCHEMA, RunReport, RunStatus, StageRecord, StageStatus};
use crate::sandbox::{GUEST_INPUT_DIR, GUEST_OUTPUT_DIR, SandboxSpec, StageState};
use crate::secrets::{Masker, SecretValues};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a run is set up beyond what the pipeline file says.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Where run folders go; default `<pipeline dir>/.sluice/runs`.
    pub runs_dir: Option<PathBuf>,
    /// Stages approved in advance (`--approve STAGE`).
    pub approve: Vec<String>,
    /// Asks a person about the other gated stages; without one, the run stops at the gate.
    pub approver: Option<Arc<dyn Approver>>,
    /// Set (e.g. on Ctrl-C) to stop the running stage; the run is still recorded.
    pub interrupt: Option<Interrupt>,
}

/// A request to stop the run, shared between a signal handler and the runner.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<tokio::sync::watch::Sender<bool>>);

impl Interrupt {
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }

    /// Asks the run to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once triggered.
    async fn triggered(&self) {
        let mut receiver = self.0.subscribe();
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("runs_dir", &self.runs_dir)
            .field("approve", &self.approve)
            .field("approver", &self.approver.is_some())
            .field("interrupt", &self.interrupt.is_some())
            .finish()
    }
}

/// Decides a manual gate (`approval = "manual"`) when it was not approved in advance.
pub trait Approver: Send + Sync {
    /// True to run `stage` now; false leaves the run waiting for approval.
    fn approve(&self, pipeline: &str, stage: &str) -> bool;
}

/// What a finished run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    pub report_path: PathBuf,
}

/// Runs `pipeline` to its end, to the first stage that does not succeed (then only its
/// `when = "on-failure"` stages), or to a gate nobody approved.
pub async fn run(
    host: &Host,
    pipeline: &Pipeline,
    options: &RunOptions,
    events: &EventSink,
) -> Result<RunOutcome> {
    let runs_root = options
        .runs_dir
        .clone()
        .unwrap_or_else(|| pipeline.dir.join(".sluice").join("runs"));
    let layout = RunLayout::create(&runs_root)?;
    let records = pipeline.stages.iter().map(pending_record).collect();
    let history = RunHistory {
        started_at: rfc3339(SystemTime::now()),
        resumed_at: Vec::new(),
        pipeline_sha256: pipeline_digest(pipeline)?,
    };
    drive(host, pipeline, options, events, layout, records, history, 0).await
}

/// Continues a run that stopped at a gate, from its stored artifacts: finished stages are not
/// run again. The gated stage must be approved in `options`.
pub async fn resume(
    host: &Host,
    pipeline: &Pipeline,
    run_dir: &Path,
    options: &RunOptions,
    events: &EventSink,
) -> Result<RunOutcome> {
    let report = RunReport::read(&run_dir.join("report.json"))?;
    anyhow::ensure!(
        report.status == RunStatus::AwaitingApproval,
        "run {} is not waiting for approval (it {}); start a new run instead",
        report.run_id,
        report.status.label()
    );
    let digest = pipeline_digest(pipeline)?;
    anyhow::ensure!(
        digest == report.pipeline_sha256,
        "{} changed since run {} started; a resumed run must use the same pipeline, so start a new run",
        pipeline.file.display(),
        report.run_id
    );
    let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    let recorded: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    anyhow::ensure!(
        names == recorded,
        "the run's stages do not match the pipeline's"
    );
    let gate = report
        .stages
        .iter()
        .position(|s| s.status == StageStatus::AwaitingApproval)
        .context("the run records no stage waiting for approval")?;
    let mut records = report.stages;
    records[gate] = pending_record(&pipeline.stages[gate]);
    let layout = RunLayout::open(run_dir, &report.run_id);
    let mut resumed_at = report.resumed_at;
    resumed_at.push(rfc3339(SystemTime::now()));
    let history = RunHistory {
        started_at: report.started_at,
        resumed_at,
        pipeline_sha256: digest,
    };
    drive(
        host, pipeline, options, events, layout, records, history, gate,
    )
    .await
}

/// What a report keeps across a resume.
struct RunHistory {
    started_at: String,
    resumed_at: Vec<String>,
    pipeline_sha256: String,
}

fn pipeline_digest(pipeline: &Pipeline) -> Result<String> {
    let bytes = std::fs::read(&pipeline.file)
        .with_context(|| format!("cannot read {}", pipeline.file.display()))?;
    Ok(artifacts::sha256_bytes(&bytes))
}

/// Runs stages `start..` given the records of the ones before.
#[allow(clippy::too_many_arguments)]
async fn drive(
    host: &Host,
    pipeline: &Pipeline,
    options: &RunOptions,
    events: &EventSink,
    layout: RunLayout,
    mut records: Vec<StageRecord>,
    history: RunHistory,
    start: usize,
) -> Result<RunOutcome> {
    let clock = Instant::now();
    events.emit(Event::RunStarted {
        run_id: layout.run_id.clone(),
        pipeline: pipeline.name.clone(),
        run_dir: layout.dir.clone(),
        stages: pipeline.stages.iter().map(|s| s.name.clone()).collect(),
        at: SystemTime::now(),
    });
    for record in &records[..start] {
        events.emit(Event::StageFinished {
            stage: record.name.clone(),
            status: record.status,
            elapsed: Duration::from_secs_f64(record.duration_ms.unwrap_or(0.0) / 1000.0),
            message: Some("done in an earlier session of this run".into()),
        });
    }
    // A failure before `start` (a gate on a rollback stage) still counts.
    let mut stopped_by: Option<(String, StageStatus)> = records[..start]
        .iter()
        .find(|r| {
            matches!(
                r.status,
                StageStatus::Failed | StageStatus::Crashed | StageStatus::Error
            )
        })
        .map(|r| (r.name.clone(), r.status));

    // Every plugin is loaded before anything runs: a typo in the last stage's plugin path
    // should not cost the user a full build first.
    let count = pipeline.stages.len();
    let mut plugins: Vec<Option<Plugin>> = (0..count).map(|_| None).collect();
    let mut granted_secrets: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); count];
    let secret_values = SecretValues::load(&pipeline.secrets);
    let masker = secret_values.masker();
    let mut preflight_failed = false;
    for index in start..count {
        let (spec, record) = (&pipeline.stages[index], &mut records[index]);
        let prepared = preflight(spec, &secret_values).and_then(|secrets| {
            let caps = CapSet::of(&spec.grants);
            if spec.registry.is_some() && spec.pin.is_none() {
                return Err(format!(
                    "registry plugin {} was not resolved before the run",
                    spec.plugin_ref
                ));
            }
            let plugin = plugin::load(host, &spec.plugin_path, &spec.name, caps)
                .map_err(|err| err.to_string())?;
            if let Some(pin) = &spec.pin
                && pin.layer_digest.trim_start_matches("sha256:") != plugin.sha256
            {
                return Err(format!(
                    "the local copy of {} changed after it was verified (pinned {}, found sha256:{})",
                    spec.plugin_ref, pin.layer_digest, plugin.sha256
                ));
            }
            Ok((plugin, secrets))
        });
        match prepared {
            Ok((plugin, secrets)) => {
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
                plugins[index] = Some(plugin);
                granted_secrets[index] = secrets;
            }
            Err(message) => {
                record.status = StageStatus::Error;
                record.message = Some(message.clone());
                events.emit(Event::StageFinished {
                    stage: spec.name.clone(),
                    status: StageStatus::Error,
                    elapsed: Duration::ZERO,
                    message: Some(message),
                });
                stopped_by.get_or_insert((spec.name.clone(), StageStatus::Error));
                preflight_failed = true;
                break;
            }
        }
    }

    let mut published: Vec<ArtifactRecord> = records[..start]
        .iter()
        .filter(|r| r.status == StageStatus::Succeeded)
        .flat_map(|r| r.outputs.iter().cloned())
        .collect();
    let mut awaiting: Option<String> = None;
    for index in start..count {
        let spec = &pipeline.stages[index];
        if records[index].status != StageStatus::Pending {
            continue;
        }
        let interrupted = options
            .interrupt
            .as_ref()
            .is_some_and(Interrupt::is_triggered);
        let skip = if interrupted {
            Some("not run: the run was interrupted".to_string())
        } else if preflight_failed {
            Some("not run: a plugin could not be prepared".to_string())
        } else {
            match (&stopped_by, spec.when) {
                (None, When::OnFailure) => Some("not run: no earlier stage failed".to_string()),
                (Some((stopper, status)), When::OnSuccess) => {
                    Some(format!("not run: stage `{stopper}` {}", status.label()))
                }
                // A rollback that needs the deploy's record runs only if the deploy ran.
                _ => unmet_inputs(&spec.inputs, &records[..index]),
            }
        };
        if let Some(message) = skip {
            records[index].status = StageStatus::Skipped;
            records[index].message = Some(message.clone());
            events.emit(Event::StageFinished {
                stage: spec.name.clone(),
                status: StageStatus::Skipped,
                elapsed: Duration::ZERO,
                message: Some(message),
            });
            continue;
        }
        let approved = !spec.manual_approval
            || options.approve.iter().any(|s| s == &spec.name)
            || options
                .approver
                .as_ref()
                .is_some_and(|a| a.approve(&pipeline.name, &spec.name));
        if !approved {
            let message = format!(
                "waiting for approval; continue with `sluice resume {} --approve {}`",
                layout.run_id, spec.name
            );
            records[index].status = StageStatus::AwaitingApproval;
            records[index].message = Some(message.clone());
            events.emit(Event::StageFinished {
                stage: spec.name.clone(),
                status: StageStatus::AwaitingApproval,
                elapsed: Duration::ZERO,
                message: Some(message),
            });
            awaiting = Some(spec.name.clone());
            break;
        }
        let Some(plugin) = plugins[index].as_ref() else {
            continue;
        };
        let earlier = earlier_stages(&records[..index]);
        let record = &mut records[index];
        let execution = StageExecution {
            host,
            pipeline,
            spec,
            plugin,
            layout: &layout,
            events,
            secrets: &granted_secrets[index],
            masker: &masker,
            earlier,
            interrupt: options.interrupt.clone(),
        };
        execution.execute(&published, record).await;
        if record.status == StageStatus::Succeeded {
            published.extend(record.outputs.iter().cloned());
        } else {
            stopped_by.get_or_insert((spec.name.clone(), record.status));
        }
    }

    let status = match (&awaiting, &stopped_by) {
        (Some(_), _) => RunStatus::AwaitingApproval,
        (None, None) => RunStatus::Succeeded,
        (None, Some((_, stage_status))) => RunStatus::from_stopping_stage(*stage_status),
    };
    let elapsed = clock.elapsed();
    let report = RunReport {
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
        finished_at: rfc3339(SystemTime::now()),
        duration_ms: millis(elapsed),
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        stages: records,
        provenance: None,
    };
    let mut report = report;
    let provenance_note =
        match provenance::write_for_run(pipeline, &report, &layout.dir, &secret_values) {
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
    let report_path = layout.report_path();
    report.write_to(&report_path)?;
    events.emit(Event::RunFinished {
        status,
        stopped_by: awaiting.or(stopped_by.map(|(stage, _)| stage)),
        elapsed,
        report: report_path.clone(),
        provenance: provenance_note,
    });
    Ok(RunOutcome {
        report,
        report_path,
    })
}

/// What must hold before a stage can run at all; returns the secret values it is granted.
pub(crate) fn preflight(
    spec: &StageSpec,
    secrets: &SecretValues,
) -> Result<BTreeMap<String, String>, String> {
    for dir in &spec.grants.dirs {
        if !dir.optional && !dir.host.is_dir() {
            return Err(format!(
                "granted dir {} (mounted at {}) does not exist; create it or fix `allow.dirs`",
                dir.host.display(),
                dir.guest
            ));
        }
    }
    let mut granted = BTreeMap::new();
    for name in &spec.grants.secrets {
        let value = secrets
            .get(name)
            .map_err(|why| format!("secret `{name}` cannot be loaded: {why}"))?;
        granted.insert(name.clone(), value.to_string());
    }
    Ok(granted)
}

/// Why a stage's explicit inputs cannot be met because their stage did not succeed.
fn unmet_inputs(selection: &InputSelection, records: &[StageRecord]) -> Option<String> {
    let InputSelection::Only(refs) = selection else {
        return None;
    };
    refs.iter().find_map(|input| {
        let producer = records.iter().find(|r| r.name == input.stage)?;
        (producer.status != StageStatus::Succeeded).then(|| {
            format!(
                "not run: it needs `{input}`, but stage `{}` {}",
                producer.name,
                if producer.status == StageStatus::Skipped {
                    "did not run".to_string()
                } else {
                    producer.status.label().to_string()
                }
            )
        })
    })
}

/// What a stage is told about the stages that ran before it.
fn earlier_stages(records: &[StageRecord]) -> Vec<EarlierStage> {
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

fn pending_record(spec: &StageSpec) -> StageRecord {
    let (manifest_digest, signed_by) = crate::resolve::Pin::recorded(spec.pin.as_ref());
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
        denied: Vec::new(),
    }
}

/// One stage's execution, with everything it needs borrowed from the run.
struct StageExecution<'a> {
    host: &'a Host,
    pipeline: &'a Pipeline,
    spec: &'a StageSpec,
    plugin: &'a Plugin,
    layout: &'a RunLayout,
    events: &'a EventSink,
    /// Values of the secrets this stage is granted.
    secrets: &'a BTreeMap<String, String>,
    /// Masks every secret of the pipeline in what is logged and recorded.
    masker: &'a Masker,
    /// The stages that ran before this one.
    earlier: Vec<EarlierStage>,
    interrupt: Option<Interrupt>,
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

    /// Adds what sluice refused the stage, which is often why it failed.
    fn explained_by(mut self, denied: &[String]) -> Self {
        if !denied.is_empty()
            && let Some(message) = self.message.as_mut()
        {
            message.push_str(&format!(" (sluice denied: {})", denied.join("; ")));
        }
        self
    }
}

impl StageExecution<'_> {
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
            self.masker.clone(),
            self.spec.limits.log,
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
        if !self.masker.is_empty() {
            self.sweep_secrets(&self.layout.artifacts_of(name));
        }
        let elapsed = clock.elapsed();
        record.status = ending.status;
        record.duration_ms = Some(millis(elapsed));
        let masked = |text: Option<String>| text.map(|t| self.masker.mask(&t).into_owned());
        let ending = Ending {
            status: ending.status,
            message: masked(ending.message),
        };
        record.summary = masked(record.summary.take());
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
        let spec = SandboxSpec {
            stage: name,
            inputs: (!inputs.is_empty()).then_some(in_dir.as_path()),
            outputs: Some(out_dir.as_path()),
            workspace: Some(&self.pipeline.workspace),
            grants: &self.spec.grants,
            limits: self.spec.limits,
            secrets: self.secrets,
        };
        let state = match StageState::new(&spec, log.clone()) {
            Ok(state) => state,
            Err(err) => return Ending::error(format!("{err:#}")),
        };
        let mut store = Store::new(&self.host.engine, state);
        store.limiter(|state| &mut state.limiter);
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
                earlier: self.earlier.clone(),
            };
            let result = instance.call_run(&mut store, &context).await?;
            wasmtime::Result::Ok((info, result))
        };
        let limits = self.spec.limits;
        let interrupt = self.interrupt.clone().unwrap_or_default();
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(limits.timeout, call) => Some(outcome),
            () = interrupt.triggered(), if self.interrupt.is_some() => None,
        };
        record.denied = store.data().denials();
        let Some(outcome) = outcome else {
            return Ending::error(
                "interrupted (Ctrl-C) and stopped; earlier artifacts are kept".into(),
            );
        };
        let ending = match outcome {
            Err(_) => Err(Ending::error(format!(
                "exceeded its {} timeout and was stopped",
                humantime::format_duration(limits.timeout)
            ))),
            Ok(Err(_)) if store.data().memory_exceeded() => Err(Ending::error(format!(
                "exceeded its {} memory limit and was stopped",
                crate::grants::fmt_bytes(limits.memory)
            ))),
            Ok(Err(_)) if log.overflowed() => Err(Ending::error(format!(
                "exceeded its {} log limit and was stopped",
                crate::grants::fmt_bytes(limits.log)
            ))),
            Ok(Err(trap)) => {
                // The wasm backtrace helps plugin authors; it is kept in the log, shown with -v.
                let _ = log.message(crate::events::LogSource::Debug, &format!("{trap:?}"));
                let mut message = format!("the plugin trapped: {}", trap_message(&trap));
                if let Some(tail) = log.stderr_tail() {
                    message.push_str(&format!("; it printed: {tail}"));
                }
                Err(Ending {
                    status: StageStatus::Crashed,
                    message: Some(message),
                })
            }
            Ok(Ok(done)) => Ok(done),
        };
        let (info, result) = match ending {
            Ok(done) => done,
            Err(ending) => return ending.explained_by(&record.denied),
        };
        record.phase = Some(phase_name(info.phase).to_string());
        record.plugin.name = Some(info.name);
        record.plugin.version = Some(info.version);
        match result {
            Err(failure) => Ending {
                status: StageStatus::Failed,
                message: Some(failure.message),
            }
            .explained_by(&record.denied),
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

    /// Deletes any file under `dir` that holds a secret value, declared or not: secrets never
    /// stay on disk in a run folder.
    fn sweep_secrets(&self, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(next) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&next) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => stack.push(path),
                    Ok(kind) if kind.is_file() => {
                        let leaked = std::fs::read(&path).is_ok_and(|b| self.masker.found_in(&b));
                        if leaked && std::fs::remove_file(&path).is_ok() {
                            self.events.emit(Event::Log {
                                stage: self.spec.name.clone(),
                                source: crate::events::LogSource::Warn,
                                line: format!(
                                    "sluice deleted {}: it contained a secret value",
                                    path.strip_prefix(dir).unwrap_or(&path).display()
                                ),
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Checks and hashes what the stage declared; any broken promise fails the stage.
    fn publish(&self, result: StageResult, out_dir: &Path, record: &mut StageRecord) -> Ending {
        let name = &self.spec.name;
        let limits = self.spec.limits;
        record.summary = result.summary;
        if result.outputs.len() as u64 > limits.outputs {
            return Ending::error(format!(
                "declared {} outputs, over its limit of {}",
                result.outputs.len(),
                limits.outputs
            ));
        }
        let mut total: u64 = 0;
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
            let file = out_dir.join(&output.name);
            let (sha256, size) = match artifacts::sha256_file(&file) {
                Ok(digest) => digest,
                Err(err) => return Ending::error(format!("{err:#}")),
            };
            total = total.saturating_add(size);
            if total > limits.output_size {
                return Ending::error(format!(
                    "wrote more than its {} output size limit",
                    crate::grants::fmt_bytes(limits.output_size)
                ));
            }
            if !self.masker.is_empty()
                && std::fs::read(&file).is_ok_and(|bytes| self.masker.found_in(&bytes))
            {
                // The file must not stay on disk either.
                let removed = std::fs::remove_file(&file).is_ok();
                return Ending::error(format!(
                    "output `{}` contains the value of a secret; secrets must never be written to artifacts ({})",
                    output.name,
                    if removed {
                        "the file was deleted"
                    } else {
                        "the file could not be deleted"
                    }
                ));
            }
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
                format!("{text} (a panic or abort in the plugin ends this way)")
            }
            _ => text,
        };
    }
    err.root_cause().to_string()
}

fn tracing_note(log: &StageLog, message: &str) {
    let _ = log.message(crate::events::LogSource::Warn, message);
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
