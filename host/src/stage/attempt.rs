//! One attempt of a stage in this machine's sandbox: a fresh log and output folder, its inputs
//! handed over, the sandbox its grants make, the plugin's `describe` and `run` under the
//! stage's limits, and the outcome — published outputs, or why it did not succeed — in its
//! record.

use wasmtime::Store;

use crate::config::limits::fmt_bytes;
use crate::model::artifacts::ArtifactRecord;
use crate::model::events::LogSource;
use crate::model::report::{StageRecord, StageStatus};
use crate::model::text::{MAX_FIELD_BYTES, MAX_MESSAGE_BYTES, one_line};
use crate::sandbox::bindings::StageContext;
use crate::sandbox::capture::StageLog;
use crate::sandbox::spec::{CacheMount, GUEST_OUTPUT_DIR, SandboxSpec};
use crate::sandbox::state::StageState;
use crate::sandbox::trap::{phase_name, phase_named, trap_message};

use super::Ending;
use super::execution::StageExecution;
use super::inputs::{guest_artifacts, hand_over, select_inputs};
use super::output::OutputFolder;
use super::volumes::TakenVolume;

/// Why a stage's call was stopped before it returned.
enum Stopped {
    Interrupted,
    Cancelled,
    Overrun(String),
}

impl StageExecution<'_> {
    /// One attempt: a fresh log and output folder, the call, the record filled in.
    pub(super) async fn attempt(&self, available: &[ArtifactRecord], record: &mut StageRecord) {
        let (name, layout, masker) = (&self.stage.name, self.around.layout, self.around.masker);
        let output = self.output();
        // What an earlier attempt left is not this attempt's output.
        output.empty();
        record.outputs.clear();
        record.quarantined.clear();
        record.summary = None;
        record.learned = None;
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
        if let Some(learned) = &mut record.learned {
            super::learn::conclude(learned, &self.stage.grants, ending.status, masker);
        }
        let masked = |text: Option<String>| text.map(|t| masker.mask(&t).into_owned());
        record.summary = masked(record.summary.take());
        for denied in &mut record.denied {
            // A refused URL or program line can carry a token.
            *denied = masker.mask(denied).into_owned();
        }
        for test in &mut record.quarantined {
            *test = masker.mask(test).into_owned();
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
            learn: self.around.host.learning(),
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
        if self.around.host.learning() {
            let wanted = store.data().wanted();
            record.learned = Some(super::learn::lesson(&stage.grants, &wanted, &record.denied));
        }
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
            Err(failure) => {
                let message = one_line(&failure.message, MAX_MESSAGE_BYTES);
                if let Some(ending) = self.excuse(output, log, &message, record) {
                    return ending;
                }
                Ending {
                    status: StageStatus::Failed,
                    message: Some(message),
                }
                .explained_by(&record.denied)
            }
            Ok(result) => {
                let tidied = output.tidy(log, &mut record.denied);
                output.publish(result, &tidied, record, self.around.events)
            }
        }
    }
}
