//! Publishing, signing and verifying plugins in a registry: what `sluice plugin push`, `sign`
//! and `verify` do, and the signature check every pipeline run applies to registry plugins.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::config::plugin_ref::PluginRef;
use crate::registry::media::Manifest;
use crate::registry::oci::{Published, Registry};
use crate::registry::store::PluginStore;
use crate::sandbox::engine::Host;
use crate::trust::signing::{Envelope, SigningKey, Statement, Subject, TrustedKey, short_key_id};

/// The predicate type of a plugin signature statement.
pub const PLUGIN_SIGNATURE_PREDICATE: &str = "https://sluice.dev/attestations/plugin-signature/v1";

/// Publishes a component: checks it is a sluice stage, describes it in the config and
/// annotations, pushes it under the reference's tag (moving an existing tag only with `force`).
pub async fn push(
    host: &Host,
    file: &Path,
    reference: &PluginRef,
    force: bool,
) -> Result<Published> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let info = crate::plugin::inspect::inspect(host, file)
        .await
        .with_context(|| format!("{} is not a plugin sluice can run", file.display()))?;
    let Some(described) = info.stage.as_ref() else {
        bail!(
            "{} is not a sluice stage: {}\n  = help: `sluice inspect {}` shows what it is",
            file.display(),
            info.problem
                .as_deref()
                .unwrap_or("it does not describe itself"),
            file.display()
        );
    };
    // Publishing is reproducible: the same component gives the same manifest digest, so a
    // re-push does not move a tag. A creation time is recorded only from SOURCE_DATE_EPOCH.
    let created = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|secs| secs.trim().parse::<u64>().ok())
        .map(|secs| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
            )
            .to_string()
        });
    let layer_digest = format!("sha256:{}", crate::model::artifacts::sha256_bytes(&bytes));
    let mut config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": {
            "exports": info.exports,
            "imports": info.imports,
            "target": "sluice:pipeline/stage@0.1.0",
        },
    });
    let mut annotations = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            described.name.clone(),
        ),
        (
            "org.opencontainers.image.version".to_string(),
            described.version.clone(),
        ),
        (
            "org.opencontainers.image.description".to_string(),
            described.description.clone(),
        ),
        ("dev.sluice.phase".to_string(), described.phase.clone()),
    ]);
    if let Some(created) = created {
        config["created"] = created.clone().into();
        annotations.insert("org.opencontainers.image.created".to_string(), created);
    }
    Registry::for_ref(reference)
        .push_component(reference, &bytes, &config, annotations, force)
        .await
}

/// The manifest digest a reference names: its own `@sha256:` pin, or what its tag points at.
pub async fn manifest_digest(registry: &Registry, reference: &PluginRef) -> Result<String> {
    match (&reference.digest, &reference.tag) {
        (Some(digest), _) => Ok(digest.clone()),
        (None, Some(tag)) => registry.resolve_tag(reference, tag).await,
        (None, None) => bail!("{reference} names neither a tag nor a digest"),
    }
}

/// Fetches and checks a manifest, returning it and the digest of its component layer.
pub async fn wasm_manifest(
    registry: &Registry,
    reference: &PluginRef,
    digest: &str,
) -> Result<(Manifest, String)> {
    let bytes = registry.fetch_manifest(reference, digest).await?;
    parse_wasm_manifest(&bytes, reference)
}

/// Reads manifest bytes (already checked against their digest) as a Wasm OCI artifact.
pub fn parse_wasm_manifest(bytes: &[u8], reference: &PluginRef) -> Result<(Manifest, String)> {
    let manifest: Manifest = serde_json::from_slice(bytes)
        .with_context(|| format!("{reference} does not point at an OCI image manifest"))?;
    let layer = manifest
        .wasm_layer()
        .map_err(|why| anyhow::anyhow!("{reference} is not a plugin: {why}"))?
        .digest
        .clone();
    Ok((manifest, layer))
}

/// What `pull` put into the local plugin store.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub manifest_digest: String,
    pub layer_digest: String,
    /// The component's file in the store.
    pub path: std::path::PathBuf,
    /// Trusted keys whose signatures verified (empty when none were asked for).
    pub signed_by: Vec<String>,
}

/// Fetches a plugin into the local store (every byte checked against its digest), requiring
/// a signature by one of `trusted` when that is not empty.
pub async fn pull(
    store: &PluginStore,
    reference: &PluginRef,
    trusted: &[TrustedKey],
) -> Result<Pulled> {
    let registry = Registry::for_ref(reference);
    let digest = manifest_digest(&registry, reference).await?;
    let manifest = registry.fetch_manifest(reference, &digest).await?;
    let (_, layer) = parse_wasm_manifest(&manifest, reference)?;
    let component = registry.fetch_blob(reference, &layer).await?;
    let signed_by = if trusted.is_empty() {
        Vec::new()
    } else {
        let envelopes = registry.fetch_signatures(reference, &digest).await?;
        let signers = verify_signatures(&envelopes, trusted, &digest, &reference.name())
            .map_err(|why| anyhow::anyhow!("not signed by a trusted key: {why}"))?;
        store.add_signatures(&digest, &envelopes)?;
        signers
    };
    store.put_blob(&digest, &manifest)?;
    let path = store.put_blob(&layer, &component)?;
    store.remember_tag(reference, &digest)?;
    Ok(Pulled {
        manifest_digest: digest,
        layer_digest: layer,
        path,
        signed_by,
    })
}

/// Signs the manifest a reference names and stores the signature next to it in the registry.
pub async fn sign(reference: &PluginRef, key: &SigningKey) -> Result<(String, Envelope)> {
    let registry = Registry::for_ref(reference);
    let digest = manifest_digest(&registry, reference).await?;
    let (_, layer) = wasm_manifest(&registry, reference, &digest).await?;
    let hex = digest.trim_start_matches("sha256:");
    let statement = Statement::new(
        vec![Subject::sha256(reference.name(), hex)],
        PLUGIN_SIGNATURE_PREDICATE,
        serde_json::json!({
            "reference": reference.to_string(),
            "layer": layer,
            "signedAt": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }),
    );
    let envelope = key.sign_statement(&statement)?;
    registry
        .push_signature(reference, &digest, &envelope)
        .await?;
    Ok((digest, envelope))
}

/// The trusted keys that signed `manifest_digest` *as* `name` (`registry/repository`) among
/// `envelopes`, or why none did: a signature for the same bytes published under another name
/// does not vouch for this one.
pub fn verify_signatures(
    envelopes: &[Envelope],
    trusted: &[TrustedKey],
    manifest_digest: &str,
    name: &str,
) -> Result<Vec<String>, String> {
    if envelopes.is_empty() {
        return Err("it is not signed".to_string());
    }
    let hex = manifest_digest.trim_start_matches("sha256:");
    let mut signers = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    for envelope in envelopes {
        match envelope.verify(trusted) {
            Ok((statement, key)) => {
                let is_signature = statement.predicate_type == PLUGIN_SIGNATURE_PREDICATE;
                let for_digest: Vec<&Subject> = statement
                    .subject
                    .iter()
                    .filter(|s| s.digest.get("sha256").map(String::as_str) == Some(hex))
                    .collect();
                if is_signature && for_digest.iter().any(|s| s.name == name) {
                    if !signers.contains(&key.short_id()) {
                        signers.push(key.short_id());
                    }
                } else if is_signature && !for_digest.is_empty() {
                    let names: Vec<&str> = for_digest.iter().map(|s| s.name.as_str()).collect();
                    reasons.push(format!(
                        "a signature by {} is for these bytes published as {}, not as {name}",
                        key.short_id(),
                        names.join(", ")
                    ));
                } else {
                    reasons.push(format!(
                        "a signature by {} is for other content (its statement does not name {manifest_digest})",
                        key.short_id()
                    ));
                }
            }
            Err(err) => reasons.push(err.to_string()),
        }
    }
    if signers.is_empty() {
        reasons.dedup();
        Err(reasons.join("; "))
    } else {
        Ok(signers)
    }
}

/// Checks a reference's signatures in the registry against `trusted`.
pub async fn verify(
    reference: &PluginRef,
    trusted: &[TrustedKey],
) -> Result<(String, Vec<String>)> {
    let registry = Registry::for_ref(reference);
    let digest = manifest_digest(&registry, reference).await?;
    wasm_manifest(&registry, reference, &digest).await?;
    let envelopes = registry.fetch_signatures(reference, &digest).await?;
    let trusted_ids: Vec<String> = trusted.iter().map(TrustedKey::short_id).collect();
    match verify_signatures(&envelopes, trusted, &digest, &reference.name()) {
        Ok(signers) => Ok((digest, signers)),
        Err(why) => bail!(
            "{reference} ({digest}) is not signed by a trusted key ({}): {why}",
            trusted_ids.join(", ")
        ),
    }
}

/// `ed25519:…` of every signature in `envelopes`, trusted or not (for display).
pub fn signer_ids(envelopes: &[Envelope]) -> Vec<String> {
    envelopes
        .iter()
        .flat_map(|e| e.signatures.iter().map(|s| short_key_id(&s.keyid)))
        .collect()
}
