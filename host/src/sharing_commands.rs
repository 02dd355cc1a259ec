//! The command-line side of plugin sharing (`plugin push/pull/sign/verify`, `lock`, `key`,
//! `verify`) and of resolving a pipeline's registry plugins before a run: argument handling and
//! messages only; the work is in the library's `sharing`, `resolve` and `signing`.

use std::path::{Path, PathBuf};

use sluice::events::EventSink;
use sluice::plugin_store::PluginStore;
use sluice::registry::PluginRef;
use sluice::resolve::{ResolveFailure, ResolveOptions, resolve_pipeline};
use sluice::signing::{Envelope, SigningKey, TrustedKey, generate_key_pair};
use sluice::{Host, exit_codes, manifest, sharing};

use crate::ResolveArgs;

fn parse_ref(text: &str) -> Result<PluginRef, i32> {
    PluginRef::parse(text).map_err(|why| {
        eprintln!("error: invalid plugin reference `{text}`: {why}");
        exit_codes::INVALID_INPUT
    })
}

/// A reference and the public keys to check it against, from the command line.
fn ref_and_keys(reference: &str, keys: &[PathBuf]) -> Result<(PluginRef, Vec<TrustedKey>), i32> {
    Ok((parse_ref(reference)?, trusted_keys(keys)?))
}

fn trusted_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>, i32> {
    paths
        .iter()
        .map(|path| TrustedKey::from_file(path))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|err| {
            eprintln!("error: {err:#}");
            exit_codes::INVALID_INPUT
        })
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
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

/// Prints a refusal; the exit code for it.
pub fn report_refusal(failure: &ResolveFailure) -> i32 {
    eprintln!("error: a registry plugin was refused; nothing ran");
    eprintln!("{failure}");
    exit_codes::PLUGIN_REFUSED
}

/// Pins every registry plugin of `pipeline` (for commands without a reporter); prints what
/// changed; refusals exit with 6.
pub async fn resolve(
    pipeline: &mut manifest::Pipeline,
    store: &PluginStore,
    args: ResolveArgs,
) -> Result<(), i32> {
    resolve_with(pipeline, store, args.offline, args.locked, false)
        .await
        .map(|_| ())
}

async fn resolve_with(
    pipeline: &mut manifest::Pipeline,
    store: &PluginStore,
    offline: bool,
    locked: bool,
    update: bool,
) -> Result<sluice::resolve::Resolution, i32> {
    let options = ResolveOptions {
        store: store.clone(),
        offline,
        update,
        locked,
    };
    match resolve_pipeline(pipeline, &options, &EventSink::discard()).await {
        Ok(resolution) => {
            for (stage, reference, pin, fetched) in &resolution.plugins {
                if *fetched {
                    eprintln!(
                        "fetched {reference} for stage `{stage}` ({})",
                        short(&pin.manifest_digest)
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
            Ok(resolution)
        }
        Err(failure) => Err(report_refusal(&failure)),
    }
}

pub async fn lock(store: &PluginStore, path: &Path, update: bool, offline: bool) -> i32 {
    let mut pipeline = match manifest::load(path) {
        Ok(p) => p,
        Err(diag) => {
            eprintln!("error: {diag}");
            return exit_codes::INVALID_INPUT;
        }
    };
    let resolution = match resolve_with(&mut pipeline, store, offline, false, update).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    if resolution.plugins.is_empty() {
        println!(
            "{} uses no registry plugins; nothing to lock",
            path.display()
        );
        return exit_codes::SUCCESS;
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
    exit_codes::SUCCESS
}

pub fn key_generate(prefix: &Path) -> i32 {
    match generate_key_pair(prefix) {
        Ok((private, public, id)) => {
            println!("private key {} (keep it secret)", private.display());
            println!(
                "public key  {} (list it in `trusted_keys`)",
                public.display()
            );
            println!("key id      {}", sluice::signing::short_key_id(&id));
            exit_codes::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_codes::INVALID_INPUT
        }
    }
}

pub async fn push(
    host: &Host,
    file: &Path,
    reference: &str,
    sign: Option<&Path>,
    force: bool,
) -> i32 {
    let reference = match parse_ref(reference) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let key = match sign.map(SigningKey::from_file).transpose() {
        Ok(key) => key,
        Err(err) => {
            eprintln!("error: {err:#}");
            return exit_codes::INVALID_INPUT;
        }
    };
    let published = match sharing::push(host, file, &reference, force).await {
        Ok(published) => published,
        Err(err) => {
            eprintln!("error: cannot publish {}: {err:#}", file.display());
            return exit_codes::STAGE_ERROR;
        }
    };
    println!("pushed {} → {reference}", file.display());
    println!("  manifest  {}", published.manifest_digest);
    println!(
        "  component {} ({} bytes)",
        published.layer_digest, published.size
    );
    println!(
        "  pin it:   plugin = \"{}{}/{}@{}\"",
        sluice::registry::SCHEME,
        reference.registry,
        reference.repository,
        published.manifest_digest
    );
    if let Some(key) = key {
        return sign_with(&reference, &key).await;
    }
    exit_codes::SUCCESS
}

async fn sign_with(reference: &PluginRef, key: &SigningKey) -> i32 {
    match sharing::sign(reference, key).await {
        Ok((digest, _)) => {
            println!(
                "signed {reference} ({}) with {}",
                short(&digest),
                sluice::signing::short_key_id(&key.id)
            );
            exit_codes::SUCCESS
        }
        Err(err) => {
            eprintln!("error: cannot sign {reference}: {err:#}");
            exit_codes::STAGE_ERROR
        }
    }
}

pub async fn sign(reference: &str, key: &Path) -> i32 {
    let reference = match parse_ref(reference) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match SigningKey::from_file(key) {
        Ok(key) => sign_with(&reference, &key).await,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_codes::INVALID_INPUT
        }
    }
}

pub async fn verify(reference: &str, keys: &[PathBuf]) -> i32 {
    let (reference, trusted) = match ref_and_keys(reference, keys) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    match sharing::verify(&reference, &trusted).await {
        Ok((digest, signers)) => {
            println!("{reference} ({digest}) is signed by {}", signers.join(", "));
            exit_codes::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_codes::PLUGIN_REFUSED
        }
    }
}

pub async fn pull(
    store: &PluginStore,
    reference: &str,
    output: Option<&Path>,
    keys: &[PathBuf],
) -> i32 {
    let (reference, trusted) = match ref_and_keys(reference, keys) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    match sharing::pull(store, &reference, &trusted).await {
        Ok(sharing::Pulled {
            manifest_digest: digest,
            layer_digest: layer,
            path,
            signed_by: signers,
        }) => {
            println!("pulled {reference}");
            println!("  manifest  {digest}");
            println!("  component {layer}");
            println!("  stored    {}", path.display());
            if !signers.is_empty() {
                println!("  signed by {}", signers.join(", "));
            }
            if let Some(output) = output {
                if let Err(err) = std::fs::copy(&path, output) {
                    eprintln!("error: cannot write {}: {err}", output.display());
                    return exit_codes::INTERNAL_ERROR;
                }
                println!("  written   {}", output.display());
            }
            exit_codes::SUCCESS
        }
        Err(err) => {
            eprintln!("error: cannot pull {reference}: {err:#}");
            exit_codes::PLUGIN_REFUSED
        }
    }
}

pub fn verify_envelope(path: &Path, keys: &[PathBuf]) -> i32 {
    let trusted = match trusted_keys(keys) {
        Ok(keys) => keys,
        Err(code) => return code,
    };
    let envelope: Envelope = match std::fs::read(path)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(serde_json::from_slice(&bytes)?))
    {
        Ok(envelope) => envelope,
        Err(err) => {
            eprintln!("error: {} is not a DSSE envelope: {err}", path.display());
            return exit_codes::INVALID_INPUT;
        }
    };
    match envelope.verify(&trusted) {
        Ok((statement, key)) => {
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
            exit_codes::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {}: {err}", path.display());
            exit_codes::PLUGIN_REFUSED
        }
    }
}

/// `path` itself, or, for an `oci://` reference, its component fetched into the store.
pub async fn local_copy(store: &PluginStore, path: &Path) -> Result<PathBuf, i32> {
    let text = path.to_string_lossy();
    if !text.starts_with(sluice::registry::SCHEME) {
        return Ok(path.to_path_buf());
    }
    let reference = parse_ref(&text)?;
    match sharing::pull(store, &reference, &[]).await {
        Ok(pulled) => {
            eprintln!("{reference} is {}", pulled.manifest_digest);
            Ok(pulled.path)
        }
        Err(err) => {
            eprintln!("error: cannot fetch {reference}: {err:#}");
            Err(exit_codes::PLUGIN_REFUSED)
        }
    }
}
