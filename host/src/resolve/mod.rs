//! Turns a parsed pipeline into a [`ResolvedPipeline`] before anything runs: every stage's
//! trusted keys are read, and every `oci://` plugin reference is pinned to verified bytes in the
//! local plugin store (see [`fetch`]). The parsed file is never changed; what resolution
//! settled on lives beside it. Every plugin's capability set — what it imports and exports — is
//! compared with the one pipeline.lock recorded (see [`caps`]): asking for more is refused until
//! accepted by name.

mod caps;
mod fetch;
mod guard;
mod paths;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::atomic_file;
use crate::config::diagnostic::Diagnostic;
use crate::config::lockfile::Lock;
use crate::config::pipeline::{Pipeline, PluginSource, StageSpec};
use crate::model::events::{Event, EventSink, LogSource};
use crate::registry::store::PluginStore;
use crate::trust::keys;
use fetch::{Problem, Resolver};

/// The exact registry content a stage runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub manifest_digest: String,
    pub layer_digest: String,
    /// Short ids of the trusted keys whose signatures were verified (empty: none required).
    pub signed_by: Vec<String>,
}

impl Pin {
    /// What a report or a check records of an optional pin: manifest digest and signers.
    pub fn recorded(pin: Option<&Pin>) -> (Option<String>, Vec<String>) {
        match pin {
            Some(pin) => (Some(pin.manifest_digest.clone()), pin.signed_by.clone()),
            None => (None, Vec::new()),
        }
    }
}

/// A pipeline as parsed, and what each of its stages runs.
#[derive(Debug, Clone)]
pub struct ResolvedPipeline {
    pub pipeline: Pipeline,
    /// One per stage, in the pipeline's order.
    pub stages: Vec<ResolvedStage>,
}

/// The component file one stage runs, and for a registry plugin the bytes it was pinned to.
#[derive(Debug, Clone)]
pub struct ResolvedStage {
    pub plugin_path: PathBuf,
    pub pin: Option<Pin>,
    /// For a local plugin file whose capability set was checked against the lock: the sha256
    /// (hex) of the bytes checked, which are then the only ones the stage may load.
    pub checked_sha256: Option<String>,
    /// Its capability set beside the one pipeline.lock records (None: no lock is kept, or the
    /// file could not be read as a component, which loading it says).
    pub capabilities: Option<CapsStatus>,
}

pub use caps::CapsStatus;

impl ResolvedPipeline {
    /// The stages as written, each with what it resolved to.
    pub fn stages(&self) -> impl Iterator<Item = (&StageSpec, &ResolvedStage)> {
        self.pipeline.stages.iter().zip(&self.stages)
    }
}

/// How resolution may behave.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    pub store: PluginStore,
    /// Use the local store alone; say what is missing instead of fetching it.
    pub offline: bool,
    /// Ignore the lock's pins and resolve every tag again (`sluice lock --update`).
    pub update: bool,
    /// Refuse to change the lock (CI: the committed lock must already be right).
    pub locked: bool,
    /// `sluice lock`: keep a lock even for a pipeline of local plugins only, refresh local
    /// entries' digests, and refuse (not just warn about) a local plugin that asks for more.
    pub record: bool,
    /// Stage names, repositories (`acme/deploy`) or local plugin paths (as written) whose
    /// wider capability set is accepted (`--accept`).
    pub accept: Vec<String>,
}

/// What resolution did, for the user.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub lock_path: Option<PathBuf>,
    /// The lock's changes that were written (empty: the lock was already right).
    pub lock_changes: Vec<String>,
    /// Stage name, reference, pin, whether bytes were fetched from the registry.
    pub plugins: Vec<(String, String, Pin, bool)>,
    /// How plugins' capability sets changed from the lock's: one line each, accepted or not
    /// widening (a refused widening is a [`ResolveFailure`]).
    pub capability_changes: Vec<String>,
    /// Local plugins that ask for more than the lock records, run anyway (not `--locked`): said
    /// loudly, and the lock keeps the set it had.
    pub warnings: Vec<String>,
}

/// Why resolution stopped, one line per stage that could not be pinned.
#[derive(Debug, thiserror::Error)]
#[error("{}\n  = help: {hint}", problems.join("\n"))]
pub struct ResolveFailure {
    pub problems: Vec<String>,
    pub hint: String,
}

/// Why a pipeline could not be resolved: a mistake in a file the user wrote (a key file), or
/// a registry plugin that was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Input(#[from] Diagnostic),
    #[error(transparent)]
    Refused(#[from] ResolveFailure),
}

/// Resolves every stage of `pipeline`: local plugins as they are, registry plugins pinned, and
/// every capability set compared with the lock's.
pub async fn resolve_pipeline(
    pipeline: Pipeline,
    options: &ResolveOptions,
    events: &EventSink,
) -> Result<(ResolvedPipeline, Resolution), ResolveError> {
    paths::check(&pipeline)?;
    let mut trusted = Vec::with_capacity(pipeline.stages.len());
    for spec in &pipeline.stages {
        trusted.push(keys::load(&spec.trusted_keys)?);
    }
    let mut stages: Vec<ResolvedStage> = pipeline
        .stages
        .iter()
        .map(|spec| ResolvedStage {
            plugin_path: match &spec.plugin {
                PluginSource::File(path) => path.clone(),
                PluginSource::Registry(_) => PathBuf::new(),
            },
            pin: None,
            checked_sha256: None,
            capabilities: None,
        })
        .collect();
    let lock_path = Lock::path_for(&pipeline.file);
    let registry_plugins = pipeline
        .stages
        .iter()
        .any(|s| s.plugin.registry().is_some());
    // A pipeline of local plugins keeps a lock only when asked to (`sluice lock`) or when it
    // already has one: a plain run does not add a file to the user's checkout.
    let lock_exists = lock_path.exists() || std::fs::symlink_metadata(&lock_path).is_ok();
    if !registry_plugins && !options.record && !lock_exists {
        let resolved = ResolvedPipeline { pipeline, stages };
        return Ok((resolved, Resolution::default()));
    }
    // Held until the lock file is written (or resolution gives up): see `guard`.
    let _updating = guard::LockGuard::acquire(&lock_path, events).await;
    // A malformed lock is a file the user's checkout holds: an input error at its line.
    let mut lock = Lock::load(&lock_path)?;
    let mut resolver = Resolver {
        options,
        lock: &mut lock,
        registries: HashMap::new(),
    };
    let mut resolution = Resolution {
        lock_path: Some(lock_path.clone()),
        ..Resolution::default()
    };
    let mut problems = Vec::new();
    let mut missing_offline = false;
    let mut used = Vec::new();
    for ((spec, resolved), trusted) in pipeline.stages.iter().zip(&mut stages).zip(&trusted) {
        let Some(reference) = spec.plugin.registry() else {
            continue;
        };
        used.push(reference.to_string());
        match resolver.resolve(reference, trusted).await {
            Ok((path, pin, fetched)) => {
                events.emit(Event::PluginResolved {
                    stage: spec.name.clone(),
                    reference: reference.to_string(),
                    manifest_digest: pin.manifest_digest.clone(),
                    fetched,
                    signed_by: pin.signed_by.clone(),
                });
                resolution.plugins.push((
                    spec.name.clone(),
                    reference.to_string(),
                    pin.clone(),
                    fetched,
                ));
                resolved.plugin_path = path;
                resolved.pin = Some(pin);
            }
            Err(Problem::MissingOffline(what)) => {
                missing_offline = true;
                problems.push(format!(
                    "stage `{}`: {reference}: {what} is not in the local plugin store ({})",
                    spec.name,
                    options.store.root().display()
                ));
            }
            Err(Problem::Refused(why)) => {
                problems.push(format!("stage `{}`: {reference}: {why}", spec.name));
            }
        }
    }
    if !problems.is_empty() {
        let hint = if missing_offline {
            "run once without --offline (or `sluice plugin pull REF`) to fill the local store"
        } else {
            "nothing ran; fix the reference, the registry or the keys named above"
        };
        return Err(ResolveFailure {
            problems,
            hint: hint.to_string(),
        }
        .into());
    }
    // What each plugin asks for, against what the lock recorded.
    let compared = caps::compare(&pipeline, &mut stages, &mut lock, &used, options);
    if !compared.refused.is_empty() {
        return Err(ResolveFailure {
            problems: compared.refused,
            hint: compared.hint,
        }
        .into());
    }
    for warning in &compared.warnings {
        events.emit(Event::Log {
            stage: String::new(),
            source: LogSource::Warn,
            line: format!("sluice: warning: {warning}"),
        });
    }
    for change in &compared.changes {
        events.emit(Event::Log {
            stage: String::new(),
            source: LogSource::Info,
            line: format!("sluice: {change}"),
        });
    }
    resolution.capability_changes = compared.changes;
    resolution.warnings = compared.warnings;
    lock.retain(&used);
    lock.retain_locals(&compared.locals);
    let changes = lock.changes();
    if !changes.is_empty() && options.locked {
        let problems = if lock.read_version() == 1 {
            vec![format!(
                "{} was written by an older sluice and records no capability sets (what each \
                 plugin imports and exports)",
                lock_path.display()
            )]
        } else {
            changes
                .iter()
                .map(|c| format!("{} is out of date: would {c}", lock_path.display()))
                .collect()
        };
        return Err(ResolveFailure {
            problems,
            hint: format!(
                "run `sluice lock {}` to record it and commit the lock file (--locked refuses to \
                 change it)",
                crate::shell::quote(&pipeline.file.display().to_string())
            ),
        }
        .into());
    }
    if lock.needs_write() {
        let written = lock
            .render()
            .map_err(anyhow::Error::from)
            .and_then(|text| atomic_file::write(&lock_path, text.as_bytes()));
        if let Err(err) = written {
            return Err(ResolveFailure {
                problems: vec![format!("cannot write {}: {err:#}", lock_path.display())],
                hint: "check that the pipeline's folder is writable".to_string(),
            }
            .into());
        }
        lock.mark_written();
        events.emit(Event::LockWritten {
            path: lock_path.clone(),
            changes: changes.clone(),
        });
        resolution.lock_changes = changes;
    }
    let resolved = ResolvedPipeline { pipeline, stages };
    Ok((resolved, resolution))
}
