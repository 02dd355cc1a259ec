//! The workspace travels by content, not by path: the coordinator sends a *shipment* — the
//! workspace's content tree (relative path → kind, mode, size, sha256: the tree its stage-cache
//! keys are made of) and where each file's bytes are in the store — and only the bytes the store
//! lacks. Small files travel together in packs (one object per few MiB, not one per file), large
//! ones as blobs named by their digest. The coordinator remembers the last shipment of each
//! workspace, so an unchanged workspace costs one question to the store, not one per file. An
//! agent builds a fresh copy for each job from its verified blob cache (hard links to read-only
//! files), so it needs no folder of the coordinator's, and one job's changes never reach another's;
//! every file taken out of a pack is hashed before it is kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::Blobs;
use crate::model::digests::sha256_bytes;
use crate::model::tree::{ContentTree, EntryKind};

/// Blobs sent or fetched at once.
const AT_ONCE: usize = 16;
/// Packs sent or fetched at once.
const PACKS_AT_ONCE: usize = 4;
/// Files this large travel as blobs of their own; smaller ones in packs.
const PACKED_BELOW: u64 = 1024 * 1024;
/// A pack is closed when it reaches this size.
const PACK_BYTES: u64 = 8 * 1024 * 1024;

/// What sending a tree cost: for the coordinator's log and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipped {
    pub files: usize,
    /// Files the store did not have yet.
    pub sent: usize,
    pub bytes_sent: u64,
    /// Objects put into the store (blobs and packs).
    pub objects: usize,
}

/// The tree and where its files' bytes are: in a pack, or (not listed) a blob of their own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shipment {
    pub tree: ContentTree,
    /// Pack object name → the files in it, in order.
    #[serde(default)]
    pub packs: BTreeMap<String, Vec<Packed>>,
}

/// One file in a pack: its bytes follow the previous file's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packed {
    pub sha256: String,
    pub size: u64,
}

/// A pack's object name: the digest of its index, so the same files make the same pack.
fn pack_name(files: &[Packed]) -> String {
    let index: String = files
        .iter()
        .map(|f| format!("{} {}\n", f.sha256, f.size))
        .collect();
    format!("pack-{}", sha256_bytes(index.as_bytes()))
}

/// What the coordinator remembers of a workspace's last shipment.
#[derive(Debug, Serialize, Deserialize)]
struct Remembered {
    manifest: String,
    shipment: Shipment,
}

/// The last shipment recorded in `memo`, if the store still holds its manifest (then it holds
/// what the shipment names: sluice never removes a single blob).
async fn remembered(blobs: &Blobs, memo: Option<&Path>) -> Option<(String, Shipment)> {
    let bytes = std::fs::read(memo?).ok()?;
    let last: Remembered = serde_json::from_slice(&bytes).ok()?;
    blobs
        .holds(&format!("sha256-{}", last.manifest))
        .await
        .then_some((last.manifest, last.shipment))
}

/// Sends `tree` of `folder` to the store (the bytes it lacks, then the shipment); returns the
/// shipment's blob digest. `known` says whether the store is known to hold a digest already (sent
/// earlier in this run), `mark` records one it now holds; `memo` is where this workspace's last
/// shipment is remembered between runs.
pub async fn ship(
    blobs: &Blobs,
    folder: &Path,
    tree: &ContentTree,
    scratch: &Path,
    memo: Option<&Path>,
    known: impl Fn(&str) -> bool,
    mark: impl Fn(String),
) -> Result<(String, Shipped)> {
    let (prior_manifest, prior) = match remembered(blobs, memo).await {
        Some((manifest, shipment)) => (Some(manifest), shipment),
        None => (None, Shipment::default()),
    };
    let prior_packs: HashMap<&str, &str> = prior
        .packs
        .iter()
        .flat_map(|(name, files)| {
            files
                .iter()
                .map(move |f| (f.sha256.as_str(), name.as_str()))
        })
        .collect();
    let prior_blobs: HashSet<&str> = prior
        .tree
        .entries
        .values()
        .filter(|e| e.kind == EntryKind::File && !prior_packs.contains_key(e.sha256.as_str()))
        .map(|e| e.sha256.as_str())
        .collect();
    let mut shipment = Shipment {
        tree: tree.clone(),
        packs: BTreeMap::new(),
    };
    let mut shipped = Shipped::default();
    let (mut alone, mut small, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
    for (rel, entry) in &tree.entries {
        if entry.kind != EntryKind::File || entry.sha256.len() != 64 {
            continue;
        }
        shipped.files += 1;
        if !seen.insert(entry.sha256.as_str()) {
            continue;
        }
        if let Some(pack) = prior_packs.get(entry.sha256.as_str()) {
            if let Some(files) = prior.packs.get(*pack) {
                shipment.packs.insert((*pack).to_string(), files.clone());
            }
        } else if prior_blobs.contains(entry.sha256.as_str()) || known(&entry.sha256) {
        } else if entry.size >= PACKED_BELOW {
            alone.push((rel.clone(), entry.sha256.clone()));
        } else {
            small.push((rel.clone(), entry.sha256.clone(), entry.size));
        }
    }
    let sent: Vec<(String, bool, u64)> = futures_util::stream::iter(alone)
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
            shipped.objects += 1;
        }
        mark(sha256);
    }
    let packs = send_packs(blobs, folder, small).await?;
    for (name, files, uploaded) in packs {
        if uploaded {
            shipped.sent += files.len();
            shipped.bytes_sent += files.iter().map(|f| f.size).sum::<u64>();
            shipped.objects += 1;
        }
        shipment.packs.insert(name, files);
    }
    let manifest_file = scratch.join("workspace-shipment.json");
    std::fs::write(&manifest_file, serde_json::to_vec(&shipment)?)
        .with_context(|| format!("cannot write {}", manifest_file.display()))?;
    let stored = blobs.put_file(&manifest_file).await?;
    let _ = std::fs::remove_file(&manifest_file);
    if let Some(memo) = memo
        && prior_manifest.as_deref() != Some(stored.sha256.as_str())
    {
        let remember = Remembered {
            manifest: stored.sha256.clone(),
            shipment,
        };
        if let Some(parent) = memo.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        // Only a speed-up: a memo that cannot be written costs the next run its questions.
        let _ = crate::atomic_file::write(memo, &serde_json::to_vec(&remember)?);
    }
    Ok((stored.sha256, shipped))
}

/// Packs `files` (relative path, sha256, size) in path order and sends each pack the store lacks;
/// the packs' names, files, and whether each was sent.
async fn send_packs(
    blobs: &Blobs,
    folder: &Path,
    files: Vec<(String, String, u64)>,
) -> Result<Vec<(String, Vec<Packed>, bool)>> {
    let mut groups: Vec<Vec<(String, String, u64)>> = Vec::new();
    let mut size = 0;
    for file in files {
        if groups.is_empty() || size + file.2 > PACK_BYTES {
            groups.push(Vec::new());
            size = 0;
        }
        size += file.2;
        if let Some(group) = groups.last_mut() {
            group.push(file);
        }
    }
    futures_util::stream::iter(groups)
        .map(|group| async move {
            let index: Vec<Packed> = group
                .iter()
                .map(|(_, sha256, size)| Packed {
                    sha256: sha256.clone(),
                    size: *size,
                })
                .collect();
            let name = pack_name(&index);
            let total = index.iter().map(|f| f.size as usize).sum();
            let folder = folder.to_path_buf();
            let bytes = tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::with_capacity(total);
                for (rel, _, size) in &group {
                    let content = std::fs::read(folder.join(rel))
                        .with_context(|| format!("cannot read {rel} in the workspace"))?;
                    if content.len() as u64 != *size {
                        bail!("{rel} in the workspace changed while it was being sent; run again");
                    }
                    bytes.extend_from_slice(&content);
                }
                Ok(bytes)
            })
            .await
            .context("packing the workspace stopped")??;
            let uploaded = blobs.put_pack(&name, &bytes).await?;
            Ok((name, index, uploaded))
        })
        .buffer_unordered(PACKS_AT_ONCE)
        .try_collect()
        .await
}

/// What building a job's workspace took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Materialized {
    pub files: usize,
    /// Distinct contents the agent's blob cache did not have.
    pub fetched: usize,
    /// How long fetching them took.
    pub fetching: std::time::Duration,
}

/// Builds the shipment with blob digest `shipment_sha256` at `dest` (a new folder), each file a
/// hard link to its verified, read-only copy in the blob cache (an executable one a copy, its
/// mode its own); folders made. A path that is not a plain relative path is refused; symlinks
/// and special files are not made.
pub async fn materialize(
    blobs: &Blobs,
    shipment_sha256: &str,
    dest: &Path,
) -> Result<Materialized> {
    let manifest = blobs.fetch(shipment_sha256).await?;
    let shipment: Shipment = serde_json::from_slice(&std::fs::read(&manifest)?)
        .context("the workspace shipment from the store cannot be read")?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut files = Vec::new();
    for (rel, entry) in &shipment.tree.entries {
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
                if !entry.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("the workspace tree gives {rel:?} a digest that is not a sha256");
                }
                files.push((rel.clone(), entry.sha256.clone(), entry.executable));
            }
            _ => {}
        }
    }
    let mut missing = HashSet::new();
    for (_, sha256, _) in &files {
        if !missing.contains(sha256) && blobs.cached(sha256).await.is_none() {
            missing.insert(sha256.clone());
        }
    }
    let fetched = missing.len();
    let clock = std::time::Instant::now();
    fetch_missing(blobs, &shipment, missing).await?;
    let fetching = clock.elapsed();
    let count = files.len();
    for (rel, sha256, executable) in files {
        // Every content is in the cache now, verified (just fetched, or found above).
        let cached = blobs.path_of(&sha256);
        let target = dest.join(&rel);
        let parent_listed = Path::new(&rel).parent().is_none_or(|parent| {
            parent.as_os_str().is_empty()
                || shipment
                    .tree
                    .entries
                    .get(parent.to_string_lossy().as_ref())
                    .is_some_and(|e| e.kind == EntryKind::Dir)
        });
        // The tree lists its folders, made above; a parent it leaves out is made here.
        if !parent_listed && let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::copy(&cached, &target)
                .with_context(|| format!("cannot write {}", target.display()))?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o555))?;
        } else if std::fs::hard_link(&cached, &target).is_err() {
            std::fs::copy(&cached, &target)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
    }
    Ok(Materialized {
        files: count,
        fetched,
        fetching,
    })
}

/// Brings the `missing` contents into the blob cache: the packs that hold them (each file
/// taken out verified), the rest as blobs of their own.
async fn fetch_missing(
    blobs: &Blobs,
    shipment: &Shipment,
    mut missing: HashSet<String>,
) -> Result<()> {
    let packs: Vec<(&String, &Vec<Packed>)> = shipment
        .packs
        .iter()
        .filter(|(_, files)| files.iter().any(|f| missing.contains(&f.sha256)))
        .collect();
    let wanted = missing.clone();
    for (_, files) in &packs {
        for file in files.iter() {
            missing.remove(&file.sha256);
        }
    }
    // Packs come in concurrently; their files go into the cache one pack at a time (many
    // writers creating files in one folder only queue on its lock).
    let mut fetched = futures_util::stream::iter(packs)
        .map(|(name, files)| async move {
            if pack_name(files) != *name {
                bail!("{name} does not match its index");
            }
            let total = files.iter().map(|f| f.size).sum();
            let bytes = blobs.fetch_pack(name, total).await?;
            anyhow::Ok((name, files, bytes))
        })
        .buffer_unordered(PACKS_AT_ONCE);
    while let Some(pack) = fetched.next().await {
        let (name, files, bytes) = pack?;
        let mut at = 0usize;
        let mut keep = Vec::new();
        for file in files {
            let end = at + file.size as usize;
            if wanted.contains(&file.sha256) {
                keep.push((file.sha256.clone(), at..end));
            }
            at = end;
        }
        blobs
            .adopt(bytes, keep)
            .await
            .with_context(|| format!("in {name}"))?;
    }
    futures_util::stream::iter(missing)
        .map(|sha256| async move { blobs.fetch(&sha256).await.map(|_| ()) })
        .buffer_unordered(AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
