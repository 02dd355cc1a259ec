//! Running one stage, wherever it runs: it is started (and served from the stage cache when it
//! can be), attempted up to its retries — in this machine's sandbox, or handed to whatever runs
//! it elsewhere — and finished with its record filled in. Whatever goes wrong becomes its record.
//! One attempt in this machine's sandbox is [`super::attempt`]'s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::model::artifacts::ArtifactRecord;
use crate::model::events::{Event, EventSink, LogSource};
use crate::model::layout::RunLayout;
use crate::model::report::{Attempt, CacheRecord, StageRecord, StageStatus, millis, rfc3339};
use crate::plugin::Plugin;
use crate::sandbox::bindings::sluice::pipeline::types::StageRun as EarlierStage;
use crate::sandbox::engine::Host;
use crate::trust::secrets::Masker;

use super::cache::{KeyParts, StageCache};
use super::flaky::{self, FailedAttempt};
use super::output::OutputFolder;
use super::volumes::CacheVolumes;
use super::{Interrupt, LockedStage, PreparedStage, earlier_stages};

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
        // The key of the inputs the current attempt runs on, and what each failed one left.
        let mut key = started.key.as_ref().map(KeyParts::key);
        let mut failed = Vec::new();
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
            // Read before the retry empties the output folder.
            if record.status == StageStatus::Failed {
                failed.push(FailedAttempt::read(
                    attempt,
                    key.clone(),
                    self.output().path(),
                ));
            }
            if key.is_some() {
                // A stage (or a program it ran) may have changed what its key covers.
                key = self.key_now(available);
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
        let layout_dir = &self.around.layout.dir;
        if let Some(line) = flaky::mark(
            record,
            &failed,
            key.as_deref(),
            self.unwritable(),
            layout_dir,
        ) {
            for test in &mut record.flaky {
                let masked = self.around.masker.mask(&test.message);
                test.message =
                    crate::model::text::one_line(&masked, crate::model::text::MAX_FIELD_BYTES);
            }
            self.warn(&self.around.masker.mask(&line));
        }
        self.conclude(started, record).await;
    }

    /// The stage's key on `available` now, when one can be made.
    fn key_now(&self, available: &[ArtifactRecord]) -> Option<String> {
        match self.around.stage_cache.key_for(self.stage, available) {
            Ok(parts) => parts.as_ref().map(KeyParts::key),
            Err(err) => {
                self.warn(&format!("sluice: no stage key before the retry ({err:#})"));
                None
            }
        }
    }

    /// Whether nothing the stage does can change what it reads: no write access to a host
    /// folder, and no host program (which could write anywhere). Its inputs, then, are the
    /// same for every attempt of one run, key or no key.
    fn unwritable(&self) -> bool {
        use crate::config::grants::Access;
        let grants = &self.stage.grants;
        grants.exec.is_empty()
            && grants.workspace != Access::Write
            && grants.dirs.iter().all(|d| d.access != Access::Write)
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
            // What the stage makes for later stages must be there for a hit to stand in for it.
            let served = if parts.missing.is_empty() {
                cache
                    .serve(&key, &self.output(), record, self.around.events)
                    .await
            } else {
                self.say(
                    LogSource::Info,
                    &format!(
                        "sluice: stage cache not used: {} is not there (a stage makes it)",
                        parts.missing.join(", ")
                    ),
                );
                Ok(false)
            };
            match served {
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

    /// Keeps a stage that succeeded in the stage cache — not one its quarantine let off, whose
    /// key does not hold the quarantine — and says how it ended.
    async fn conclude(&self, started: Started, record: &mut StageRecord) {
        if let Some(parts) = &started.key
            && record.status == StageStatus::Succeeded
            && record.quarantined.is_empty()
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
}
