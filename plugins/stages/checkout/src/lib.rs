//! Code stage: packs the workspace (`allow.workspace = "read"`) into a reproducible tar archive —
//! the files git tracks (what `git ls-files` lists, read from the index; untracked ones when
//! asked), or without git every file no `.gitignore` names — leaving out what `exclude` names,
//! and records the commit, its tags, the branch and the dirty state read straight from `.git`
//! (HEAD, refs, packed-refs, loose tag objects and the index). Submodules are listed, not
//! followed; Git LFS pointers are named.

mod git;
mod ignore;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_sdk::{Context, Failure, Phase, Stage, info, warn};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Extra gitignore-style patterns to leave out.
    #[serde(default)]
    exclude: Vec<String>,
    /// The archive's name.
    #[serde(default = "default_name")]
    name: String,
    /// Where the repository is, as the stage sees it: `/workspace/.git` by default, or a
    /// granted dir when the workspace is a folder inside a larger repository.
    #[serde(default = "default_git_dir")]
    git_dir: String,
    /// The workspace's path inside that repository, e.g. "examples/website/".
    #[serde(default)]
    repo_prefix: String,
    /// Also pack files git does not track but does not ignore (`git ls-files --others
    /// --exclude-standard`). Without a git index every file not ignored is packed anyway.
    #[serde(default)]
    untracked: bool,
}

fn default_git_dir() -> String {
    "/workspace/.git".into()
}

fn default_name() -> String {
    "source.tar".into()
}

#[derive(Serialize)]
struct SourceInfo {
    commit: Option<String>,
    branch: Option<String>,
    /// Tags naming the commit (`v1.2.3`), sorted.
    tags: Vec<String>,
    /// None when it cannot be told (no .git, or an index format this reader does not know).
    dirty: Option<bool>,
    /// Tracked files that differ from the index, and untracked files (first 20).
    changes: Vec<String>,
    /// How the file list was made: "git index" (what `git ls-files` lists) or "folder walk".
    listing: &'static str,
    files: usize,
    bytes: u64,
    /// Submodules: listed, not followed (their files are not in the archive).
    submodules: Vec<String>,
    /// Git LFS pointer files: packed as they are, the large content is not fetched.
    lfs_pointers: Vec<String>,
    /// Untracked files packed because `untracked = true`.
    untracked_packed: usize,
}

const WORKSPACE: &str = "/workspace";
const LFS_POINTER: &[u8] = b"version https://git-lfs.github.com/spec/v1";

/// One archive entry.
enum Entry {
    File(PathBuf),
    Symlink(PathBuf),
}

impl Entry {
    fn path(&self) -> &Path {
        match self {
            Self::File(p) | Self::Symlink(p) => p,
        }
    }
}

struct Checkout;

impl Stage for Checkout {
    const PHASE: Phase = Phase::Code;
    const DESCRIPTION: &'static str = "Packs the workspace's tracked files (git ls-files; respecting .gitignore without git) and records commit, tags, branch and dirty state";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let root = Path::new(WORKSPACE);
        if std::fs::read_dir(root).is_err() {
            return Err(Failure::new(
                "cannot read /workspace: grant it with `allow.workspace = \"read\"`",
            ));
        }
        let mut forced = ignore::Patterns::default();
        forced.add_lines(&config.exclude.join("\n"));
        // `.git` is a folder, or a file in a submodule's or worktree's folder.
        forced.add_lines(".git\n.sluice/");
        let prefix = match config.repo_prefix.trim_matches('/') {
            "" => String::new(),
            inner => format!("{inner}/"),
        };
        let mut layers = ignore::Layers::default();
        if prefix.is_empty()
            && let Ok(text) =
                std::fs::read_to_string(Path::new(&config.git_dir).join("info/exclude"))
        {
            layers.add(Path::new(""), &text);
        }
        let mut walked = walk(root, &mut layers, &forced)?;

        let repo = git::Repo::open(Path::new(&config.git_dir));
        let tracked = repo.as_ref().and_then(git::Repo::tracked);
        let mut submodules = Vec::new();
        let mut untracked_packed = 0;
        let (listing, mut entries) = match &tracked {
            None => (
                "folder walk",
                walked.iter().cloned().map(Entry::File).collect::<Vec<_>>(),
            ),
            Some(index) => {
                let mut entries = Vec::new();
                let mut known = BTreeSet::new();
                for entry in index {
                    let Some(relative) = entry.path.strip_prefix(&prefix) else {
                        continue;
                    };
                    let relative = PathBuf::from(relative);
                    known.insert(relative.clone());
                    if excluded(&forced, &relative) {
                        continue;
                    }
                    let on_disk = std::fs::symlink_metadata(root.join(&relative)).ok();
                    if entry.is_submodule() {
                        submodules.push(relative.display().to_string());
                    } else if entry.is_symlink() && on_disk.as_ref().is_some_and(|m| m.is_symlink())
                    {
                        entries.push(Entry::Symlink(relative));
                    } else if on_disk.as_ref().is_some_and(|m| m.is_file()) {
                        entries.push(Entry::File(relative));
                    }
                    // Deleted in the work tree: not packed (`changes` names it).
                }
                // Like `git ls-files --others` and `git status`: nothing inside a submodule.
                walked.retain(|f| !submodules.iter().any(|s| f.starts_with(s)));
                let untracked: Vec<&PathBuf> =
                    walked.iter().filter(|f| !known.contains(*f)).collect();
                if config.untracked {
                    untracked_packed = untracked.len();
                    entries.extend(untracked.into_iter().cloned().map(Entry::File));
                } else if !untracked.is_empty() {
                    let names: Vec<String> = untracked
                        .iter()
                        .take(5)
                        .map(|p| p.display().to_string())
                        .collect();
                    warn!(
                        "{} untracked files left out ({}{}): `git add` them, or set untracked = true",
                        untracked.len(),
                        names.join(", "),
                        if untracked.len() > 5 { ", ..." } else { "" }
                    );
                }
                ("git index", entries)
            }
        };
        entries.sort_by(|a, b| a.path().cmp(b.path()));

        let (bytes, lfs_pointers) = pack(ctx, root, &config.name, &entries)?;

        let (commit, branch) = match &repo {
            Some(repo) => (repo.head_commit(), repo.branch()),
            None => (None, None),
        };
        let tags = match (&repo, &commit) {
            (Some(repo), Some(commit)) => repo.tags_at(commit),
            _ => Vec::new(),
        };
        let status = repo.as_ref().and_then(|r| r.status(root, &prefix, &walked));
        let info = SourceInfo {
            commit: commit.clone(),
            branch: branch.clone(),
            tags,
            dirty: status.as_ref().map(|s| !s.is_empty()),
            changes: status.unwrap_or_default().into_iter().take(20).collect(),
            listing,
            files: entries.len(),
            bytes,
            submodules,
            lfs_pointers,
            untracked_packed,
        };
        if repo.is_none() {
            warn!(
                "no git repository at {}: commit and branch are unknown",
                config.git_dir
            );
        }
        if !info.submodules.is_empty() {
            info!("submodules not followed: {}", info.submodules.join(", "));
        }
        if !info.lfs_pointers.is_empty() {
            warn!(
                "{} Git LFS pointer files packed as pointers, without their content: {}",
                info.lfs_pointers.len(),
                info.lfs_pointers.join(", ")
            );
        }
        let json = serde_json::to_string_pretty(&info)?;
        ctx.write_output("source.json", "application/json", json)?;
        let short = commit
            .as_deref()
            .map_or("no commit", |c| &c[..c.len().min(12)]);
        info!(
            "{} files, {bytes} bytes at {short} ({listing})",
            entries.len()
        );
        ctx.set_summary(format!(
            "{} files @ {short}{}{}",
            entries.len(),
            branch.map(|b| format!(" ({b})")).unwrap_or_default(),
            match info.dirty {
                Some(true) => ", dirty",
                _ => "",
            }
        ));
        Ok(())
    }
}

/// Writes the archive: reproducible (fixed mode, owner and time, sorted order), each file read
/// through a buffer straight into it. Returns the bytes packed and the LFS pointers met.
fn pack(
    ctx: &mut Context,
    root: &Path,
    name: &str,
    entries: &[Entry],
) -> Result<(u64, Vec<String>), Failure> {
    let mut builder = tar::Builder::new(ctx.create_output(name, "application/x-tar")?);
    let mut bytes = 0u64;
    let mut lfs = Vec::new();
    for entry in entries {
        let relative = entry.path();
        let cannot_read =
            |e: std::io::Error| Failure::new(format!("cannot read {}: {e}", relative.display()));
        let cannot_archive =
            |e: std::io::Error| Failure::new(format!("cannot archive {}: {e}", relative.display()));
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        match entry {
            Entry::Symlink(_) => {
                let target = std::fs::read_link(root.join(relative)).map_err(cannot_read)?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, relative, &target)
                    .map_err(cannot_archive)?;
            }
            Entry::File(_) => {
                let mut file = std::fs::File::open(root.join(relative)).map_err(cannot_read)?;
                let size = file.metadata().map_err(cannot_read)?.len();
                bytes += size;
                header.set_size(size);
                header.set_mode(0o644);
                header.set_cksum();
                if size < 1024 {
                    // Small enough to be a Git LFS pointer: looked at before it is packed.
                    let mut content = Vec::new();
                    file.read_to_end(&mut content).map_err(cannot_read)?;
                    if content.starts_with(LFS_POINTER) {
                        lfs.push(relative.display().to_string());
                    }
                    builder
                        .append_data(&mut header, relative, content.as_slice())
                        .map_err(cannot_archive)?;
                } else {
                    builder
                        .append_data(&mut header, relative, std::io::BufReader::new(file))
                        .map_err(cannot_archive)?;
                }
            }
        }
    }
    builder
        .into_inner()
        .map_err(|e| Failure::new(format!("cannot finish the archive: {e}")))?
        .finish()?;
    Ok((bytes, lfs))
}

/// Whether `exclude` (or `.git/`, `.sluice/`) leaves out `path` or a folder it is in.
fn excluded(forced: &ignore::Patterns, path: &Path) -> bool {
    let mut folder = PathBuf::new();
    let parts: Vec<_> = path.components().collect();
    for (n, part) in parts.iter().enumerate() {
        folder.push(part);
        let is_dir = n + 1 < parts.len();
        if forced.verdict(&folder, is_dir) == Some(true) {
            return true;
        }
    }
    false
}

/// Every file under `root` that no `.gitignore` (of its folder or any above it) and no `exclude`
/// pattern leaves out, as sorted relative paths.
fn walk(
    root: &Path,
    layers: &mut ignore::Layers,
    forced: &ignore::Patterns,
) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(root.join(&dir).join(".gitignore")) {
            layers.add(&dir, &text);
        }
        let entries = std::fs::read_dir(root.join(&dir))
            .map_err(|e| Failure::new(format!("cannot list {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let relative = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if forced.verdict(&relative, kind.is_dir()) == Some(true)
                || layers.ignored(&relative, kind.is_dir())
            {
                continue;
            }
            if kind.is_dir() {
                stack.push(relative);
            } else if kind.is_file() {
                files.push(relative);
            }
        }
    }
    files.sort();
    Ok(files)
}

sluice_sdk::stage!(Checkout);
