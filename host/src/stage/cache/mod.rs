//! The content-addressed stage cache: a stage whose plugin, config, grants, inputs (and, when it
//! reads them, the content of its workspace and granted folders, the git state, granted
//! environment values and programs) are unchanged is not run again — its outputs are restored,
//! by hard link, from the entry the last such run stored. Entries are tagged under the per-user
//! key and re-hashed before reuse: a planted, edited or corrupt entry is a miss, never a wrong
//! output. On a miss of a stage that was stored before, the parts of the key that moved are said
//! ([`KeyParts::changes_since`]); `sluice cache why` says the same afterwards.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ring::hmac;

use crate::config::ignore::IgnoreList;
use crate::model::artifacts::{ArtifactRecord, sha256_file};
use crate::model::events::{Event, EventSink};
use crate::model::layout::artifact_rel;
use crate::model::report::{CacheRecord, StageRecord, StageStatus, rfc3339};
use crate::trust::local_key::{self, LocalKeyError};

use super::LockedStage;
use super::inputs::select_inputs;
use super::output::OutputFolder;
pub use entry::{CachedOutput, Entry};
pub use key::KeyParts;
use key::MADE_BY_THE_STAGES;
use program::{CommandMemo, program_fingerprint};
use scan::git_state;
pub use shared::{SharedHit, SharedStageCache};

mod entry;
mod key;
mod program;
mod scan;
mod shared;
mod why;

/// Paths named per changed folder when a miss is explained.
const CHANGED_PATHS_SHOWN: usize = 10;

/// Where entries live and the key they are tagged under, or nowhere (`--no-stage-cache`).
#[derive(Clone)]
pub struct StageCache {
    root: Option<PathBuf>,
    key: Option<hmac::Key>,
    /// Asked after a local miss, and told of every entry kept.
    shared: Option<std::sync::Arc<dyn SharedStageCache>>,
    /// What each `cache_key` command printed in this run (a cache is opened per run).
    commands: CommandMemo,
}

impl std::fmt::Debug for StageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageCache")
            .field("root", &self.root)
            .field("shared", &self.shared.as_ref().map(|s| s.describe()))
            .finish()
    }
}

impl StageCache {
    /// The cache at `root` for reading its list (`cache ls`, `gc`, `why`): nothing is served.
    pub fn new(root: Option<PathBuf>) -> Self {
        Self {
            root,
            key: None,
            shared: None,
            commands: Default::default(),
        }
    }

    /// This cache with `shared` behind it: asked after a local miss, told of every entry kept.
    #[must_use]
    pub fn with_shared(mut self, shared: Option<std::sync::Arc<dyn SharedStageCache>>) -> Self {
        self.shared = shared;
        self
    }

    /// The cache at `root` opened for a run: the folder checked private (refused, as compiled
    /// code is, when another user could write it) and the per-user key read. A key that cannot
    /// be read or made turns the cache off; the returned note says why.
    pub fn open(root: Option<PathBuf>) -> Result<(Self, Option<String>)> {
        let Some(root) = root else {
            return Ok((Self::new(None), None));
        };
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create the stage cache {}", root.display()))?;
        refuse_if_shared(&root)?;
        let Some(path) = local_key::path(Some(&root)) else {
            return Ok((
                Self::new(None),
                Some("no folder for the per-user key".into()),
            ));
        };
        if path.starts_with(&root) {
            anyhow::bail!(
                "the per-user key {} is inside the stage cache it protects; set SLUICE_CACHE_KEY to a file outside {}",
                path.display(),
                root.display()
            );
        }
        match local_key::load(&path, "stage-cache entries") {
            Ok(key) => Ok((
                Self {
                    root: Some(root),
                    key: Some(key),
                    shared: None,
                    commands: Default::default(),
                },
                None,
            )),
            Err(LocalKeyError::Refused(why)) => Err(anyhow::anyhow!(why)),
            Err(LocalKeyError::Unavailable(why)) => Ok((Self::new(None), Some(why))),
        }
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

    /// The key's parts for `stage` on `inputs`: its folders scanned into content trees (only
    /// files whose identity changed are hashed), the git state of a workspace it reads.
    pub fn key_parts(&self, stage: &LockedStage, inputs: &[&ArtifactRecord]) -> Result<KeyParts> {
        // Checked when the pipeline was read; a stage sent by another machine is checked here.
        // What the stage makes is as good as ignored: anchored at the workspace's top.
        let patterns: Vec<String> = stage
            .cache_ignore
            .iter()
            .cloned()
            .chain(stage.makes.iter().map(|path| format!("/{path}")))
            .collect();
        let ignore = IgnoreList::new(&patterns)
            .map_err(|why| anyhow::anyhow!("stage `{}`: cache_ignore: {why}", stage.name))?;
        // A program in the workspace under an ignored path (`${workspace}/.venv/bin/python`) is
        // made by the stages from what the key does see; it must be there to serve a hit.
        fn made<'a>(program: &'a str, ignore: &IgnoreList) -> Option<&'a str> {
            crate::config::names::workspace_program(program).filter(|rel| ignore.covers(rel))
        }
        let (mut parts, folders) = KeyParts::of(stage, inputs, |name| match made(name, &ignore) {
            Some(_) => MADE_BY_THE_STAGES.to_string(),
            None => program_fingerprint(name, &stage.workspace, |path| self.program_digest(path)),
        });
        parts.missing = stage
            .grants
            .exec
            .iter()
            .filter(|p| made(p, &ignore).is_some_and(|rel| !stage.workspace.join(rel).is_file()))
            .cloned()
            .chain(
                stage
                    .makes
                    .iter()
                    .filter(|path| std::fs::symlink_metadata(stage.workspace.join(path)).is_err())
                    .cloned(),
            )
            .collect();
        for folder in folders {
            let tree = self.scan_folder(folder.path, &ignore)?;
            parts.add_tree(folder.label, tree);
        }
        if stage.grants.workspace != crate::config::grants::Access::None {
            let git = git_state(&stage.workspace).unwrap_or_else(|| "none".into());
            parts.parts.insert("git".into(), git);
        }
        for words in &stage.cache_key {
            let output = self
                .commands
                .output(words, &stage.workspace, &stage.grants.env)?;
            parts
                .parts
                .insert(format!("command {}", words.join(" ")), output);
        }
        Ok(parts)
    }

    /// The entry for `key`, if there is one, its tag verifies and it names `key`.
    fn lookup_entry(&self, key: &str) -> Option<Entry> {
        let dir = self.entry_dir(key)?;
        let entry: Entry =
            serde_json::from_slice(&std::fs::read(dir.join("entry.json")).ok()?).ok()?;
        (entry.key == key && entry.verifies(self.key.as_ref()?)).then_some(entry)
    }

    /// The entry for `key`, if there is one, its tag verifies and every file still hashes to
    /// what it recorded.
    pub fn lookup(&self, key: &str) -> Option<Entry> {
        let dir = self.entry_dir(key)?;
        let entry = self.lookup_entry(key)?;
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

    /// The key parts of `stage` on the artifacts `available` to it, when the cache may serve
    /// it (the cache is on and the stage is cacheable); `Err` says why no key could be made.
    pub fn key_for(
        &self,
        stage: &LockedStage,
        available: &[ArtifactRecord],
    ) -> Result<Option<KeyParts>> {
        if self.root.is_none() || self.key.is_none() || stage.uncacheable.is_some() {
            return Ok(None);
        }
        let Ok(inputs) = select_inputs(&stage.inputs, available) else {
            return Ok(None);
        };
        self.key_parts(stage, &inputs).map(Some)
    }

    /// Serves stage `name` from the entry under `key`, if there is one: its outputs restored
    /// (re-verified) into `folder` and recorded, the plugin not run. `Err` says why an entry
    /// could not be restored (the folder is left empty, and the stage runs).
    pub async fn serve(
        &self,
        key: &str,
        folder: &OutputFolder<'_>,
        record: &mut StageRecord,
        events: &EventSink,
    ) -> Result<bool> {
        let (entry, shared_from) = match self.lookup(key) {
            Some(entry) => {
                folder.empty();
                if let Err(err) = folder
                    .create()
                    .and_then(|()| self.restore(&entry, folder.path()))
                {
                    folder.empty();
                    return Err(err);
                }
                (entry, None)
            }
            None => match self.take_shared(key, folder).await? {
                Some(hit) => (hit.entry, Some(hit.signer)),
                None => return Ok(false),
            },
        };
        let name = record.name.clone();
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
            why: Vec::new(),
            shared_from,
        });
        Ok(true)
    }

    /// The entry under `key` from the shared cache, its outputs put into `folder` and kept in
    /// this machine's cache (tagged under its own key) for the next run.
    async fn take_shared(&self, key: &str, folder: &OutputFolder<'_>) -> Result<Option<SharedHit>> {
        let (Some(shared), Some(mac)) = (&self.shared, &self.key) else {
            return Ok(None);
        };
        folder.empty();
        folder.create()?;
        let hit = match shared.fetch(key, folder.path()).await {
            Ok(Some(hit)) if hit.entry.key == key => hit,
            Ok(_) => {
                folder.empty();
                return Ok(None);
            }
            Err(err) => {
                folder.empty();
                return Err(err.context(format!("the shared cache {}", shared.describe())));
            }
        };
        let mut local = hit.entry.clone();
        local.sign(mac);
        self.store(key, &local, folder.path())?;
        Ok(Some(hit))
    }

    /// Keeps a succeeded stage's outputs (in `folder`) for the next run with the same key, here
    /// and in the shared cache behind this one.
    pub async fn keep(
        &self,
        stage: &LockedStage,
        parts: &KeyParts,
        folder: &OutputFolder<'_>,
        record: &mut StageRecord,
    ) -> Result<()> {
        let key = parts.key();
        let mut entry = Entry {
            key: key.clone(),
            pipeline: stage.pipeline.clone(),
            stage: record.name.clone(),
            parts: parts.parts.clone(),
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
            tag: String::new(),
        };
        let Some(mac) = &self.key else {
            return Ok(());
        };
        entry.sign(mac);
        self.store(&key, &entry, folder.path())?;
        if let Some(root) = &self.root {
            // Kept for `cache why` only: one file per distinct tree.
            for tree in parts.trees.values() {
                let file = root.join("trees").join(format!("{}.json", tree.digest()));
                if !file.exists()
                    && let Ok(bytes) = serde_json::to_vec(tree)
                {
                    let _ = std::fs::create_dir_all(root.join("trees"));
                    let _ = crate::atomic_file::write(&file, &bytes);
                }
            }
        }
        if let Some(latest) = self.latest_file(&stage.pipeline, &record.name) {
            let _ = std::fs::create_dir_all(latest.parent().unwrap_or(Path::new(".")));
            let _ = crate::atomic_file::write(&latest, key.as_bytes());
        }
        let why = record.cache.take().map(|c| c.why).unwrap_or_default();
        if let Some(shared) = &self.shared
            && let Err(err) = shared.share(&entry, folder.path()).await
        {
            record.cache = Some(CacheRecord {
                key,
                hit: false,
                why,
                shared_from: None,
            });
            return Err(err.context(format!("sharing it through {}", shared.describe())));
        }
        record.cache = Some(CacheRecord {
            key,
            hit: false,
            why,
            shared_from: None,
        });
        Ok(())
    }
}

/// Refuses a stage cache another user could write into (group/world-writable, or not ours):
/// whoever can write it decides what later runs take as a stage's outputs.
fn refuse_if_shared(folder: &Path) -> Result<()> {
    let meta = std::fs::metadata(folder)
        .with_context(|| format!("cannot read the stage cache {}", folder.display()))?;
    let ours = meta.uid() == rustix::process::getuid().as_raw();
    if !ours || meta.permissions().mode() & 0o022 != 0 {
        anyhow::bail!(
            "the stage cache {} can be written by other users (mode {:o}{}); sluice will not take stage outputs from it\n  = help: chmod go-w {} (and own it), or point SLUICE_STAGE_CACHE / --stage-cache at a private folder",
            folder.display(),
            meta.permissions().mode() & 0o777,
            if ours { "" } else { ", owned by another user" },
            folder.display()
        );
    }
    Ok(())
}
