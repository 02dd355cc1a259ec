//! A folder as content: every path under it, relative to it, with its kind, executable bit, size
//! and sha256 — and a digest of its own. Two folders with the same bytes at the same relative
//! paths have the same digest wherever they are (another checkout, another machine), and any
//! change to any byte changes it. Stage-cache keys use the digest; `sluice cache why` diffs two
//! trees to name what changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a path in a tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    pub kind: EntryKind,
    /// Whether the owner may execute it (a file's mode bit that changes what a program does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
    /// Bytes of a file; 0 for a folder.
    #[serde(default)]
    pub size: u64,
    /// The sha256 of a file's bytes, or of a symlink's target; empty for a folder.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

/// A folder's content: relative path (with `/`) → entry, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentTree {
    pub entries: BTreeMap<String, TreeEntry>,
}

/// How one path differs between two trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Added,
    Removed,
    Modified,
}

impl Change {
    pub fn label(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Modified => "changed",
        }
    }
}

impl ContentTree {
    /// The tree's own digest: of every path with its kind, mode, size and content digest.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"sluice-tree/1\0");
        for (path, entry) in &self.entries {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            let kind: &[u8] = match entry.kind {
                EntryKind::File if entry.executable => b"x",
                EntryKind::File => b"f",
                EntryKind::Dir => b"d",
                EntryKind::Symlink => b"l",
            };
            hasher.update(kind);
            hasher.update(entry.size.to_le_bytes());
            hasher.update(entry.sha256.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }

    /// Every path that differs from `earlier` to `self`, in path order.
    pub fn changes_since(&self, earlier: &ContentTree) -> Vec<(String, Change)> {
        let mut changes = Vec::new();
        for (path, entry) in &self.entries {
            match earlier.entries.get(path) {
                None => changes.push((path.clone(), Change::Added)),
                Some(before) if before != entry => changes.push((path.clone(), Change::Modified)),
                Some(_) => {}
            }
        }
        for path in earlier.entries.keys() {
            if !self.entries.contains_key(path) {
                changes.push((path.clone(), Change::Removed));
            }
        }
        changes.sort();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sha256: &str) -> TreeEntry {
        TreeEntry {
            kind: EntryKind::File,
            executable: false,
            size: 1,
            sha256: sha256.into(),
        }
    }

    #[test]
    fn the_digest_follows_content_and_the_changes_are_named() {
        let mut a = ContentTree::default();
        a.entries.insert("src/lib.rs".into(), file("aa"));
        a.entries.insert("README".into(), file("bb"));
        let mut b = a.clone();
        assert_eq!(a.digest(), b.digest());
        b.entries.insert("src/lib.rs".into(), file("cc"));
        b.entries.remove("README");
        b.entries.insert("new.txt".into(), file("dd"));
        assert_ne!(a.digest(), b.digest());
        assert_eq!(
            b.changes_since(&a),
            [
                ("README".to_string(), Change::Removed),
                ("new.txt".to_string(), Change::Added),
                ("src/lib.rs".to_string(), Change::Modified),
            ]
        );
        let mut x = a.clone();
        if let Some(entry) = x.entries.get_mut("README") {
            entry.executable = true;
        }
        assert_ne!(a.digest(), x.digest(), "the executable bit counts");
    }
}
