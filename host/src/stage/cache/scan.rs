//! A granted folder's [`ContentTree`], cheap when little changed: a file is hashed unless the
//! stat cache holds a digest for it under the identity it has now — device, inode, size,
//! modification *and change* time, which no unprivileged process can set back — recorded when
//! that identity was settled (git's racy-clean rule, [`crate::model::identity`]). Bytes
//! rewritten with their size and mtime put back (`cp -p`, `rsync -t`, `touch -r`, a plugin
//! through WASI) still move the change time, so they are hashed again. The stat cache lives in
//! the stage cache, tagged under the per-user key: a planted one is ignored.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::config::ignore::IgnoreList;
use crate::model::digests::{sha256_bytes, sha256_file};
use crate::model::identity::FileIdentity;
use crate::model::tree::{ContentTree, EntryKind, TreeEntry};
use crate::trust::local_key::{same_tag, tag};

/// What the stat cache remembers of each file: its identity (encoded) and its digest. On disk:
/// the hex tag under the per-user key, a newline, then the JSON the tag covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StatCache {
    files: BTreeMap<String, (String, String)>,
}

const STAT_CACHE_TAG: &[u8] = b"sluice stat cache/2";

impl StatCache {
    /// The stat cache at `path`, if it is there and its tag verifies under `key`.
    pub(super) fn load(path: &Path, key: &hmac::Key) -> Self {
        let Ok(bytes) = std::fs::read(path) else {
            return Self::default();
        };
        let Some((stored, listed)) = bytes.split_at_checked(64) else {
            return Self::default();
        };
        let (Ok(stored), Some(listed)) = (hex::decode(stored), listed.strip_prefix(b"\n")) else {
            return Self::default();
        };
        if !same_tag(tag(key, &[STAT_CACHE_TAG, listed]).as_ref(), &stored) {
            return Self::default();
        }
        serde_json::from_slice(listed).unwrap_or_default()
    }

    /// Writes the stat cache to `path`, tagged; a failure only costs hashing again next time.
    pub(super) fn save(&self, path: &Path, key: &hmac::Key) {
        let Ok(listed) = serde_json::to_vec(self) else {
            return;
        };
        let mut bytes = hex::encode(tag(key, &[STAT_CACHE_TAG, &listed])).into_bytes();
        bytes.push(b'\n');
        bytes.extend_from_slice(&listed);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = crate::atomic_file::write(path, &bytes);
    }

    /// The recorded identity and digest of `rel`, if it still has that identity.
    fn known(&self, rel: &str, identity: FileIdentity) -> Option<(&str, &str)> {
        let (recorded, sha256) = self.files.get(rel)?;
        (*recorded == hex::encode(identity.to_bytes()))
            .then_some((recorded.as_str(), sha256.as_str()))
    }
}

/// Scans `root` into a content tree, leaving out every `.git` entry and what `ignore` names
/// (an ignored folder is not entered); hashes only what `stats` cannot vouch for, and returns
/// the stat cache for next time (settled files only).
pub(super) fn scan(
    root: &Path,
    stats: &StatCache,
    ignore: &IgnoreList,
) -> Result<(ContentTree, StatCache)> {
    let started = SystemTime::now();
    let mut tree = ContentTree::default();
    let mut next = StatCache::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // The folder itself must be readable; one inside it that is not counts as empty.
            Err(err) if dir == root => {
                return Err(err).with_context(|| format!("cannot read {}", root.display()));
            }
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            if entry.file_name() == ".git" {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = relative(root, &path);
            if ignore.ignores(&rel, meta.is_dir()) {
                continue;
            }
            let entry = if meta.is_dir() {
                stack.push(path);
                TreeEntry {
                    kind: EntryKind::Dir,
                    executable: false,
                    size: 0,
                    sha256: String::new(),
                }
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap_or_default();
                TreeEntry {
                    kind: EntryKind::Symlink,
                    executable: false,
                    size: 0,
                    sha256: sha256_bytes(target.as_os_str().as_encoded_bytes()),
                }
            } else if !meta.is_file() {
                // A FIFO, socket or device is never opened (a FIFO would block the scan).
                TreeEntry {
                    kind: EntryKind::File,
                    executable: false,
                    size: 0,
                    sha256: "special".into(),
                }
            } else {
                let identity = FileIdentity::of(&meta);
                let sha256 = match stats.known(&rel, identity) {
                    // Unchanged since it was hashed, settled then: carried over as it was.
                    Some((recorded, sha256)) => {
                        next.files
                            .insert(rel.clone(), (recorded.to_string(), sha256.to_string()));
                        sha256.to_string()
                    }
                    None => {
                        let sha256 = sha256_file(&path)?.0;
                        let after = std::fs::symlink_metadata(&path).map(|m| FileIdentity::of(&m));
                        if after.is_ok_and(|a| a == identity && identity.settled_before(started)) {
                            next.files.insert(
                                rel.clone(),
                                (hex::encode(identity.to_bytes()), sha256.clone()),
                            );
                        }
                        sha256
                    }
                };
                TreeEntry {
                    kind: EntryKind::File,
                    executable: meta.permissions().mode() & 0o100 != 0,
                    size: meta.len(),
                    sha256,
                }
            };
            tree.entries.insert(rel, entry);
        }
    }
    Ok((tree, next))
}

impl super::StageCache {
    /// `folder`'s content tree, through the stat cache kept for it: what a distributed run ships
    /// to its agents, the same tree its stage-cache keys are made of.
    pub fn content_tree(&self, folder: &Path) -> Result<ContentTree> {
        self.scan_folder(folder, &IgnoreList::default())
    }

    /// The sha256 of the program file at `path`, through a stat cache of the programs stages
    /// were granted (a 20 MB compiler is hashed once, not on every run).
    pub(super) fn program_digest(&self, path: &Path) -> Option<String> {
        let identity = FileIdentity::of(&std::fs::metadata(path).ok()?);
        let name = path.to_string_lossy().into_owned();
        let file = self
            .root
            .as_ref()
            .map(|r| r.join("stats").join("programs.json"));
        let known = match (&file, &self.key) {
            (Some(file), Some(key)) => StatCache::load(file, key),
            _ => StatCache::default(),
        };
        if let Some((_, sha256)) = known.known(&name, identity) {
            return Some(sha256.to_string());
        }
        let started = SystemTime::now();
        let (sha256, _) = sha256_file(path).ok()?;
        let after = std::fs::metadata(path).ok().map(|m| FileIdentity::of(&m));
        if let (Some(file), Some(key)) = (&file, &self.key)
            && after.is_some_and(|a| a == identity && identity.settled_before(started))
        {
            let mut next = known;
            next.files
                .insert(name, (hex::encode(identity.to_bytes()), sha256.clone()));
            next.save(file, key);
        }
        Some(sha256)
    }

    /// `folder`'s content tree, through the stat cache kept for it.
    pub(super) fn scan_folder(&self, folder: &Path, ignore: &IgnoreList) -> Result<ContentTree> {
        let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
        let stats_file = self.root.as_ref().map(|root| {
            let name = sha256_bytes(absolute.as_os_str().as_encoded_bytes());
            root.join("stats").join(format!("{}.json", &name[..32]))
        });
        let known = match (&stats_file, &self.key) {
            (Some(file), Some(key)) => StatCache::load(file, key),
            _ => StatCache::default(),
        };
        let (tree, next) = scan(folder, &known, ignore)?;
        // Written only when something moved: an unchanged tree costs a read, not a write.
        if let (Some(file), Some(key)) = (&stats_file, &self.key)
            && next != known
        {
            next.save(file, key);
        }
        Ok(tree)
    }
}

/// `path` relative to `root`, with `/` between names.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The git state a stage reading `.git` sees: HEAD, the refs, packed-refs and the index of the
/// repository at `workspace` (following a `.git` file to its git folder), as one digest;
/// `None` when the workspace is no git checkout.
pub(super) fn git_state(workspace: &Path) -> Option<String> {
    let dot_git = workspace.join(".git");
    let git_dir = if dot_git.is_dir() {
        dot_git
    } else {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = text.trim().strip_prefix("gitdir:")?.trim();
        workspace.join(target)
    };
    let mut parts: BTreeMap<String, String> = BTreeMap::new();
    for name in ["HEAD", "packed-refs", "index", "commondir"] {
        if let Ok((sha256, _)) = sha256_file(&git_dir.join(name)) {
            parts.insert(name.to_string(), sha256);
        }
    }
    let mut stack = vec![git_dir.join("refs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok((sha256, _)) = sha256_file(&path) {
                parts.insert(relative(&git_dir, &path), sha256);
            }
        }
    }
    let listed = serde_json::to_vec(&parts).ok()?;
    Some(sha256_bytes(&listed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_put_back_with_their_size_and_mtime_are_hashed_again() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("src.txt");
        std::fs::write(&file, b"aaaa")?;
        std::thread::sleep(crate::model::identity::SETTLE * 2);
        let (before, stats) = scan(dir.path(), &StatCache::default(), &IgnoreList::default())?;
        assert_eq!(stats.files.len(), 1, "a settled file is remembered");
        let (again, _) = scan(dir.path(), &stats, &IgnoreList::default())?;
        assert_eq!(before.digest(), again.digest());
        let mtime = std::fs::metadata(&file)?.modified()?;
        std::fs::write(&file, b"bbbb")?;
        std::fs::File::options()
            .write(true)
            .open(&file)?
            .set_modified(mtime)?;
        let (after, _) = scan(dir.path(), &stats, &IgnoreList::default())?;
        assert_ne!(before.digest(), after.digest());
        Ok(())
    }

    #[test]
    fn the_same_tree_elsewhere_has_the_same_digest_and_git_is_left_out() -> Result<()> {
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        for dir in [a.path(), b.path()] {
            std::fs::create_dir_all(dir.join("src"))?;
            std::fs::write(dir.join("src/lib.rs"), b"fn main() {}")?;
        }
        std::fs::create_dir_all(b.path().join(".git"))?;
        std::fs::write(b.path().join(".git/HEAD"), b"ref: refs/heads/main\n")?;
        let (ta, _) = scan(a.path(), &StatCache::default(), &IgnoreList::default())?;
        let (tb, _) = scan(b.path(), &StatCache::default(), &IgnoreList::default())?;
        assert_eq!(ta.digest(), tb.digest());
        assert!(git_state(a.path()).is_none());
        let head = git_state(b.path());
        assert!(head.is_some());
        std::fs::write(b.path().join(".git/HEAD"), b"ref: refs/heads/other\n")?;
        assert_ne!(git_state(b.path()), head, "a moved HEAD is a new git state");
        Ok(())
    }

    #[test]
    fn a_stat_cache_tagged_under_another_key_is_ignored() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]);
        let other = hmac::Key::new(hmac::HMAC_SHA256, &[8; 32]);
        let mut stats = StatCache::default();
        stats
            .files
            .insert("a".into(), ("00".into(), "planted".into()));
        let path = dir.path().join("stats.json");
        stats.save(&path, &other);
        let mut edited = std::fs::read(&path)?;
        let last = edited.len() - 3;
        edited[last] ^= 1;
        std::fs::write(dir.path().join("edited.json"), &edited)?;
        assert!(
            StatCache::load(&dir.path().join("edited.json"), &other)
                .files
                .is_empty()
        );
        assert!(StatCache::load(&path, &key).files.is_empty());
        assert_eq!(StatCache::load(&path, &other).files.len(), 1);
        Ok(())
    }
}
