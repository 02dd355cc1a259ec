//! `sluice lock`: resolves every registry plugin of a pipeline, records every plugin's capability
//! set (local files too) and writes pipeline.lock; runs nothing.

use std::path::Path;

use sluice::config::pipeline;
use sluice::registry::store::PluginStore;
use sluice::resolve::ResolveOptions;

use crate::error::{Outcome, done};
use crate::resolve::resolve_with;

/// `sluice lock PIPELINE [--update] [--offline] [--accept NAME]...`: each stage's pin and how
/// its capability set changed; a plugin that asks for more is refused unless accepted by name.
pub async fn lock(
    store: &PluginStore,
    path: &Path,
    update: bool,
    offline: bool,
    accept: Vec<String>,
) -> Outcome {
    let pipeline = pipeline::load(path)?;
    let options = ResolveOptions {
        store: store.clone(),
        offline,
        update,
        locked: false,
        record: true,
        accept,
    };
    let (_, resolution) = resolve_with(pipeline, &options).await?;
    if resolution.plugins.is_empty() {
        println!(
            "{} uses no registry plugins; its local plugins' capability sets are recorded",
            path.display()
        );
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
