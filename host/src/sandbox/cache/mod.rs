//! The compiled-code cache: Cranelift output kept on disk, keyed by the component's sha256 and
//! the engine's compatibility hash, so an unchanged plugin is never compiled twice.
//!
//! Native code read back from disk runs with the host's rights, so an entry is loaded only if
//! it carries an HMAC-SHA256 over (its slot, its bytes) under a per-user key kept outside the
//! cache folder (mode 0600), and only from a folder no other user can write.
//!
//! Checking that HMAC means reading and hashing every byte (tens of MiB for a Python or
//! JavaScript plugin), so the first check also records the file's identity — device, inode,
//! size, modification and change times — under a second HMAC. While the file keeps that
//! identity it is provably the bytes that were checked (its change time cannot be set back
//! without root), and it is mapped into memory instead of read. A file changed within the
//! timestamp granularity of its check could keep the identity, so an identity is recorded only
//! for files whose times were settled when they were read (the racy-clean rule of
//! [`crate::model::identity`]). Plugin files' sha256s are
//! remembered the same way, so an unchanged plugin is not re-hashed every run.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use ring::hmac;
use wasmtime::Engine;
use wasmtime::component::Component;

mod entry;
mod plugin_digests;

use crate::model::identity::FileIdentity as Identity;
use crate::trust::local_key::{self, LocalKeyError};
use entry::Entry;
pub(crate) use local_key::same_tag;

/// Bytes of an HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;

/// Where compiled components live, or nowhere (`--no-cache`); and the components this process
/// already loaded, so a plugin used by many stages is loaded (and kept in memory) once.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    root: Option<PathBuf>,
    dir: Option<PathBuf>,
    key: Arc<OnceLock<Result<hmac::Key, (String, bool)>>>,
    loaded: Arc<Mutex<HashMap<String, (Component, CacheOutcome)>>>,
    /// Plugin files hashed by this process: (path, identity) → sha256.
    digests: Arc<Mutex<HashMap<(PathBuf, Identity), String>>>,
}

/// How a component was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from compiled code on disk: no Cranelift work.
    Hit,
    /// Compiled now (and stored, when the cache is enabled).
    Compiled,
    /// Compiled now, and the cache could not be used at all (why): an unreadable, unwritable or
    /// shared cache folder, or no key. The run goes on; the cache only ever speeds it up.
    Unusable(String),
}

impl CompiledCache {
    /// `root` is the cache root; entries go under a folder named for the engine's compatibility
    /// hash, so a different wasmtime or configuration never reads another's code.
    pub fn new(engine: &Engine, root: Option<&Path>) -> Self {
        let dir = root.map(|root| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            env!("CARGO_PKG_VERSION").hash(&mut hasher);
            // Entries are `<sha256>.cwasm` (wasmtime's bytes, mappable) + `<sha256>.tag`.
            "entry format 2".hash(&mut hasher);
            root.join(format!("{:016x}", hasher.finish()))
        });
        Self {
            root: root.map(Path::to_path_buf),
            dir,
            key: Arc::default(),
            loaded: Arc::default(),
            digests: Arc::default(),
        }
    }

    /// The default root: `$SLUICE_CACHE_DIR`, else the user's cache folder.
    pub fn default_root() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        dirs::cache_dir().map(|d| d.join("sluice").join("compiled"))
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The key file: `$SLUICE_CACHE_KEY`, else in the user's data folder — never in the cache.
    /// The component whose digest is `sha256`, if this process or the cache on disk has it.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Result<Option<(Component, CacheOutcome)>> {
        if let Some(loaded) = self.remembered(sha256) {
            return Ok(Some(loaded));
        }
        let Some((dir, key)) = self.open()? else {
            return Ok(None);
        };
        let entry = Entry::new(&dir, sha256);
        Ok(entry
            .load(engine, &key)
            .map(|component| self.remember(sha256, component, CacheOutcome::Hit)))
    }

    /// The component for `bytes` (whose digest is `sha256`), from the cache or compiled now.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheOutcome)> {
        let opened = match self.open() {
            Ok(opened) => opened,
            Err(err) if err.downcast_ref::<Refusal>().is_some() => return Err(err),
            Err(err) => {
                // Compiled code is only ever taken from a cache that passes every check; without
                // one, compiling is always safe.
                let component = compile(engine, bytes)?;
                let why = format!("{err:#}");
                return Ok(self.remember(sha256, component, CacheOutcome::Unusable(why)));
            }
        };
        if let Some(found) = self.load(engine, sha256)? {
            return Ok(found);
        }
        // A miss, or an entry that does not verify or load: compile and replace it.
        let component = compile(engine, bytes)?;
        if let Some((dir, key)) = opened {
            // The cache only speeds things up: failing to store is not a reason to fail a run.
            let _ = Entry::new(&dir, sha256).store(&component, &key);
        }
        Ok(self.remember(sha256, component, CacheOutcome::Compiled))
    }

    /// The sha256 of the plugin file at `path` (whose metadata is `meta`), if it was hashed
    /// before and provably has not changed since.
    pub fn remembered_digest(&self, path: &Path, meta: &std::fs::Metadata) -> Option<String> {
        let identity = Identity::of(meta);
        if let Some(sha256) = self
            .digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(path.to_path_buf(), identity))
        {
            return Some(sha256.clone());
        }
        let (dir, key) = self.open().ok()??;
        plugin_digests::read_digest(&dir, &key, path, identity)
    }

    /// Remembers that the plugin file at `path` has digest `sha256`, when its metadata was the
    /// same before (`before`) and after (`after`) it was read — on disk only if its times are
    /// settled, so that its identity stands for its content.
    pub fn remember_digest(
        &self,
        path: &Path,
        before: &std::fs::Metadata,
        after: &std::fs::Metadata,
        read_at: std::time::SystemTime,
        sha256: &str,
    ) {
        let identity = Identity::of(before);
        if identity != Identity::of(after) || sha256.len() != 64 {
            return;
        }
        self.digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((path.to_path_buf(), identity), sha256.to_string());
        let Ok(Some((dir, key))) = self.open() else {
            return;
        };
        if identity.settled_before(read_at) {
            plugin_digests::write_digest(&dir, &key, path, identity, sha256);
        }
    }

    fn remembered(&self, sha256: &str) -> Option<(Component, CacheOutcome)> {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded
            .get(sha256)
            .map(|(component, _)| (component.clone(), CacheOutcome::Hit))
    }

    fn remember(
        &self,
        sha256: &str,
        component: Component,
        outcome: CacheOutcome,
    ) -> (Component, CacheOutcome) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.insert(sha256.to_string(), (component.clone(), outcome.clone()));
        (component, outcome)
    }

    /// The entry folder, checked private and created, and the key; `None` without a cache.
    fn open(&self) -> Result<Option<(PathBuf, hmac::Key)>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let key = self
            .key
            .get_or_init(|| {
                self.prepare(dir)
                    .map_err(|err| (format!("{err:#}"), err.downcast_ref::<Refusal>().is_some()))
            })
            .clone()
            .map_err(|(why, refused)| match refused {
                true => anyhow::Error::new(Refusal(why)),
                false => anyhow::anyhow!(why),
            })?;
        Ok(Some((dir.clone(), key)))
    }

    /// Checks the cache folder is private, creates it, and reads the key (once per process).
    fn prepare(&self, dir: &Path) -> Result<hmac::Key> {
        let root = self.root.as_deref().unwrap_or(dir);
        if root.exists() {
            refuse_if_shared(root)?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        refuse_if_shared(dir)?;
        self.read_key()
    }

    /// The per-user key ([`crate::trust::local_key`]), which must not lie inside the cache.
    fn read_key(&self) -> Result<hmac::Key> {
        let path = local_key::path(self.root.as_deref())
            .context("no folder for the compiled-cache key; set SLUICE_CACHE_KEY")?;
        if let Some(dir) = &self.dir
            && path.starts_with(self.root.as_deref().unwrap_or(dir))
        {
            return Err(refusal(format!(
                "the compiled-cache key {} is inside the cache it protects; set SLUICE_CACHE_KEY to a file outside {}",
                path.display(),
                dir.display()
            )));
        }
        local_key::load(&path, "compiled code").map_err(|err| match err {
            LocalKeyError::Refused(why) => refusal(why),
            LocalKeyError::Unavailable(why) => anyhow::anyhow!(why),
        })
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(crate::sandbox::trap::into_anyhow)
}

/// Refuses a cache folder another user could write into (group/world-writable, or not ours).
fn refuse_if_shared(folder: &Path) -> Result<()> {
    let meta = std::fs::metadata(folder)
        .with_context(|| format!("cannot read the compiled-code cache {}", folder.display()))?;
    let ours = meta.uid() == rustix::process::getuid().as_raw();
    if !ours || meta.permissions().mode() & 0o022 != 0 {
        return Err(refusal(format!(
            "the compiled-code cache {} can be written by other users (mode {:o}{}); sluice will not load native code from it\n  = help: chmod go-w {} (and own it), or point SLUICE_CACHE_DIR / --cache-dir at a private folder",
            folder.display(),
            meta.permissions().mode() & 0o777,
            if ours { "" } else { ", owned by another user" },
            folder.display()
        )));
    }
    Ok(())
}

/// A cache set up so that its code cannot be trusted (shared folder, exposed key): the user must
/// fix it, so it stops the run, unlike a cache that merely cannot be read or written.
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

fn refusal(why: String) -> anyhow::Error {
    anyhow::Error::new(Refusal(why))
}
