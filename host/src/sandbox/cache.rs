//! The compiled-code cache: Cranelift output kept on disk, keyed by the component's sha256 and
//! the engine's compatibility hash, so an unchanged plugin is never compiled twice.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Result;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components live, or nowhere (`--no-cache`).
#[derive(Debug, Clone)]
pub struct CompiledCache {
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
        Self { dir }
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

    fn entry(&self, sha256: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{sha256}.cwasm")))
    }

    /// The component for `bytes` (whose digest is `sha256`), from the cache or compiled now.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheOutcome)> {
        let entry = self.entry(sha256);
        if let Some(path) = entry.as_deref().filter(|p| p.is_file())
            && let Ok(component) = load_compiled(engine, path)
        {
            return Ok((component, CacheOutcome::Hit));
        }
        // A miss, or an entry that does not load (truncated, stale): compile and replace it.
        let component = Component::new(engine, bytes).map_err(crate::sandbox::trap::into_anyhow)?;
        if let Some(path) = entry {
            // The cache only speeds things up: failing to store is not a reason to fail a run.
            let _ = store_compiled(&component, &path);
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

#[allow(unsafe_code)]
fn load_compiled(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts its input to be compiled code written by wasmtime. Only
    // files this module wrote (via `store_compiled`, atomically) live under the cache folder,
    // whose name includes the engine's compatibility hash; wasmtime still checks the header and
    // version and refuses blobs from another engine configuration.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store_compiled(component: &Component, path: &Path) -> Result<()> {
    let bytes = component
        .serialize()
        .map_err(crate::sandbox::trap::into_anyhow)?;
    crate::atomic_file::write(path, &bytes)
}
