//! `pipeline.lock`: the exact bytes every registry plugin resolved to (manifest and layer
//! digests), written on first resolution and obeyed afterwards, so a moved tag or a republished
//! version cannot change what a pipeline runs without `sluice lock --update`. This module reads
//! and renders the file; writing it (atomically) is the host's job.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diagnostic::Diagnostic;
use crate::plugin_ref::{PluginRef, check_digest};
use crate::source::{self, Source};

pub const LOCK_VERSION: u32 = 1;

const HEADER: &str = "\
# Written by sluice: every registry plugin this pipeline uses, pinned to the exact bytes it
# resolved to. Commit this file. `sluice lock --update` re-resolves on purpose.
";

/// What to do about a lock file sluice cannot read.
const REWRITE_HINT: &str =
    "sluice writes this file: delete it and run `sluice lock` to write it again";

/// The file as written.
#[derive(Debug, Serialize)]
struct LockFile {
    version: u32,
    #[serde(rename = "plugin")]
    plugins: Vec<LockedPlugin>,
}

/// The file as read, with places for every value that is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a lock file")]
struct RawLockFile {
    version: Spanned<i64>,
    #[serde(default, rename = "plugin")]
    plugins: Vec<RawLocked>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[plugin]] table")]
struct RawLocked {
    reference: Spanned<String>,
    manifest: Spanned<String>,
    layer: Spanned<String>,
    size: u64,
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
        if !path.exists() && std::fs::symlink_metadata(path).is_err() {
            return Ok(Self {
                path: path.to_path_buf(),
                read: BTreeMap::new(),
                entries: BTreeMap::new(),
                existed: false,
            });
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
        if *file.version.get_ref() != i64::from(LOCK_VERSION) {
            return Err(src
                .error(
                    file.version.span(),
                    format!("unsupported lock file version {}", file.version.get_ref()),
                )
                .with_hint(format!(
                    "this sluice reads and writes `version = {LOCK_VERSION}` only: upgrade \
                     sluice, or delete the file and run `sluice lock` to pin the plugins again"
                )));
        }
        let mut seen = BTreeMap::new();
        let mut entries = BTreeMap::new();
        for raw in file.plugins {
            let entry = checked_entry(raw, &mut seen, &src)?;
            entries.insert(entry.reference.clone(), entry);
        }
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

    /// Whether the file should be written: it changed, or there is something to lock and no
    /// file yet.
    pub fn needs_write(&self) -> bool {
        if self.existed {
            !self.changes().is_empty()
        } else {
            !self.entries.is_empty()
        }
    }

    /// The whole file: the header comment, then the entries.
    pub fn render(&self) -> Result<String, toml::ser::Error> {
        let file = LockFile {
            version: LOCK_VERSION,
            plugins: self.entries.values().cloned().collect(),
        };
        Ok(format!("{HEADER}{}", toml::to_string(&file)?))
    }

    /// Records that [`Lock::render`]'s text is now on disk at `path`.
    pub fn mark_written(&mut self) {
        self.read = self.entries.clone();
        self.existed = true;
    }
}

/// One `[[plugin]]` entry, checked: a registry reference, two digests, listed once.
fn checked_entry(
    raw: RawLocked,
    seen: &mut BTreeMap<String, Range<usize>>,
    src: &Source<'_>,
) -> Result<LockedPlugin, Diagnostic> {
    let reference = raw.reference.get_ref();
    PluginRef::parse(reference).map_err(|why| {
        src.error(
            raw.reference.span(),
            format!(
                "the lock file pins `{reference}`, which is not a registry plugin reference: {why}"
            ),
        )
        .with_hint(REWRITE_HINT)
    })?;
    if let Some(first) = seen.get(reference) {
        return Err(src
            .error(
                raw.reference.span(),
                format!("the lock file pins `{reference}` twice"),
            )
            .with_hint(format!(
                "it is first pinned at {}; {REWRITE_HINT}",
                src.place(first)
            )));
    }
    seen.insert(reference.clone(), raw.reference.span());
    for (key, digest) in [("manifest", &raw.manifest), ("layer", &raw.layer)] {
        check_digest(digest.get_ref()).map_err(|why| {
            src.error(
                digest.span(),
                format!("the lock file's `{key}` digest is malformed: {why}"),
            )
            .with_hint(REWRITE_HINT)
        })?;
    }
    Ok(LockedPlugin {
        reference: raw.reference.into_inner(),
        manifest: raw.manifest.into_inner(),
        layer: raw.layer.into_inner(),
        size: raw.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn entry(reference: &str, manifest: char) -> LockedPlugin {
        LockedPlugin {
            reference: reference.into(),
            manifest: digest(manifest),
            layer: digest('f'),
            size: 3,
        }
    }

    #[test]
    fn a_lock_round_trips_and_reports_changes() -> Result<(), Box<dyn std::error::Error>> {
        let path = Lock::path_for(Path::new("no/such/dir/pipeline.toml"));
        assert!(path.ends_with("pipeline.lock"));
        let mut lock = Lock::load(&path)?;
        assert!(
            !lock.needs_write(),
            "nothing to lock, no file: nothing to write"
        );
        lock.set(entry("oci://r/a:1", '1'));
        assert_eq!(lock.changes().len(), 1);
        assert!(lock.needs_write());
        let text = lock.render()?;
        assert!(text.starts_with("# Written by sluice"), "{text}");
        lock.mark_written();
        assert!(!lock.needs_write());

        let mut again = Lock::parse(&path, &text)?;
        assert_eq!(again.get("oci://r/a:1"), Some(&entry("oci://r/a:1", '1')));
        assert!(!again.needs_write());
        again.set(entry("oci://r/a:1", '2'));
        assert_eq!(
            again.changes(),
            vec![format!(
                "update oci://r/a:1: {} → {}",
                digest('1'),
                digest('2')
            )]
        );
        again.retain(&[]);
        assert_eq!(again.changes(), vec!["remove oci://r/a:1"]);
        assert!(again.needs_write(), "an emptied lock file is rewritten");
        Ok(())
    }

    #[test]
    fn a_malformed_lock_points_at_the_problem() {
        let text = "version = 1\n[[plugin]]\nreference = 3\n";
        let message = Lock::parse(Path::new("pipeline.lock"), text)
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(message.contains("malformed"), "{message}");
        assert!(message.contains(":3:"), "{message}");
    }
}
