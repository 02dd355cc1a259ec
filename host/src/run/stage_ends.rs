//! How a stage starts and ends, wherever it runs: the started event, the stage cache looked up
//! first and filled on success, and the finished event with its one-line message.

use std::time::{Duration, Instant, SystemTime};

use crate::model::artifacts::ArtifactRecord;
use crate::model::events::Event;
use crate::model::report::{CacheRecord, StageRecord, StageStatus};

use super::record::{millis, rfc3339};
use super::schedule::select_inputs;
use super::stage::StageExecution;
use super::stage_cache::{CachedOutput, Entry};
use super::watch;

/// A stage that is to run: when it started, and the stage-cache key to keep it under.
pub(super) struct Started {
    clock: Instant,
    key: Option<String>,
}

impl StageExecution<'_> {
    /// Says the stage started and serves it from the stage cache when it can (then it is
    /// finished, and `None` is returned); otherwise the stage is to run.
    pub(super) fn begin(
        &self,
        available: &[ArtifactRecord],
        record: &mut StageRecord,
    ) -> Option<Started> {
        self.events.emit(Event::StageStarted {
            stage: self.spec.name.clone(),
        });
        record.started_at = Some(rfc3339(SystemTime::now()));
        let clock = Instant::now();
        let key = self.cache_key(available);
        if let Some(key) = &key
            && self.restore_from_cache(key, record)
        {
            self.finish(record, clock.elapsed());
            return None;
        }
        Some(Started { clock, key })
    }

    /// Keeps a stage that succeeded in the stage cache, and says how it ended.
    pub(super) fn conclude(&self, started: Started, record: &mut StageRecord) {
        if let Some(key) = started.key
            && record.status == StageStatus::Succeeded
        {
            self.store_in_cache(key, record);
        }
        self.finish(record, started.clock.elapsed());
    }

    /// Records the stage's duration and says how it ended.
    pub(super) fn finish(&self, record: &mut StageRecord, elapsed: Duration) {
        let name = &self.spec.name;
        record.duration_ms = Some(millis(elapsed));
        let message = if record.cache.as_ref().is_some_and(|c| c.hit) {
            let key = record
                .cache
                .as_ref()
                .map(|c| c.key.clone())
                .unwrap_or_default();
            Some(format!("cached (key {:.12}…)", key))
        } else if record.status == StageStatus::Succeeded {
            record.summary.clone()
        } else {
            record.message.clone().map(|message| {
                if record.failure_allowed {
                    format!("{message} (allowed to fail)")
                } else {
                    message
                }
            })
        };
        self.events.emit(Event::StageFinished {
            stage: name.clone(),
            status: record.status,
            elapsed,
            message,
        });
    }

    /// The stage-cache key, when the stage may be served from the cache.
    pub(super) fn cache_key(&self, available: &[ArtifactRecord]) -> Option<String> {
        self.stage_cache.root()?;
        if crate::run::stage_cache::uncacheable(self.spec).is_some() {
            return None;
        }
        let inputs = select_inputs(&self.spec.inputs, available).ok()?;
        match self
            .stage_cache
            .key(self.pipeline, self.spec, &self.plugin.sha256, &inputs)
        {
            Ok(key) => Some(key),
            Err(err) => {
                self.warn(&format!(
                    "sluice: no stage-cache key ({err:#}); running the stage"
                ));
                None
            }
        }
    }

    /// Serves the stage from the cache: its outputs restored (re-verified), the plugin not run.
    pub(super) fn restore_from_cache(&self, key: &str, record: &mut StageRecord) -> bool {
        let Some(entry) = self.stage_cache.lookup(key) else {
            return false;
        };
        let name = &self.spec.name;
        let out_dir = self.layout.artifacts_of(name);
        watch::empty(&out_dir);
        if let Err(err) = std::fs::create_dir_all(&out_dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| self.stage_cache.restore(&entry, &out_dir))
        {
            self.warn(&format!(
                "sluice: cannot restore from the stage cache ({err:#}); running the stage"
            ));
            watch::empty(&out_dir);
            return false;
        }
        record.outputs = entry
            .outputs
            .iter()
            .map(|o| ArtifactRecord {
                stage: name.clone(),
                name: o.name.clone(),
                path: format!("artifacts/{name}/{}", o.name),
                media_type: o.media_type.clone(),
                size: o.size,
                sha256: o.sha256.clone(),
            })
            .collect();
        for artifact in &record.outputs {
            self.events.emit(Event::ArtifactWritten {
                stage: name.clone(),
                artifact: artifact.clone(),
            });
        }
        record.summary = entry.summary.clone();
        record.plugin.name = entry.plugin_name.clone();
        record.plugin.version = entry.plugin_version.clone();
        record.status = StageStatus::Succeeded;
        record.message = None;
        record.cache = Some(CacheRecord {
            key: key.to_string(),
            hit: true,
        });
        true
    }

    /// Keeps a succeeded stage's outputs for the next run with the same key.
    pub(super) fn store_in_cache(&self, key: String, record: &mut StageRecord) {
        let entry = Entry {
            key: key.clone(),
            stage: self.spec.name.clone(),
            outputs: record
                .outputs
                .iter()
                .map(|a| CachedOutput {
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                })
                .collect(),
            summary: record.summary.clone(),
            plugin_name: record.plugin.name.clone(),
            plugin_version: record.plugin.version.clone(),
            created_at: rfc3339(SystemTime::now()),
        };
        match self
            .stage_cache
            .store(&key, &entry, &self.layout.artifacts_of(&self.spec.name))
        {
            Ok(()) => record.cache = Some(CacheRecord { key, hit: false }),
            Err(err) => self.warn(&format!(
                "sluice: cannot store the stage in the stage cache: {err:#}"
            )),
        }
    }
}
