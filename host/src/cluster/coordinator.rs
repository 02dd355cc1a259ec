//! The coordinator's side of a distributed run (`--nats`): the scheduler decides as in a local
//! run, and each stage it starts becomes a job on the JetStream work queue instead of a call on
//! this machine. The plugin and the stage's inputs go to the object store by digest, an agent
//! runs the stage and records its result once, and the coordinator brings the outputs and the
//! log back into the run folder — so the report, resume and every reporter work unchanged.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use tokio::sync::broadcast;

use super::sealed::seal;
use super::wire::{
    KIND_RESULT, KIND_STOP, StageJob, StageResult, StopStage, cancel_subject, events_subject,
};
use super::{Remote, RunState};
use crate::config::grants::Access;
use crate::model::artifacts::{ArtifactRecord, sha256_bytes};
use crate::model::events::{EventSink, LogSource};
use crate::model::report::{StageRecord, StageStatus, rfc3339};
use crate::stage::{Elsewhere, Interrupt, StageExecution};

mod adopt;
mod events;
mod job;

use events::{OutOnAgent, listen};
use job::{expiry, random_id, still_runnable};

/// One run on the remote: what its jobs are bound to, and the live events coming back.
pub struct RemoteRun<'a> {
    pub remote: &'a Remote,
    run_id: String,
    pipeline_sha256: String,
    /// A resumed run: a stage may have been recorded while no coordinator was there.
    resumed: bool,
    /// Digests known to be in the object store (sent by this run, or uploaded by its agents).
    in_store: std::sync::Mutex<std::collections::HashSet<String>>,
    /// What agents said about stages: taken, or recorded (a hint to look now, not the result).
    notices: broadcast::Sender<Notice>,
    /// The stages out on agents now: live events are taken for these alone.
    running: Running,
    /// The workspace's tree, sent once per run (its blob digest).
    workspace: tokio::sync::OnceCell<String>,
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

type Running = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// The longest log line taken from an agent's live events.
const MAX_EVENT_LINE: usize = 16 << 10;

/// How long a job stays runnable after it is sent, on top of its stage's timeout for each
/// delivery: an agent refuses it after that.
const JOB_LIFETIME: Duration = Duration::from_secs(3600);

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
    pub async fn start(
        remote: &'a Remote,
        run_id: &str,
        pipeline_sha256: &str,
        resumed: bool,
        events: &EventSink,
    ) -> Result<Self> {
        let subscription = remote
            .client()
            .subscribe(events_subject(run_id))
            .await
            .context("cannot listen to the run's events on NATS")?;
        let (notices, _) = broadcast::channel(256);
        let running = Running::default();
        let listener = tokio::spawn(listen(
            subscription,
            notices.clone(),
            running.clone(),
            events.clone(),
        ));
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
            pipeline_sha256: pipeline_sha256.to_string(),
            resumed,
            in_store: Default::default(),
            notices,
            running,
            workspace: tokio::sync::OnceCell::new(),
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
    pub fn post(&self, state: RunState) {
        if let Some(board) = &self.board {
            let _ = board.send(state);
        }
    }

    /// Waits until every state given to [`Self::post`] is on the board.
    pub async fn close(&mut self) {
        self.board = None;
        if let Some(poster) = self.poster.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), poster).await;
        }
    }
}

/// A run's state as the run board shows it.
pub fn run_state(
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

/// One stage of a distributed run, sent to an agent: the run, and the records of the stages it
/// waited for. The stage cache stays the coordinator's: a hit never leaves this machine.
pub struct RemoteStage<'r> {
    pub run: &'r RemoteRun<'r>,
    pub earlier: Vec<StageRecord>,
}

#[async_trait::async_trait]
impl Elsewhere for RemoteStage<'_> {
    async fn run(
        &self,
        stage: &StageExecution<'_>,
        available: &[ArtifactRecord],
        record: &mut StageRecord,
    ) -> Result<()> {
        Dispatch {
            run: self.run,
            exec: stage,
        }
        .send(available, &self.earlier, record)
        .await
    }
}

/// A stage on its way to an agent and back.
struct Dispatch<'d> {
    run: &'d RemoteRun<'d>,
    exec: &'d StageExecution<'d>,
}

impl Dispatch<'_> {
    /// Sends the stage to an agent as a signed job and waits for a signed result bound to it;
    /// a cancelled or interrupted stage is told to its agent, and recorded here if the agent
    /// does not answer.
    async fn send(
        &self,
        available: &[ArtifactRecord],
        earlier: &[StageRecord],
        record: &mut StageRecord,
    ) -> Result<()> {
        let (run, exec) = (self.run, self.exec);
        let remote = run.remote;
        let name = &exec.stage.name;
        let _out = OutOnAgent::new(&run.running, name);
        let mut notices = run.notices.subscribe();
        let sent_file = exec.around.layout.sent_job_of(name);
        // A resumed run sends the job it sent before (still runnable), so an agent's result for
        // it — recorded while no coordinator was there — is adopted, and the queue's duplicate
        // window keeps it from being queued twice.
        let before = run
            .resumed
            .then(|| std::fs::read(&sent_file).ok())
            .flatten()
            .filter(|bytes| still_runnable(bytes, &remote.trust().own));
        if let Some(sealed) = &before
            && let Some(result) = self.look(&sha256_bytes(sealed), &mut 0).await?
        {
            return self.adopt(result, record).await;
        }
        self.send_blobs(available).await?;
        let workspace_tree = self.send_workspace().await?;
        let sealed = match before {
            Some(sealed) => sealed,
            None => {
                let job = StageJob {
                    run_id: run.run_id.clone(),
                    job_id: random_id()?,
                    expires_at: expiry(exec),
                    workspace_tree,
                    pipeline_sha256: run.pipeline_sha256.clone(),
                    stage: exec.stage.clone(),
                    available: available.to_vec(),
                    earlier: earlier.to_vec(),
                    record: record.clone(),
                };
                let sealed = seal(&remote.trust().own, super::wire::KIND_JOB, &job)?;
                if let Some(parent) = sent_file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&sent_file, &sealed)
                    .with_context(|| format!("cannot write {}", sent_file.display()))?;
                sealed
            }
        };
        let job_sha256 = sha256_bytes(&sealed);
        let labels: BTreeSet<String> = exec.stage.runs_on.iter().cloned().collect();
        let id = format!("{}/{}", run.run_id, sha256_bytes(name.as_bytes()));
        remote
            .queue()
            .publish_once(&labels, Some(&id), sealed)
            .await?;
        let needs = if labels.is_empty() {
            String::new()
        } else {
            format!(" with labels {}", exec.stage.runs_on.join(", "))
        };
        exec.say(
            LogSource::Info,
            &format!("sluice: queued for an agent{needs}"),
        );
        let interrupt = exec.around.interrupt.clone().unwrap_or_default();
        let mut give_up_at: Option<tokio::time::Instant> = None;
        let queued = tokio::time::Instant::now();
        // Results are looked up when an agent says so, and every second in case a notice was
        // lost (core NATS keeps nothing for a coordinator that was away).
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut taken = false;
        let mut lost_since: Option<tokio::time::Instant> = None;
        let mut next_sequence = 0u64;
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
                () = exec.cancel.triggered(), if give_up_at.is_none() => {
                    give_up_at = Some(self.tell_agents(&exec.cancel).await);
                }
                () = interrupt.triggered(), if give_up_at.is_none() && exec.around.interrupt.is_some() => {
                    give_up_at = Some(self.tell_agents(&interrupt).await);
                }
            }
            match self.look(&job_sha256, &mut next_sequence).await {
                Ok(Some(result)) => return self.adopt(result, record).await,
                Ok(None) => lost_since = None,
                // NATS restarted or the network dropped: the client reconnects by itself, and
                // the agent goes on; the stage is given up only if NATS stays away.
                Err(err) => match lost_since {
                    None => {
                        lost_since = Some(tokio::time::Instant::now());
                        exec.say(
                            LogSource::Warn,
                            &format!(
                                "sluice: lost NATS ({err:#}); waiting up to {} s for it to come back",
                                NATS_PATIENCE.as_secs()
                            ),
                        );
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
                exec.say(
                    LogSource::Warn,
                    &format!(
                        "sluice: no agent has taken this stage in {} s; is `sluice agent --nats <url>{}` running and connected to this NATS server?",
                        UNTAKEN_WARNING.as_secs(),
                        exec.stage.runs_on.iter().map(|l| format!(" --label {l}")).collect::<String>()
                    ),
                );
            }
            if give_up_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                // The agent did not answer in time (or none had taken the job): the stop is
                // recorded here, signed like an agent's result, and an agent that takes the job
                // later finds it decided.
                let (status, reason) = if exec.cancel.is_triggered() {
                    (StageStatus::Cancelled, exec.cancel.reason())
                } else {
                    (StageStatus::Error, interrupt.reason())
                };
                let mut stopped = record.clone();
                stopped.status = status;
                stopped.message = reason;
                let result = StageResult {
                    job_sha256: job_sha256.clone(),
                    record_sha256: None,
                    record: stopped,
                    log_sha256: None,
                    log_text: None,
                    by: "coordinator".into(),
                    delivery: 0,
                };
                let sealed = seal(&remote.trust().own, KIND_RESULT, &result)?;
                remote.results().record(&run.run_id, name, sealed).await?;
            }
        }
    }

    /// Sends the plugin and the inputs to the store, each blob once per run: outputs the agents
    /// uploaded and plugins sent for earlier stages are not hashed and looked up again.
    async fn send_blobs(&self, available: &[ArtifactRecord]) -> Result<()> {
        let (run, exec) = (self.run, self.exec);
        let remote = run.remote;
        let plugin_path = exec.plugin.path.as_path();
        if !run.stored(&exec.plugin.sha256) {
            let sent = remote.blobs().put_file(plugin_path).await?;
            if sent.sha256 != exec.plugin.sha256 {
                bail!(
                    "{} changed after it was loaded (loaded sha256 {}, now {})",
                    plugin_path.display(),
                    exec.plugin.sha256,
                    sent.sha256
                );
            }
            run.mark_stored(sent.sha256);
        }
        for artifact in available {
            if !run.stored(&artifact.sha256) {
                let sent = remote
                    .blobs()
                    .put_file(&exec.around.layout.dir.join(&artifact.path))
                    .await?;
                run.mark_stored(sent.sha256);
            }
        }
        Ok(())
    }

    /// What an agent gets of this machine's folders: the workspace by content (its tree and the
    /// files the store lacks, sent once per run), when the stage may read it. A stage that would
    /// write the workspace, or is given folders of this machine (`allow.dirs`), cannot run on an
    /// agent: its changes would stay there, or it would find another machine's folder at the
    /// same path.
    async fn send_workspace(&self) -> Result<Option<String>> {
        let (run, exec) = (self.run, self.exec);
        let grants = &exec.stage.grants;
        if grants.workspace == Access::Write {
            bail!(
                "stage `{}` is granted workspace = \"write\", which an agent cannot be given: what it wrote would stay on the agent\n  = help: grant \"read\" (the agent gets a copy of the workspace by content), or run the pipeline without --nats",
                exec.stage.name
            );
        }
        if let Some(dir) = grants.dirs.first() {
            bail!(
                "stage `{}` is given {} of this machine (allow.dirs), which an agent does not have\n  = help: hand the files over as artifacts of an earlier stage, or run the pipeline without --nats",
                exec.stage.name,
                dir.host.display()
            );
        }
        if grants.workspace == Access::None {
            return Ok(None);
        }
        let tree = run
            .workspace
            .get_or_try_init(|| async {
                let folder = &exec.stage.workspace;
                let clock = std::time::Instant::now();
                let whole = exec.around.stage_cache.content_tree(folder)?;
                let (tree, ignored) = super::shippable::shippable(folder, &whole);
                let scanned = clock.elapsed();
                let memo = run.remote.blobs().memo_of(folder);
                let (sha256, shipped) = super::workspace::ship(
                    run.remote.blobs(),
                    folder,
                    &tree,
                    &exec.around.layout.dir,
                    Some(&memo),
                    |sha| run.stored(sha),
                    |sha| run.mark_stored(sha),
                )
                .await?;
                exec.say(
                    LogSource::Info,
                    &format!(
                        "sluice: workspace sent by content: {} files, {} new ({} bytes in {} objects; {} ignored by git left here; scanned in {} ms, sent in {} ms)",
                        shipped.files,
                        shipped.sent,
                        shipped.bytes_sent,
                        shipped.objects,
                        ignored,
                        scanned.as_millis(),
                        (clock.elapsed() - scanned).as_millis()
                    ),
                );
                anyhow::Ok(sha256)
            })
            .await?;
        Ok(Some(tree.clone()))
    }

    /// Tells the agents running this stage to stop (signed); returns when to stop waiting.
    async fn tell_agents(&self, why: &Interrupt) -> tokio::time::Instant {
        let stop = StopStage {
            run_id: self.run.run_id.clone(),
            stage: self.exec.stage.name.clone(),
            reason: why.reason(),
        };
        if let Ok(bytes) = seal(&self.run.remote.trust().own, KIND_STOP, &stop) {
            let _ = self
                .run
                .remote
                .client()
                .publish(cancel_subject(&self.run.run_id), bytes.into())
                .await;
        }
        tokio::time::Instant::now() + Duration::from_secs(5)
    }
}
