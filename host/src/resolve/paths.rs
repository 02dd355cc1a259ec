//! Before anything runs, every path the pipeline names is checked for its kind: plugins and
//! secret files must be regular files of a bounded size, granted dirs and the workspace must be
//! folders — a device, FIFO, socket or symlink loop is refused at the line that names it, so it
//! can neither hang sluice nor fill its memory.

use std::path::Path;

use crate::config::diagnostic::{Diagnostic, Site};
use crate::config::files::{MAX_PLUGIN_BYTES, MAX_SECRET_FILE_BYTES, kind_problem};
use crate::config::grants::{Access, SecretSource};
use crate::config::pipeline::{Pipeline, PluginSource};

/// Refuses the first named path of the wrong kind. A missing path is left to the check that
/// knows what to say about it (a missing plugin, an optional dir, an ungranted secret).
pub(super) fn check(pipeline: &Pipeline) -> Result<(), Diagnostic> {
    for spec in &pipeline.stages {
        if let PluginSource::File(path) = &spec.plugin {
            refuse(path, false, MAX_PLUGIN_BYTES, &spec.plugin_site, "plugin")?;
        }
        for dir in &spec.grants.dirs {
            refuse(dir.host.as_path(), true, 0, &dir.site, "granted dir")?;
        }
        if spec.grants.workspace != Access::None {
            refuse(&pipeline.workspace, true, 0, &spec.site, "workspace")?;
        }
    }
    for (name, source) in &pipeline.secrets {
        if let (SecretSource::File(path), Some(site)) = (source, pipeline.secret_sites.get(name)) {
            refuse(
                path,
                false,
                MAX_SECRET_FILE_BYTES,
                site,
                &format!("secret `{name}`"),
            )?;
        }
    }
    Ok(())
}

fn refuse(
    path: &Path,
    want_dir: bool,
    max: u64,
    site: &Site,
    what: &str,
) -> Result<(), Diagnostic> {
    let problem = match kind_problem(path, want_dir) {
        Some(problem) if problem == "does not exist" => return Ok(()),
        Some(problem) => problem,
        None if want_dir => return Ok(()),
        None => {
            let size = std::fs::metadata(path).map_or(0, |m| m.len());
            if size <= max {
                return Ok(());
            }
            format!(
                "is {size} bytes, more than the {} sluice reads for a {what}",
                crate::config::limits::fmt_bytes(max)
            )
        }
    };
    Err(site
        .error(format!("{what} {} {problem}", path.display()))
        .with_hint(if want_dir {
            "name a folder"
        } else {
            "name a regular file; devices, FIFOs, sockets and folders cannot be read as one"
        }))
}
