//! The compiled-code cache: Cranelift output kept on disk, keyed by the component's sha256 and
//! the engine's compatibility hash, so an unchanged plugin is never compiled twice.
//!
//! Native code read back from disk runs with the host's rights, so an entry is loaded only if
//! it carries an HMAC-SHA256 over (its slot, its bytes) under a per-user key kept outside the
//! cache folder (mode 0600), and only from a folder no other user can write.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ring::hmac;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bytes of the tag in front of each entry.
const TAG_BYTES: usize = 32;

/// Where compiled components live, or nowhere (`--no-cache`).
#[derive(Debug, Clone)]
pub struct CompiledCache {
    root: Option<PathBuf>,
    dir: Option<PathBuf>,
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
            root.join(format!("{:016x}", hasher.finish()))
        });
        Self {
            root: root.map(Path::to_path_buf),
            dir,
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

    /// The component for `bytes` (whose digest is `sha256`), from the cache or compiled now.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((compile(engine, bytes)?, CacheOutcome::Compiled));
        };
        let root = self.root.as_deref().unwrap_or(dir);
        if root.exists() {
            refuse_if_shared(root)?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        refuse_if_shared(dir)?;
        let key = self.key()?;
        let entry = dir.join(format!("{sha256}.cwasm"));
        if let Some(component) = load_verified(engine, &key, &entry, sha256) {
            return Ok((component, CacheOutcome::Hit));
        }
        // A miss, or an entry that does not verify or load: compile and replace it.
        let component = compile(engine, bytes)?;
        // The cache only speeds things up: failing to store is not a reason to fail a run.
        let _ = store_signed(&component, &key, &entry, sha256);
        Ok((component, CacheOutcome::Compiled))
    }

    /// The per-user key, made (32 random bytes, mode 0600) on first use.
    fn key(&self) -> Result<hmac::Key> {
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

/// The tag over an entry: it names the slot (the component's sha256) as well as the bytes, so
/// a valid entry of another plugin moved into this slot does not verify.
fn tag(key: &hmac::Key, sha256: &str, code: &[u8]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(sha256.as_bytes());
    context.update(&[0]);
    context.update(code);
    context.sign()
}

/// The entry's component, if its tag verifies and wasmtime accepts it.
fn load_verified(
    engine: &Engine,
    key: &hmac::Key,
    entry: &Path,
    sha256: &str,
) -> Option<Component> {
    // Read once into memory: what is verified is exactly what is loaded.
    let bytes = std::fs::read(entry).ok()?;
    if bytes.len() <= TAG_BYTES {
        return None;
    }
    let (stored_tag, code) = bytes.split_at(TAG_BYTES);
    let expected = tag(key, sha256, code);
    // Compared without an early exit, so timing says nothing about where they differ.
    let differs = expected
        .as_ref()
        .iter()
        .zip(stored_tag)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differs != 0 {
        return None;
    }
    deserialize(engine, code).ok()
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize` trusts its input to be compiled code written by wasmtime. These
    // bytes carry an HMAC (checked by the caller) under a per-user key that only this user can
    // read, over exactly these bytes and the slot they are stored in: only this module, for
    // this component, can have written them. wasmtime still checks the header and version.
    unsafe { Component::deserialize(engine, code) }
}

fn store_signed(component: &Component, key: &hmac::Key, entry: &Path, sha256: &str) -> Result<()> {
    let code = component
        .serialize()
        .map_err(crate::sandbox::trap::into_anyhow)?;
    let mut bytes = tag(key, sha256, &code).as_ref().to_vec();
    bytes.extend_from_slice(&code);
    crate::atomic_file::write(entry, &bytes)
}
