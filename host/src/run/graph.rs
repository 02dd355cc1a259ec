//! The scheduler: every stage whose dependencies are done is decided (run, skip, or wait at its
//! gate); up to `jobs` stages run at once, each on its own thread; when a stage does not
//! succeed in a fail-fast pipeline, the stages running beside it are cancelled. Every
//! transition is journaled, so a run killed at any point can be resumed.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::model::artifacts::ArtifactRecord;
use crate::model::events::{Event, EventSink};
use crate::model::layout::RunLayout;
use crate::model::report::{StageRecord, StageStatus};
use crate::resolve::ResolvedPipeline;
use crate::sandbox::engine::Host;
use crate::trust::secrets::Masker;

use super::options::{Interrupt, RunOptions};
use super::prepare::Prepared;
use super::record::{RunHistory, RunJournal, earlier_stages};
use super::remote::RemoteRun;
use super::schedule::{self, Decision, Situation, is_finished};
use super::stage::StageExecution;
use super::stage_cache::StageCache;

/// Everything the scheduler reads; the records are what it writes.
pub(super) struct Scheduler<'a> {
    pub host: &'a Host,
    pub resolved: &'a ResolvedPipeline,
    pub options: &'a RunOptions,
    pub events: &'a EventSink,
    pub layout: &'a RunLayout,
    pub prepared: &'a Prepared,
    pub masker: &'a Masker,
    pub history: &'a RunHistory,
    pub clock: Instant,
    pub stage_cache: &'a StageCache,
    /// Where stages run when the run is distributed (`--nats`).
    pub remote: Option<&'a RemoteRun<'a>>,
}

/// How the stages ended up.
pub(super) struct Finished {
    /// The first stage waiting at its gate, if any.
    pub awaiting: Option<String>,
}

impl Scheduler<'_> {
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
    pub(super) fn run(&self, records: &mut [StageRecord]) -> Finished {
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
                self.fail_pending(records, &format!("cannot start the stage runtime: {err}"));
                return Finished { awaiting: None };
            }
        };
        let handle = runtime.handle().clone();
        // Asked once: the answer reads cgroup files.
        let jobs = self.jobs();
        let mut journal = RunJournal::default();
        let finished = std::thread::scope(|scope| {
            let (done, results) = mpsc::channel::<(usize, StageRecord)>();
            let mut running: Vec<(usize, Interrupt)> = Vec::new();
            let mut awaiting: Option<String> = None;
            loop {
                for index in self.decide_ready(records, &mut awaiting) {
                    if running.len() >= jobs {
                        break;
                    }
                    let Some(execution) = self.execution(index, records) else {
                        continue;
                    };
                    let available = available_to(index, records, self.resolved);
                    let earlier = dependencies(index, records, self.resolved);
                    let plugin_path = self.resolved.stages[index].plugin_path.as_path();
                    let remote = self.remote;
                    let cancel = execution.cancel.clone();
                    records[index].status = StageStatus::Running;
                    let mut record = records[index].clone();
                    let (done, handle) = (done.clone(), handle.clone());
                    scope.spawn(move || {
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let run = async {
                                match remote {
                                    Some(remote) => {
                                        execution
                                            .execute_remote(
                                                remote,
                                                plugin_path,
                                                &available,
                                                earlier,
                                                &mut record,
                                            )
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
                    });
                    running.push((index, cancel));
                }
                self.journal(&mut journal, records);
                if running.is_empty() {
                    break;
                }
                let Ok((index, record)) = results.recv() else {
                    break;
                };
                running.retain(|(i, _)| *i != index);
                let stopped = record.status.is_failure() && !record.failure_allowed;
                let (name, status) = (record.name.clone(), record.status);
                records[index] = record;
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
    fn decide_ready(
        &self,
        records: &mut [StageRecord],
        awaiting: &mut Option<String>,
    ) -> Vec<usize> {
        let pipeline = &self.resolved.pipeline;
        let mut ready = Vec::new();
        for index in 0..records.len() {
            if records[index].status != StageStatus::Pending {
                continue;
            }
            let spec = &pipeline.stages[index];
            let deps_done = spec.depends_on.iter().all(|dep| {
                records
                    .iter()
                    .find(|r| &r.name == dep)
                    .is_none_or(|r| is_finished(r.status))
            });
            if !deps_done {
                continue;
            }
            let stopped_by = schedule::first_failure(records);
            let situation = Situation {
                records,
                stopped_by: &stopped_by,
                fail_fast: pipeline.fail_fast,
                interrupted: self
                    .options
                    .interrupt
                    .as_ref()
                    .is_some_and(Interrupt::is_triggered),
                preflight_failed: self.prepared.failed.is_some(),
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
                            self.layout.run_id, spec.name
                        ),
                    )
                }
            };
            records[index].status = status;
            records[index].message = Some(message.clone());
            self.events.emit(Event::StageFinished {
                stage: spec.name.clone(),
                status,
                elapsed: Duration::ZERO,
                message: Some(message),
            });
        }
        ready
    }

    /// The execution of stage `index`, if its plugin was prepared.
    fn execution(&self, index: usize, records: &[StageRecord]) -> Option<StageExecution<'_>> {
        let pipeline = &self.resolved.pipeline;
        let spec = &pipeline.stages[index];
        let plugin = self.prepared.plugins[index].as_ref()?;
        let deps = dependencies(index, records, self.resolved);
        Some(StageExecution {
            host: self.host,
            pipeline,
            spec,
            plugin,
            layout: self.layout,
            events: self.events,
            secrets: &self.prepared.secrets[index],
            masker: self.masker,
            earlier: earlier_stages(&deps),
            interrupt: self.options.interrupt.clone(),
            cancel: Interrupt::new(),
            stage_cache: self.stage_cache,
        })
    }

    /// Writes the journal (and, in a distributed run, shows the state on the run board); a
    /// failure to write it is said once, and the run goes on.
    fn journal(&self, journal: &mut RunJournal, records: &[StageRecord]) {
        if let Some(remote) = self.remote {
            remote.post(super::remote::run_state(
                self.layout,
                &self.resolved.pipeline.name,
                &self.history.started_at,
                "running",
                records,
            ));
        }
        if let Err(err) = journal.record(
            self.resolved,
            self.layout,
            self.history,
            records,
            self.clock.elapsed(),
        ) {
            self.events.emit(Event::Log {
                stage: String::new(),
                source: crate::model::events::LogSource::Warn,
                line: format!("sluice: cannot write the run journal: {err:#}"),
            });
        }
    }

    fn fail_pending(&self, records: &mut [StageRecord], why: &str) {
        for record in records
            .iter_mut()
            .filter(|r| r.status == StageStatus::Pending)
        {
            record.status = StageStatus::Error;
            record.message = Some(why.to_string());
        }
    }
}

/// What stage `index` may read: the outputs of the stages it depends on that succeeded.
fn available_to(
    index: usize,
    records: &[StageRecord],
    resolved: &ResolvedPipeline,
) -> Vec<ArtifactRecord> {
    let spec = &resolved.pipeline.stages[index];
    records
        .iter()
        .filter(|r| r.status == StageStatus::Succeeded && spec.depends_on.contains(&r.name))
        .flat_map(|r| r.outputs.iter().cloned())
        .collect()
}

/// The records of the stages stage `index` waited for.
fn dependencies(
    index: usize,
    records: &[StageRecord],
    resolved: &ResolvedPipeline,
) -> Vec<StageRecord> {
    let spec = &resolved.pipeline.stages[index];
    records
        .iter()
        .filter(|r| spec.depends_on.contains(&r.name))
        .cloned()
        .collect()
}
