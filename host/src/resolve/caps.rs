//! Each plugin's capability set (what the component imports and exports) against the one
//! pipeline.lock recorded: the same is silent, fewer imports is reported and recorded, and more —
//! a new import, another world — is refused unless accepted by name (`sluice lock --accept NAME`,
//! NAME the stage, the registry repository or the local plugin path as written). A local plugin
//! file that asks for more only warns in a plain run (the lock keeps the old set); `--locked`,
//! `sluice lock` and `sluice check` refuse it. Grants still decide what a stage gets: this is
//! the reviewer's view of what the code could ask for.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::lockfile::{Capabilities, CapsDiff, Lock, LockedLocal, LockedPlugin};
use crate::config::pipeline::{Pipeline, PluginSource};
use crate::config::plugin_ref::PluginRef;
use crate::model::events::short_digest;

use super::{ResolveOptions, ResolvedStage};

/// A stage's capability set beside the lock's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "lock")]
pub enum CapsStatus {
    /// The lock records exactly what it asks for.
    Matches { now: Capabilities },
    /// Recorded now: a plugin new to the lock, or a lock written before sets were recorded.
    Recorded { now: Capabilities },
    /// Changed, and the lock now records the new set (fewer imports, or accepted).
    Updated { now: Capabilities, diff: CapsDiff },
    /// It asks for more than the lock records; the lock keeps the old set.
    Differs {
        recorded: Capabilities,
        now: Capabilities,
        diff: CapsDiff,
    },
}

impl CapsStatus {
    /// What the plugin asks for now.
    pub fn now(&self) -> &Capabilities {
        match self {
            Self::Matches { now }
            | Self::Recorded { now }
            | Self::Updated { now, .. }
            | Self::Differs { now, .. } => now,
        }
    }

    /// `sluice check`'s line: what the lock records and whether the plugin matches it.
    pub fn describe(&self) -> String {
        let set = |caps: &Capabilities| {
            format!(
                "exports {}; {} imports",
                caps.exports.join(", "),
                caps.imports.len()
            )
        };
        match self {
            Self::Matches { now } => format!("matches pipeline.lock ({})", set(now)),
            Self::Recorded { now } => format!("recorded in pipeline.lock now ({})", set(now)),
            Self::Updated { now, diff } => {
                format!("pipeline.lock updated: {} ({})", diff.describe(), set(now))
            }
            Self::Differs { recorded, diff, .. } => format!(
                "DIFFERS from pipeline.lock ({}): {}",
                set(recorded),
                diff.describe()
            ),
        }
    }
}

/// What comparing every plugin found.
#[derive(Debug, Default)]
pub(super) struct Compared {
    /// Widenings not accepted that stop resolution (nothing is written, nothing runs).
    pub refused: Vec<String>,
    pub hint: String,
    /// Local plugins asking for more in a plain run: said loudly, not recorded.
    pub warnings: Vec<String>,
    /// Changes recorded: narrowings and accepted widenings.
    pub changes: Vec<String>,
    /// Local plugin paths (as written) the pipeline uses, for [`Lock::retain_locals`].
    pub locals: Vec<String>,
}

/// Compares every stage's plugin with the lock, recording what may be recorded in `lock` and
/// each stage's [`CapsStatus`]. `used`: the registry references the pipeline uses.
pub(super) fn compare(
    pipeline: &Pipeline,
    stages: &mut [ResolvedStage],
    lock: &mut Lock,
    used: &[String],
    options: &ResolveOptions,
) -> Compared {
    let mut out = Compared::default();
    let mut to_accept: Vec<String> = Vec::new();
    let mut said = BTreeSet::new();
    let accepted = |names: &[&str]| {
        names
            .iter()
            .any(|name| options.accept.iter().any(|a| a == name))
    };
    for (spec, stage) in pipeline.stages.iter().zip(stages.iter_mut()) {
        match &spec.plugin {
            PluginSource::Registry(reference) => {
                let key = reference.to_string();
                let Some(entry) = lock.get(&key).cloned() else {
                    continue;
                };
                // A component whose imports cannot be read: loading it says why.
                let Some(now) = entry.capabilities.clone() else {
                    continue;
                };
                // The same reference as read, else another version of the same repository that
                // the pipeline no longer uses (its tag was changed in the pipeline file).
                let previous = lock.recorded(&key).cloned().or_else(|| {
                    lock.recorded_versions_of(reference)
                        .find(|old| !used.contains(&old.reference))
                        .cloned()
                });
                let Some((previous, recorded)) =
                    previous.and_then(|p| p.capabilities.clone().map(|c| (p, c)))
                else {
                    stage.capabilities = Some(CapsStatus::Recorded { now });
                    continue;
                };
                let diff = recorded.diff(&now);
                if diff.is_empty() {
                    stage.capabilities = Some(CapsStatus::Matches { now });
                    continue;
                }
                let line = format!(
                    "stage `{}`: {} {}",
                    spec.name,
                    versions(&previous, &entry),
                    diff.describe()
                );
                let first = said.insert(key.clone());
                if diff.widens() && !accepted(&[&spec.name, &reference.repository]) {
                    if first {
                        out.refused.push(format!(
                            "{line} — refused: it asks for more than {} records",
                            lock.path.display()
                        ));
                        to_accept.push(spec.name.clone());
                    }
                    stage.capabilities = Some(CapsStatus::Differs {
                        recorded,
                        now,
                        diff,
                    });
                } else {
                    if first {
                        out.changes.push(if diff.widens() {
                            format!("{line} (accepted)")
                        } else {
                            line
                        });
                    }
                    stage.capabilities = Some(CapsStatus::Updated { now, diff });
                }
            }
            PluginSource::File(path) => {
                let key = spec.plugin_ref.clone();
                out.locals.push(key.clone());
                // A missing or broken file is said by loading it; its entry is kept as it is.
                let Ok((now, digest, size)) = crate::plugin::caps::of_file(path) else {
                    continue;
                };
                stage.checked_sha256 = Some(digest.trim_start_matches("sha256:").to_string());
                let fresh = LockedLocal {
                    path: key.clone(),
                    sha256: digest,
                    size,
                    capabilities: now.clone(),
                };
                let Some(recorded) = lock.local(&key).map(|l| l.capabilities.clone()) else {
                    lock.set_local(fresh);
                    stage.capabilities = Some(CapsStatus::Recorded { now });
                    continue;
                };
                let diff = recorded.diff(&now);
                if diff.is_empty() {
                    // The same set from other bytes (a rebuild): a run leaves the lock alone;
                    // `sluice lock` records the bytes it was read from.
                    if options.record {
                        lock.set_local(fresh);
                    }
                    stage.capabilities = Some(CapsStatus::Matches { now });
                    continue;
                }
                let line = format!(
                    "stage `{}`: local plugin {key} {}",
                    spec.name,
                    diff.describe()
                );
                let first = said.insert(format!("local:{key}"));
                if !diff.widens() || accepted(&[&spec.name, &key]) {
                    if first {
                        out.changes.push(if diff.widens() {
                            format!("{line} (accepted)")
                        } else {
                            line
                        });
                    }
                    lock.set_local(fresh);
                    stage.capabilities = Some(CapsStatus::Updated { now, diff });
                    continue;
                }
                if first {
                    if options.locked || options.record {
                        out.refused.push(format!(
                            "{line} — refused: it asks for more than {} records",
                            lock.path.display()
                        ));
                        to_accept.push(spec.name.clone());
                    } else {
                        out.warnings.push(format!(
                            "{line}, more than {} records; it runs (its grants decide what it \
                             gets), but `--locked` and `sluice check` refuse it until it is \
                             accepted: sluice lock {} --accept {}",
                            lock.path.display(),
                            crate::shell::quote(&pipeline.file.display().to_string()),
                            crate::shell::quote(&spec.name)
                        ));
                    }
                }
                stage.capabilities = Some(CapsStatus::Differs {
                    recorded,
                    now,
                    diff,
                });
            }
        }
    }
    if !out.refused.is_empty() {
        let accepts: Vec<String> = to_accept
            .iter()
            .map(|name| format!("--accept {}", crate::shell::quote(name)))
            .collect();
        out.hint = format!(
            "nothing ran and {} is unchanged; if the plugin may ask for that, accept it by name: \
             sluice lock {}{} {}{}",
            lock.path.display(),
            crate::shell::quote(&pipeline.file.display().to_string()),
            if options.update { " --update" } else { "" },
            accepts.join(" "),
            if options.locked {
                " (then commit the lock file)"
            } else {
                ""
            }
        );
    }
    out
}

/// `acme/deploy 1.0.0 → 1.1.0` from the references' tags, else the manifests' short digests.
fn versions(previous: &LockedPlugin, now: &LockedPlugin) -> String {
    let parsed = |entry: &LockedPlugin| PluginRef::parse(&entry.reference).ok();
    let (before, after) = (parsed(previous), parsed(now));
    let repository = after
        .as_ref()
        .map_or_else(|| now.reference.clone(), |r| r.repository.clone());
    let (old_tag, new_tag) = (before.and_then(|r| r.tag), after.and_then(|r| r.tag));
    match (old_tag, new_tag) {
        (Some(old), Some(new)) if old != new => format!("{repository} {old} → {new}"),
        (_, Some(tag)) if previous.manifest == now.manifest => format!("{repository} {tag}"),
        _ if previous.manifest == now.manifest => {
            format!("{repository} {}", short_digest(&now.manifest))
        }
        _ => format!(
            "{repository} {} → {}",
            short_digest(&previous.manifest),
            short_digest(&now.manifest)
        ),
    }
}
