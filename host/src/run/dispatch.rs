//! The dispatcher of one run: every stage whose dependencies are done is decided (run, skip, or
//! wait at its gate, by the rules in [`super::schedule`]); up to `jobs` stages run at once, on
//! the run's stage threads ([`super::workers`]), here or on an agent; when a stage does not
//! succeed in a fail-fast pipeline, the stages running beside it are cancelled. Every
//! transition is journaled, so a run killed at any point can be resumed.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cluster::coordinator::{RemoteRun, RemoteStage, run_state};
use crate::model::artifacts::ArtifactRecord;
use crate::model::events::{Event, EventSink};
use crate::model::layout::RunLayout;
use crate::model::report::{StageRecord, StageStatus};
use crate::resolve::ResolvedPipeline;
use crate::stage::{Interrupt, StageExecution, StageSurroundings};

use super::options::RunOptions;
use super::record::{RunHistory, RunJournal};
use super::schedule::{self, Decision, Situation, is_finished};
use super::slot::Slot;
use super::workers::Workers;

/// Everything the dispatcher reads; the slots' records are what it writes.
pub(super) struct Dispatcher<'a> {
    pub around: &'a StageSurroundings<'a>,
    pub resolved: &'a ResolvedPipeline,
    pub options: &'a RunOptions,
    pub history: &'a RunHistory,
    pub clock: Instant,
    /// A stage whose plugin could not be prepared: nothing runs.
    pub preflight_failed: bool,
    /// Where stages run when the run is distributed (`--nats`).
    pub remote: Option<&'a RemoteRun<'a>>,
}

/// How the stages ended up.
pub(super) struct Finished {
    /// The first stage waiting at its gate, if any.
    pub awaiting: Option<String>,
}

impl Dispatcher<'_> {
    fn events(&self) -> &EventSink {
        self.around.events
    }

    fn layout(&self) -> &RunLayout {
        self.around.layout
    }

    /// The most stages run at once: on this machine, one per core; sent to agents, as many as
    /// they take.
    fn jobs(&self) -> usize {
        if self.remote.is_some() {
            return self.options.jobs.unwrap_or(256).max(1);
        }
        self.options
            .jobs
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1)
            .max(1)
    }

    /// Runs every pending stage it can, and records how each ended.
    pub(super) fn run(&self, slots: &mut [Slot<'_>]) -> Finished {
        // Stage threads drive their futures themselves; this runtime's one worker runs the
        // timers, I/O and process reaping they share.
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-io")
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                fail_pending(slots, &format!("cannot start the stage runtime: {err}"));
                return Finished { awaiting: None };
            }
        };
        let handle = runtime.handle().clone();
        // Asked once: the answer reads cgroup files.
        let jobs = self.jobs();
        let mut journal = RunJournal::default();
        let finished = std::thread::scope(|scope| {
            let mut workers = Workers::new(scope, jobs);
            let (done, results) = mpsc::channel::<(usize, StageRecord)>();
            let mut running: Vec<(usize, Interrupt)> = Vec::new();
            let mut awaiting: Option<String> = None;
            loop {
                for index in self.decide_ready(slots, &mut awaiting) {
                    if running.len() >= jobs {
                        break;
                    }
                    let slot = &slots[index];
                    let Some(prepared) = slot.prepared.clone() else {
                        continue;
                    };
                    let available = available_to(slot, slots);
                    let earlier = dependencies(slot, slots);
                    let (around, remote) = (self.around, self.remote);
                    let cancel = Interrupt::new();
                    running.push((index, cancel.clone()));
                    let slot = &mut slots[index];
                    slot.record.status = StageStatus::Running;
                    let mut record = slot.record.clone();
                    let (done, handle) = (done.clone(), handle.clone());
                    workers.run(Box::new(move || {
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let execution =
                                StageExecution::new(around, &prepared, &earlier, cancel);
                            let run = async {
                                match remote {
                                    Some(run) => {
                                        let remote = RemoteStage { run, earlier };
                                        execution
                                            .execute_elsewhere(&remote, &available, &mut record)
                                            .await
                                    }
                                    None => execution.execute(&available, &mut record).await,
                                }
                            };
                            handle.block_on(run);
                        }));
                        if ran.is_err() {
                            // A bug in sluice, not the plugin: said plainly, and the run goes on
                            // to its record instead of waiting for this stage forever.
                            record.status = StageStatus::Error;
                            record.message = Some(
                                "sluice failed internally while running this stage (please report it)"
                                    .into(),
                            );
                        }
                        let _ = done.send((index, record));
                    }));
                }
                self.journal(&mut journal, slots);
                if running.is_empty() {
                    break;
                }
                let Ok((index, record)) = results.recv() else {
                    break;
                };
                workers.job_ended();
                running.retain(|(i, _)| *i != index);
                let stopped = record.status.is_failure() && !record.failure_allowed;
                let (name, status) = (record.name.clone(), record.status);
                slots[index].record = record;
                if stopped && self.resolved.pipeline.fail_fast {
                    for (_, cancel) in &running {
                        cancel.trigger_because(&format!(
                            "cancelled: stage `{name}` {} (fail_fast)",
                            status.label()
                        ));
                    }
                }
            }
            Finished { awaiting }
        });
        runtime.shutdown_background();
        finished
    }

    /// Decides every pending stage whose dependencies are finished, in file order: records
    /// skips and gates, and returns the stages that may run now.
    fn decide_ready(&self, slots: &mut [Slot<'_>], awaiting: &mut Option<String>) -> Vec<usize> {
        let pipeline = &self.resolved.pipeline;
        let mut ready = Vec::new();
        for index in 0..slots.len() {
            if slots[index].record.status != StageStatus::Pending {
                continue;
            }
            let spec = slots[index].spec;
            let deps_done = spec.depends_on.iter().all(|dep| {
                slots
                    .iter()
                    .find(|s| &s.record.name == dep)
                    .is_none_or(|s| is_finished(s.record.status))
            });
            if !deps_done {
                continue;
            }
            let stopped_by = schedule::first_failure(slots);
            let situation = Situation {
                records: &*slots,
                stopped_by: &stopped_by,
                fail_fast: pipeline.fail_fast,
                interrupted: self
                    .options
                    .interrupt
                    .as_ref()
                    .is_some_and(Interrupt::is_triggered),
                preflight_failed: self.preflight_failed,
                approved: self.options.approve.iter().any(|s| s == &spec.name),
            };
            let mut decision = schedule::decide(spec, situation);
            // Only a stage that would run now is put to a person.
            if decision == Decision::AwaitApproval
                && self
                    .options
                    .approver
                    .as_ref()
                    .is_some_and(|a| a.approve(&pipeline.name, &spec.name))
            {
                decision = Decision::Run;
            }
            let (status, message) = match decision {
                Decision::Run => {
                    ready.push(index);
                    continue;
                }
                Decision::Skip(reason) => (StageStatus::Skipped, reason),
                Decision::AwaitApproval => {
                    awaiting.get_or_insert_with(|| spec.name.clone());
                    (
                        StageStatus::AwaitingApproval,
                        format!(
                            "waiting for approval; continue with `sluice resume {} --approve {}`",
                            self.layout().run_id,
                            spec.name
                        ),
                    )
                }
            };
            let record = &mut slots[index].record;
            record.status = status;
            record.message = Some(message.clone());
            self.events().emit(Event::StageFinished {
                stage: spec.name.clone(),
                status,
                elapsed: Duration::ZERO,
                message: Some(message),
            });
        }
        ready
    }

    /// Writes the journal (and, in a distributed run, shows the state on the run board); a
    /// failure to write it is said once, and the run goes on.
    fn journal(&self, journal: &mut RunJournal, slots: &[Slot<'_>]) {
        if let Some(remote) = self.remote {
            remote.post(run_state(
                self.layout(),
                &self.resolved.pipeline.name,
                &self.history.started_at,
                "running",
                &super::slot::records(slots),
            ));
        }
        if let Err(err) = journal.record(
            self.resolved,
            self.layout(),
            self.history,
            slots,
            self.clock.elapsed(),
        ) {
            self.events().emit(Event::Log {
                stage: String::new(),
                source: crate::model::events::LogSource::Warn,
                line: format!("sluice: cannot write the run journal: {err:#}"),
            });
        }
    }
}

fn fail_pending(slots: &mut [Slot<'_>], why: &str) {
    for slot in slots
        .iter_mut()
        .filter(|s| s.record.status == StageStatus::Pending)
    {
        slot.record.status = StageStatus::Error;
        slot.record.message = Some(why.to_string());
    }
}

/// What `slot`'s stage may read: the outputs of the stages it depends on that succeeded.
fn available_to(slot: &Slot<'_>, slots: &[Slot<'_>]) -> Vec<ArtifactRecord> {
    slots
        .iter()
        .map(|s| &s.record)
        .filter(|r| r.status == StageStatus::Succeeded && slot.spec.depends_on.contains(&r.name))
        .flat_map(|r| r.outputs.iter().cloned())
        .collect()
}

/// The records of the stages `slot`'s stage waited for.
fn dependencies(slot: &Slot<'_>, slots: &[Slot<'_>]) -> Vec<StageRecord> {
    slots
        .iter()
        .map(|s| &s.record)
        .filter(|r| slot.spec.depends_on.contains(&r.name))
        .cloned()
        .collect()
}
