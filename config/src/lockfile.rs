//! `pipeline.lock`: the exact bytes every registry plugin resolved to (manifest and layer
//! digests), written on first resolution and obeyed afterwards, so a moved tag or a republished
//! version cannot change what a pipeline runs without `sluice lock --update`. Since version 2 it
//! also records each plugin's capability set — what the component imports and exports, read from
//! the component itself — for registry plugins and local plugin files alike (`[[local]]`), so an
//! update that asks for more is seen and refused until accepted by name (see [`CapsDiff`]).
//! This module reads and renders the file; writing it (atomically) is the host's job.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use toml::Spanned;

use crate::diagnostic::Diagnostic;
use crate::plugin_ref::{PluginRef, check_digest};
use crate::source::{self, Source};

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

/// A component's capability set: the reviewer's view of what the code could ask for. Grants
/// still decide what a stage gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Its world: the names it exports (a sluice stage exports the functions `describe` and
    /// `run`), sorted.
    pub exports: Vec<String>,
    /// The interfaces it imports, as the component names them (`wasi:http/outgoing-handler@0.2.6`),
    /// sorted.
    pub imports: Vec<String>,
}

impl Capabilities {
    /// Sorted and without repeats, whatever order the component listed them in.
    pub fn new(mut exports: Vec<String>, mut imports: Vec<String>) -> Self {
        exports.sort();
        exports.dedup();
        imports.sort();
        imports.dedup();
        Self { exports, imports }
    }

    /// What changed from `self` (recorded) to `now`.
    pub fn diff(&self, now: &Capabilities) -> CapsDiff {
        let before: std::collections::BTreeSet<String> =
            self.imports.iter().map(|i| interface(i)).collect();
        let after: std::collections::BTreeSet<String> =
            now.imports.iter().map(|i| interface(i)).collect();
        CapsDiff {
            added: after.difference(&before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
            world: (self.exports != now.exports)
                .then(|| (self.exports.clone(), now.exports.clone())),
        }
    }
}

/// An import's interface without its patch version (`wasi:http/types@0.2.6` →
/// `wasi:http/types@0.2.x`): a rebuild against a newer patch release of WASI asks for nothing new.
pub fn interface(import: &str) -> String {
    let Some((name, version)) = import.rsplit_once('@') else {
        return import.to_string();
    };
    let parts: Vec<&str> = version.split('.').collect();
    match parts.as_slice() {
        [major, minor, patch]
            if [major, minor].iter().all(|p| p.parse::<u64>().is_ok())
                && patch.chars().next().is_some_and(|c| c.is_ascii_digit()) =>
        {
            format!("{name}@{major}.{minor}.x")
        }
        _ => import.to_string(),
    }
}

/// How a plugin's capability set changed: interfaces it now imports, ones it no longer imports,
/// and its world (exports) before and after when that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CapsDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub world: Option<(Vec<String>, Vec<String>)>,
}

impl CapsDiff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.world.is_none()
    }

    /// It asks for more than before: a new import, or another world. Refused until accepted.
    pub fn widens(&self) -> bool {
        !self.added.is_empty() || self.world.is_some()
    }

    /// `now imports A and B; no longer imports C; now exports X (was Y)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("now imports {}", and_list(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("no longer imports {}", and_list(&self.removed)));
        }
        if let Some((before, after)) = &self.world {
            parts.push(format!(
                "now exports {} (was {})",
                list_or_nothing(after),
                list_or_nothing(before)
            ));
        }
        if parts.is_empty() {
            "asks for the same capabilities".to_string()
        } else {
            parts.join("; ")
        }
    }
}

fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn list_or_nothing(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_string()
    } else {
        items.join(", ")
    }
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
    let capabilities = match (raw.exports, raw.imports) {
        (Some(exports), Some(imports)) => Some(Capabilities::new(exports, imports)),
        (None, None) => None,
        (_, _) => {
            return Err(src
                .error(
                    raw.reference.span(),
                    format!(
                        "the lock file records half of what `{reference}` asks for: `imports` \
                         and `exports` go together"
                    ),
                )
                .with_hint(REWRITE_HINT));
        }
    };
    Ok(LockedPlugin {
        reference: raw.reference.into_inner(),
        manifest: raw.manifest.into_inner(),
        layer: raw.layer.into_inner(),
        size: raw.size,
        capabilities,
    })
}

/// One `[[local]]` entry, checked: a path listed once, a digest.
fn checked_local(
    raw: Spanned<RawLocal>,
    seen: &mut BTreeMap<String, Range<usize>>,
    src: &Source<'_>,
) -> Result<LockedLocal, Diagnostic> {
    let raw = raw.into_inner();
    let path = raw.path.get_ref();
    if path.trim().is_empty() || path.starts_with(crate::plugin_ref::SCHEME) {
        return Err(src
            .error(
                raw.path.span(),
                format!(
                    "the lock file's [[local]] entry names `{path}`, which is not a plugin file"
                ),
            )
            .with_hint(REWRITE_HINT));
    }
    let key = format!("local:{path}");
    if let Some(first) = seen.get(&key) {
        return Err(src
            .error(
                raw.path.span(),
                format!("the lock file records local plugin `{path}` twice"),
            )
            .with_hint(format!(
                "it is first recorded at {}; {REWRITE_HINT}",
                src.place(first)
            )));
    }
    seen.insert(key, raw.path.span());
    check_digest(raw.sha256.get_ref()).map_err(|why| {
        src.error(
            raw.sha256.span(),
            format!("the lock file's `sha256` digest is malformed: {why}"),
        )
        .with_hint(REWRITE_HINT)
    })?;
    Ok(LockedLocal {
        path: raw.path.into_inner(),
        sha256: raw.sha256.into_inner(),
        size: raw.size,
        capabilities: Capabilities::new(raw.exports, raw.imports),
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
            capabilities: Some(caps(&["describe", "run"], &["sluice:pipeline/log@0.1.0"])),
        }
    }

    fn caps(exports: &[&str], imports: &[&str]) -> Capabilities {
        Capabilities::new(
            exports.iter().map(|s| s.to_string()).collect(),
            imports.iter().map(|s| s.to_string()).collect(),
        )
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

    #[test]
    fn a_diff_tells_widening_from_narrowing() {
        let v1 = caps(
            &["describe", "run"],
            &["sluice:pipeline/log@0.1.0", "wasi:filesystem/types@0.2.6"],
        );
        // The same set, in another order and another WASI patch release: nothing changed.
        let same = caps(
            &["run", "describe"],
            &["wasi:filesystem/types@0.2.9", "sluice:pipeline/log@0.1.0"],
        );
        let diff = v1.diff(&same);
        assert!(diff.is_empty() && !diff.widens(), "{diff:?}");

        let wider = caps(
            &["describe", "run"],
            &[
                "sluice:pipeline/log@0.1.0",
                "sluice:pipeline/process@0.1.0",
                "wasi:filesystem/types@0.2.6",
                "wasi:http/outgoing-handler@0.2.6",
            ],
        );
        let diff = v1.diff(&wider);
        assert!(diff.widens());
        assert_eq!(
            diff.describe(),
            "now imports sluice:pipeline/process@0.1.x and wasi:http/outgoing-handler@0.2.x"
        );

        let narrower = caps(&["describe", "run"], &["sluice:pipeline/log@0.1.0"]);
        let diff = v1.diff(&narrower);
        assert!(!diff.is_empty() && !diff.widens(), "{diff:?}");
        assert_eq!(
            diff.describe(),
            "no longer imports wasi:filesystem/types@0.2.x"
        );
        // Back again is a widening: what was dropped must be accepted to come back.
        assert!(narrower.diff(&v1).widens());

        // One import traded for another still widens.
        let traded = caps(
            &["describe", "run"],
            &["sluice:pipeline/log@0.1.0", "sluice:pipeline/secrets@0.1.0"],
        );
        let diff = v1.diff(&traded);
        assert!(diff.widens());
        assert_eq!(
            diff.describe(),
            "now imports sluice:pipeline/secrets@0.1.x; no longer imports wasi:filesystem/types@0.2.x"
        );

        // Another world, the same imports: a widening too.
        let other_world = caps(
            &["run", "wasi:http/incoming-handler@0.2.6"],
            &v1.imports.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let diff = v1.diff(&other_world);
        assert!(diff.widens());
        assert!(diff.added.is_empty() && diff.removed.is_empty());
        assert_eq!(
            diff.describe(),
            "now exports run, wasi:http/incoming-handler@0.2.6 (was describe, run)"
        );
    }

    #[test]
    fn interfaces_drop_only_a_numeric_patch_version() {
        assert_eq!(interface("wasi:http/types@0.2.6"), "wasi:http/types@0.2.x");
        assert_eq!(
            interface("wasi:http/types@0.3.0-rc-2025"),
            "wasi:http/types@0.3.x"
        );
        assert_eq!(interface("log"), "log");
        assert_eq!(interface("a:b/c@1.0"), "a:b/c@1.0");
    }

    #[test]
    fn a_version_1_lock_reads_without_capabilities_and_is_rewritten_as_version_2()
    -> Result<(), Box<dyn std::error::Error>> {
        let path = Path::new("pipeline.lock");
        let v1 = format!(
            "version = 1\n[[plugin]]\nreference = \"oci://r/a:1\"\nmanifest = \"{}\"\nlayer = \"{}\"\nsize = 3\n",
            digest('1'),
            digest('f')
        );
        let mut lock = Lock::parse(path, &v1)?;
        assert_eq!(lock.read_version(), 1);
        assert_eq!(
            lock.get("oci://r/a:1").map(|e| e.capabilities.is_none()),
            Some(true)
        );
        assert!(!lock.needs_write(), "reading changes nothing");
        lock.set(entry("oci://r/a:1", '1'));
        assert_eq!(
            lock.changes(),
            vec!["record what oci://r/a:1 imports and exports"]
        );
        lock.set_local(LockedLocal {
            path: "plugins/x.wasm".into(),
            sha256: digest('9'),
            size: 7,
            capabilities: caps(&["describe", "run"], &["wasi:cli/stdout@0.2.6"]),
        });
        let text = lock.render()?;
        assert!(text.contains("version = 2"), "{text}");
        assert!(
            text.contains("[[local]]\npath = \"plugins/x.wasm\""),
            "{text}"
        );
        assert!(text.contains("\"sluice:pipeline/log@0.1.0\""), "{text}");
        let again = Lock::parse(path, &text)?;
        assert_eq!(again.read_version(), 2);
        assert_eq!(again.get("oci://r/a:1"), Some(&entry("oci://r/a:1", '1')));
        assert_eq!(
            again
                .local("plugins/x.wasm")
                .map(|l| l.capabilities.imports.clone()),
            Some(vec!["wasi:cli/stdout@0.2.6".to_string()])
        );
        assert_eq!(again.render()?, text, "rendering is stable");

        // A version-1 file with version-2 fields is not a lock sluice wrote.
        let mixed = format!("{v1}imports = []\nexports = []\n");
        let message = Lock::parse(path, &mixed)
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("version-1 lock file records no capability sets"),
            "{message}"
        );
        Ok(())
    }
}
