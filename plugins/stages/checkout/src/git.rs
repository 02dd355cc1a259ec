//! Just enough of git's on-disk format to tell the commit, the branch and whether the work tree
//! differs from the index — read from `.git` directly, since a stage cannot run `git`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

pub struct Repo {
    dir: PathBuf,
    head: String,
}

impl Repo {
    /// The repository at `git_dir`, if it is a readable one.
    pub fn open(git_dir: &Path) -> Option<Self> {
        let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
        Some(Self {
            dir: git_dir.to_path_buf(),
            head: head.trim().to_string(),
        })
    }

    /// The branch HEAD points at; None when detached.
    pub fn branch(&self) -> Option<String> {
        self.head
            .strip_prefix("ref: refs/heads/")
            .map(str::to_string)
    }

    /// The commit HEAD resolves to.
    pub fn head_commit(&self) -> Option<String> {
        let Some(reference) = self.head.strip_prefix("ref: ") else {
            return is_hash(&self.head).then(|| self.head.clone());
        };
        if let Ok(text) = std::fs::read_to_string(self.dir.join(reference)) {
            let hash = text.trim();
            return is_hash(hash).then(|| hash.to_string());
        }
        let packed = std::fs::read_to_string(self.dir.join("packed-refs")).ok()?;
        packed.lines().find_map(|line| {
            let (hash, name) = line.split_once(' ')?;
            (name == reference && is_hash(hash)).then(|| hash.to_string())
        })
    }

    /// What the index tracks (`git ls-files`); None when there is no index or its format is
    /// one this reader does not know (version 4).
    pub fn tracked(&self) -> Option<Vec<IndexEntry>> {
        parse_index(&std::fs::read(self.dir.join("index")).ok()?)
    }

    /// The tags that name `commit` (lightweight, or annotated ones whose tag object is loose or
    /// peeled in packed-refs), sorted.
    pub fn tags_at(&self, commit: &str) -> Vec<String> {
        let mut tags = BTreeSet::new();
        let mut loose = vec![PathBuf::from("refs/tags")];
        while let Some(folder) = loose.pop() {
            let Ok(entries) = std::fs::read_dir(self.dir.join(&folder)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = folder.join(entry.file_name());
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    loose.push(name);
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let id = text.trim();
                if id == commit || self.peel_loose_tag(id).as_deref() == Some(commit) {
                    let name = name.to_string_lossy();
                    tags.insert(name.trim_start_matches("refs/tags/").to_string());
                }
            }
        }
        if let Ok(packed) = std::fs::read_to_string(self.dir.join("packed-refs")) {
            let mut last_tag: Option<&str> = None;
            for line in packed.lines() {
                if let Some(peeled) = line.strip_prefix('^') {
                    if peeled == commit
                        && let Some(tag) = last_tag
                    {
                        tags.insert(tag.to_string());
                    }
                    continue;
                }
                last_tag = None;
                if let Some((id, name)) = line.split_once(' ')
                    && let Some(tag) = name.strip_prefix("refs/tags/")
                {
                    last_tag = Some(tag);
                    if id == commit {
                        tags.insert(tag.to_string());
                    }
                }
            }
        }
        tags.into_iter().collect()
    }

    /// The object an annotated tag stored as a loose object points at.
    fn peel_loose_tag(&self, id: &str) -> Option<String> {
        if !is_hash(id) {
            return None;
        }
        let file =
            std::fs::File::open(self.dir.join("objects").join(&id[..2]).join(&id[2..])).ok()?;
        let mut text = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(flate2::read::ZlibDecoder::new(file), 4096),
            &mut text,
        )
        .ok()?;
        let text = String::from_utf8_lossy(&text);
        let (header, body) = text.split_once('\0')?;
        if !header.starts_with("tag ") {
            return None;
        }
        body.lines()
            .find_map(|line| line.strip_prefix("object "))
            .map(str::to_string)
    }

    /// Differences between the work tree under `root` and the index, limited to paths under
    /// `prefix` (the workspace's place in the repository, `""` at its root): modified, deleted
    /// and untracked files. None when the index cannot be read.
    pub fn status(&self, root: &Path, prefix: &str, files: &[PathBuf]) -> Option<Vec<String>> {
        let bytes = std::fs::read(self.dir.join("index")).ok()?;
        let entries = parse_index(&bytes)?;
        let mut changes = Vec::new();
        let mut tracked = BTreeSet::new();
        for entry in entries {
            let Some(relative) = entry.path.strip_prefix(prefix) else {
                continue;
            };
            tracked.insert(PathBuf::from(relative));
            match std::fs::File::open(root.join(relative)) {
                Err(_) => changes.push(format!("deleted: {relative}")),
                Ok(file) => {
                    // The size first; only a file of the indexed size is hashed, as a stream.
                    let size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
                    if size != u64::from(entry.size) || blob_id(file, size).ok() != Some(entry.id) {
                        changes.push(format!("modified: {relative}"));
                    }
                }
            }
        }
        for file in files {
            if !tracked.contains(file) {
                changes.push(format!("untracked: {}", file.display()));
            }
        }
        Some(changes)
    }
}

fn is_hash(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64) && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// git's object id of a file's content: sha1 of `blob <len>\0<content>`.
/// Git's object id of a file of `size` bytes, read through a buffer.
fn blob_id(mut file: std::fs::File, size: u64) -> std::io::Result<[u8; 20]> {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {size}\0").as_bytes());
    let mut buffer = vec![0u8; sluice_sdk::stream::CHUNK];
    loop {
        match std::io::Read::read(&mut file, &mut buffer)? {
            0 => return Ok(hasher.finalize().into()),
            read => hasher.update(&buffer[..read]),
        }
    }
}

pub struct IndexEntry {
    pub path: String,
    pub mode: u32,
    pub size: u32,
    id: [u8; 20],
}

impl IndexEntry {
    /// A submodule's commit (a gitlink), not a file.
    pub fn is_submodule(&self) -> bool {
        self.mode & 0o170000 == 0o160000
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & 0o170000 == 0o120000
    }
}

/// Index versions 2 and 3 (version 4 compresses paths; it is reported as unknown).
fn parse_index(bytes: &[u8]) -> Option<Vec<IndexEntry>> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    if bytes.get(0..4)? != b"DIRC" {
        return None;
    }
    let version = u32_at(4)?;
    if !(2..=3).contains(&version) {
        return None;
    }
    let count = u32_at(8)? as usize;
    let mut entries = Vec::with_capacity(count);
    let mut at = 12;
    for _ in 0..count {
        let start = at;
        let mode = u32_at(at + 24)?;
        let size = u32_at(at + 36)?;
        let id: [u8; 20] = bytes.get(at + 40..at + 60)?.try_into().ok()?;
        let flags = u16::from_be_bytes(bytes.get(at + 60..at + 62)?.try_into().ok()?);
        at += 62;
        if version == 3 && flags & 0x4000 != 0 {
            at += 2;
        }
        let end = at + bytes.get(at..)?.iter().position(|&b| b == 0)?;
        let path = String::from_utf8(bytes.get(at..end)?.to_vec()).ok()?;
        // Entries are padded with NULs to a multiple of 8 bytes (at least one NUL).
        let length = end + 1 - start;
        at = start + length.div_ceil(8) * 8;
        entries.push(IndexEntry {
            path,
            mode,
            size,
            id,
        });
    }
    Some(entries)
}
