//! The content-addressed stage cache: a stage whose plugin, config, grants, inputs (and, when it
//! reads them, workspace files and granted environment values) are unchanged is not run again —
//! its outputs are restored, by hard link, from the entry the last such run stored. Entries are
//! re-hashed before reuse: a corrupt entry is a miss, never a wrong output.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::grants::Access;
use crate::model::artifacts::{ArtifactRecord, sha256_file};
use crate::model::events::{Event, EventSink};
use crate::model::layout::artifact_rel;
use crate::model::report::{CacheRecord, StageRecord, StageStatus, rfc3339};

use super::LockedStage;
use super::inputs::select_inputs;
use super::output::OutputFolder;
use fingerprint::{program_fingerprint, tree_fingerprint};

mod fingerprint;

/// Bumped when what goes into a key, or an entry's layout, changes.
const FORMAT: &str = "sluice-stage-cache/1";

/// Where entries live, or nowhere (`--no-stage-cache`).
#[derive(Debug, Clone)]
pub struct StageCache {
    root: Option<PathBuf>,
}

/// What an entry keeps besides the files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub stage: String,
    pub outputs: Vec<CachedOutput>,
    pub summary: Option<String>,
    pub plugin_name: Option<String>,
    pub plugin_version: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedOutput {
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
}

impl StageCache {
    pub fn new(root: Option<PathBuf>) -> Self {
        Self { root }
    }

    /// `$SLUICE_STAGE_CACHE`, else the user's cache folder.
    pub fn default_root() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("SLUICE_STAGE_CACHE") {
            return Some(PathBuf::from(dir));
        }
        dirs::cache_dir().map(|d| d.join("sluice").join("stages"))
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    fn entry_dir(&self, key: &str) -> Option<PathBuf> {
        let valid = key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit());
        valid.then(|| self.root.as_ref().map(|r| r.join(key)))?
    }

    /// The key for running `spec` with `plugin_sha256` on `inputs`.
    pub fn key(&self, stage: &LockedStage, inputs: &[&ArtifactRecord]) -> Result<String> {
        let mut hasher = Sha256::new();
        let mut part = |label: &str, value: &str| {
            hasher.update(label.as_bytes());
            hasher.update([0]);
            hasher.update(value.len().to_le_bytes());
            hasher.update(value.as_bytes());
        };
        part("format", FORMAT);
        part("sluice", env!("CARGO_PKG_VERSION"));
        part("plugin", &stage.plugin_sha256);
        let config: serde_json::Value =
            serde_json::from_str(&stage.config_json).unwrap_or(serde_json::Value::Null);
        part("config", &config.to_string());
        for grant in stage.grants.describe() {
            part("grant", &grant);
        }
        part("limits", &format!("{:?}", stage.limits));
        part("phase", stage.phase.as_deref().unwrap_or(""));
        let mut sorted: Vec<(String, String)> = inputs
            .iter()
            .map(|a| (a.reference(), a.sha256.clone()))
            .collect();
        sorted.sort();
        for (reference, sha256) in sorted {
            part("input", &format!("{reference}={sha256}"));
        }
        for name in &stage.grants.env {
            part(
                "env",
                &format!("{name}={}", std::env::var(name).unwrap_or_default()),
            );
        }
        for program in &stage.grants.exec {
            part(
                "exec",
                &format!("{program}={}", program_fingerprint(program)),
            );
        }
        if stage.grants.workspace != Access::None {
            part("workspace", &tree_fingerprint(&stage.workspace)?);
        }
        for dir in &stage.grants.dirs {
            part(
                "dir",
                &format!("{}={}", dir.guest, tree_fingerprint(&dir.host)?),
            );
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// The entry for `key`, if there is one and every file still hashes to what it recorded.
    pub fn lookup(&self, key: &str) -> Option<Entry> {
        let dir = self.entry_dir(key)?;
        let entry: Entry =
            serde_json::from_slice(&std::fs::read(dir.join("entry.json")).ok()?).ok()?;
        if entry.key != key {
            return None;
        }
        for output in &entry.outputs {
            crate::config::names::check_relative_name(&output.name).ok()?;
            let file = dir.join("files").join(&output.name);
            let meta = std::fs::symlink_metadata(&file).ok()?;
            if !meta.is_file() || meta.len() != output.size {
                return None;
            }
            let (sha256, _) = sha256_file(&file).ok()?;
            if sha256 != output.sha256 {
                return None;
            }
        }
        Some(entry)
    }

    /// Puts an entry's files into `out_dir` (hard links; copies across filesystems).
    pub fn restore(&self, entry: &Entry, out_dir: &Path) -> Result<()> {
        let dir = self
            .entry_dir(&entry.key)
            .context("the stage cache is off")?;
        for output in &entry.outputs {
            let dest = out_dir.join(&output.name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let source = dir.join("files").join(&output.name);
            if std::fs::hard_link(&source, &dest).is_err() {
                std::fs::copy(&source, &dest).with_context(|| {
                    format!("cannot copy {} to {}", source.display(), dest.display())
                })?;
            }
        }
        Ok(())
    }

    /// Stores a succeeded stage's outputs under `key`: built in a temporary folder and renamed
    /// into place, so a reader never sees half an entry.
    pub fn store(&self, key: &str, entry: &Entry, out_dir: &Path) -> Result<()> {
        let (Some(root), Some(dir)) = (self.root.as_ref(), self.entry_dir(key)) else {
            return Ok(());
        };
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".entry-")
            .tempdir_in(root)
            .with_context(|| format!("cannot write in {}", root.display()))?;
        for output in &entry.outputs {
            let dest = tmp.path().join("files").join(&output.name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let source = out_dir.join(&output.name);
            if std::fs::hard_link(&source, &dest).is_err() {
                std::fs::copy(&source, &dest)?;
            }
        }
        let json = serde_json::to_vec_pretty(entry).context("cannot encode a cache entry")?;
        std::fs::write(tmp.path().join("entry.json"), json)?;
        let _ = std::fs::remove_dir_all(&dir);
        let kept = tmp.keep();
        if std::fs::rename(&kept, &dir).is_err() {
            // Another run stored the same key at the same moment: theirs is as good.
            let _ = std::fs::remove_dir_all(&kept);
        }
        Ok(())
    }

    /// Every entry, newest first, with its size on disk.
    pub fn list(&self) -> Vec<(Entry, u64)> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        let mut entries: Vec<(Entry, u64)> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|dir| {
                let bytes = std::fs::read(dir.path().join("entry.json")).ok()?;
                let entry: Entry = serde_json::from_slice(&bytes).ok()?;
                let size = entry.outputs.iter().map(|o| o.size).sum();
                Some((entry, size))
            })
            .collect();
        entries.sort_by(|a, b| b.0.created_at.cmp(&a.0.created_at));
        entries
    }

    /// Removes the oldest entries until the rest fit in `max_size` bytes; returns what went.
    pub fn gc(&self, max_size: u64) -> Vec<Entry> {
        let mut total = 0u64;
        let mut removed = Vec::new();
        for (entry, size) in self.list() {
            total = total.saturating_add(size);
            if total > max_size
                && let Some(dir) = self.entry_dir(&entry.key)
                && std::fs::remove_dir_all(dir).is_ok()
            {
                removed.push(entry);
            }
        }
        removed
    }

    /// The key of `stage` on the artifacts `available` to it, when the cache may serve it (the
    /// cache is on and the stage is cacheable); `Err` says why no key could be made.
    pub fn key_for(
        &self,
        stage: &LockedStage,
        available: &[ArtifactRecord],
    ) -> Result<Option<String>> {
        if self.root.is_none() || stage.uncacheable.is_some() {
            return Ok(None);
        }
        let Ok(inputs) = select_inputs(&stage.inputs, available) else {
            return Ok(None);
        };
        self.key(stage, &inputs).map(Some)
    }

    /// Serves stage `name` from the entry under `key`, if there is one: its outputs restored
    /// (re-verified) into `folder` and recorded, the plugin not run. `Err` says why an entry
    /// could not be restored (the folder is left empty, and the stage runs).
    pub fn serve(
        &self,
        key: &str,
        folder: &OutputFolder<'_>,
        record: &mut StageRecord,
        events: &EventSink,
    ) -> Result<bool> {
        let Some(entry) = self.lookup(key) else {
            return Ok(false);
        };
        let name = record.name.clone();
        folder.empty();
        if let Err(err) = folder
            .create()
            .and_then(|()| self.restore(&entry, folder.path()))
        {
            folder.empty();
            return Err(err);
        }
        record.outputs = entry
            .outputs
            .iter()
            .map(|o| ArtifactRecord {
                stage: name.clone(),
                name: o.name.clone(),
                path: artifact_rel(&name, &o.name),
                media_type: o.media_type.clone(),
                size: o.size,
                sha256: o.sha256.clone(),
            })
            .collect();
        for artifact in &record.outputs {
            events.emit(Event::ArtifactWritten {
                stage: name.clone(),
                artifact: artifact.clone(),
            });
        }
        record.summary = entry.summary.clone();
        record.plugin.name = entry.plugin_name.clone();
        record.plugin.version = entry.plugin_version.clone();
        record.status = StageStatus::Succeeded;
        record.message = None;
        record.cache = Some(CacheRecord {
            key: key.to_string(),
            hit: true,
        });
        Ok(true)
    }

    /// Keeps a succeeded stage's outputs (in `folder`) for the next run with the same key.
    pub fn keep(
        &self,
        key: String,
        folder: &OutputFolder<'_>,
        record: &mut StageRecord,
    ) -> Result<()> {
        let entry = Entry {
            key: key.clone(),
            stage: record.name.clone(),
            outputs: record
                .outputs
                .iter()
                .map(|a| CachedOutput {
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                })
                .collect(),
            summary: record.summary.clone(),
            plugin_name: record.plugin.name.clone(),
            plugin_version: record.plugin.version.clone(),
            created_at: rfc3339(std::time::SystemTime::now()),
        };
        self.store(&key, &entry, folder.path())?;
        record.cache = Some(CacheRecord { key, hit: false });
        Ok(())
    }
}
