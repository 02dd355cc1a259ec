//! Before anything runs: every stage's plugin is loaded, checked against its grants and its
//! pin, and its secrets are read — a typo in the last stage should not cost a full build first.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::pipeline::StageSpec;
use crate::model::events::{Event, EventSink, LogSource};
use crate::model::report::{StageRecord, StageStatus};
use crate::plugin::{self, Plugin};
use crate::resolve::{ResolvedPipeline, ResolvedStage};
use crate::sandbox::cache::CacheOutcome;
use crate::sandbox::caps::CapSet;
use crate::sandbox::engine::Host;
use crate::trust::secrets::SecretValues;

use super::record::millis;

/// The stages' plugins and granted secret values, by stage index.
pub(crate) struct Prepared {
    pub plugins: Vec<Option<Plugin>>,
    pub secrets: Vec<BTreeMap<String, String>>,
    /// A stage whose plugin could not be prepared: nothing runs.
    pub failed: Option<String>,
}

/// Prepares every pending stage, recording each plugin's digest and load time; stops at the first
/// stage that cannot be prepared (its record says why).
pub(crate) fn prepare_stages(
    host: &Host,
    resolved: &ResolvedPipeline,
    records: &mut [StageRecord],
    secret_values: &SecretValues,
    events: &EventSink,
    remote: bool,
) -> Prepared {
    let pipeline = &resolved.pipeline;
    let count = pipeline.stages.len();
    let mut prepared = Prepared {
        plugins: (0..count).map(|_| None).collect(),
        secrets: vec![BTreeMap::new(); count],
        failed: None,
    };
    let mut said_cache_unusable = false;
    for (index, record) in records.iter_mut().enumerate() {
        if record.status != StageStatus::Pending {
            continue;
        }
        let spec = &pipeline.stages[index];
        match prepare_stage(host, spec, &resolved.stages[index], secret_values, remote) {
            Ok((plugin, secrets)) => {
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
                prepared.plugins[index] = Some(plugin);
                prepared.secrets[index] = secrets;
            }
            Err(message) => {
                refuse_unprepared(record, message, events);
                prepared.failed = Some(spec.name.clone());
                break;
            }
        }
    }
    prepared
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

/// One stage's plugin, loaded for its grants and checked against its pin, and its secrets.
fn prepare_stage(
    host: &Host,
    spec: &StageSpec,
    resolved: &ResolvedStage,
    secret_values: &SecretValues,
    remote: bool,
) -> Result<(Plugin, BTreeMap<String, String>), String> {
    // A stage sent to an agent finds its folders and secrets there, not here.
    let secrets = if remote {
        BTreeMap::new()
    } else {
        preflight(spec, secret_values)?
    };
    let caps = CapSet::of(&spec.grants);
    if spec.plugin.registry().is_some() && resolved.pin.is_none() {
        return Err(format!(
            "registry plugin {} was not resolved before the run",
            spec.plugin_ref
        ));
    }
    let plugin = plugin::load(host, &resolved.plugin_path, &spec.name, caps)
        .map_err(|err| err.to_string())?;
    if let Some(pin) = &resolved.pin
        && pin.layer_digest.trim_start_matches("sha256:") != plugin.sha256
    {
        return Err(format!(
            "the local copy of {} changed after it was verified (pinned {}, found sha256:{})",
            spec.plugin_ref, pin.layer_digest, plugin.sha256
        ));
    }
    Ok((plugin, secrets))
}

/// What must hold before a stage can run at all; returns the secret values it is granted.
pub(crate) fn preflight(
    spec: &StageSpec,
    secrets: &SecretValues,
) -> Result<BTreeMap<String, String>, String> {
    for dir in &spec.grants.dirs {
        if !dir.optional && !dir.host.is_dir() {
            return Err(format!(
                "granted dir {} (mounted at {}) does not exist; create it or fix `allow.dirs`",
                dir.host.display(),
                dir.guest
            ));
        }
    }
    let mut granted = BTreeMap::new();
    for name in &spec.grants.secrets {
        let value = secrets
            .get(name)
            .map_err(|why| format!("secret `{name}` cannot be loaded: {why}"))?;
        granted.insert(name.clone(), value.to_string());
    }
    Ok(granted)
}
