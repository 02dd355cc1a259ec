//! The per-user secret that authenticates what sluice keeps on disk between runs — compiled
//! code, stage-cache entries, the stat cache behind workspace digests — so that a file planted
//! in one of those folders is never taken for sluice's own: 32 random bytes, mode 0600, made on
//! first use, refused when another user could read or write it.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::hmac;

/// Why the key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    /// Set up so that it cannot be trusted (readable by others, too short): the user must fix it.
    #[error("{0}")]
    Refused(String),
    /// It cannot be read or made (no folder, I/O).
    #[error("{0}")]
    Unavailable(String),
}

/// Where the key is: `$SLUICE_CACHE_KEY`, else `compiled-cache.key` in the user's local data
/// folder, else `sluice-compiled-cache.key` beside `fallback` (a cache root).
pub fn path(fallback: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_CACHE_KEY") {
        return Some(PathBuf::from(path));
    }
    dirs::data_local_dir()
        .map(|d| d.join("sluice").join("compiled-cache.key"))
        .or_else(|| Some(fallback?.with_file_name("sluice-compiled-cache.key")))
}

/// The key at `path`, made on first use; `protects` names what it guards, for messages.
pub fn load(path: &Path, protects: &str) -> Result<hmac::Key, LocalKeyError> {
    let unavailable = |what: &str, err: &dyn std::fmt::Display| {
        LocalKeyError::Unavailable(format!("cannot {what} {}: {err}", path.display()))
    };
    if !path.exists() {
        create(path)?;
    }
    let meta =
        std::fs::metadata(path).map_err(|err| unavailable("read the compiled-cache key", &err))?;
    if meta.mode() & 0o077 != 0 || meta.uid() != rustix::process::getuid().as_raw() {
        return Err(LocalKeyError::Refused(format!(
            "the compiled-cache key {} can be read or written by other users (mode {:o}); refusing to trust {protects} with it\n  = help: chmod 600 {} (or delete it: a new one is made and the cache rebuilt)",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        )));
    }
    let secret =
        std::fs::read(path).map_err(|err| unavailable("read the compiled-cache key", &err))?;
    if secret.len() < 32 {
        return Err(LocalKeyError::Refused(format!(
            "the compiled-cache key {} is too short; delete it and a new one is made",
            path.display()
        )));
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
}

fn create(path: &Path) -> Result<(), LocalKeyError> {
    let failed = |what: &Path, err: &dyn std::fmt::Display| {
        LocalKeyError::Unavailable(format!("cannot write {}: {err}", what.display()))
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|err| failed(parent, &err))?;
    }
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|err| {
        LocalKeyError::Unavailable(format!("no randomness for the compiled-cache key: {err}"))
    })?;
    // Written whole beside it, then linked into place only if no key is there yet: a sluice
    // starting at the same moment never reads a key half-written.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staged = tempfile::NamedTempFile::new_in(dir).map_err(|err| failed(dir, &err))?;
    staged
        .write_all(&secret)
        .and_then(|()| {
            staged
                .as_file()
                .set_permissions(Permissions::from_mode(0o600))
        })
        .map_err(|err| failed(path, &err))?;
    match staged.persist_noclobber(path) {
        Ok(_) => Ok(()),
        // Another sluice made it first: use theirs.
        Err(err) if err.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(failed(path, &err.error)),
    }
}

/// A tag of `parts` (each length-prefixed, so no two lists of parts tag alike) under `key`.
pub fn tag(key: &hmac::Key, parts: &[&[u8]]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    for part in parts {
        context.update(&(part.len() as u64).to_le_bytes());
        context.update(part);
    }
    context.sign()
}

/// Compares two tags without an early exit, so timing says nothing about where they differ.
pub fn same_tag(expected: &[u8], stored: &[u8]) -> bool {
    expected.len() == stored.len()
        && expected
            .iter()
            .zip(stored)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_private_and_a_shared_one_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("k");
        let key = load(&path, "test entries")?;
        let mode = std::fs::metadata(&path)?.mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load(&path, "test entries")?;
        let tagged = tag(&key, &[b"a", b"bc"]);
        assert!(same_tag(
            tag(&again, &[b"a", b"bc"]).as_ref(),
            tagged.as_ref()
        ));
        assert!(!same_tag(
            tag(&again, &[b"ab", b"c"]).as_ref(),
            tagged.as_ref()
        ));
        std::fs::set_permissions(&path, Permissions::from_mode(0o644))?;
        assert!(matches!(
            load(&path, "test entries"),
            Err(LocalKeyError::Refused(_))
        ));
        Ok(())
    }
}
