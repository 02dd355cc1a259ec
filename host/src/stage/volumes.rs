//! Cache volumes: named, persistent, writable folders a stage is granted (`allow.caches`) that
//! survive runs on this machine — the build tool's incremental state (cargo's target folder,
//! npm's cache), never results. They are kept per machine under `$SLUICE_VOLUMES` (default
//! `~/.cache/sluice/volumes`), one folder per pipeline (its name and the digest of its folder)
//! and name; they are never part of a stage's outputs, its stage-cache key or provenance: what a
//! tool keeps there must not change what it produces (cargo and npm hold to this: a wrong or
//! missing entry is rebuilt or fetched again). A stage takes each of its volumes for the whole
//! stage (an exclusive lock), so two runs using one volume take turns instead of corrupting it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::config::grants::{CacheGrant, cache_guest_path};
use crate::sandbox::spec::CacheMount;

/// The folder a pipeline's volumes are kept in: its name and the digest of its folder, so two
/// checkouts of one project keep their own.
pub fn scope_of(pipeline: &crate::config::pipeline::Pipeline) -> String {
    let folder = std::path::absolute(&pipeline.dir).unwrap_or_else(|_| pipeline.dir.clone());
    let digest = crate::model::digests::sha256_bytes(folder.as_os_str().as_encoded_bytes());
    let safe: String = pipeline
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{safe}-{}", &digest[..12])
}

/// Where cache volumes live on this machine.
#[derive(Debug, Clone)]
pub struct CacheVolumes {
    root: Option<PathBuf>,
}

/// A volume taken for one stage: its folder, held until this is dropped.
pub struct TakenVolume {
    pub name: String,
    pub env: String,
    pub host: PathBuf,
    _lock: File,
}

impl TakenVolume {
    /// How the stage's sandbox gets it.
    pub fn mount(&self) -> CacheMount {
        CacheMount {
            guest: cache_guest_path(&self.name),
            host: self.host.clone(),
            env: self.env.clone(),
        }
    }
}

/// One volume on disk, as `sluice cache ls` shows it.
#[derive(Debug, Clone)]
pub struct VolumeInfo {
    /// The pipeline it belongs to (`<name>-<digest of its folder>`) and its own name.
    pub scope: String,
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub last_used: SystemTime,
}

impl CacheVolumes {
    pub fn new(root: Option<PathBuf>) -> Self {
        Self { root }
    }

    /// `$SLUICE_VOLUMES`, else `volumes` in the user's sluice cache folder.
    pub fn default_root() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("SLUICE_VOLUMES") {
            return Some(PathBuf::from(dir));
        }
        dirs::cache_dir().map(|d| d.join("sluice").join("volumes"))
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Takes every volume in `caches` for a stage of the pipeline `scope`, creating what is
    /// missing; while another stage holds one, `waiting` is called once and the take retried.
    pub async fn take(
        &self,
        scope: &str,
        caches: &[CacheGrant],
        waiting: impl Fn(&str),
    ) -> Result<Vec<TakenVolume>> {
        if caches.is_empty() {
            return Ok(Vec::new());
        }
        let root = self
            .root
            .as_ref()
            .context("no folder for cache volumes: set SLUICE_VOLUMES")?;
        let mut taken = Vec::with_capacity(caches.len());
        // In name order (as granted), so two stages wanting the same volumes cannot deadlock.
        for cache in caches {
            let host = root.join(scope).join(&cache.name);
            std::fs::create_dir_all(&host)
                .with_context(|| format!("cannot create the cache volume {}", host.display()))?;
            let lock_path = root.join(scope).join(format!("{}.lock", cache.name));
            let lock = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .with_context(|| format!("cannot create {}", lock_path.display()))?;
            let mut said = false;
            while rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_err()
            {
                if !std::mem::replace(&mut said, true) {
                    waiting(&cache.name);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Its modification time says when it was last used (for `cache gc`).
            let _ = lock.set_modified(SystemTime::now());
            taken.push(TakenVolume {
                name: cache.name.clone(),
                env: cache.env.clone(),
                host,
                _lock: lock,
            });
        }
        Ok(taken)
    }

    /// Every volume on disk, least recently used first.
    pub fn list(&self) -> Vec<VolumeInfo> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        let mut volumes = Vec::new();
        for scope in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let scope_name = scope.file_name().to_string_lossy().into_owned();
            for entry in std::fs::read_dir(scope.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let last_used = std::fs::metadata(scope.path().join(format!("{name}.lock")))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                volumes.push(VolumeInfo {
                    scope: scope_name.clone(),
                    name,
                    size: size_of(&path),
                    path,
                    last_used,
                });
            }
        }
        volumes.sort_by_key(|v| v.last_used);
        volumes
    }

    /// Removes the least recently used volumes that no stage holds until the rest fit in
    /// `max_size` bytes; returns what went.
    pub fn gc(&self, max_size: u64) -> Vec<VolumeInfo> {
        let volumes = self.list();
        let mut total: u64 = volumes.iter().map(|v| v.size).sum();
        let mut removed = Vec::new();
        for volume in volumes {
            if total <= max_size {
                break;
            }
            let Some(scope) = volume.path.parent() else {
                continue;
            };
            let Ok(lock) = File::options()
                .write(true)
                .open(scope.join(format!("{}.lock", volume.name)))
            else {
                continue;
            };
            // A volume in use stays.
            if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_ok()
                && std::fs::remove_dir_all(&volume.path).is_ok()
            {
                total = total.saturating_sub(volume.size);
                removed.push(volume);
            }
        }
        removed
    }
}

/// Apparent bytes of every file under `dir` (links not followed).
fn size_of(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) => total = total.saturating_add(meta.len()),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_volume_is_taken_by_one_stage_at_a_time_and_kept() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let volumes = CacheVolumes::new(Some(dir.path().to_path_buf()));
        let grant = [CacheGrant {
            name: "target".into(),
            env: "CARGO_TARGET_DIR".into(),
        }];
        let first = volumes.take("p-1", &grant, |_| {}).await?;
        std::fs::write(first[0].host.join("kept"), b"x")?;
        let waited = std::sync::atomic::AtomicBool::new(false);
        let second = tokio::time::timeout(
            Duration::from_millis(200),
            volumes.take("p-1", &grant, |_| {
                waited.store(true, std::sync::atomic::Ordering::SeqCst)
            }),
        )
        .await;
        assert!(second.is_err(), "taken twice at once");
        assert!(waited.load(std::sync::atomic::Ordering::SeqCst));
        drop(first);
        let again = volumes.take("p-1", &grant, |_| {}).await?;
        assert!(
            again[0].host.join("kept").is_file(),
            "a volume outlives its stage"
        );
        assert_eq!(volumes.gc(0).len(), 0, "a volume in use is not removed");
        drop(again);
        assert_eq!(volumes.gc(0).len(), 1);
        assert!(volumes.list().is_empty());
        Ok(())
    }
}
