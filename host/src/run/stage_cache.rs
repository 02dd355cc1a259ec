//! The content-addressed stage cache: a stage whose plugin, config, grants, inputs (and, when it
//! reads them, workspace files and granted environment values) are unchanged is not run again —
//! its outputs are restored, by hard link, from the entry the last such run stored. Entries are
//! re-hashed before reuse: a corrupt entry is a miss, never a wrong output.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::grants::Access;
use crate::config::pipeline::{Pipeline, StageSpec, When};
use crate::model::artifacts::{ArtifactRecord, sha256_file};

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

/// Why a stage is not served from the cache, when it is not.
pub fn uncacheable(spec: &StageSpec) -> Option<&'static str> {
    match spec.cache {
        Some(true) => return None,
        Some(false) => return Some("cache = false"),
        None => {}
    }
    let grants = &spec.grants;
    if !grants.net.is_empty() {
        Some("it may use the network")
    } else if !grants.exec.is_empty() {
        Some("it runs host programs (set `cache = true` if they are deterministic)")
    } else if !grants.secrets.is_empty() {
        Some("it reads secrets")
    } else if grants.workspace == Access::Write
        || grants.dirs.iter().any(|d| d.access == Access::Write)
    {
        Some("it writes to host folders")
    } else if matches!(spec.phase.as_deref(), Some("deploy" | "monitor")) {
        Some("deploy and monitor stages act on the world")
    } else if spec.when != When::OnSuccess || spec.manual_approval {
        Some("on-failure, always and gated stages always run")
    } else {
        None
    }
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
    pub fn key(
        &self,
        pipeline: &Pipeline,
        spec: &StageSpec,
        plugin_sha256: &str,
        inputs: &[&ArtifactRecord],
    ) -> Result<String> {
        let mut hasher = Sha256::new();
        let mut part = |label: &str, value: &str| {
            hasher.update(label.as_bytes());
            hasher.update([0]);
            hasher.update(value.len().to_le_bytes());
            hasher.update(value.as_bytes());
        };
        part("format", FORMAT);
        part("sluice", env!("CARGO_PKG_VERSION"));
        part("plugin", plugin_sha256);
        let config: serde_json::Value =
            serde_json::from_str(&spec.config_json).unwrap_or(serde_json::Value::Null);
        part("config", &config.to_string());
        for grant in spec.grants.describe() {
            part("grant", &grant);
        }
        part("limits", &format!("{:?}", spec.limits));
        part("phase", spec.phase.as_deref().unwrap_or(""));
        let mut sorted: Vec<(String, String)> = inputs
            .iter()
            .map(|a| (a.reference(), a.sha256.clone()))
            .collect();
        sorted.sort();
        for (reference, sha256) in sorted {
            part("input", &format!("{reference}={sha256}"));
        }
        for name in &spec.grants.env {
            part(
                "env",
                &format!("{name}={}", std::env::var(name).unwrap_or_default()),
            );
        }
        for program in &spec.grants.exec {
            part(
                "exec",
                &format!("{program}={}", program_fingerprint(program)),
            );
        }
        if spec.grants.workspace != Access::None {
            part("workspace", &tree_fingerprint(&pipeline.workspace)?);
        }
        for dir in &spec.grants.dirs {
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
}

/// A program as the key sees it: its resolved path, size and modification time, so a new
/// compiler makes a new key.
fn program_fingerprint(program: &str) -> String {
    let path = if program.contains('/') {
        Some(PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .filter(|d| d.is_absolute())
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
    };
    match path.and_then(|p| std::fs::metadata(&p).ok().map(|m| (p, m))) {
        Some((path, meta)) => format!(
            "{}:{}:{}",
            path.display(),
            meta.len(),
            meta.mtime_nsec() + meta.mtime() * 1_000_000_000
        ),
        None => "missing".to_string(),
    }
}

/// A folder as the key sees it: every path under it (but `.git`) with its kind, size and
/// modification time. Cheap enough to take on every run; a file rewritten with the same
/// content is a (safe) miss.
fn tree_fingerprint(root: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if meta.is_dir() {
                stack.push(path);
                files.insert(rel, "dir".into());
            } else {
                files.insert(
                    rel,
                    format!("{}:{}:{}", meta.len(), meta.mtime(), meta.mtime_nsec()),
                );
            }
        }
    }
    for (path, fingerprint) in files {
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(fingerprint.as_bytes());
        hasher.update([0]);
    }
    Ok(hex::encode(hasher.finalize()))
}
