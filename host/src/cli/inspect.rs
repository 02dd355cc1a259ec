//! `sluice inspect`: what a plugin component is, says about itself, imports and exports — a
//! local file, or an `oci://` reference fetched into the plugin store first.

use std::path::{Path, PathBuf};

use sluice::Host;
use sluice::registry::sharing;
use sluice::registry::store::PluginStore;

use crate::error::{CliError, Outcome, done};
use crate::refs::parse_ref;

/// `sluice inspect PLUGIN [--json]`: the engine is set up (`host`) once the component is here.
pub async fn inspect(
    host: impl FnOnce() -> Result<Host, CliError>,
    store: &PluginStore,
    plugin: &Path,
    json: bool,
) -> Outcome {
    let file = local_copy(store, plugin).await?;
    show(&host()?, &file, json).await
}

/// Prints what the component at `path` is (also after `sluice plugin build`); fails (exit 4)
/// when it is not a usable stage.
pub async fn show(host: &Host, path: &Path, json: bool) -> Outcome {
    let inspection = sluice::plugin::inspect::inspect(host, path)
        .await
        .map_err(CliError::stage)?;
    if json {
        let text = serde_json::to_string_pretty(&inspection).map_err(CliError::internal)?;
        println!("{text}");
    } else {
        println!("{}", inspection.file);
        println!("  size     {} bytes", inspection.size);
        println!("  sha256   {}", inspection.sha256);
        match &inspection.stage {
            Some(info) => {
                println!(
                    "  stage    {} {} (phase {})",
                    info.name, info.version, info.phase
                );
                println!("           {}", info.description);
            }
            None => println!("  stage    no"),
        }
        println!("  imports");
        for name in &inspection.imports {
            println!("    {name}");
        }
        println!("  exports");
        for name in &inspection.exports {
            println!("    {name}");
        }
    }
    match inspection.problem {
        None => done(),
        Some(problem) => Err(CliError::stage(problem)),
    }
}

/// `path` itself, or, for an `oci://` reference, its component fetched into the store.
async fn local_copy(store: &PluginStore, path: &Path) -> Result<PathBuf, CliError> {
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
