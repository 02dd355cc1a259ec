//! The coordinator's side of a distributed run (`--nats`): the scheduler decides as in a local
//! run, and each stage it starts becomes a job on the JetStream work queue instead of a call on
//! this machine. The plugin and the stage's inputs go to the object store by digest, an agent
//! runs the stage and records its result once, and the coordinator brings the outputs and the
//! log back into the run folder — so the report, resume and every reporter work unchanged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::dist::wire::{
    RunEvent, StageEvent, StageJob, StageResult, cancel_subject, events_subject,
};
use crate::dist::{Remote, RunState};
use crate::model::artifacts::ArtifactRecord;
use crate::model::events::{Event, EventSink, LogSource};
use crate::model::report::{StageRecord, StageStatus};

use super::options::Interrupt;
use super::record::rfc3339;
use super::stage::StageExecution;

/// One run on the remote: its pipeline as the agents get it, and the live events coming back.
pub(super) struct RemoteRun<'a> {
    pub remote: &'a Remote,
    run_id: String,
    pipeline_file: PathBuf,
    pipeline_text: String,
    pipeline_sha256: String,
    /// A resumed run: a stage may have been recorded while no coordinator was there.
    resumed: bool,
    /// Digests known to be in the object store (sent by this run, or uploaded by its agents).
    in_store: std::sync::Mutex<std::collections::HashSet<String>>,
    /// What agents said about stages: taken, or recorded (a hint to look now, not the result).
    notices: broadcast::Sender<Notice>,
    listener: tokio::task::JoinHandle<()>,
    /// The run's state for the run board, posted in order by one task.
    board: Option<tokio::sync::mpsc::UnboundedSender<RunState>>,
    poster: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RemoteRun<'_> {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// What the listener tells a waiting stage.
#[derive(Debug, Clone)]
enum Notice {
    Taken(String),
    Recorded(String),
}

/// How long a coordinator waits for NATS to come back before giving a stage up.
const NATS_PATIENCE: Duration = Duration::from_secs(30);

/// How long a stage waits in the queue before the user is told no agent took it.
const UNTAKEN_WARNING: Duration = Duration::from_secs(20);

/// The machine a coordinator runs on, for the run board.
fn machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl<'a> RemoteRun<'a> {
    /// Starts listening to the run's events, which the agents send as they run its stages.
    pub(super) async fn start(
        remote: &'a Remote,
        run_id: &str,
        pipeline_file: &Path,
        pipeline_sha256: &str,
        resumed: bool,
        events: &EventSink,
    ) -> Result<Self> {
        let bytes = std::fs::read(pipeline_file)
            .with_context(|| format!("cannot read {}", pipeline_file.display()))?;
        if crate::model::artifacts::sha256_bytes(&bytes) != pipeline_sha256 {
            bail!(
                "{} changed since the run started; start a new run",
                pipeline_file.display()
            );
        }
        let pipeline_text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8", pipeline_file.display()))?;
        let mut subscription = remote
            .client()
            .subscribe(events_subject(run_id))
            .await
            .context("cannot listen to the run's events on NATS")?;
        let (notices, _) = broadcast::channel(256);
        let notify = notices.clone();
        let events = events.clone();
        let listener = tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let Ok(RunEvent { stage, event }) = serde_json::from_slice(&message.payload) else {
                    continue;
                };
                match event {
                    StageEvent::Taken { agent, delivery } => {
                        let _ = notify.send(Notice::Taken(stage.clone()));
                        events.emit(Event::Log {
                        stage,
                        source: LogSource::Info,
                        line: if delivery > 1 {
                            format!("sluice: running on agent {agent} (delivery {delivery}: the agent before stopped)")
                        } else {
                            format!("sluice: running on agent {agent}")
                        },
                    })
                    }
                    StageEvent::Log { source, line } => events.emit(Event::Log {
                        stage,
                        source,
                        line,
                    }),
                    StageEvent::Artifact { artifact } => {
                        events.emit(Event::ArtifactWritten { stage, artifact })
                    }
                    StageEvent::Recorded => {
                        let _ = notify.send(Notice::Recorded(stage));
                    }
                }
            }
        });
        let (board, mut states) = tokio::sync::mpsc::unbounded_channel::<RunState>();
        let posting = remote.board().clone();
        let poster = tokio::spawn(async move {
            while let Some(state) = states.recv().await {
                // The board is for people looking; the run does not depend on it.
                let _ = posting.post(&state).await;
            }
        });
        Ok(Self {
            board: Some(board),
            poster: Some(poster),
            remote,
            run_id: run_id.to_string(),
            pipeline_file: pipeline_file.to_path_buf(),
            pipeline_text,
            pipeline_sha256: pipeline_sha256.to_string(),
            resumed,
            in_store: Default::default(),
            notices,
            listener,
        })
    }
}

impl RemoteRun<'_> {
    fn stored(&self, sha256: &str) -> bool {
        self.in_store
            .lock()
            .is_ok_and(|known| known.contains(sha256))
    }

    fn mark_stored(&self, sha256: String) {
        if let Ok(mut known) = self.in_store.lock() {
            known.insert(sha256);
        }
    }

    /// Shows the run's state on the run board (`sluice runs --nats`).
    pub(super) fn post(&self, state: RunState) {
        if let Some(board) = &self.board {
            let _ = board.send(state);
        }
    }

    /// Waits until every state given to [`Self::post`] is on the board.
    pub(super) async fn close(&mut self) {
        self.board = None;
        if let Some(poster) = self.poster.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), poster).await;
        }
    }
}

/// A run's state as the run board shows it.
pub(super) fn run_state(
    layout: &crate::model::layout::RunLayout,
    pipeline: &str,
    started_at: &str,
    status: &str,
    records: &[StageRecord],
) -> RunState {
    RunState {
        run_id: layout.run_id.clone(),
        pipeline: pipeline.to_string(),
        status: status.to_string(),
        coordinator: machine(),
        run_dir: layout.dir.display().to_string(),
        started_at: started_at.to_string(),
        updated_at: rfc3339(SystemTime::now()),
        stages: records
            .iter()
            .map(|r| (r.name.clone(), r.status.label().to_string()))
            .collect(),
    }
}

/// The stage cache is the coordinator's: a hit never leaves this machine.
impl StageExecution<'_> {
    pub(super) async fn execute_remote(
        &self,
        run: &RemoteRun<'_>,
        plugin_path: &Path,
        available: &[ArtifactRecord],
        earlier: Vec<StageRecord>,
        record: &mut StageRecord,
    ) {
        let Some(started) = self.begin(available, record) else {
            return;
        };
        if let Err(err) = self
            .dispatch(run, plugin_path, available, earlier, record)
            .await
        {
            record.status = StageStatus::Error;
            record.message = Some(self.masker.mask(&format!("{err:#}")).into_owned());
        }
        self.conclude(started, record);
    }

    /// Sends the stage to an agent and waits for its recorded result; a cancelled or
    /// interrupted stage is told to its agent, and recorded here if the agent does not answer.
    async fn dispatch(
        &self,
        run: &RemoteRun<'_>,
        plugin_path: &Path,
        available: &[ArtifactRecord],
        earlier: Vec<StageRecord>,
        record: &mut StageRecord,
    ) -> Result<()> {
        let remote = run.remote;
        let name = &self.spec.name;
        let mut notices = run.notices.subscribe();
        // A resumed run adopts what an agent finished while no coordinator was there.
        if run.resumed
            && let Some(bytes) = remote.results().get(&run.run_id, name).await?
        {
            return self.adopt(run, &bytes, record).await;
        }
        // Each blob is sent (or found in the store) once per run: outputs the agents uploaded
        // and plugins sent for earlier stages are not hashed and looked up again.
        if !run.stored(&self.plugin.sha256) {
            let sent = remote.blobs().put_file(plugin_path).await?;
            if sent.sha256 != self.plugin.sha256 {
                bail!(
                    "{} changed after it was loaded (loaded sha256 {}, now {})",
                    plugin_path.display(),
                    self.plugin.sha256,
                    sent.sha256
                );
            }
            run.mark_stored(sent.sha256);
        }
        for artifact in available {
            if !run.stored(&artifact.sha256) {
                let sent = remote
                    .blobs()
                    .put_file(&self.layout.dir.join(&artifact.path))
                    .await?;
                run.mark_stored(sent.sha256);
            }
        }
        let job = StageJob {
            run_id: run.run_id.clone(),
            pipeline_file: run.pipeline_file.clone(),
            pipeline_text: run.pipeline_text.clone(),
            pipeline_sha256: run.pipeline_sha256.clone(),
            stage: name.clone(),
            plugin_sha256: self.plugin.sha256.clone(),
            available: available.to_vec(),
            earlier,
            record: record.clone(),
        };
        let labels: BTreeSet<String> = self.spec.runs_on.iter().cloned().collect();
        let id = format!(
            "{}/{}",
            run.run_id,
            crate::model::artifacts::sha256_bytes(name.as_bytes())
        );
        remote
            .queue()
            .publish_once(&labels, Some(&id), serde_json::to_vec(&job)?)
            .await?;
        let needs = if labels.is_empty() {
            String::new()
        } else {
            format!(" with labels {}", self.spec.runs_on.join(", "))
        };
        self.warn_info(&format!("sluice: queued for an agent{needs}"));
        let interrupt = self.interrupt.clone().unwrap_or_default();
        let mut give_up_at: Option<tokio::time::Instant> = None;
        let queued = tokio::time::Instant::now();
        // Results are looked up when an agent says so, and every second in case a notice was
        // lost (core NATS keeps nothing for a coordinator that was away).
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut taken = false;
        let mut lost_since: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(Notice::Taken(stage)) if stage == *name => taken = true,
                    Ok(Notice::Recorded(stage)) if stage == *name => {}
                    // Another stage's news: nothing to look up for this one.
                    Ok(_) => continue,
                    // Missed some news: look.
                    Err(_) => {}
                },
                _ = tick.tick() => {}
                () = self.cancel.triggered(), if give_up_at.is_none() => {
                    give_up_at = Some(self.tell_agents(run, &self.cancel).await);
                }
                () = interrupt.triggered(), if give_up_at.is_none() && self.interrupt.is_some() => {
                    give_up_at = Some(self.tell_agents(run, &interrupt).await);
                }
            }
            match remote.results().get(&run.run_id, name).await {
                Ok(Some(bytes)) => return self.adopt(run, &bytes, record).await,
                Ok(None) => lost_since = None,
                // NATS restarted or the network dropped: the client reconnects by itself, and
                // the agent goes on; the stage is given up only if NATS stays away.
                Err(err) => match lost_since {
                    None => {
                        lost_since = Some(tokio::time::Instant::now());
                        self.events.emit(Event::Log {
                            stage: name.clone(),
                            source: LogSource::Warn,
                            line: format!(
                                "sluice: lost NATS ({err:#}); waiting up to {} s for it to come back",
                                NATS_PATIENCE.as_secs()
                            ),
                        });
                    }
                    Some(since) if since.elapsed() >= NATS_PATIENCE => {
                        return Err(err.context(format!(
                            "NATS was unreachable for {} s while the stage was out on an agent",
                            NATS_PATIENCE.as_secs()
                        )));
                    }
                    Some(_) => {}
                },
            }
            if !taken && queued.elapsed() >= UNTAKEN_WARNING {
                taken = true;
                self.events.emit(Event::Log {
                    stage: name.clone(),
                    source: LogSource::Warn,
                    line: format!(
                        "sluice: no agent has taken this stage in {} s; is `sluice agent --nats <url>{}` running and connected to this NATS server?",
                        UNTAKEN_WARNING.as_secs(),
                        self.spec.runs_on.iter().map(|l| format!(" --label {l}")).collect::<String>()
                    ),
                });
            }
            if give_up_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                // The agent did not answer in time (or none had taken the job): the stop is
                // recorded here, and an agent that takes the job later finds it decided.
                let (status, reason) = if self.cancel.is_triggered() {
                    (StageStatus::Cancelled, self.cancel.reason())
                } else {
                    (StageStatus::Error, interrupt.reason())
                };
                let mut stopped = record.clone();
                stopped.status = status;
                stopped.message = reason;
                let result = StageResult {
                    record: stopped,
                    log_sha256: None,
                    log_text: None,
                    by: "coordinator".into(),
                    delivery: 0,
                };
                remote
                    .results()
                    .record_once(&run.run_id, name, serde_json::to_vec(&result)?)
                    .await?;
            }
        }
    }

    /// Tells the agents running this stage to stop; returns when to stop waiting for them.
    async fn tell_agents(&self, run: &RemoteRun<'_>, why: &Interrupt) -> tokio::time::Instant {
        let stop = serde_json::json!({ "stage": self.spec.name, "reason": why.reason() });
        let _ = run
            .remote
            .client()
            .publish(cancel_subject(&run.run_id), stop.to_string().into())
            .await;
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    /// Takes a recorded result as this stage's: its outputs and log fetched by digest into the
    /// run folder (verified on the way), its record as the stage's.
    async fn adopt(
        &self,
        run: &RemoteRun<'_>,
        bytes: &[u8],
        record: &mut StageRecord,
    ) -> Result<()> {
        let (remote, name) = (run.remote, &self.spec.name);
        let result: StageResult =
            serde_json::from_slice(bytes).context("the stage's recorded result cannot be read")?;
        if result.record.name != *name {
            bail!(
                "the result recorded for this stage names stage `{}`",
                result.record.name
            );
        }
        let out_dir = self.layout.artifacts_of(name);
        super::watch::empty(&out_dir);
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        for artifact in &result.record.outputs {
            let sane = artifact.stage == *name
                && crate::config::names::check_relative_name(&artifact.name).is_ok()
                && artifact.path == format!("artifacts/{name}/{}", artifact.name);
            if !sane {
                bail!(
                    "the recorded result names artifact `{}` at `{}`, which is not this stage's",
                    artifact.reference(),
                    artifact.path
                );
            }
            remote
                .blobs()
                .place(&artifact.sha256, &self.layout.dir.join(&artifact.path))
                .await
                .with_context(|| {
                    format!("cannot bring back artifact `{}`", artifact.reference())
                })?;
            // It came from the store, verified: the next stage's agent finds it there.
            run.mark_stored(artifact.sha256.clone());
        }
        let mut adopted = result.record;
        adopted.log = None;
        let rel = self.layout.log_rel(name);
        if let Some(text) = &result.log_text {
            std::fs::write(self.layout.dir.join(&rel), text)
                .with_context(|| format!("cannot write the log of `{name}`"))?;
            adopted.log = Some(rel);
        } else if let Some(log) = &result.log_sha256 {
            remote
                .blobs()
                .place(log, &self.layout.dir.join(&rel))
                .await?;
            adopted.log = Some(rel);
        }
        *record = adopted;
        Ok(())
    }

    fn warn_info(&self, line: &str) {
        self.events.emit(Event::Log {
            stage: self.spec.name.clone(),
            source: LogSource::Info,
            line: line.to_string(),
        });
    }
}
