//! Pinning one registry plugin: the lock decides the digest, the store answers when it can, the
//! registry otherwise; every byte is checked, and trusted keys must have signed the manifest.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::lockfile::{Lock, LockedPlugin};
use crate::config::plugin_ref::PluginRef;
use crate::registry::oci::Registry;
use crate::registry::sharing::{parse_wasm_manifest, verify_signatures};
use crate::trust::signing::TrustedKey;

use super::{Pin, ResolveOptions};

pub(super) enum Problem {
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

pub(super) struct Resolver<'a> {
    pub options: &'a ResolveOptions,
    pub lock: &'a mut Lock,
    pub registries: HashMap<String, Registry>,
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

    /// Pins `reference` (lock, store, registry), checks its signatures against `trusted`;
    /// returns the component's path in the store, the pin and whether anything was fetched.
    pub async fn resolve(
        &mut self,
        reference: &PluginRef,
        trusted: &[TrustedKey],
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

        let signed_by = if trusted.is_empty() {
            Vec::new()
        } else {
            let cached = store.signatures(&manifest_digest);
            match verify_signatures(&cached, trusted, &manifest_digest, &reference.name()) {
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
                    verify_signatures(&envelopes, trusted, &manifest_digest, &reference.name())
                        .map_err(|why| {
                            let trusted: Vec<String> =
                                trusted.iter().map(|k| k.short_id()).collect();
                            Problem::Refused(format!(
                                "refused before running: {manifest_digest} is not signed by a key \
                                 this pipeline trusts ({}): {why}",
                                trusted.join(", ")
                            ))
                        })?
                }
            }
        };

        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // What the component imports and exports, read from the verified bytes themselves.
        let capabilities = crate::plugin::caps::of_file(&path)
            .ok()
            .map(|(caps, _, _)| caps);
        self.lock.set(LockedPlugin {
            reference: key,
            manifest: manifest_digest.clone(),
            layer: layer_digest.clone(),
            size,
            capabilities,
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
