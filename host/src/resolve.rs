//! Turns a pipeline's `oci://` plugin references into pinned, verified files in the local
//! plugin store before anything runs: the lock decides which digests, the store answers when it
//! can (no network on a warm run), the registry otherwise; every byte is checked against its
//! digest and, where the pipeline trusts keys, the manifest must carry a trusted signature.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::events::{Event, EventSink};
use crate::lockfile::{Lock, LockedPlugin};
use crate::manifest::{Pipeline, StageSpec};
use crate::plugin_store::PluginStore;
use crate::registry::{PluginRef, Registry};
use crate::sharing::{parse_wasm_manifest, verify_signatures};

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
}

/// What resolution did, for the user.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub lock_path: Option<PathBuf>,
    /// The lock's changes that were written (empty: the lock was already right).
    pub lock_changes: Vec<String>,
    /// Stage name, reference, pin, whether bytes were fetched from the registry.
    pub plugins: Vec<(String, String, Pin, bool)>,
}

/// Why resolution stopped, one line per stage that could not be pinned.
#[derive(Debug, thiserror::Error)]
#[error("{}\n  = help: {hint}", problems.join("\n"))]
pub struct ResolveFailure {
    pub problems: Vec<String>,
    pub hint: String,
}

/// Resolves every registry plugin of `pipeline` in place (its `plugin_path` and `pin`).
pub async fn resolve_pipeline(
    pipeline: &mut Pipeline,
    options: &ResolveOptions,
    events: &EventSink,
) -> Result<Resolution, ResolveFailure> {
    if pipeline.stages.iter().all(|s| s.registry.is_none()) {
        return Ok(Resolution::default());
    }
    let lock_path = Lock::path_for(&pipeline.file);
    let mut lock = Lock::load(&lock_path).map_err(|diag| ResolveFailure {
        problems: vec![diag.to_string()],
        hint: "fix or delete the lock file".to_string(),
    })?;
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
    for spec in &mut pipeline.stages {
        let Some(reference) = spec.registry.clone() else {
            continue;
        };
        used.push(reference.to_string());
        match resolver.resolve(spec, &reference).await {
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
                spec.plugin_path = path;
                spec.pin = Some(pin);
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
        });
    }
    lock.retain(&used);
    let changes = lock.changes();
    if !changes.is_empty() && options.locked {
        return Err(ResolveFailure {
            problems: changes
                .iter()
                .map(|c| format!("{} is out of date: would {c}", lock_path.display()))
                .collect(),
            hint: "run `sluice lock` and commit the lock file (--locked refuses to change it)"
                .to_string(),
        });
    }
    match lock.write_if_changed() {
        Ok(true) => {
            events.emit(Event::LockWritten {
                path: lock_path.clone(),
                changes: changes.clone(),
            });
            resolution.lock_changes = changes;
        }
        Ok(false) => {}
        Err(err) => {
            return Err(ResolveFailure {
                problems: vec![format!("{err:#}")],
                hint: "check that the pipeline's folder is writable".to_string(),
            });
        }
    }
    Ok(resolution)
}

enum Problem {
    /// `--offline` and the store lacks this.
    MissingOffline(String),
    /// Anything else: not found, tampered, unsigned, unreachable.
    Refused(String),
}

impl From<anyhow::Error> for Problem {
    fn from(err: anyhow::Error) -> Self {
        Problem::Refused(format!("{err:#}"))
    }
}

struct Resolver<'a> {
    options: &'a ResolveOptions,
    lock: &'a mut Lock,
    registries: HashMap<String, Registry>,
}

impl Resolver<'_> {
    fn registry(&mut self, reference: &PluginRef) -> &Registry {
        self.registries
            .entry(reference.registry.clone())
            .or_insert_with(|| Registry::for_ref(reference))
    }

    /// The manifest stored under `digest`: from the store, else (online) from the registry
    /// into the store.
    async fn manifest(
        &mut self,
        reference: &PluginRef,
        digest: &str,
        fetched: &mut bool,
    ) -> Result<Vec<u8>, Problem> {
        let store = self.options.store.clone();
        match store.read_blob(digest) {
            Ok(Some(bytes)) => return Ok(bytes),
            Ok(None) => {}
            Err(corrupt) if self.options.offline => {
                return Err(Problem::Refused(corrupt.to_string()));
            }
            Err(_) => {} // removed; fetch it again
        }
        if self.options.offline {
            return Err(Problem::MissingOffline(format!("manifest {digest}")));
        }
        let bytes = self
            .registry(reference)
            .fetch_manifest(reference, digest)
            .await?;
        store.put_blob(digest, &bytes)?;
        *fetched = true;
        Ok(bytes)
    }

    async fn resolve(
        &mut self,
        spec: &StageSpec,
        reference: &PluginRef,
    ) -> Result<(PathBuf, Pin, bool), Problem> {
        let key = reference.to_string();
        let locked = if self.options.update {
            None
        } else {
            self.lock.get(&key).cloned()
        };
        let store = self.options.store.clone();
        let mut fetched = false;

        let manifest_digest = match (&reference.digest, &locked) {
            (Some(digest), _) => digest.clone(),
            (None, Some(entry)) => entry.manifest.clone(),
            (None, None) if self.options.offline => store
                .remembered_tag(reference)
                .ok_or_else(|| Problem::MissingOffline("the version this tag names".to_string()))?,
            (None, None) => {
                let tag = reference.tag.clone().unwrap_or_default();
                let digest = self
                    .registry(reference)
                    .resolve_tag(reference, &tag)
                    .await?;
                store.remember_tag(reference, &digest)?;
                digest
            }
        };
        let manifest = self
            .manifest(reference, &manifest_digest, &mut fetched)
            .await?;
        let (_, layer_digest) = parse_wasm_manifest(&manifest, reference)?;
        if let Some(entry) = &locked
            && entry.manifest == manifest_digest
            && entry.layer != layer_digest
        {
            return Err(Problem::Refused(format!(
                "{} pins component {} but manifest {manifest_digest} names {layer_digest}: the \
                 lock or the manifest was tampered with",
                self.lock.path.display(),
                entry.layer
            )));
        }

        let path = match store.verified_blob(&layer_digest) {
            Ok(Some(path)) => path,
            Err(corrupt) if self.options.offline => {
                return Err(Problem::Refused(corrupt.to_string()));
            }
            _ if self.options.offline => {
                return Err(Problem::MissingOffline(format!("component {layer_digest}")));
            }
            _ => {
                let bytes = self
                    .registry(reference)
                    .fetch_blob(reference, &layer_digest)
                    .await?;
                fetched = true;
                store.put_blob(&layer_digest, &bytes)?
            }
        };

        let signed_by = if spec.trusted_keys.is_empty() {
            Vec::new()
        } else {
            let cached = store.signatures(&manifest_digest);
            match verify_signatures(&cached, &spec.trusted_keys, &manifest_digest) {
                Ok(signers) => signers,
                Err(why) if self.options.offline => {
                    return Err(Problem::Refused(format!(
                        "no trusted signature in the local plugin store ({why}); run online to fetch its signatures"
                    )));
                }
                Err(_) => {
                    let envelopes = self
                        .registry(reference)
                        .fetch_signatures(reference, &manifest_digest)
                        .await?;
                    store.add_signatures(&manifest_digest, &envelopes)?;
                    verify_signatures(&envelopes, &spec.trusted_keys, &manifest_digest).map_err(
                        |why| {
                            let trusted: Vec<String> =
                                spec.trusted_keys.iter().map(|k| k.short_id()).collect();
                            Problem::Refused(format!(
                                "refused before running: {manifest_digest} is not signed by a key \
                                 this pipeline trusts ({}): {why}",
                                trusted.join(", ")
                            ))
                        },
                    )?
                }
            }
        };

        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.lock.set(LockedPlugin {
            reference: key,
            manifest: manifest_digest.clone(),
            layer: layer_digest.clone(),
            size,
        });
        Ok((
            path,
            Pin {
                manifest_digest,
                layer_digest,
                signed_by,
            },
            fetched,
        ))
    }
}
