//! Running one stage, wherever it runs: it is started (and served from the stage cache when it
//! can be), attempted up to its retries — in this machine's sandbox, or handed to whatever runs
//! it elsewhere — and finished with its record filled in. Whatever goes wrong becomes its record.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::Store;

use crate::config::limits::fmt_bytes;
use crate::model::artifacts::ArtifactRecord;
use crate::model::events::{Event, EventSink, LogSource};
use crate::model::layout::RunLayout;
use crate::model::report::{Attempt, CacheRecord, StageRecord, StageStatus, millis, rfc3339};
use crate::model::text::{MAX_FIELD_BYTES, MAX_MESSAGE_BYTES, one_line};
use crate::plugin::Plugin;
use crate::sandbox::bindings::StageContext;
use crate::sandbox::bindings::sluice::pipeline::types::StageRun as EarlierStage;
use crate::sandbox::capture::StageLog;
use crate::sandbox::engine::Host;
use crate::sandbox::spec::{CacheMount, GUEST_OUTPUT_DIR, SandboxSpec};
use crate::sandbox::state::StageState;
use crate::sandbox::trap::{phase_name, phase_named, trap_message};
use crate::trust::secrets::Masker;

use super::cache::{KeyParts, StageCache};
use super::inputs::{guest_artifacts, hand_over, select_inputs};
use super::output::OutputFolder;
use super::volumes::{CacheVolumes, TakenVolume};
use super::{Ending, Interrupt, LockedStage, PreparedStage, earlier_stages};

/// What every stage of one run shares: the engine, the run folder, the event stream, the
/// masker of the run's secrets, the stage cache and the run's own interrupt.
pub struct StageSurroundings<'a> {
    pub host: &'a Host,
    pub layout: &'a RunLayout,
    pub events: &'a EventSink,
    /// Masks every secret of the pipeline in what is logged and recorded.
    pub masker: &'a Masker,
    pub stage_cache: &'a StageCache,
    /// This machine's cache volumes.
    pub volumes: &'a CacheVolumes,
    /// The run's own interrupt (Ctrl-C, SIGTERM), if it has one.
    pub interrupt: Option<Interrupt>,
}

/// Runs a stage somewhere other than this machine's sandbox (on an agent), filling in its
/// record; an `Err` becomes the stage's error.
#[async_trait::async_trait]
pub trait Elsewhere: Sync {
    async fn run(
        &self,
        stage: &StageExecution<'_>,
        available: &[ArtifactRecord],
        record: &mut StageRecord,
    ) -> anyhow::Result<()>;
}

/// One stage's execution, with everything it needs borrowed from the run.
pub struct StageExecution<'a> {
    pub around: &'a StageSurroundings<'a>,
    pub stage: &'a LockedStage,
    pub plugin: &'a Plugin,
    /// Values of the secrets this stage is granted.
    pub secrets: &'a BTreeMap<String, String>,
    /// What the plugin is told about the stages that ran before it.
    pub earlier: Vec<EarlierStage>,
    /// This stage's own: cancelled when a stage beside it fails (`fail_fast`), or by the
    /// coordinator of the run it came from.
    pub cancel: Interrupt,
}

/// Why a stage's call was stopped before it returned.
enum Stopped {
    Interrupted,
    Cancelled,
    Overrun(String),
}

/// A stage that is to run: when it started, and the stage-cache key to keep it under.
struct Started {
    clock: Instant,
    key: Option<KeyParts>,
}

impl<'a> StageExecution<'a> {
    /// The execution of `prepared` in a run, after the stages whose records are `earlier`.
    pub fn new(
        around: &'a StageSurroundings<'a>,
        prepared: &'a PreparedStage,
        earlier: &[StageRecord],
        cancel: Interrupt,
    ) -> Self {
        Self {
            around,
            stage: &prepared.locked,
            plugin: &prepared.plugin,
            secrets: &prepared.secrets,
            earlier: earlier_stages(earlier),
            cancel,
        }
    }

    /// The stage's output folder in the run folder.
    pub fn output(&self) -> OutputFolder<'_> {
        OutputFolder::of(
            self.around.layout,
            &self.stage.name,
            self.stage.limits,
            self.around.masker,
        )
    }

    /// Runs the stage here — again after a pause, up to its `retries`, while it fails, crashes
    /// or errors — and fills in `record`. Never fails: whatever goes wrong becomes the stage's
    /// status and message, so the run can still be recorded.
    pub async fn execute(&self, available: &[ArtifactRecord], record: &mut StageRecord) {
        let Some(started) = self.begin(available, record).await else {
            return;
        };
        let mut attempt = 1;
        loop {
            let attempt_clock = Instant::now();
            self.attempt(available, record).await;
            let retry = record.status.is_failure()
                && attempt <= self.stage.retries
                && !self.cancel.is_triggered()
                && !self.interrupted();
            if !retry {
                break;
            }
            let pause = Duration::from_millis(500 << (attempt - 1).min(5));
            self.warn(&format!(
                "sluice: attempt {attempt} of {} {}: {}; trying again in {}",
                self.stage.retries + 1,
                record.status.label(),
                record.message.as_deref().unwrap_or(""),
                humantime::format_duration(pause)
            ));
            record.earlier_attempts.push(Attempt {
                status: record.status,
                message: record.message.take(),
                duration_ms: Some(millis(attempt_clock.elapsed())),
            });
            let interrupt = self.around.interrupt.clone().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.cancel.triggered() => {}
                () = interrupt.triggered(), if self.around.interrupt.is_some() => {}
            }
            attempt += 1;
        }
        if record.status.is_failure() {
            self.output().explain_full_disk(record);
            record.failure_allowed = self.stage.allow_failure;
        }
        self.conclude(started, record).await;
    }

    /// Runs the stage through `runner` (an agent) instead of here: started, served from this
    /// machine's stage cache when it can be (a hit never leaves this machine), and finished
    /// like a stage run here.
    pub async fn execute_elsewhere(
        &self,
        runner: &dyn Elsewhere,
        available: &[ArtifactRecord],
        record: &mut StageRecord,
    ) {
        let Some(started) = self.begin(available, record).await else {
            return;
        };
        if let Err(err) = runner.run(self, available, record).await {
            record.status = StageStatus::Error;
            record.message = Some(self.around.masker.mask(&format!("{err:#}")).into_owned());
        }
        self.conclude(started, record).await;
    }

    fn interrupted(&self) -> bool {
        self.around
            .interrupt
            .as_ref()
            .is_some_and(Interrupt::is_triggered)
    }

    /// Says a line in the stage's log stream, as sluice.
    pub fn say(&self, source: LogSource, line: &str) {
        self.around.events.emit(Event::Log {
            stage: self.stage.name.clone(),
            source,
            line: line.to_string(),
        });
    }

    fn warn(&self, line: &str) {
        self.say(LogSource::Warn, line);
    }

    /// Says the stage started and serves it from the stage cache when it can (then it is
    /// finished, and `None` is returned); otherwise the stage is to run.
    async fn begin(
        &self,
        available: &[ArtifactRecord],
        record: &mut StageRecord,
    ) -> Option<Started> {
        self.around.events.emit(Event::StageStarted {
            stage: self.stage.name.clone(),
        });
        record.started_at = Some(rfc3339(SystemTime::now()));
        let clock = Instant::now();
        let cache = self.around.stage_cache;
        let key = cache.key_for(self.stage, available).unwrap_or_else(|err| {
            self.warn(&format!(
                "sluice: no stage-cache key ({err:#}); running the stage"
            ));
            None
        });
        if let Some(parts) = &key {
            let key = parts.key();
            match cache
                .serve(&key, &self.output(), record, self.around.events)
                .await
            {
                Ok(true) => {
                    self.finish(record, clock.elapsed());
                    return None;
                }
                Ok(false) => {
                    let why = cache.why_missed(self.stage, parts);
                    if !why.is_empty() {
                        self.say(
                            LogSource::Info,
                            &format!("sluice: stage cache miss: {}", why.join("; ")),
                        );
                    }
                    record.cache = Some(CacheRecord {
                        key,
                        hit: false,
                        why,
                        shared_from: None,
                    });
                }
                Err(err) => self.warn(&format!(
                    "sluice: cannot restore from the stage cache ({err:#}); running the stage"
                )),
            }
        }
        Some(Started { clock, key })
    }

    /// Keeps a stage that succeeded in the stage cache, and says how it ended.
    async fn conclude(&self, started: Started, record: &mut StageRecord) {
        if let Some(parts) = &started.key
            && record.status == StageStatus::Succeeded
            && let Err(err) = self
                .around
                .stage_cache
                .keep(self.stage, parts, &self.output(), record)
                .await
        {
            self.warn(&format!(
                "sluice: cannot store the stage in the stage cache: {err:#}"
            ));
        }
        self.finish(record, started.clock.elapsed());
    }

    /// Records the stage's duration and says how it ended.
    fn finish(&self, record: &mut StageRecord, elapsed: Duration) {
        record.duration_ms = Some(millis(elapsed));
        let message = match &record.cache {
            Some(cache) if cache.hit => Some(match &cache.shared_from {
                Some(writer) => format!(
                    "cached (shared cache, key {:.12}…, written by {writer})",
                    cache.key
                ),
                None => format!("cached (key {:.12}…)", cache.key),
            }),
            _ if record.status == StageStatus::Succeeded => record.summary.clone(),
            _ => record.message.clone().map(|message| {
                if record.failure_allowed {
                    format!("{message} (allowed to fail)")
                } else {
                    message
                }
            }),
        };
        self.around.events.emit(Event::StageFinished {
            stage: self.stage.name.clone(),
            status: record.status,
            elapsed,
            message,
        });
    }

    /// One attempt: a fresh log and output folder, the call, the record filled in.
    async fn attempt(&self, available: &[ArtifactRecord], record: &mut StageRecord) {
        let (name, layout, masker) = (&self.stage.name, self.around.layout, self.around.masker);
        let output = self.output();
        // What an earlier attempt left is not this attempt's output.
        output.empty();
        record.outputs.clear();
        record.summary = None;
        let log_rel = layout.log_rel(name);
        let ending = match StageLog::new(
            name,
            Some(&layout.dir.join(&log_rel)),
            self.around.events.clone(),
            masker.clone(),
            self.stage.limits.log,
        ) {
            Ok(log) => {
                record.log = Some(log_rel);
                let ending = self.run_in_sandbox(available, &output, &log, record).await;
                if ending.status != StageStatus::Succeeded {
                    // Published stages were tidied before publishing; nothing else may stay.
                    output.tidy(&log, &mut record.denied);
                }
                if let Err(err) = log.finish() {
                    let _ = log.message(LogSource::Warn, &format!("{err:#}"));
                }
                ending
            }
            Err(err) => Ending::error(format!("cannot create its log: {err:#}")),
        };
        let _ = std::fs::remove_dir_all(layout.work_of(name));
        record.status = ending.status;
        let masked = |text: Option<String>| text.map(|t| masker.mask(&t).into_owned());
        record.summary = masked(record.summary.take());
        for denied in &mut record.denied {
            // A refused URL or program line can carry a token.
            *denied = masker.mask(denied).into_owned();
        }
        record.message = masked(ending.message);
    }

    async fn run_in_sandbox(
        &self,
        available: &[ArtifactRecord],
        output: &OutputFolder<'_>,
        log: &StageLog,
        record: &mut StageRecord,
    ) -> Ending {
        let (stage, layout) = (self.stage, self.around.layout);
        let name = &stage.name;
        let inputs = match select_inputs(&stage.inputs, available) {
            Ok(inputs) => inputs,
            Err(message) => return Ending::error(message),
        };
        record.inputs = inputs.iter().map(|a| a.reference()).collect();
        let work = layout.work_of(name).join("in");
        let handed = hand_over(
            layout,
            &inputs,
            available,
            &work,
            !stage.grants.exec.is_empty(),
        );
        let input_mounts = match handed.and_then(|mounts| output.create().map(|()| mounts)) {
            Ok(mounts) => mounts,
            Err(err) => return Ending::error(format!("cannot prepare its files: {err:#}")),
        };
        // Held until the stage is done: no other stage uses these volumes meanwhile.
        let volumes = self
            .around
            .volumes
            .take(&stage.volume_scope, &stage.grants.caches, |name| {
                self.say(
                    LogSource::Info,
                    &format!(
                        "sluice: waiting for cache volume `{name}` (another stage is using it)"
                    ),
                )
            });
        let volumes = tokio::select! {
            taken = volumes => match taken {
                Ok(taken) => taken,
                Err(err) => return Ending::error(format!("{err:#}")),
            },
            () = self.cancel.triggered() => {
                return Ending { status: StageStatus::Cancelled, message: self.cancel.reason() };
            }
        };
        let caches: Vec<CacheMount> = volumes.iter().map(TakenVolume::mount).collect();
        let spec = SandboxSpec {
            stage: name,
            inputs: &input_mounts,
            outputs: Some(output.path()),
            workspace: Some(&stage.workspace),
            grants: &stage.grants,
            limits: stage.limits,
            secrets: self.secrets,
            caches: &caches,
        };
        let state = match StageState::new(&spec, log.clone()) {
            Ok(state) => state,
            Err(err) => return Ending::error(format!("{err:#}")),
        };
        let mut store = Store::new(&self.around.host.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_async_yield_and_update(1);

        let guest_inputs = guest_artifacts(&inputs);
        let call = async {
            let instance = self.plugin.pre.instantiate_async(&mut store).await?;
            let info = instance.call_describe(&mut store).await?;
            let context = StageContext {
                pipeline: stage.pipeline.clone(),
                run_id: layout.run_id.clone(),
                stage: name.clone(),
                // What the pipeline file says the stage is, before what the plugin says.
                phase: stage
                    .phase
                    .as_deref()
                    .and_then(phase_named)
                    .unwrap_or(info.phase),
                config: stage.config_json.clone(),
                inputs: guest_inputs,
                output_dir: GUEST_OUTPUT_DIR.to_string(),
                earlier: self.earlier.clone(),
            };
            let result = instance.call_run(&mut store, &context).await?;
            wasmtime::Result::Ok((info, result))
        };
        let limits = stage.limits;
        let interrupt = self.around.interrupt.clone().unwrap_or_default();
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(limits.timeout, call) => Ok(outcome),
            () = interrupt.triggered(), if self.around.interrupt.is_some() => Err(Stopped::Interrupted),
            () = self.cancel.triggered() => Err(Stopped::Cancelled),
            why = output.overrun() => Err(Stopped::Overrun(why)),
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
                output.empty();
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
        if let Some(phase) = stage.phase.as_deref().filter(|p| *p != claimed) {
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
                let tidied = output.tidy(log, &mut record.denied);
                output.publish(result, &tidied, record, self.around.events)
            }
        }
    }
}
