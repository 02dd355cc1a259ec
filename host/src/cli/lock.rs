//! `sluice lock`: resolves every registry plugin of a pipeline and writes pipeline.lock; runs
//! nothing.

use std::path::Path;

use sluice::config::pipeline;
use sluice::registry::store::PluginStore;

use crate::error::{Outcome, done};
use crate::resolve::resolve_with;

/// `sluice lock PIPELINE [--update] [--offline]`: each stage's pin, or that nothing needs one.
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
