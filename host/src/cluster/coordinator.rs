//! The coordinator's side of a distributed run (`--nats`): the scheduler decides as in a local
//! run, and each stage it starts becomes a job on the JetStream work queue instead of a call on
//! this machine. The plugin and the stage's inputs go to the object store by digest, an agent
//! runs the stage and records its result once, and the coordinator brings the outputs and the
//! log back into the run folder — so the report, resume and every reporter work unchanged.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::broadcast;

use super::sealed::{Refused, open, seal};
use super::wire::{
    KIND_DECIDED, KIND_RESULT, KIND_STOP, RunEvent, StageDecided, StageEvent, StageJob,
    StageResult, StopStage, cancel_subject, events_subject,
};
use super::{Remote, RunState};
use crate::config::grants::Access;
use crate::model::artifacts::{ArtifactRecord, sha256_bytes};
use crate::model::events::{Event, EventSink, LogSource};
use crate::model::layout::is_artifact_rel;
use crate::model::report::{StageRecord, StageStatus, rfc3339};
use crate::model::text::{MAX_FIELD_BYTES, MAX_MESSAGE_BYTES, one_line};
use crate::stage::{Elsewhere, Interrupt, StageExecution};

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

/// Takes the run's live events from the agents: only for stages out on an agent now, every
/// string made display-safe before any reporter sees it (anyone on NATS can publish here).
async fn listen(
    mut subscription: async_nats::Subscriber,
    notify: broadcast::Sender<Notice>,
    running: Running,
    events: EventSink,
) {
    while let Some(message) = subscription.next().await {
        let Ok(RunEvent { stage, event }) = serde_json::from_slice(&message.payload) else {
            continue;
        };
        if !running.lock().is_ok_and(|r| r.contains(&stage)) {
            continue;
        }
        match event {
            StageEvent::Taken { agent, delivery } => {
                let _ = notify.send(Notice::Taken(stage.clone()));
                let agent = one_line(&agent, MAX_FIELD_BYTES);
                events.emit(Event::Log {
                    stage,
                    source: LogSource::Info,
                    line: if delivery > 1 {
                        format!("sluice: running on agent {agent} (delivery {delivery}: the agent before stopped)")
                    } else {
                        format!("sluice: running on agent {agent}")
                    },
                });
            }
            StageEvent::Log { source, line } => events.emit(Event::Log {
                stage,
                source,
                line: one_line(&line, MAX_EVENT_LINE),
            }),
            StageEvent::Artifact { artifact } => {
                if artifact.stage == stage
                    && is_artifact_rel(&artifact.stage, &artifact.name, &artifact.path)
                    && crate::model::text::is_display_safe(&artifact.name)
                {
                    events.emit(Event::ArtifactWritten { stage, artifact });
                }
            }
            StageEvent::Recorded => {
                let _ = notify.send(Notice::Recorded(stage));
            }
        }
    }
}

/// A stage's name in the set of stages out on agents while this lives.
struct OutOnAgent {
    running: Running,
    stage: String,
}

impl OutOnAgent {
    fn new(running: &Running, stage: &str) -> Self {
        if let Ok(mut set) = running.lock() {
            set.insert(stage.to_string());
        }
        Self {
            running: running.clone(),
            stage: stage.to_string(),
        }
    }
}

impl Drop for OutOnAgent {
    fn drop(&mut self) {
        if let Ok(mut set) = self.running.lock() {
            set.remove(&self.stage);
        }
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
                let tree = exec.around.stage_cache.content_tree(folder)?;
                let (sha256, shipped) = super::workspace::ship(
                    run.remote.blobs(),
                    folder,
                    &tree,
                    &exec.around.layout.dir,
                    |sha| run.stored(sha),
                    |sha| run.mark_stored(sha),
                )
                .await?;
                exec.say(
                    LogSource::Info,
                    &format!(
                        "sluice: workspace sent by content: {} files, {} new ({} bytes)",
                        shipped.files, shipped.sent, shipped.bytes_sent
                    ),
                );
                anyhow::Ok(sha256)
            })
            .await?;
        Ok(Some(tree.clone()))
    }

    /// The first result, from stream sequence `next` on, signed by a key trusted to record this
    /// stage and bound to the job with digest `job_sha256`; anything else on the stage's
    /// subjects is refused and said (once: `next` moves past it).
    async fn look(&self, job_sha256: &str, next: &mut u64) -> Result<Option<Bound>> {
        let (run, exec) = (self.run, self.exec);
        let name = &exec.stage.name;
        let trusted = run.remote.trust().agents_for(&exec.stage.runs_on);
        for message in run.remote.results().since(&run.run_id, name, *next).await? {
            *next = message.sequence + 1;
            let why = match open::<StageResult>(&message.bytes, KIND_RESULT, &trusted) {
                Ok(opened) if opened.value.job_sha256 == job_sha256 => {
                    return Ok(Some(Bound {
                        result: opened.value,
                        sha256: opened.sha256,
                        signer: opened.signer.short_id(),
                    }));
                }
                Ok(opened) => format!(
                    "it answers another job (signed by {})",
                    opened.signer.short_id()
                ),
                // The coordinator's own note that it decided: not a result.
                Err(Refused::WrongKind(kind, _)) if kind.contains(KIND_DECIDED) => continue,
                Err(err) => err.to_string(),
            };
            exec.say(
                LogSource::Warn,
                &format!("sluice: refused a result recorded for this stage: {why}"),
            );
        }
        Ok(None)
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

    /// Takes a bound result as this stage's: its outputs and log fetched by digest into the
    /// run folder (verified on the way); of its record only what the agent decides — status,
    /// times, outputs, summary, message, what was denied, earlier attempts, the plugin's name —
    /// each string made display-safe. Phase, grants, plugin digest, gate, dependencies and
    /// inputs stay the coordinator's.
    async fn adopt(&self, bound: Bound, record: &mut StageRecord) -> Result<()> {
        let (run, layout) = (self.run, self.exec.around.layout);
        let (remote, name) = (run.remote, &self.exec.stage.name);
        let result = bound.result;
        let theirs = match &result.record_sha256 {
            // Too big for the message: the record the agent signed by digest, from the store.
            Some(sha256) => {
                let file = remote.blobs().fetch(sha256).await?;
                let whole: StageRecord = serde_json::from_slice(&std::fs::read(&file)?)
                    .context("the stage's record from the store cannot be read")?;
                if whole.name != *name {
                    bail!(
                        "the record signed by {} is stage `{}`'s",
                        bound.signer,
                        one_line(&whole.name, 200)
                    );
                }
                whole
            }
            None => result.record,
        };
        if !matches!(
            theirs.status,
            StageStatus::Succeeded
                | StageStatus::Failed
                | StageStatus::Error
                | StageStatus::Crashed
                | StageStatus::Cancelled
        ) {
            bail!(
                "the result signed by {} says the stage is `{}`, which is not how a stage ends",
                bound.signer,
                theirs.status.label()
            );
        }
        let output = self.exec.output();
        output.empty();
        output.create()?;
        for artifact in &theirs.outputs {
            if artifact.stage != *name
                || !is_artifact_rel(&artifact.stage, &artifact.name, &artifact.path)
                || !crate::model::text::is_display_safe(&artifact.name)
            {
                bail!(
                    "the result signed by {} names artifact `{}` at `{}`, which is not this stage's",
                    bound.signer,
                    one_line(&artifact.reference(), MAX_FIELD_BYTES),
                    one_line(&artifact.path, MAX_FIELD_BYTES)
                );
            }
        }
        // Several at once: each is a few round trips to the server.
        let wanted: Vec<(String, std::path::PathBuf, String)> = theirs
            .outputs
            .iter()
            .map(|a| (a.sha256.clone(), layout.dir.join(&a.path), a.reference()))
            .collect();
        let blobs = remote.blobs();
        futures_util::stream::iter(wanted)
            .map(|(sha256, dest, reference)| async move {
                blobs
                    .place(&sha256, &dest)
                    .await
                    .with_context(|| format!("cannot bring back artifact `{reference}`"))
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        for artifact in &theirs.outputs {
            // It came from the store, verified: the next stage's agent finds it there.
            run.mark_stored(artifact.sha256.clone());
        }
        let text = |t: Option<String>| t.map(|t| one_line(&t, MAX_MESSAGE_BYTES));
        record.status = theirs.status;
        record.started_at = theirs.started_at.map(|t| one_line(&t, 64));
        record.duration_ms = theirs.duration_ms.filter(|d| d.is_finite() && *d >= 0.0);
        record.outputs = theirs.outputs;
        record.summary = text(theirs.summary);
        record.message = text(theirs.message);
        record.denied = theirs
            .denied
            .iter()
            .take(100)
            .map(|d| one_line(d, MAX_FIELD_BYTES))
            .collect();
        record.earlier_attempts = theirs
            .earlier_attempts
            .into_iter()
            .take(11)
            .map(|mut a| {
                a.message = text(a.message);
                a
            })
            .collect();
        record.ran_on = Some(format!(
            "{} ({})",
            one_line(&result.by, MAX_FIELD_BYTES),
            bound.signer
        ));
        record.plugin.name = theirs.plugin.name.map(|n| one_line(&n, MAX_FIELD_BYTES));
        record.plugin.version = theirs.plugin.version.map(|v| one_line(&v, MAX_FIELD_BYTES));
        record.log = None;
        let rel = layout.log_rel(name);
        if let Some(text) = &result.log_text {
            std::fs::write(layout.dir.join(&rel), display_safe_lines(text))
                .with_context(|| format!("cannot write the log of `{name}`"))?;
            record.log = Some(rel);
        } else if let Some(log) = &result.log_sha256 {
            let path = layout.dir.join(&rel);
            remote.blobs().place(log, &path).await?;
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            std::fs::write(&path, display_safe_lines(&text))?;
            record.log = Some(rel);
        }
        // Agents still holding the job stop: the stage is decided.
        let decided = StageDecided {
            run_id: run.run_id.clone(),
            stage: name.clone(),
            result_sha256: bound.sha256,
        };
        if let Ok(sealed) = seal(&remote.trust().own, KIND_DECIDED, &decided) {
            let _ = remote.results().record(&run.run_id, name, sealed).await;
        }
        Ok(())
    }
}

/// A result that opened under a trusted key and answers the job sent.
struct Bound {
    result: StageResult,
    /// The digest of the sealed result.
    sha256: String,
    /// Who signed it, for messages.
    signer: String,
}

/// Each line of a log from an agent, display-safe.
fn display_safe_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&one_line(line, MAX_EVENT_LINE));
        out.push('\n');
    }
    out
}

/// Whether a job this coordinator sent before is its own and has not expired.
fn still_runnable(sealed: &[u8], own: &crate::trust::signing::SigningKey) -> bool {
    let key = own.public(std::path::Path::new("(own key)"));
    open::<StageJob>(sealed, super::wire::KIND_JOB, &[&key]).is_ok_and(|job| {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // With room for an agent to take it.
        job.value.expires_at > now + 60
    })
}

/// 16 random bytes, hex: a job's id.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|err| anyhow::anyhow!("no randomness for a job id: {err}"))?;
    Ok(hex::encode(bytes))
}

/// When a job sent now stops being runnable: an hour, plus the stage's timeout for each time
/// the queue may deliver it.
fn expiry(exec: &StageExecution<'_>) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let per_try = exec.stage.limits.timeout.as_secs();
    now + JOB_LIFETIME.as_secs() + per_try.saturating_mul(u64::from(exec.stage.retries) + 4)
}
