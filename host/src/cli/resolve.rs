//! Resolving a pipeline's registry (`oci://`) plugins before `run`, `resume`, `check`, `lock` and
//! `stage run --from`: the options the flags give, and, for commands without a reporter, what
//! was fetched and how pipeline.lock changed, on stderr.

use sluice::config::pipeline::Pipeline;
use sluice::model::events::{EventSink, short_digest};
use sluice::registry::store::PluginStore;
use sluice::resolve::{Resolution, ResolveOptions, ResolvedPipeline, resolve_pipeline};

use crate::args::ResolveArgs;
use crate::error::CliError;

/// How `run`, `resume` and `check` resolve registry plugins.
pub fn resolve_options(store: &PluginStore, args: ResolveArgs) -> ResolveOptions {
    ResolveOptions {
        store: store.clone(),
        offline: args.offline,
        update: false,
        locked: args.locked,
        record: false,
        accept: Vec::new(),
    }
}

/// Pins every registry plugin of `pipeline` (for commands without a reporter); prints what
/// changed; refusals exit with 6.
pub async fn resolve(
    pipeline: Pipeline,
    store: &PluginStore,
    args: ResolveArgs,
) -> Result<ResolvedPipeline, CliError> {
    let options = resolve_options(store, args);
    resolve_with(pipeline, &options)
        .await
        .map(|(resolved, _)| resolved)
}

/// Pins every registry plugin of `pipeline` with these settings; prints what was fetched and
/// what changed in pipeline.lock.
pub async fn resolve_with(
    pipeline: Pipeline,
    options: &ResolveOptions,
) -> Result<(ResolvedPipeline, Resolution), CliError> {
    match resolve_pipeline(pipeline, options, &EventSink::discard()).await {
        Ok((resolved, resolution)) => {
            for (stage, reference, pin, fetched) in &resolution.plugins {
                if *fetched {
                    eprintln!(
                        "fetched {reference} for stage `{stage}` ({})",
                        short_digest(&pin.manifest_digest)
                    );
                }
            }
            for change in &resolution.capability_changes {
                eprintln!("{change}");
            }
            for warning in &resolution.warnings {
                eprintln!("warning: {warning}");
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
