//! Running one stage: its log, its files, its sandbox built from its grants, the call into the
//! plugin under its limits, and how it ended — whatever goes wrong becomes its record.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::Store;

use crate::config::limits::fmt_bytes;
use crate::config::pipeline::{Pipeline, StageSpec};
use crate::model::artifacts::{self, ArtifactRecord};
use crate::model::events::{Event, EventSink, LogSource};
use crate::model::layout::RunLayout;
use crate::model::report::{Attempt, StageRecord, StageStatus};
use crate::model::text::{MAX_FIELD_BYTES, MAX_MESSAGE_BYTES, one_line};
use crate::plugin::Plugin;
use crate::sandbox::bindings::StageContext;
use crate::sandbox::bindings::sluice::pipeline::types::{Artifact, StageRun as EarlierStage};
use crate::sandbox::capture::StageLog;
use crate::sandbox::engine::Host;
use crate::sandbox::spec::{GUEST_INPUT_DIR, GUEST_OUTPUT_DIR, SandboxSpec};
use crate::sandbox::state::StageState;
use crate::sandbox::trap::{phase_name, phase_named, trap_message};
use crate::trust::secrets::Masker;

use super::options::Interrupt;
use super::record::millis;
use super::schedule::select_inputs;
use super::stage_cache::StageCache;
use super::watch;

/// One stage's execution, with everything it needs borrowed from the run.
pub(crate) struct StageExecution<'a> {
    pub host: &'a Host,
    pub pipeline: &'a Pipeline,
    pub spec: &'a StageSpec,
    pub plugin: &'a Plugin,
    pub layout: &'a RunLayout,
    pub events: &'a EventSink,
    /// Values of the secrets this stage is granted.
    pub secrets: &'a BTreeMap<String, String>,
    /// Masks every secret of the pipeline in what is logged and recorded.
    pub masker: &'a Masker,
    /// The stages that ran before this one.
    pub earlier: Vec<EarlierStage>,
    /// The run's own interrupt (Ctrl-C, SIGTERM).
    pub interrupt: Option<Interrupt>,
    /// This stage's: the scheduler cancels it when a stage beside it fails (`fail_fast`).
    pub cancel: Interrupt,
    pub stage_cache: &'a StageCache,
}

/// Why a stage's call was stopped before it returned.
enum Stopped {
    Interrupted,
    Cancelled,
    Overrun(String),
}

/// How a stage ended, before it is written into its record.
pub(super) struct Ending {
    pub(super) status: StageStatus,
    pub(super) message: Option<String>,
}

impl Ending {
    pub(super) fn error(message: String) -> Self {
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
    /// Runs the stage — again after a pause, up to its `retries`, while it fails, crashes or
    /// errors — and fills in `record`. Never fails: whatever goes wrong becomes the stage's
    /// status and message, so the run can still be recorded.
    pub(crate) async fn execute(&self, available: &[ArtifactRecord], record: &mut StageRecord) {
        let name = &self.spec.name;
        let Some(started) = self.begin(available, record) else {
            return;
        };
        let mut attempt = 1;
        loop {
            let attempt_clock = Instant::now();
            self.attempt(available, record).await;
            let retry = record.status.is_failure()
                && attempt <= self.spec.retries
                && !self.cancel.is_triggered()
                && !self.interrupt.as_ref().is_some_and(Interrupt::is_triggered);
            if !retry {
                break;
            }
            let pause = Duration::from_millis(500 << (attempt - 1).min(5));
            self.events.emit(Event::Log {
                stage: name.clone(),
                source: LogSource::Warn,
                line: format!(
                    "sluice: attempt {attempt} of {} {}: {}; trying again in {}",
                    self.spec.retries + 1,
                    record.status.label(),
                    record.message.as_deref().unwrap_or(""),
                    humantime::format_duration(pause)
                ),
            });
            record.earlier_attempts.push(Attempt {
                status: record.status,
                message: record.message.take(),
                duration_ms: Some(millis(attempt_clock.elapsed())),
            });
            let interrupt = self.interrupt.clone().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.cancel.triggered() => {}
                () = interrupt.triggered(), if self.interrupt.is_some() => {}
            }
            attempt += 1;
        }
        if record.status.is_failure() {
            super::space::explain_full_disk(record, &self.layout.artifacts_of(name));
            record.failure_allowed = self.spec.allow_failure;
        }
        self.conclude(started, record);
    }

    pub(super) fn warn(&self, line: &str) {
        self.events.emit(Event::Log {
            stage: self.spec.name.clone(),
            source: LogSource::Warn,
            line: line.to_string(),
        });
    }

    /// One attempt: a fresh log and output folder, the call, the record filled in.
    async fn attempt(&self, available: &[ArtifactRecord], record: &mut StageRecord) {
        let name = &self.spec.name;
        let out_dir = self.layout.artifacts_of(name);
        // What an earlier attempt left is not this attempt's output.
        watch::empty(&out_dir);
        record.outputs.clear();
        record.summary = None;
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
                let ending = self.run_in_sandbox(available, &log, record).await;
                if ending.status != StageStatus::Succeeded {
                    // Published stages were tidied before publishing; nothing else may stay.
                    self.tidy_outputs(&out_dir, &log, &mut record.denied);
                }
                if let Err(err) = log.finish() {
                    tracing_note(&log, &format!("{err:#}"));
                }
                ending
            }
            Err(err) => Ending::error(format!("cannot create its log: {err:#}")),
        };
        let _ = std::fs::remove_dir_all(self.layout.work_of(name));
        record.status = ending.status;
        let masked = |text: Option<String>| text.map(|t| self.masker.mask(&t).into_owned());
        record.summary = masked(record.summary.take());
        for denied in &mut record.denied {
            // A refused URL or program line can carry a token.
            *denied = self.masker.mask(denied).into_owned();
        }
        record.message = masked(ending.message);
    }

    async fn run_in_sandbox(
        &self,
        available: &[ArtifactRecord],
        log: &StageLog,
        record: &mut StageRecord,
    ) -> Ending {
        let name = &self.spec.name;
        let inputs = match select_inputs(&self.spec.inputs, available) {
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
                // What the pipeline file says the stage is, before what the plugin says.
                phase: self
                    .spec
                    .phase
                    .as_deref()
                    .and_then(phase_named)
                    .unwrap_or(info.phase),
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
            outcome = tokio::time::timeout(limits.timeout, call) => Ok(outcome),
            () = interrupt.triggered(), if self.interrupt.is_some() => Err(Stopped::Interrupted),
            () = self.cancel.triggered() => Err(Stopped::Cancelled),
            why = watch::overrun(&out_dir, limits) => Err(Stopped::Overrun(why)),
        };
        record.denied = store.data().denials();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(Stopped::Interrupted) => {
                return Ending::error(interrupt.reason().unwrap_or_default());
            }
            Err(Stopped::Cancelled) => {
                return Ending {
                    status: StageStatus::Cancelled,
                    message: self.cancel.reason(),
                };
            }
            Err(Stopped::Overrun(why)) => {
                // The call (and every program it ran) is gone; so is what it wrote.
                watch::empty(&out_dir);
                return Ending::error(why);
            }
        };
        let ending = match outcome {
            Err(_) => Err(Ending::error(format!(
                "exceeded its {} timeout and was stopped",
                humantime::format_duration(limits.timeout)
            ))),
            Ok(Err(_)) if store.data().memory_exceeded() => Err(Ending::error(format!(
                "exceeded its {} memory limit and was stopped",
                fmt_bytes(limits.memory)
            ))),
            Ok(Err(_)) if log.overflowed() => Err(Ending::error(format!(
                "exceeded its {} log limit and was stopped",
                fmt_bytes(limits.log)
            ))),
            Ok(Err(trap)) => {
                // The wasm backtrace helps plugin authors; it is kept in the log, shown with -v.
                let _ = log.message(LogSource::Debug, &format!("{trap:?}"));
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
        let claimed = phase_name(info.phase);
        record.plugin.phase = Some(claimed.to_string());
        if let Some(phase) = self.spec.phase.as_deref().filter(|p| *p != claimed) {
            let _ = log.message(
                LogSource::Warn,
                &format!(
                    "the pipeline marks stage `{name}` as `{phase}`; its plugin says `{claimed}` (the pipeline's word counts)"
                ),
            );
        }
        record.plugin.name = Some(one_line(&info.name, MAX_FIELD_BYTES));
        record.plugin.version = Some(one_line(&info.version, MAX_FIELD_BYTES));
        match result {
            Err(failure) => Ending {
                status: StageStatus::Failed,
                message: Some(one_line(&failure.message, MAX_MESSAGE_BYTES)),
            }
            .explained_by(&record.denied),
            Ok(result) => {
                let tidied = self.tidy_outputs(&out_dir, log, &mut record.denied);
                self.publish(result, &out_dir, &tidied, record)
            }
        }
    }

    /// Hands the stage its inputs — each checked against the digest it was published with, so
    /// a stage never consumes bytes that changed after they were recorded — and makes its
    /// output folder.
    fn stage_files(&self, inputs: &[&ArtifactRecord], in_dir: &Path, out_dir: &Path) -> Result<()> {
        let programs = !self.spec.grants.exec.is_empty();
        for artifact in inputs {
            let source = artifacts::verify_recorded(&self.layout.dir, artifact)
                .map_err(|why| anyhow::anyhow!("{why}; refusing to hand it on"))?;
            let dest = in_dir.join(&artifact.stage).join(&artifact.name);
            artifacts::hand_over(&source, &dest, programs)?;
        }
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))
    }
}

fn tracing_note(log: &StageLog, message: &str) {
    let _ = log.message(LogSource::Warn, message);
}
