//! What the stage-cache key sees of a granted program: its resolved path and file identity
//! (device, inode, size, modification and change times), so a new or rewritten compiler makes a
//! new key.

use std::path::PathBuf;

use crate::model::identity::FileIdentity;

/// A program as the key sees it: its resolved path and identity.
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
            "{}:{}",
            path.display(),
            hex::encode(FileIdentity::of(&meta).to_bytes())
        ),
        None => "missing".to_string(),
    }
}
