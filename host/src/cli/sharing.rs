//! The command-line side of plugin sharing (`plugin push/pull/sign/verify`, `lock`, `key`,
//! `verify`) and of resolving a pipeline's registry plugins before a run: argument handling and
//! messages only; the work is in the library's `sharing`, `resolve` and `signing`.

use std::path::{Path, PathBuf};

use sluice::Host;
use sluice::config::pipeline::{self, Pipeline};
use sluice::config::plugin_ref::PluginRef;
use sluice::model::events::{EventSink, short_digest};
use sluice::registry::sharing;
use sluice::registry::store::PluginStore;
use sluice::resolve::{Resolution, ResolveOptions, ResolvedPipeline, resolve_pipeline};
use sluice::trust::signing::{Envelope, SigningKey, TrustedKey, generate_key_pair};

use crate::args::ResolveArgs;
use crate::done;
use crate::error::{CliError, Outcome};

fn parse_ref(text: &str) -> Result<PluginRef, CliError> {
    PluginRef::parse(text)
        .map_err(|why| CliError::input(format!("invalid plugin reference `{text}`: {why}")))
}

/// A reference and the public keys to check it against, from the command line.
fn ref_and_keys(
    reference: &str,
    keys: &[PathBuf],
) -> Result<(PluginRef, Vec<TrustedKey>), CliError> {
    Ok((parse_ref(reference)?, trusted_keys(keys)?))
}

fn trusted_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>, CliError> {
    paths
        .iter()
        .map(|path| TrustedKey::from_file(path))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|err| CliError::input(format!("{err:#}")))
}

/// How `run`, `resume` and `check` resolve registry plugins.
pub fn resolve_options(store: &PluginStore, args: ResolveArgs) -> ResolveOptions {
    ResolveOptions {
        store: store.clone(),
        offline: args.offline,
        update: false,
        locked: args.locked,
    }
}

/// Pins every registry plugin of `pipeline` (for commands without a reporter); prints what
/// changed; refusals exit with 6.
pub async fn resolve(
    pipeline: Pipeline,
    store: &PluginStore,
    args: ResolveArgs,
) -> Result<ResolvedPipeline, CliError> {
    resolve_with(pipeline, store, args.offline, args.locked, false)
        .await
        .map(|(resolved, _)| resolved)
}

async fn resolve_with(
    pipeline: Pipeline,
    store: &PluginStore,
    offline: bool,
    locked: bool,
    update: bool,
) -> Result<(ResolvedPipeline, Resolution), CliError> {
    let options = ResolveOptions {
        store: store.clone(),
        offline,
        update,
        locked,
    };
    match resolve_pipeline(pipeline, &options, &EventSink::discard()).await {
        Ok((resolved, resolution)) => {
            for (stage, reference, pin, fetched) in &resolution.plugins {
                if *fetched {
                    eprintln!(
                        "fetched {reference} for stage `{stage}` ({})",
                        short_digest(&pin.manifest_digest)
                    );
                }
            }
            if let (Some(path), false) = (&resolution.lock_path, resolution.lock_changes.is_empty())
            {
                eprintln!("wrote {}:", path.display());
                for change in &resolution.lock_changes {
                    eprintln!("  {change}");
                }
            }
            Ok((resolved, resolution))
        }
        Err(failure) => Err(CliError::from(failure)),
    }
}

pub async fn lock(store: &PluginStore, path: &Path, update: bool, offline: bool) -> Outcome {
    let pipeline = pipeline::load(path)?;
    let (_, resolution) = resolve_with(pipeline, store, offline, false, update).await?;
    if resolution.plugins.is_empty() {
        println!(
            "{} uses no registry plugins; nothing to lock",
            path.display()
        );
        return done();
    }
    for (stage, reference, pin, _) in &resolution.plugins {
        let signed = if pin.signed_by.is_empty() {
            String::new()
        } else {
            format!("  signed by {}", pin.signed_by.join(", "))
        };
        println!(
            "  {stage:<12} {reference}\n               manifest {}  component {}{signed}",
            pin.manifest_digest, pin.layer_digest
        );
    }
    if let (true, Some(lock)) = (resolution.lock_changes.is_empty(), &resolution.lock_path) {
        println!("{} is up to date", lock.display());
    }
    done()
}

pub fn key_generate(prefix: &Path) -> Outcome {
    let (private, public, id) =
        generate_key_pair(prefix).map_err(|err| CliError::input(format!("{err:#}")))?;
    println!("private key {} (keep it secret)", private.display());
    println!(
        "public key  {} (list it in `trusted_keys`)",
        public.display()
    );
    println!("key id      {}", sluice::trust::signing::short_key_id(&id));
    done()
}

pub async fn push(
    host: &Host,
    file: &Path,
    reference: &str,
    sign: Option<&Path>,
    force: bool,
) -> Outcome {
    let reference = parse_ref(reference)?;
    let key = sign
        .map(SigningKey::from_file)
        .transpose()
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    let published = sharing::push(host, file, &reference, force)
        .await
        .map_err(|err| CliError::stage(format!("cannot publish {}: {err:#}", file.display())))?;
    println!("pushed {} → {reference}", file.display());
    println!("  manifest  {}", published.manifest_digest);
    println!(
        "  component {} ({} bytes)",
        published.layer_digest, published.size
    );
    println!(
        "  pin it:   plugin = \"{}{}/{}@{}\"",
        sluice::config::plugin_ref::SCHEME,
        reference.registry,
        reference.repository,
        published.manifest_digest
    );
    if let Some(key) = key {
        return sign_with(&reference, &key).await;
    }
    done()
}

async fn sign_with(reference: &PluginRef, key: &SigningKey) -> Outcome {
    let (digest, _) = sharing::sign(reference, key)
        .await
        .map_err(|err| CliError::stage(format!("cannot sign {reference}: {err:#}")))?;
    println!(
        "signed {reference} ({}) with {}",
        short_digest(&digest),
        sluice::trust::signing::short_key_id(&key.id)
    );
    done()
}

pub async fn sign(reference: &str, key: &Path) -> Outcome {
    let reference = parse_ref(reference)?;
    let key = SigningKey::from_file(key).map_err(|err| CliError::input(format!("{err:#}")))?;
    sign_with(&reference, &key).await
}

pub async fn verify(reference: &str, keys: &[PathBuf]) -> Outcome {
    let (reference, trusted) = ref_and_keys(reference, keys)?;
    let (digest, signers) = sharing::verify(&reference, &trusted)
        .await
        .map_err(|err| CliError::refused(format!("{err:#}")))?;
    println!("{reference} ({digest}) is signed by {}", signers.join(", "));
    done()
}

pub async fn pull(
    store: &PluginStore,
    reference: &str,
    output: Option<&Path>,
    keys: &[PathBuf],
) -> Outcome {
    let (reference, trusted) = ref_and_keys(reference, keys)?;
    let pulled = sharing::pull(store, &reference, &trusted)
        .await
        .map_err(|err| CliError::refused(format!("cannot pull {reference}: {err:#}")))?;
    let sharing::Pulled {
        manifest_digest: digest,
        layer_digest: layer,
        path,
        signed_by: signers,
    } = pulled;
    println!("pulled {reference}");
    println!("  manifest  {digest}");
    println!("  component {layer}");
    println!("  stored    {}", path.display());
    if !signers.is_empty() {
        println!("  signed by {}", signers.join(", "));
    }
    if let Some(output) = output {
        std::fs::copy(&path, output).map_err(|err| {
            CliError::internal(format!("cannot write {}: {err}", output.display()))
        })?;
        println!("  written   {}", output.display());
    }
    done()
}

pub fn verify_envelope(path: &Path, keys: &[PathBuf]) -> Outcome {
    let trusted = trusted_keys(keys)?;
    let envelope: Envelope = std::fs::read(path)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(serde_json::from_slice(&bytes)?))
        .map_err(|err| {
            CliError::input(format!("{} is not a DSSE envelope: {err}", path.display()))
        })?;
    let (statement, key) = envelope
        .verify(&trusted)
        .map_err(|err| CliError::refused(format!("{}: {err}", path.display())))?;
    println!(
        "{}: valid signature by {} ({})",
        path.display(),
        key.short_id(),
        key.source.display()
    );
    println!("  predicate {}", statement.predicate_type);
    for subject in &statement.subject {
        let digests: Vec<String> = subject
            .digest
            .iter()
            .map(|(alg, value)| format!("{alg}:{value}"))
            .collect();
        println!("  subject   {} {}", subject.name, digests.join(" "));
    }
    done()
}

/// `path` itself, or, for an `oci://` reference, its component fetched into the store.
pub async fn local_copy(store: &PluginStore, path: &Path) -> Result<PathBuf, CliError> {
    let text = path.to_string_lossy();
    if !text.starts_with(sluice::config::plugin_ref::SCHEME) {
        return Ok(path.to_path_buf());
    }
    let reference = parse_ref(&text)?;
    let pulled = sharing::pull(store, &reference, &[])
        .await
        .map_err(|err| CliError::refused(format!("cannot fetch {reference}: {err:#}")))?;
    eprintln!("{reference} is {}", pulled.manifest_digest);
    Ok(pulled.path)
}
