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
//! for files whose times are [`SETTLED`] in the past. The same record remembers the sha256 of a
//! plugin file, so an unchanged plugin is not re-hashed every run.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use ring::hmac;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bytes of an HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;

/// How long ago a file must have last changed for its identity to stand for its content.
const SETTLED: Duration = Duration::from_secs(2);

/// Where compiled components live, or nowhere (`--no-cache`); and the components this process
/// already loaded, so a plugin used by many stages is loaded (and kept in memory) once.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    root: Option<PathBuf>,
    dir: Option<PathBuf>,
    key: Arc<OnceLock<Result<hmac::Key, String>>>,
    loaded: Arc<Mutex<HashMap<String, (Component, CacheOutcome)>>>,
    /// Plugin files hashed by this process: (path, identity) → sha256.
    digests: Arc<Mutex<HashMap<(PathBuf, Identity), String>>>,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from compiled code on disk: no Cranelift work.
    Hit,
    /// Compiled now (and stored, when the cache is enabled).
    Compiled,
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
    fn key_path(&self) -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("SLUICE_CACHE_KEY") {
            return Some(PathBuf::from(path));
        }
        dirs::data_local_dir()
            .map(|d| d.join("sluice").join("compiled-cache.key"))
            .or_else(|| {
                let root = self.root.as_ref()?;
                Some(root.with_file_name("sluice-compiled-cache.key"))
            })
    }

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
        if let Some(found) = self.load(engine, sha256)? {
            return Ok(found);
        }
        // A miss, or an entry that does not verify or load: compile and replace it.
        let component = compile(engine, bytes)?;
        if let Some((dir, key)) = self.open()? {
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
        let record = std::fs::read(digest_record(&dir, path)).ok()?;
        let (identity, rest) = record.split_at_checked(IDENTITY_BYTES)?;
        let (sha256, tag) = rest.split_at_checked(64)?;
        let identity = Identity::from_bytes(identity)?;
        if identity != Identity::of(meta) || tag.len() != TAG_BYTES {
            return None;
        }
        let expected = digest_tag(&key, path, &identity, sha256);
        if !same_tag(expected.as_ref(), tag) {
            return None;
        }
        String::from_utf8(sha256.to_vec()).ok()
    }

    /// Remembers that the plugin file at `path` has digest `sha256`, when its metadata was the
    /// same before (`before`) and after (`after`) it was read — on disk only if its times are
    /// settled, so that its identity stands for its content.
    pub fn remember_digest(
        &self,
        path: &Path,
        before: &std::fs::Metadata,
        after: &std::fs::Metadata,
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
        if !identity.settled() {
            return;
        }
        let mut record = identity.to_bytes();
        record.extend_from_slice(sha256.as_bytes());
        record.extend_from_slice(digest_tag(&key, path, &identity, sha256.as_bytes()).as_ref());
        let _ = crate::atomic_file::write(&digest_record(&dir, path), &record);
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
        loaded.insert(sha256.to_string(), (component.clone(), outcome));
        (component, outcome)
    }

    /// The entry folder, checked private and created, and the key; `None` without a cache.
    fn open(&self) -> Result<Option<(PathBuf, hmac::Key)>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let key = self
            .key
            .get_or_init(|| self.prepare(dir).map_err(|err| format!("{err:#}")))
            .clone()
            .map_err(|err| anyhow::anyhow!(err))?;
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

    /// The per-user key, made (32 random bytes, mode 0600) on first use.
    fn read_key(&self) -> Result<hmac::Key> {
        let path = self
            .key_path()
            .context("no folder for the compiled-cache key; set SLUICE_CACHE_KEY")?;
        if let Some(dir) = &self.dir
            && path.starts_with(self.root.as_deref().unwrap_or(dir))
        {
            bail!(
                "the compiled-cache key {} is inside the cache it protects; set SLUICE_CACHE_KEY to a file outside {}",
                path.display(),
                dir.display()
            );
        }
        if !path.exists() {
            create_key(&path)?;
        }
        let meta = std::fs::metadata(&path)
            .with_context(|| format!("cannot read the compiled-cache key {}", path.display()))?;
        if meta.mode() & 0o077 != 0 || meta.uid() != rustix::process::getuid().as_raw() {
            bail!(
                "the compiled-cache key {} can be read or written by other users (mode {:o}); refusing to trust compiled code with it\n  = help: chmod 600 {} (or delete it: a new one is made and the cache rebuilt)",
                path.display(),
                meta.mode() & 0o777,
                path.display()
            );
        }
        let secret = std::fs::read(&path)
            .with_context(|| format!("cannot read the compiled-cache key {}", path.display()))?;
        if secret.len() < 32 {
            bail!(
                "the compiled-cache key {} is too short; delete it and a new one is made",
                path.display()
            );
        }
        Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
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
        bail!(
            "the compiled-code cache {} can be written by other users (mode {:o}{}); sluice will not load native code from it\n  = help: chmod go-w {} (and own it), or point SLUICE_CACHE_DIR / --cache-dir at a private folder",
            folder.display(),
            meta.permissions().mode() & 0o777,
            if ours { "" } else { ", owned by another user" },
            folder.display()
        );
    }
    Ok(())
}

fn create_key(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret)
        .map_err(|err| anyhow::anyhow!("no randomness for the compiled-cache key: {err}"))?;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(mut file) => file
            .write_all(&secret)
            .with_context(|| format!("cannot write {}", path.display())),
        // Another sluice made it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Compares two tags without an early exit, so timing says nothing about where they differ.
fn same_tag(expected: &[u8], stored: &[u8]) -> bool {
    expected.len() == stored.len()
        && expected
            .iter()
            .zip(stored)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Bytes of an encoded [`Identity`].
const IDENTITY_BYTES: usize = 40;

/// What the file system says about a file that changes whenever its content does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether the file last changed at least [`SETTLED`] ago (and not in the future).
    fn settled(&self) -> bool {
        let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = (now.as_nanos() as i128) - SETTLED.as_nanos() as i128;
        self.mtime_ns <= limit && self.ctime_ns <= limit
    }

    fn to_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(IDENTITY_BYTES);
        bytes.extend_from_slice(&self.dev.to_le_bytes());
        bytes.extend_from_slice(&self.ino.to_le_bytes());
        bytes.extend_from_slice(&self.size.to_le_bytes());
        // Nanoseconds since 1970 fit in 64 bits until 2262.
        bytes.extend_from_slice(&(self.mtime_ns as i64).to_le_bytes());
        bytes.extend_from_slice(&(self.ctime_ns as i64).to_le_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<[u8; 8]> { bytes.get(i * 8..i * 8 + 8)?.try_into().ok() };
        Some(Self {
            dev: u64::from_le_bytes(word(0)?),
            ino: u64::from_le_bytes(word(1)?),
            size: u64::from_le_bytes(word(2)?),
            mtime_ns: i128::from(i64::from_le_bytes(word(3)?)),
            ctime_ns: i128::from(i64::from_le_bytes(word(4)?)),
        })
    }
}

/// Where the remembered digest of the plugin file at `path` is kept.
fn digest_record(dir: &Path, path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let name = crate::model::artifacts::sha256_bytes(absolute.as_os_str().as_encoded_bytes());
    dir.join(format!("{}.digest", &name[..32]))
}

fn digest_tag(key: &hmac::Key, path: &Path, identity: &Identity, sha256: &[u8]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(b"plugin digest\0");
    context.update(path.as_os_str().as_encoded_bytes());
    context.update(&[0]);
    context.update(&identity.to_bytes());
    context.update(sha256);
    context.sign()
}

/// One compiled component on disk: `<sha256>.cwasm`, exactly what wasmtime serialized, and
/// `<sha256>.tag`: the HMAC over (slot, code), then the code file's identity when it was
/// checked and an HMAC over (slot, code tag, identity).
struct Entry {
    sha256: String,
    code: PathBuf,
    tag: PathBuf,
}

/// Bytes of a `.tag` file.
const TAG_FILE_BYTES: usize = TAG_BYTES + IDENTITY_BYTES + TAG_BYTES;

impl Entry {
    fn new(dir: &Path, sha256: &str) -> Self {
        Self {
            sha256: sha256.to_string(),
            code: dir.join(format!("{sha256}.cwasm")),
            tag: dir.join(format!("{sha256}.tag")),
        }
    }

    /// The tag over the code: it names the slot (the component's sha256) as well as the bytes,
    /// so a valid entry of another plugin moved into this slot does not verify.
    fn code_tag(&self, key: &hmac::Key, code: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(key);
        context.update(self.sha256.as_bytes());
        context.update(&[0]);
        context.update(code);
        context.sign()
    }

    fn identity_tag(&self, key: &hmac::Key, code_tag: &[u8], identity: &Identity) -> hmac::Tag {
        let mut context = hmac::Context::with_key(key);
        context.update(b"identity\0");
        context.update(self.sha256.as_bytes());
        context.update(code_tag);
        context.update(&identity.to_bytes());
        context.sign()
    }

    /// The component, if the entry verifies and wasmtime accepts it.
    fn load(&self, engine: &Engine, key: &hmac::Key) -> Option<Component> {
        let tags = std::fs::read(&self.tag).ok()?;
        if tags.len() != TAG_FILE_BYTES {
            return None;
        }
        let (code_tag, rest) = tags.split_at(TAG_BYTES);
        let (identity, identity_tag) = rest.split_at(IDENTITY_BYTES);
        let meta = std::fs::symlink_metadata(&self.code).ok()?;
        if !meta.is_file() {
            return None;
        }
        let now = Identity::of(&meta);
        let known = Identity::from_bytes(identity).is_some_and(|recorded| recorded == now)
            && same_tag(
                self.identity_tag(key, code_tag, &now).as_ref(),
                identity_tag,
            );
        if known {
            return map_file(engine, &self.code).ok();
        }
        // Unknown identity: read once into memory, so what is verified is exactly what loads.
        let code = std::fs::read(&self.code).ok()?;
        if !same_tag(self.code_tag(key, &code).as_ref(), code_tag) {
            return None;
        }
        let component = deserialize(engine, &code).ok()?;
        if now.settled() {
            let _ = self.write_tags(key, code_tag, Some(now));
        }
        Some(component)
    }

    fn store(&self, component: &Component, key: &hmac::Key) -> Result<()> {
        let code = component
            .serialize()
            .map_err(crate::sandbox::trap::into_anyhow)?;
        crate::atomic_file::write(&self.code, &code)?;
        // Just written: its identity is not settled yet; the first load after it records it.
        self.write_tags(key, self.code_tag(key, &code).as_ref(), None)
    }

    fn write_tags(
        &self,
        key: &hmac::Key,
        code_tag: &[u8],
        identity: Option<Identity>,
    ) -> Result<()> {
        let mut bytes = code_tag.to_vec();
        match identity {
            Some(identity) => {
                bytes.extend_from_slice(&identity.to_bytes());
                bytes.extend_from_slice(self.identity_tag(key, code_tag, &identity).as_ref());
            }
            None => bytes.resize(TAG_FILE_BYTES, 0),
        }
        crate::atomic_file::write(&self.tag, &bytes)
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize` trusts its input to be compiled code written by wasmtime. These
    // bytes carry an HMAC (checked by the caller) under a per-user key that only this user can
    // read, over exactly these bytes and the slot they are stored in: only this module, for
    // this component, can have written them. wasmtime still checks the header and version.
    unsafe { Component::deserialize(engine, code) }
}

#[allow(unsafe_code)]
fn map_file(engine: &Engine, code: &Path) -> wasmtime::Result<Component> {
    // SAFETY: as for `deserialize`: the caller found the file with the identity recorded, under
    // the key, when its bytes were last verified — the same inode, size and times, so the same
    // bytes. Entries are only ever replaced by rename, never written in place, so the mapped
    // file does not change under wasmtime.
    unsafe { Component::deserialize_file(engine, code) }
}
