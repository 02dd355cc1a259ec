//! Each artifact's digest computed once per run. A file hashed when it was published is not
//! hashed again each time a later stage is handed it, while it provably has not changed since:
//! its [`FileIdentity`](super::identity::FileIdentity) is the one it had when it was hashed, and
//! was settled then (the racy-clean rule in [`super::identity`]).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::{Context, Result};

use sha2::{Digest, Sha256};

use super::identity::FileIdentity as Identity;

static KNOWN: Mutex<Option<HashMap<PathBuf, (Identity, String)>>> = Mutex::new(None);

/// The sha256 and size of the file at `path`: remembered when this process hashed it before and
/// it provably has not changed since, hashed (streaming) otherwise.
pub fn sha256_file_once(path: &Path) -> Result<(String, u64)> {
    let before =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let identity = Identity::of(&before);
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((seen, sha256)) = known.get_or_insert_with(HashMap::new).get(path)
        && *seen == identity
    {
        return Ok((sha256.clone(), identity.size()));
    }
    drop(known);
    let started = SystemTime::now();
    let (sha256, size) = sha256_file(path)?;
    let after = std::fs::metadata(path).map(|m| Identity::of(&m));
    if after.is_ok_and(|after| after == identity && after.settled_before(started)) {
        remember(path, identity, &sha256);
    }
    Ok((sha256, size))
}

fn remember(path: &Path, identity: Identity, sha256: &str) {
    KNOWN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(key(path), (identity, sha256.to_string()));
}

/// One name per file however it was reached (relative or absolute).
fn key(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Lower-case hex sha256 and size of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    hash_stream(file, path)
}

/// [`sha256_file`] of a file already open at `path` (for the check it was opened with), which this
/// process then remembers like any other it hashed.
pub fn sha256_open_file(file: std::fs::File, path: &Path) -> Result<(String, u64)> {
    let started = SystemTime::now();
    let identity = file.metadata().map(|m| Identity::of(&m));
    let (sha256, size) = hash_stream(file, path)?;
    let after = std::fs::metadata(path).map(|m| Identity::of(&m));
    if let (Ok(before), Ok(after)) = (identity, after)
        && before == after
        && after.settled_before(started)
    {
        remember(path, before, &sha256);
    }
    Ok((sha256, size))
}

fn hash_stream(mut file: std::fs::File, path: &Path) -> Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settled_file_is_hashed_once_and_any_change_is_hashed_again() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"first")?;
        // Written just now: not settled, so not remembered.
        let (first, _) = sha256_file_once(&path)?;
        assert!(
            !KNOWN
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|k| k.contains_key(&key(&path)))
        );
        std::thread::sleep(crate::model::identity::SETTLE * 2);
        assert_eq!(sha256_file_once(&path)?.0, first);
        assert!(
            KNOWN
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|k| k.contains_key(&key(&path)))
        );
        // Same size, new bytes: the identity changed, so it is hashed again.
        std::fs::write(&path, b"other")?;
        let (second, size) = sha256_file_once(&path)?;
        assert_ne!(second, first);
        assert_eq!(size, 5);
        assert_eq!(second, sha256_bytes(b"other"));
        Ok(())
    }
}
