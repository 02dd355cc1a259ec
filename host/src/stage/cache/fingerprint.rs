//! What the stage-cache key sees of the host: a granted program (its resolved path, size and
//! modification time) and a granted folder (every path under it with its kind and file
//! identity).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::time::SystemTime;

use anyhow::Result;

use crate::model::identity::FileIdentity;
use sha2::{Digest, Sha256};

/// A program as the key sees it: its resolved path, size and modification time, so a new
/// compiler makes a new key.
pub(super) fn program_fingerprint(program: &str) -> String {
    let path = if program.contains('/') {
        Some(PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .filter(|d| d.is_absolute())
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
    };
    match path.and_then(|p| std::fs::metadata(&p).ok().map(|m| (p, m))) {
        Some((path, meta)) => format!(
            "{}:{}:{}",
            path.display(),
            meta.len(),
            meta.mtime_nsec() + meta.mtime() * 1_000_000_000
        ),
        None => "missing".to_string(),
    }
}

/// A folder as the key sees it: every path under it (but `.git`) with its kind and, for a file,
/// its [`FileIdentity`] (device, inode, size, modification and change times: the change time
/// cannot be set back, so bytes rewritten with size and mtime put back still change it). Cheap
/// enough to take on every run; a file rewritten with the same content is a (safe) miss. A file
/// whose times are not settled (the racy-clean rule) could still change without its identity
/// changing: the fingerprint is taken again once they settle (a file written just before the
/// run), and a folder still racy then gets one no later run will have: a miss, never stale.
pub(super) fn tree_fingerprint(root: &Path) -> Result<String> {
    match fingerprint_at(root, SystemTime::now()) {
        Some(settled) => Ok(settled),
        None => {
            std::thread::sleep(crate::model::identity::SETTLE);
            let started = SystemTime::now();
            Ok(fingerprint_at(root, started).unwrap_or_else(|| unique(root, started)))
        }
    }
}

/// A fingerprint of a folder that was changing as it was taken: never equal to another.
fn unique(root: &Path, started: SystemTime) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"racy\0");
    hasher.update(root.as_os_str().as_encoded_bytes());
    hasher.update(format!("{started:?}").as_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hex::encode(hasher.finalize())
}

/// The fingerprint of `root` taken from `started` on, or `None` when a file in it is racy.
fn fingerprint_at(root: &Path, started: SystemTime) -> Option<String> {
    let mut racy = false;
    let mut hasher = Sha256::new();
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if meta.is_dir() {
                stack.push(path);
                files.insert(rel, "dir".into());
            } else {
                let identity = FileIdentity::of(&meta);
                racy |= !identity.settled_before(started);
                files.insert(rel, hex::encode(identity.to_bytes()));
            }
        }
    }
    for (path, fingerprint) in files {
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(fingerprint.as_bytes());
        hasher.update([0]);
    }
    (!racy).then(|| hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_rewritten_with_their_size_and_mtime_put_back_change_the_fingerprint() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("src.txt");
        std::fs::write(&file, b"aaaa")?;
        let settle = crate::model::identity::SETTLE * 2;
        std::thread::sleep(settle);
        let before = tree_fingerprint(dir.path())?;
        assert_eq!(before, tree_fingerprint(dir.path())?, "nothing changed");
        let mtime = std::fs::metadata(&file)?.modified()?;
        std::fs::write(&file, b"bbbb")?;
        std::fs::File::options()
            .write(true)
            .open(&file)?
            .set_modified(mtime)?;
        std::thread::sleep(settle);
        assert_ne!(before, tree_fingerprint(dir.path())?);
        Ok(())
    }

    #[test]
    fn a_folder_changing_as_it_is_taken_never_matches_a_later_one() {
        let dir = std::env::temp_dir();
        let started = SystemTime::now();
        assert_ne!(unique(&dir, started), unique(&dir, SystemTime::now()));
    }
}
