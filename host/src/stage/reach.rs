//! Run state out of every stage's reach: the runs folder, the compiled-code cache and the plugin
//! store are never inside (or around) a folder a stage is given, so no stage can rewrite an
//! earlier artifact, another run's record, or code sluice will load — and no stage can read
//! artifacts its `inputs` do not name.

use std::path::{Path, PathBuf};

use crate::config::grants::{Access, Grants};
use crate::config::pipeline::Pipeline;
use crate::resolve::ResolveError;

use super::LockedStage;

/// Refuses the run if any of `state` (what, folder) overlaps a folder some stage is granted.
pub fn refuse_state_in_mounts(
    pipeline: &Pipeline,
    state: &[(&str, &Path)],
) -> Result<(), ResolveError> {
    for spec in &pipeline.stages {
        if let Err(overlap) = overlap(&spec.name, &spec.grants, &pipeline.workspace, state) {
            return Err(ResolveError::Input(
                spec.site.error(overlap.message).with_hint(overlap.hint),
            ));
        }
    }
    Ok(())
}

/// Refuses a locked stage (on an agent) whose grants reach any of `state`, or one of whose
/// secrets is read from a file inside it (the agent's credentials, its keys, its folders).
pub fn refuse_locked_in_mounts(
    locked: &LockedStage,
    state: &[(&str, &Path)],
) -> anyhow::Result<()> {
    overlap(&locked.name, &locked.grants, &locked.workspace, state)
        .map_err(|overlap| anyhow::anyhow!("{}\n  = help: {}", overlap.message, overlap.hint))?;
    for (secret, source) in &locked.secrets {
        let crate::config::grants::SecretSource::File(file) = source else {
            continue;
        };
        let file = canonical(file);
        for (what, kept) in state {
            if file.starts_with(canonical(kept)) {
                anyhow::bail!(
                    "stage `{}`'s secret `{secret}` is read from {}, which is {what}: no pipeline may read it\n  = help: keep the secret's value in a file of its own",
                    locked.name,
                    file.display()
                );
            }
        }
    }
    Ok(())
}

/// A granted folder that overlaps state sluice keeps: what to say, and what to do.
struct Overlap {
    message: String,
    hint: String,
}

fn overlap(
    stage: &str,
    grants: &Grants,
    workspace: &Path,
    state: &[(&str, &Path)],
) -> Result<(), Overlap> {
    let mut mounts: Vec<(String, &Path)> = Vec::new();
    if grants.workspace != Access::None {
        mounts.push(("its workspace".into(), workspace));
    }
    for dir in &grants.dirs {
        mounts.push((format!("allow.dirs ({})", dir.guest), dir.host.as_path()));
    }
    for (grant, mount) in &mounts {
        let mount = canonical(mount);
        for (what, folder) in state {
            let folder = canonical(folder);
            if folder.starts_with(&mount) || mount.starts_with(&folder) {
                return Err(Overlap {
                    message: format!(
                        "stage `{stage}` is given {grant} ({}), which overlaps {what} ({}): a \
                         stage there could read or rewrite what sluice keeps",
                        mount.display(),
                        folder.display()
                    ),
                    hint: format!(
                        "keep {what} outside every folder a stage is given \
                         (--runs-dir / SLUICE_RUNS_DIR, SLUICE_CACHE_DIR, \
                         SLUICE_PLUGIN_STORE), or narrow the stage's grant"
                    ),
                });
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
