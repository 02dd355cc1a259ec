//! `pipeline.lock`: the exact bytes every registry plugin resolved to (manifest and layer
//! digests), written on first resolution and obeyed afterwards, so a moved tag or a republished
//! version cannot change what a pipeline runs without `sluice lock --update`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostic;

pub const LOCK_VERSION: u32 = 1;

const HEADER: &str = "\
# Written by sluice: every registry plugin this pipeline uses, pinned to the exact bytes it
# resolved to. Commit this file. `sluice lock --update` re-resolves on purpose.
";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    version: u32,
    #[serde(default, rename = "plugin")]
    plugins: Vec<LockedPlugin>,
}

/// One pinned plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPlugin {
    /// As written in `pipeline.toml`.
    pub reference: String,
    /// `sha256:` digest of the OCI manifest.
    pub manifest: String,
    /// `sha256:` digest of the component (the manifest's `application/wasm` layer).
    pub layer: String,
    pub size: u64,
}

/// A pipeline's lock, as read and as it will be written.
#[derive(Debug, Clone)]
pub struct Lock {
    pub path: PathBuf,
    read: BTreeMap<String, LockedPlugin>,
    entries: BTreeMap<String, LockedPlugin>,
    existed: bool,
}

impl Lock {
    /// `pipeline.toml` → `pipeline.lock`, next to it.
    pub fn path_for(pipeline_file: &Path) -> PathBuf {
        pipeline_file.with_extension("lock")
    }

    /// Reads the lock (a missing file is an empty lock).
    pub fn load(path: &Path) -> Result<Self, Diagnostic> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path: path.to_path_buf(),
                    read: BTreeMap::new(),
                    entries: BTreeMap::new(),
                    existed: false,
                });
            }
            Err(err) => {
                return Err(Diagnostic::new(
                    path,
                    format!("cannot read the lock file: {err}"),
                ));
            }
        };
        let file: LockFile = toml::from_str(&text).map_err(|err| {
            let message = format!("the lock file is malformed: {}", err.message().trim_end());
            let diag = match err.span() {
                Some(span) => Diagnostic::at(path, &text, span, message),
                None => Diagnostic::new(path, message),
            };
            diag.with_hint(
                "sluice writes this file; delete it and run `sluice lock` to write it again",
            )
        })?;
        if file.version != LOCK_VERSION {
            return Err(Diagnostic::new(
                path,
                format!("unsupported lock file version {}", file.version),
            )
            .with_hint(format!(
                "this sluice writes `version = {LOCK_VERSION}`; run `sluice lock --update`"
            )));
        }
        let entries: BTreeMap<String, LockedPlugin> = file
            .plugins
            .into_iter()
            .map(|p| (p.reference.clone(), p))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            read: entries.clone(),
            entries,
            existed: true,
        })
    }

    pub fn get(&self, reference: &str) -> Option<&LockedPlugin> {
        self.entries.get(reference)
    }

    pub fn set(&mut self, entry: LockedPlugin) {
        self.entries.insert(entry.reference.clone(), entry);
    }

    /// Drops entries for references the pipeline no longer uses.
    pub fn retain(&mut self, used: &[String]) {
        self.entries.retain(|reference, _| used.contains(reference));
    }

    /// What writing would change, one line each (empty: nothing).
    pub fn changes(&self) -> Vec<String> {
        let mut changes = Vec::new();
        for (reference, entry) in &self.entries {
            match self.read.get(reference) {
                None => changes.push(format!("add {reference} → {}", entry.manifest)),
                Some(old) if old != entry => changes.push(format!(
                    "update {reference}: {} → {}",
                    old.manifest, entry.manifest
                )),
                Some(_) => {}
            }
        }
        for reference in self.read.keys() {
            if !self.entries.contains_key(reference) {
                changes.push(format!("remove {reference}"));
            }
        }
        changes
    }

    /// Writes the lock if it changed (or if there is something to lock and no file yet).
    pub fn write_if_changed(&mut self) -> Result<bool> {
        let nothing_to_write = self.entries.is_empty() && !self.existed;
        if nothing_to_write || (self.existed && self.changes().is_empty()) {
            return Ok(false);
        }
        let file = LockFile {
            version: LOCK_VERSION,
            plugins: self.entries.values().cloned().collect(),
        };
        let body = toml::to_string(&file).context("cannot encode the lock file")?;
        crate::atomic_file::write(&self.path, format!("{HEADER}{body}").as_bytes())?;
        self.read = self.entries.clone();
        self.existed = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(reference: &str, manifest: &str) -> LockedPlugin {
        LockedPlugin {
            reference: reference.into(),
            manifest: manifest.into(),
            layer: "sha256:layer".into(),
            size: 3,
        }
    }

    #[test]
    fn a_lock_round_trips_and_reports_changes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = Lock::path_for(&dir.path().join("pipeline.toml"));
        assert!(path.ends_with("pipeline.lock"));
        let mut lock = Lock::load(&path).map_err(|d| anyhow::anyhow!("{d}"))?;
        lock.set(entry("oci://r/a:1", "sha256:m1"));
        assert_eq!(lock.changes().len(), 1);
        assert!(lock.write_if_changed()?);
        assert!(!lock.write_if_changed()?);
        let mut again = Lock::load(&path).map_err(|d| anyhow::anyhow!("{d}"))?;
        assert_eq!(
            again.get("oci://r/a:1"),
            Some(&entry("oci://r/a:1", "sha256:m1"))
        );
        again.set(entry("oci://r/a:1", "sha256:m2"));
        assert_eq!(
            again.changes(),
            vec!["update oci://r/a:1: sha256:m1 → sha256:m2"]
        );
        Ok(())
    }

    #[test]
    fn a_malformed_lock_points_at_the_problem() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("pipeline.lock");
        std::fs::write(&path, "version = 1\n[[plugin]]\nreference = 3\n")?;
        let message = Lock::load(&path)
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(message.contains("malformed"), "{message}");
        assert!(message.contains(":3:"), "{message}");
        Ok(())
    }
}
