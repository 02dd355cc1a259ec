//! Run state out of every stage's reach: the runs folder, the compiled-code cache and the plugin
//! store are never inside (or around) a folder a stage is given, so no stage can rewrite an
//! earlier artifact, another run's record, or code sluice will load — and no stage can read
//! artifacts its `inputs` do not name.

use std::path::{Path, PathBuf};

use crate::config::grants::Access;
use crate::config::pipeline::Pipeline;
use crate::resolve::ResolveError;

/// Refuses the run if any of `state` (what, folder) overlaps a folder some stage is granted.
pub(crate) fn refuse_state_in_mounts(
    pipeline: &Pipeline,
    state: &[(&str, &Path)],
) -> Result<(), ResolveError> {
    for spec in &pipeline.stages {
        let mut mounts: Vec<(String, &Path)> = Vec::new();
        if spec.grants.workspace != Access::None {
            mounts.push(("its workspace".into(), pipeline.workspace.as_path()));
        }
        for dir in &spec.grants.dirs {
            mounts.push((format!("allow.dirs ({})", dir.guest), dir.host.as_path()));
        }
        for (grant, mount) in &mounts {
            let mount = canonical(mount);
            for (what, folder) in state {
                let folder = canonical(folder);
                if folder.starts_with(&mount) || mount.starts_with(&folder) {
                    return Err(ResolveError::Input(
                        spec.site
                            .error(format!(
                                "stage `{}` is given {} ({}), which overlaps {what} ({}): a stage \
                                 there could read or rewrite what sluice keeps",
                                spec.name,
                                grant,
                                mount.display(),
                                folder.display()
                            ))
                            .with_hint(format!(
                                "keep {what} outside every folder a stage is given \
                                 (--runs-dir / SLUICE_RUNS_DIR, SLUICE_CACHE_DIR, \
                                 SLUICE_PLUGIN_STORE), or narrow the stage's grant"
                            )),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `path` with symlinks resolved as far as it exists, so a link cannot hide an overlap.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while let Some(parent) = existing.parent() {
        if let Some(name) = existing.file_name() {
            rest.push(name.to_os_string());
        }
        existing = parent;
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |acc, name| acc.join(name));
        }
    }
    absolute
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_found_through_links_and_missing_folders() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("ws"))?;
        std::os::unix::fs::symlink(dir.path().join("ws"), dir.path().join("link"))?;
        let through_link = canonical(&dir.path().join("link/.sluice/runs"));
        assert!(through_link.starts_with(dir.path().canonicalize()?.join("ws")));
        Ok(())
    }
}
