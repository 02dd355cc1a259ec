//! Before a stage runs, wherever it runs: its plugin loaded and linked for exactly its grants
//! and checked against the digest it must have (the registry pin, or the digest a job names),
//! its granted folders checked and its granted secrets read. `sluice run`, `sluice stage run`,
//! `sluice check` and an agent all prepare a stage here, so none of them verifies less.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::grants::Grants;
use crate::config::pipeline::{Pipeline, StageSpec};
use crate::plugin::{self, Plugin};
use crate::resolve::ResolvedStage;
use crate::sandbox::caps::CapSet;
use crate::sandbox::engine::Host;
use crate::trust::secrets::SecretValues;

use super::LockedStage;

/// A stage ready to run: locked, its plugin loaded for its grants, its secret values read.
pub struct PreparedStage {
    pub locked: LockedStage,
    pub plugin: Plugin,
    /// Values of the secrets it is granted (none when it runs on an agent, which reads its own).
    pub secrets: BTreeMap<String, String>,
}

/// Where a stage's secrets and granted folders are: here, or on the agent it is sent to.
#[derive(Clone, Copy)]
pub enum RunsOn<'a> {
    /// This machine, with the values of the pipeline's secrets.
    Here(&'a SecretValues),
    /// An agent, which checks its folders and reads its secrets itself.
    Agent,
}

impl PreparedStage {
    /// Prepares stage `spec` of `pipeline`, whose plugin `stage` resolved to.
    pub fn of_pipeline(
        host: &Host,
        pipeline: &Pipeline,
        spec: &StageSpec,
        stage: &ResolvedStage,
        runs_on: RunsOn<'_>,
    ) -> Result<Self, String> {
        let today = crate::config::pipeline::quarantine::today();
        let expired = crate::config::pipeline::quarantine::expired(&spec.quarantine, today);
        if !expired.is_empty() {
            return Err(format!(
                "its quarantine has expired for {}: fix the test{} or, if it must stay quarantined, give it a later `until` (YYYY-MM-DD) in the stage's `quarantine`",
                expired.join(", "),
                if expired.len() > 1 { "s" } else { "" }
            ));
        }
        let secrets = match runs_on {
            RunsOn::Here(values) => preflight(&spec.grants, values)?,
            RunsOn::Agent => BTreeMap::new(),
        };
        if spec.plugin.registry().is_some() && stage.pin.is_none() {
            return Err(format!(
                "registry plugin {} was not resolved before the run",
                spec.plugin_ref
            ));
        }
        // The registry pin, or the bytes of a local file whose capability set was checked
        // against pipeline.lock: a file changed since is not loaded unchecked.
        let pinned = stage
            .pin
            .as_ref()
            .map(|pin| pin.layer_digest.trim_start_matches("sha256:"))
            .or(stage.checked_sha256.as_deref());
        let plugin = load_checked(
            host,
            &stage.plugin_path,
            &spec.name,
            &spec.grants,
            &spec.plugin_ref,
            pinned,
        )?;
        let locked = LockedStage::new(pipeline, spec, &plugin.sha256);
        Ok(Self {
            locked,
            plugin,
            secrets,
        })
    }

    /// Prepares a stage locked elsewhere (a job from a coordinator), whose component is the file
    /// at `plugin_path`: its bytes must be the ones the lock names.
    pub fn of_locked(host: &Host, locked: LockedStage, plugin_path: &Path) -> Result<Self, String> {
        let values = SecretValues::load(&locked.secrets);
        let secrets = preflight(&locked.grants, &values)?;
        let plugin = load_checked(
            host,
            plugin_path,
            &locked.name,
            &locked.grants,
            &locked.plugin_ref,
            Some(&locked.plugin_sha256),
        )?;
        Ok(Self {
            locked,
            plugin,
            secrets,
        })
    }
}

/// The plugin at `path`, linked for `grants`, refused unless its sha256 is `expected` (when
/// one is given).
fn load_checked(
    host: &Host,
    path: &Path,
    stage: &str,
    grants: &Grants,
    reference: &str,
    expected: Option<&str>,
) -> Result<Plugin, String> {
    // Learning (`--learn`), a plugin importing what its stage lacks runs, and is refused each
    // call (the sandbox still holds only its grants).
    let caps = if host.learning() {
        CapSet::all()
    } else {
        CapSet::of(grants)
    };
    let plugin = plugin::load(host, path, stage, caps).map_err(|err| err.to_string())?;
    if let Some(expected) = expected
        && expected != plugin.sha256
    {
        return Err(format!(
            "the local copy of {reference} changed after it was verified (pinned sha256:{expected}, found sha256:{})",
            plugin.sha256
        ));
    }
    Ok(plugin)
}

/// What must hold before a stage can run at all: its granted folders exist (unless optional)
/// and its granted secrets can be read; returns their values.
pub fn preflight(
    grants: &Grants,
    secrets: &SecretValues,
) -> Result<BTreeMap<String, String>, String> {
    for dir in &grants.dirs {
        if !dir.optional && !dir.host.is_dir() {
            return Err(format!(
                "granted dir {} (mounted at {}) does not exist; create it or fix `allow.dirs`",
                dir.host.display(),
                dir.guest
            ));
        }
    }
    let mut granted = BTreeMap::new();
    for name in &grants.secrets {
        let value = secrets
            .get(name)
            .map_err(|why| format!("secret `{name}` cannot be loaded: {why}"))?;
        granted.insert(name.clone(), value.to_string());
    }
    Ok(granted)
}
