//! One slot per stage of a run: the stage as written, what it resolved to, its prepared plugin
//! and secrets, and its record — one value the dispatcher hands around, in place of vectors
//! kept side by side by index.

use std::borrow::Borrow;
use std::sync::Arc;
use std::time::Duration;

use crate::config::pipeline::StageSpec;
use crate::model::events::{Event, EventSink, LogSource};
use crate::model::report::{StageRecord, StageStatus, millis};
use crate::resolve::{ResolvedPipeline, ResolvedStage};
use crate::sandbox::cache::CacheOutcome;
use crate::sandbox::engine::Host;
use crate::stage::{PreparedStage, RunsOn};
use crate::trust::secrets::SecretValues;

/// One stage of the run.
pub(super) struct Slot<'a> {
    pub spec: &'a StageSpec,
    pub resolved: &'a ResolvedStage,
    /// Its plugin and secrets once prepared (shared with the thread that runs it).
    pub prepared: Option<Arc<PreparedStage>>,
    pub record: StageRecord,
}

impl Borrow<StageRecord> for Slot<'_> {
    fn borrow(&self) -> &StageRecord {
        &self.record
    }
}

/// The slots of `resolved`'s stages, with their records so far (pipeline order).
pub(super) fn slots(resolved: &ResolvedPipeline, records: Vec<StageRecord>) -> Vec<Slot<'_>> {
    resolved
        .stages()
        .zip(records)
        .map(|((spec, stage), record)| Slot {
            spec,
            resolved: stage,
            prepared: None,
            record,
        })
        .collect()
}

/// The records of every slot, in pipeline order.
pub(super) fn records(slots: &[Slot<'_>]) -> Vec<StageRecord> {
    slots.iter().map(|slot| slot.record.clone()).collect()
}

/// Prepares every pending stage — a typo in the last stage should not cost a full build first —
/// recording each plugin's digest and load time; stops at the first stage that cannot be
/// prepared (its record says why) and returns its name.
pub(super) fn prepare_all(
    host: &Host,
    resolved: &ResolvedPipeline,
    slots: &mut [Slot<'_>],
    secret_values: &SecretValues,
    events: &EventSink,
    remote: bool,
) -> Option<String> {
    let mut said_cache_unusable = false;
    // A stage sent to an agent finds its folders and secrets there, not here.
    let runs_on = if remote {
        RunsOn::Agent
    } else {
        RunsOn::Here(secret_values)
    };
    for slot in slots
        .iter_mut()
        .filter(|s| s.record.status == StageStatus::Pending)
    {
        let spec = slot.spec;
        match PreparedStage::of_pipeline(host, &resolved.pipeline, spec, slot.resolved, runs_on) {
            Ok(prepared) => {
                let plugin = &prepared.plugin;
                if let CacheOutcome::Unusable(why) = &plugin.cache
                    && !std::mem::replace(&mut said_cache_unusable, true)
                {
                    events.emit(Event::Log {
                        stage: String::new(),
                        source: LogSource::Warn,
                        line: format!(
                            "sluice: the compiled-code cache cannot be used ({why}); plugins are compiled for this run only"
                        ),
                    });
                }
                let cache_hit = plugin.cache == CacheOutcome::Hit;
                let record = &mut slot.record;
                record.plugin.sha256 = Some(plugin.sha256.clone());
                record.plugin.size = Some(plugin.size);
                record.plugin.cache_hit = Some(cache_hit);
                record.plugin.load_ms = Some(millis(plugin.load_time));
                events.emit(Event::PluginReady {
                    stage: spec.name.clone(),
                    plugin: spec.plugin_ref.clone(),
                    cache_hit,
                    load_time: plugin.load_time,
                });
                slot.prepared = Some(Arc::new(prepared));
            }
            Err(message) => {
                refuse_unprepared(&mut slot.record, message, events);
                return Some(spec.name.clone());
            }
        }
    }
    None
}

/// Records a stage whose plugin or secrets could not be prepared as an error, and says so.
pub(crate) fn refuse_unprepared(record: &mut StageRecord, message: String, events: &EventSink) {
    record.status = StageStatus::Error;
    record.message = Some(message.clone());
    events.emit(Event::StageFinished {
        stage: record.name.clone(),
        status: StageStatus::Error,
        elapsed: Duration::ZERO,
        message: Some(message),
    });
}
