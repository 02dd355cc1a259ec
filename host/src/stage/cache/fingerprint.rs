//! What the stage-cache key sees of the host: a granted program (its resolved path, size and
//! modification time) and a granted folder (every path under it with its kind, size and
//! modification time).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
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

/// A folder as the key sees it: every path under it (but `.git`) with its kind, size and
/// modification time. Cheap enough to take on every run; a file rewritten with the same
/// content is a (safe) miss.
pub(super) fn tree_fingerprint(root: &Path) -> Result<String> {
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
                files.insert(
                    rel,
                    format!("{}:{}:{}", meta.len(), meta.mtime(), meta.mtime_nsec()),
                );
            }
        }
    }
    for (path, fingerprint) in files {
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(fingerprint.as_bytes());
        hasher.update([0]);
    }
    Ok(hex::encode(hasher.finalize()))
}
