//! The workspace travels by content, not by path: the coordinator sends the workspace's content
//! tree (relative path → kind, mode, size, sha256 — the tree its stage-cache keys are made of)
//! as a blob, and every file the store lacks as a blob named by its digest; an agent builds a
//! fresh copy for each job from its verified blob cache (hard links, not copies), so it needs no
//! folder of the coordinator's, and one job's changes never reach another's.

use std::path::{Component, Path};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};

use super::Blobs;
use crate::model::tree::{ContentTree, EntryKind};

/// Blobs sent or fetched at once.
const AT_ONCE: usize = 16;

/// What sending a tree cost: for the coordinator's log and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipped {
    pub files: usize,
    /// Files the store did not have yet.
    pub sent: usize,
    pub bytes_sent: u64,
}

/// Sends `tree` of `folder` to the store (the files it lacks, then the tree itself); returns
/// the tree's blob digest. `known` says whether the store is known to hold a digest already (sent
/// earlier in this run), `mark` records one it now holds.
pub async fn ship(
    blobs: &Blobs,
    folder: &Path,
    tree: &ContentTree,
    scratch: &Path,
    known: impl Fn(&str) -> bool,
    mark: impl Fn(String),
) -> Result<(String, Shipped)> {
    let files: Vec<(String, String)> = tree
        .entries
        .iter()
        .filter(|(_, e)| e.kind == EntryKind::File && e.sha256.len() == 64)
        .map(|(rel, e)| (rel.clone(), e.sha256.clone()))
        .collect();
    let mut shipped = Shipped {
        files: files.len(),
        ..Shipped::default()
    };
    let wanted: Vec<(String, String)> = files.into_iter().filter(|(_, sha)| !known(sha)).collect();
    let sent: Vec<(String, bool, u64)> = futures_util::stream::iter(wanted)
        .map(|(rel, sha256)| async move {
            let stored = blobs.put_file(&folder.join(&rel)).await?;
            if stored.sha256 != sha256 {
                bail!("{rel} in the workspace changed while it was being sent; run again");
            }
            Ok((stored.sha256, stored.uploaded, stored.size))
        })
        .buffer_unordered(AT_ONCE)
        .try_collect()
        .await?;
    for (sha256, uploaded, size) in sent {
        if uploaded {
            shipped.sent += 1;
            shipped.bytes_sent += size;
        }
        mark(sha256);
    }
    let manifest = scratch.join("workspace-tree.json");
    std::fs::write(&manifest, serde_json::to_vec(tree)?)
        .with_context(|| format!("cannot write {}", manifest.display()))?;
    let stored = blobs.put_file(&manifest).await?;
    let _ = std::fs::remove_file(&manifest);
    Ok((stored.sha256, shipped))
}

/// Builds the tree with blob digest `tree_sha256` at `dest` (a new folder), each file a hard
/// link to its verified copy in the blob cache (a copy where linking fails); folders made,
/// executable bits kept. A path that is not a plain relative path, a symlink or a special file
/// is not made.
pub async fn materialize(blobs: &Blobs, tree_sha256: &str, dest: &Path) -> Result<usize> {
    let manifest = blobs.fetch(tree_sha256).await?;
    let tree: ContentTree = serde_json::from_slice(&std::fs::read(&manifest)?)
        .context("the workspace tree from the store cannot be read")?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut files = Vec::new();
    for (rel, entry) in &tree.entries {
        let plain = !rel.is_empty()
            && Path::new(rel)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            bail!("the workspace tree names {rel:?}, which is not a path inside the workspace");
        }
        match entry.kind {
            EntryKind::Dir => std::fs::create_dir_all(dest.join(rel))?,
            EntryKind::File if entry.sha256.len() == 64 => {
                files.push((rel.clone(), entry.sha256.clone(), entry.executable));
            }
            _ => {}
        }
    }
    let count = files.len();
    futures_util::stream::iter(files)
        .map(|(rel, sha256, executable)| async move {
            let cached = blobs.fetch(&sha256).await?;
            let target = dest.join(&rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::hard_link(&cached, &target).is_err() {
                std::fs::copy(&cached, &target)
                    .with_context(|| format!("cannot write {}", target.display()))?;
            }
            // Read-only: the file is the cache's, linked into every job that has it.
            use std::os::unix::fs::PermissionsExt;
            let mode = if executable { 0o555 } else { 0o444 };
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
            anyhow::Ok(())
        })
        .buffer_unordered(AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
}
