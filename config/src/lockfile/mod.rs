//! `pipeline.lock`: the exact bytes every registry plugin resolved to (manifest and layer
//! digests), written on first resolution and obeyed afterwards, so a moved tag or a republished
//! version cannot change what a pipeline runs without `sluice lock --update`. Since version 2 it
//! also records each plugin's capability set — what the component imports and exports, read from
//! the component itself — for registry plugins and local plugin files alike (`[[local]]`), so an
//! update that asks for more is seen and refused until accepted by name (see [`CapsDiff`]).
//! This module reads and renders the file; writing it (atomically) is the host's job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod checked;

use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use crate::capabilities::{Capabilities, CapsDiff, interface};
use crate::diagnostic::Diagnostic;
use crate::plugin_ref::PluginRef;
use crate::source::{self, Source};
use checked::{checked_entry, checked_local};

/// The version this sluice writes.
pub const LOCK_VERSION: u32 = 2;
/// Versions it reads: 1 has no capability sets and no `[[local]]` entries.
const READ_VERSIONS: [i64; 2] = [1, 2];

const HEADER: &str = "\
# Written by sluice: every registry plugin this pipeline uses, pinned to the exact bytes it
# resolved to, and what each plugin (local files too) imports and exports. Commit this file.
# `sluice lock --update` re-resolves on purpose; an update that imports more needs `--accept`.
";

/// What to do about a lock file sluice cannot read.
const REWRITE_HINT: &str =
    "sluice writes this file: delete it and run `sluice lock` to write it again";

/// The file as written.
#[derive(Debug, Serialize)]
struct LockFile<'a> {
    version: u32,
    #[serde(rename = "plugin", skip_serializing_if = "Vec::is_empty")]
    plugins: Vec<WrittenPlugin<'a>>,
    #[serde(rename = "local", skip_serializing_if = "Vec::is_empty")]
    locals: Vec<WrittenLocal<'a>>,
}

#[derive(Debug, Serialize)]
struct WrittenPlugin<'a> {
    reference: &'a str,
    manifest: &'a str,
    layer: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exports: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    imports: Option<&'a [String]>,
}

#[derive(Debug, Serialize)]
struct WrittenLocal<'a> {
    path: &'a str,
    sha256: &'a str,
    size: u64,
    exports: &'a [String],
    imports: &'a [String],
}

/// The file as read, with places for every value that is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a lock file")]
struct RawLockFile {
    version: Spanned<i64>,
    #[serde(default, rename = "plugin")]
    plugins: Vec<RawLocked>,
    #[serde(default, rename = "local")]
    locals: Vec<Spanned<RawLocal>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[plugin]] table")]
struct RawLocked {
    reference: Spanned<String>,
    manifest: Spanned<String>,
    layer: Spanned<String>,
    size: u64,
    exports: Option<Vec<String>>,
    imports: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[local]] table")]
struct RawLocal {
    path: Spanned<String>,
    sha256: Spanned<String>,
    size: u64,
    exports: Vec<String>,
    imports: Vec<String>,
}

/// One pinned plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPlugin {
    /// As written in `pipeline.toml`.
    pub reference: String,
    /// `sha256:` digest of the OCI manifest.
    pub manifest: String,
    /// `sha256:` digest of the component (the manifest's `application/wasm` layer).
    pub layer: String,
    pub size: u64,
    /// What the component imports and exports; `None` in a version-1 lock, which did not
    /// record it.
    pub capabilities: Option<Capabilities>,
}

/// One local plugin file (`plugin = "path/x.wasm"`): the file can change under the pipeline,
/// so what it asked for when the lock was written is recorded, with the bytes it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedLocal {
    /// As written in `pipeline.toml` (relative to the pipeline's folder).
    pub path: String,
    /// `sha256:` digest of the file when its capability set was recorded.
    pub sha256: String,
    pub size: u64,
    pub capabilities: Capabilities,
}

/// A pipeline's lock, as read and as it will be written.
#[derive(Debug, Clone)]
pub struct Lock {
    pub path: PathBuf,
    read: BTreeMap<String, LockedPlugin>,
    entries: BTreeMap<String, LockedPlugin>,
    read_locals: BTreeMap<String, LockedLocal>,
    locals: BTreeMap<String, LockedLocal>,
    /// The version the file was read as (0: no file).
    read_version: i64,
    existed: bool,
}

impl Lock {
    /// `pipeline.toml` → `pipeline.lock`, next to it.
    pub fn path_for(pipeline_file: &Path) -> PathBuf {
        pipeline_file.with_extension("lock")
    }

    fn empty(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            read: BTreeMap::new(),
            entries: BTreeMap::new(),
            read_locals: BTreeMap::new(),
            locals: BTreeMap::new(),
            read_version: 0,
            existed: false,
        }
    }

    /// Reads the lock (a missing file is an empty lock).
    pub fn load(path: &Path) -> Result<Self, Diagnostic> {
        if !path.exists() && std::fs::symlink_metadata(path).is_err() {
            return Ok(Self::empty(path));
        }
        match crate::files::read_bounded(path, crate::files::MAX_TEXT_FILE_BYTES) {
            Ok(bytes) => Self::parse(path, &source::decode(path, bytes)?),
            Err(err) => Err(
                Diagnostic::new(path, format!("cannot read the lock file: it {err}"))
                    .with_hint("check the file's permissions, or delete it and run `sluice lock`"),
            ),
        }
    }

    /// Validates lock text read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Diagnostic> {
        let src = Source::new(path, text);
        let file: RawLockFile = toml::from_str(text).map_err(|err| {
            let mut diag = src.toml_error(&err);
            diag.message = format!("the lock file is malformed: {}", diag.message);
            diag.with_hint(REWRITE_HINT)
        })?;
        let version = *file.version.get_ref();
        if !READ_VERSIONS.contains(&version) {
            return Err(src
                .error(
                    file.version.span(),
                    format!("unsupported lock file version {version}"),
                )
                .with_hint(format!(
                    "this sluice reads `version = 1` and `version = 2` and writes \
                     `version = {LOCK_VERSION}`: upgrade sluice, or delete the file and run \
                     `sluice lock` to pin the plugins again"
                )));
        }
        let mut seen = BTreeMap::new();
        let mut entries = BTreeMap::new();
        for raw in file.plugins {
            if version < 2 && (raw.imports.is_some() || raw.exports.is_some()) {
                return Err(src
                    .error(
                        raw.reference.span(),
                        "a version-1 lock file records no capability sets (`imports`, `exports`)",
                    )
                    .with_hint(REWRITE_HINT));
            }
            let entry = checked_entry(raw, &mut seen, &src)?;
            entries.insert(entry.reference.clone(), entry);
        }
        if version < 2
            && let Some(local) = file.locals.first()
        {
            return Err(src
                .error(
                    local.span(),
                    "a version-1 lock file has no [[local]] entries",
                )
                .with_hint(REWRITE_HINT));
        }
        let mut locals = BTreeMap::new();
        for raw in file.locals {
            let entry = checked_local(raw, &mut seen, &src)?;
            locals.insert(entry.path.clone(), entry);
        }
        Ok(Self {
            path: path.to_path_buf(),
            read: entries.clone(),
            entries,
            read_locals: locals.clone(),
            locals,
            read_version: version,
            existed: true,
        })
    }

    /// The version the file was read as: 1 (no capability sets), 2, or 0 when there was none.
    pub fn read_version(&self) -> i64 {
        self.read_version
    }

    pub fn get(&self, reference: &str) -> Option<&LockedPlugin> {
        self.entries.get(reference)
    }

    /// The entry for `reference` as the file was read, whatever has been set since.
    pub fn recorded(&self, reference: &str) -> Option<&LockedPlugin> {
        self.read.get(reference)
    }

    /// Entries as read for other versions of a registry repository (`oci://r/acme/deploy:1.0.0`
    /// for `oci://r/acme/deploy:1.1.0`): what a changed tag in the pipeline file replaces.
    pub fn recorded_versions_of<'a>(
        &'a self,
        reference: &'a PluginRef,
    ) -> impl Iterator<Item = &'a LockedPlugin> + 'a {
        let exact = reference.to_string();
        self.read.values().filter(move |entry| {
            entry.reference != exact
                && PluginRef::parse(&entry.reference).is_ok_and(|r| r.name() == reference.name())
        })
    }

    pub fn set(&mut self, entry: LockedPlugin) {
        self.entries.insert(entry.reference.clone(), entry);
    }

    /// The local plugin entry for `path` (as written in the pipeline file).
    pub fn local(&self, path: &str) -> Option<&LockedLocal> {
        self.locals.get(path)
    }

    pub fn set_local(&mut self, entry: LockedLocal) {
        self.locals.insert(entry.path.clone(), entry);
    }

    /// Drops entries for references the pipeline no longer uses.
    pub fn retain(&mut self, used: &[String]) {
        self.entries.retain(|reference, _| used.contains(reference));
    }

    /// Drops local entries for plugin paths the pipeline no longer names.
    pub fn retain_locals(&mut self, used: &[String]) {
        self.locals.retain(|path, _| used.contains(path));
    }

    /// What writing would change, one line each (empty: nothing).
    pub fn changes(&self) -> Vec<String> {
        let mut changes = Vec::new();
        for (reference, entry) in &self.entries {
            match self.read.get(reference) {
                None => changes.push(format!("add {reference} → {}", entry.manifest)),
                Some(old) if old.manifest != entry.manifest || old.layer != entry.layer => changes
                    .push(format!(
                        "update {reference}: {} → {}",
                        old.manifest, entry.manifest
                    )),
                Some(old) if old.capabilities.is_none() && entry.capabilities.is_some() => {
                    changes.push(format!("record what {reference} imports and exports"))
                }
                Some(old) if old != entry => changes.push(format!("update {reference}")),
                Some(_) => {}
            }
        }
        for reference in self.read.keys() {
            if !self.entries.contains_key(reference) {
                changes.push(format!("remove {reference}"));
            }
        }
        for (path, entry) in &self.locals {
            match self.read_locals.get(path) {
                None => changes.push(format!("add local plugin {path} ({})", entry.sha256)),
                Some(old) if old != entry => changes.push(format!(
                    "update local plugin {path}: {} → {}",
                    old.sha256, entry.sha256
                )),
                Some(_) => {}
            }
        }
        for path in self.read_locals.keys() {
            if !self.locals.contains_key(path) {
                changes.push(format!("remove local plugin {path}"));
            }
        }
        changes
    }

    /// Whether the file should be written: it changed, or there is something to lock and no
    /// file yet.
    pub fn needs_write(&self) -> bool {
        if self.existed {
            !self.changes().is_empty()
        } else {
            !self.entries.is_empty() || !self.locals.is_empty()
        }
    }

    /// Whether a file was there when the lock was read.
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// The whole file: the header comment, then the entries.
    pub fn render(&self) -> Result<String, toml::ser::Error> {
        let file = LockFile {
            version: LOCK_VERSION,
            plugins: self
                .entries
                .values()
                .map(|e| WrittenPlugin {
                    reference: &e.reference,
                    manifest: &e.manifest,
                    layer: &e.layer,
                    size: e.size,
                    exports: e.capabilities.as_ref().map(|c| c.exports.as_slice()),
                    imports: e.capabilities.as_ref().map(|c| c.imports.as_slice()),
                })
                .collect(),
            locals: self
                .locals
                .values()
                .map(|e| WrittenLocal {
                    path: &e.path,
                    sha256: &e.sha256,
                    size: e.size,
                    exports: &e.capabilities.exports,
                    imports: &e.capabilities.imports,
                })
                .collect(),
        };
        Ok(format!("{HEADER}{}", toml::to_string_pretty(&file)?))
    }

    /// Records that [`Lock::render`]'s text is now on disk at `path`.
    pub fn mark_written(&mut self) {
        self.read = self.entries.clone();
        self.read_locals = self.locals.clone();
        self.read_version = i64::from(LOCK_VERSION);
        self.existed = true;
    }
}

#[cfg(test)]
mod tests;
