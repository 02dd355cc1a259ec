//! `sluice agent`: takes stage jobs from the NATS work queue and runs each exactly as a local run
//! would (the same preparation and `StageExecution`, grants, limits, masking) — the stage locked
//! by the coordinator, not re-read from a pipeline file — with the plugin and inputs fetched
//! by digest, secrets read from this machine, the job heartbeaten while it runs, outputs and log
//! sent back by digest, and the result recorded signed. A job runs only when a coordinator this
//! agent trusts signed it, it has not expired and it is not a replay; what is refused is said
//! and kept in `refused-jobs.log`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};

use super::sealed::seal;
use super::wire::{
    INLINE_LOG_BYTES, INLINE_RECORD_BYTES, KIND_RESULT, StageEvent, StageJob, StageResult,
};
use super::{Remote, TakenJob};
use crate::config::grants::Access;
use crate::model::artifacts::{ArtifactRecord, sha256_bytes};
use crate::model::layout::{RunLayout, is_artifact_rel};
use crate::model::report::{StageRecord, StageStatus};
use crate::sandbox::engine::Host;
use crate::stage::cache::StageCache;
use crate::stage::reach::refuse_locked_in_mounts;
use crate::stage::{Interrupt, PreparedStage, StageExecution, StageSurroundings};

mod admission;
mod talk;

/// Outputs sent to the store at once.
const BLOBS_AT_ONCE: usize = 16;

/// How long an agent keeps trying to record a result while NATS is away.
const RECORD_PATIENCE: Duration = Duration::from_secs(60);

/// How an agent serves.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// How the agent is named in records and logs.
    pub name: String,
    /// What this machine offers (`--label`): it takes jobs needing any subset of them.
    pub labels: BTreeSet<String>,
    /// Stages run at once.
    pub jobs: usize,
    /// Job folders (removed after each job) and fetched blobs.
    pub work_dir: PathBuf,
    /// How often a running job is heartbeaten (a third of the queue's ack wait).
    pub heartbeat: Duration,
    /// Files no stage may read or be given a folder around: the NATS credentials file, the
    /// cluster key, the compiled-code cache key.
    pub protected_files: Vec<(String, PathBuf)>,
    /// The agent's own credential values (its NATS password, its credentials file's lines):
    /// masked in everything a stage sends back, like the stage's secrets.
    pub credentials: Vec<String>,
}

/// What a slot needs to run jobs.
struct Agent<'a> {
    host: &'a Host,
    remote: &'a Remote,
    options: &'a AgentOptions,
    say: &'a (dyn Fn(String) + Sync),
    handle: tokio::runtime::Handle,
}

/// Serves jobs until `stop` is triggered; a running stage is finished first.
pub fn serve(
    host: &Host,
    remote: &Remote,
    options: &AgentOptions,
    stop: &Interrupt,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let handle =
        tokio::runtime::Handle::try_current().context("the agent needs a tokio runtime")?;
    let agent = Agent {
        host,
        remote,
        options,
        say,
        handle: handle.clone(),
    };
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            let (agent, handle) = (&agent, handle.clone());
            // Each slot has its own thread: a busy stage never delays another's heartbeat.
            scope.spawn(move || handle.block_on(agent.slot(stop)));
        }
    });
    Ok(())
}

impl Agent<'_> {
    async fn slot(&self, stop: &Interrupt) {
        let labels = &self.options.labels;
        while !stop.is_triggered() {
            let taken = tokio::select! {
                taken = self.remote.queue().take(labels, Duration::from_secs(1)) => taken,
                () = stop.triggered() => break,
            };
            match taken {
                Ok(Some(taken)) => self.handle_job(taken).await,
                Ok(None) => {}
                Err(err) => {
                    (self.say)(format!("warning: {err:#}; trying again"));
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    /// Runs one job (or reports it given up) and records its signed result — when the job is
    /// signed by a coordinator this agent trusts, not expired, not a replay, and not decided.
    async fn handle_job(&self, taken: TakenJob) {
        let (job, job_sha256) = match self.admit(&taken) {
            Ok(admitted) => admitted,
            Err(why) => {
                self.refuse(&taken, &why);
                let _ = taken.finish().await;
                return;
            }
        };
        if self.decided(&job, &job_sha256).await {
            // Done by another agent, or stopped by its coordinator.
            let _ = taken.finish().await;
            return;
        }
        let delivery = taken.delivered;
        let cancel = Interrupt::new();
        // The heartbeat runs beside the stage and its recording (the stage's future yields
        // often, at epoch ticks); it also stops a stage whose result was decided elsewhere (its
        // coordinator gave up waiting, and a stop message was missed).
        let beat = async {
            loop {
                tokio::time::sleep(self.options.heartbeat).await;
                if let Err(err) = taken.heartbeat().await {
                    (self.say)(format!("warning: {err:#}"));
                }
                if self.decided(&job, &job_sha256).await {
                    cancel.trigger_because("stopped: its run recorded this stage meanwhile");
                }
            }
        };
        let work = async {
            let mut result = if delivery >= taken.max_deliver {
                // The queue's last delivery is kept for saying that no agent finished it.
                given_up(&job, delivery, &self.options.name)
            } else {
                self.run_taken(&job, delivery, &cancel).await
            };
            result.job_sha256 = job_sha256.clone();
            let recorded = self.record_patiently(&job, &result).await;
            (result.record.status, recorded)
        };
        let (status, recorded) = tokio::select! {
            done = work => done,
            never = beat => match never {},
        };
        self.publish(&job.run_id, &job.stage.name, StageEvent::Recorded)
            .await;
        if recorded.is_ok() {
            let _ = taken.finish().await;
        }
        let said = match recorded {
            Ok(()) => status.label().to_string(),
            // Not acknowledged either: the job is given again after the ack wait.
            Err(err) => format!(
                "{}, not recorded ({err:#}); the job goes back to the queue",
                status.label()
            ),
        };
        (self.say)(format!("{} {}: {said}", job.run_id, job.stage.name));
    }

    /// Runs a job this agent holds, whatever goes wrong becoming its result.
    async fn run_taken(&self, job: &StageJob, delivery: i64, cancel: &Interrupt) -> StageResult {
        self.publish(
            &job.run_id,
            &job.stage.name,
            StageEvent::Taken {
                agent: self.options.name.clone(),
                delivery,
            },
        )
        .await;
        let listening = self
            .listen_for_cancel(&job.run_id, &job.stage.name, cancel)
            .await;
        let result = self.run_job(job, delivery, cancel.clone()).await;
        if let Ok(listening) = listening {
            listening.abort();
        }
        result.unwrap_or_else(|err| {
            let mut record = job.record.clone();
            record.status = StageStatus::Error;
            record.message = Some(format!(
                "agent {} could not run the stage: {err:#}",
                self.options.name
            ));
            self.result(record, None, delivery)
        })
    }

    /// Records the result, signed by this agent, waiting (heartbeating) while NATS is away: a
    /// stage that ran is not run again because the server restarted meanwhile.
    async fn record_patiently(&self, job: &StageJob, result: &StageResult) -> Result<()> {
        let bytes = seal(&self.remote.trust().own, KIND_RESULT, result)?;
        let started = tokio::time::Instant::now();
        loop {
            match self
                .remote
                .results()
                .record(&job.run_id, &job.stage.name, bytes.clone())
                .await
            {
                Err(err) if started.elapsed() < RECORD_PATIENCE => {
                    (self.say)(format!("warning: {err:#}; trying again"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                done => return done,
            }
        }
    }

    /// Runs the stage in a folder of its own, under the grants its locked stage gives.
    async fn run_job(
        &self,
        job: &StageJob,
        delivery: i64,
        cancel: Interrupt,
    ) -> Result<StageResult> {
        self.refuse_own_folders(job)?;
        let blobs = self.remote.blobs();
        let plugin_file = blobs.fetch(&job.stage.plugin_sha256).await?;
        let mut record = job.record.clone();
        let folder = JobFolder::make(&self.options.work_dir, job, delivery)?;
        // The workspace, by content: a fresh copy for this job, never a folder of the
        // coordinator's.
        let mut stage = job.stage.clone();
        if stage.grants.workspace != Access::None {
            let Some(tree) = &job.workspace_tree else {
                bail!("the job grants the workspace but carries no workspace tree");
            };
            let dest = folder.0.join("workspace");
            let clock = std::time::Instant::now();
            let built = super::workspace::materialize(blobs, tree, &dest)
                .await
                .context("cannot build the job's workspace")?;
            let line = format!(
                "sluice: workspace built on agent {}: {} files ({} fetched in {} ms) in {} ms",
                self.options.name,
                built.files,
                built.fetched,
                built.fetching.as_millis(),
                clock.elapsed().as_millis()
            );
            let source = crate::model::events::LogSource::Info;
            self.publish(
                &job.run_id,
                &job.stage.name,
                StageEvent::Log { source, line },
            )
            .await;
            stage.workspace = dest;
        }
        let prepared = match PreparedStage::of_locked(self.host, stage, &plugin_file) {
            Ok(prepared) => prepared,
            Err(why) => {
                record.status = StageStatus::Error;
                record.message = Some(format!("on agent {}: {why}", self.options.name));
                return Ok(self.result(record, None, delivery));
            }
        };
        let layout = RunLayout::open(&folder.0, &job.run_id)?;
        for artifact in &job.available {
            check_artifact_path(artifact)?;
            blobs
                .place(&artifact.sha256, &folder.0.join(&artifact.path))
                .await?;
        }
        let masker = crate::trust::secrets::Masker::new(
            prepared
                .secrets
                .values()
                .cloned()
                .chain(self.options.credentials.iter().cloned()),
        );
        let (sink, forwarder) = self.forward_events(&job.run_id);
        // The stage cache is the coordinator's: it sends only stages it decided to run.
        let stage_cache = StageCache::new(None);
        let volumes = crate::stage::volumes::CacheVolumes::new(
            crate::stage::volumes::CacheVolumes::default_root(),
        );
        let around = StageSurroundings {
            host: self.host,
            layout: &layout,
            events: &sink,
            masker: &masker,
            stage_cache: &stage_cache,
            volumes: &volumes,
            interrupt: None,
        };
        let execution = StageExecution::new(&around, &prepared, &job.earlier, cancel);
        execution.execute(&job.available, &mut record).await;
        drop(execution);
        drop(around);
        drop(sink);
        // Every line the stage logged is sent before its result is.
        let _ = forwarder.join();
        // Several at once: each is a few round trips to the server.
        let paths: Vec<PathBuf> = record
            .outputs
            .iter()
            .map(|o| folder.0.join(&o.path))
            .collect();
        futures_util::stream::iter(paths)
            .map(|path| async move { blobs.put_file(&path).await })
            .buffer_unordered(BLOBS_AT_ONCE)
            .try_collect::<Vec<_>>()
            .await?;
        let mut result = self.result(record, None, delivery);
        if let Some(rel) = &result.record.log {
            let path = folder.0.join(rel);
            let small = std::fs::metadata(&path).is_ok_and(|m| m.len() <= INLINE_LOG_BYTES);
            match small.then(|| std::fs::read_to_string(&path).ok()).flatten() {
                Some(text) => result.log_text = Some(text),
                None => result.log_sha256 = Some(blobs.put_file(&path).await?.sha256),
            }
        }
        // A record too big for one message (thousands of outputs) travels as a blob, named in
        // the signed result by its digest.
        let whole = serde_json::to_vec(&result.record)?;
        if whole.len() > INLINE_RECORD_BYTES {
            let path = folder.0.join("record.json");
            std::fs::write(&path, &whole)
                .with_context(|| format!("cannot write {}", path.display()))?;
            result.record_sha256 = Some(blobs.put_file(&path).await?.sha256);
            result.record.outputs.clear();
        }
        Ok(result)
    }

    /// A stage whose grants reach the agent's own folders (jobs, blobs, compiled code) could
    /// read or rewrite another job's files: refused, as a local run refuses a stage that
    /// reaches its runs folder.
    fn refuse_own_folders(&self, job: &StageJob) -> Result<()> {
        let mut folders = vec![("the agent's work folder", self.options.work_dir.as_path())];
        if let Some(cache) = self.host.cache_dir() {
            folders.push(("the compiled-code cache", cache));
        }
        let volumes = crate::stage::volumes::CacheVolumes::default_root();
        if let Some(volumes) = &volumes {
            folders.push(("the agent's cache volumes", volumes));
        }
        for (what, file) in &self.options.protected_files {
            folders.push((what.as_str(), file.as_path()));
        }
        refuse_locked_in_mounts(&job.stage, &folders)
    }

    fn result(&self, record: StageRecord, log: Option<String>, delivery: i64) -> StageResult {
        StageResult {
            // Set once the result is complete (see `handle_job`).
            job_sha256: String::new(),
            record_sha256: None,
            record,
            log_sha256: log,
            log_text: None,
            by: self.options.name.clone(),
            delivery,
        }
    }
}

/// The record of a stage nobody finished within the queue's deliveries.
fn given_up(job: &StageJob, delivery: i64, agent: &str) -> StageResult {
    let mut record = job.record.clone();
    record.status = StageStatus::Error;
    record.message = Some(format!(
        "no agent finished this stage in {} deliveries: each agent that took it stopped \
         heartbeating (killed, or cut off from NATS)",
        delivery - 1
    ));
    StageResult {
        job_sha256: String::new(),
        record_sha256: None,
        record,
        log_sha256: None,
        log_text: None,
        by: agent.to_string(),
        delivery,
    }
}

/// An input is placed only where sluice keeps artifacts, whatever the job says.
fn check_artifact_path(artifact: &ArtifactRecord) -> Result<()> {
    if !is_artifact_rel(&artifact.stage, &artifact.name, &artifact.path) {
        bail!(
            "the job names input `{}` at `{}`, which is not where sluice keeps artifacts",
            artifact.reference(),
            artifact.path
        );
    }
    Ok(())
}

/// A job's own run folder on this agent, removed when the job is done.
struct JobFolder(PathBuf);

impl JobFolder {
    fn make(work_dir: &Path, job: &StageJob, delivery: i64) -> Result<Self> {
        let stage = sha256_bytes(job.stage.name.as_bytes());
        let jobs = work_dir.join("jobs");
        std::fs::create_dir_all(&jobs)
            .with_context(|| format!("cannot create {}", jobs.display()))?;
        // A folder of its own, made exclusively: after a NATS restart the same delivery of a job
        // can come twice, and the second must not empty the first's folder under it.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-{}-{delivery}-", job.run_id, &stage[..12]))
            .tempdir_in(&jobs)
            .with_context(|| format!("cannot create a job folder in {}", jobs.display()))?
            .keep();
        for sub in ["artifacts", "logs"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        Ok(Self(dir))
    }
}

impl Drop for JobFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
