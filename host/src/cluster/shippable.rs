//! Which part of a workspace travels to an agent: in a git work tree, what a fresh clone plus the
//! work in progress would hold — the files git tracks and the untracked ones it does not ignore
//! (`git ls-files --cached --others --exclude-standard`) — so build outputs and other ignored
//! files (`target/`, `node_modules/`) stay on the coordinator; elsewhere, everything. The stage
//! cache keeps keying on the whole tree (a superset: an ignored file that changes can cost a
//! miss, never give a wrong hit).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::model::tree::{ContentTree, EntryKind};

/// `tree` of `folder` narrowed to what git lists there, and how many files were left out; the
/// whole tree when `folder` is not in a git work tree or git cannot be run.
pub fn shippable(folder: &Path, tree: &ContentTree) -> (ContentTree, usize) {
    let Some(listed) = git_listed(folder) else {
        return (tree.clone(), 0);
    };
    let mut kept = ContentTree::default();
    let mut left_out = 0;
    let mut folders = BTreeSet::new();
    for (rel, entry) in &tree.entries {
        if entry.kind == EntryKind::Dir {
            continue;
        }
        if !listed.contains(rel.as_str()) {
            left_out += usize::from(entry.kind == EntryKind::File);
            continue;
        }
        let mut parent = Path::new(rel).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            folders.insert(dir.to_string_lossy().into_owned());
            parent = dir.parent();
        }
        kept.entries.insert(rel.clone(), entry.clone());
    }
    for dir in folders {
        if let Some(entry) = tree.entries.get(&dir) {
            kept.entries.insert(dir, entry.clone());
        }
    }
    (kept, left_out)
}

/// The paths git lists under `folder`, relative to it; `None` outside a git work tree.
fn git_listed(folder: &Path) -> Option<BTreeSet<String>> {
    // Only reading: no hook or fsmonitor program a repository's config may name is started.
    let output = Command::new("git")
        .args([
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.untrackedCache=false",
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(folder)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(
        output
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tree::TreeEntry;

    fn file() -> TreeEntry {
        TreeEntry {
            kind: EntryKind::File,
            executable: false,
            size: 1,
            sha256: "00".repeat(32),
        }
    }

    fn dir() -> TreeEntry {
        TreeEntry {
            kind: EntryKind::Dir,
            executable: false,
            size: 0,
            sha256: String::new(),
        }
    }

    fn git(folder: &Path, args: &[&str]) -> bool {
        Command::new("git")
            .args(args)
            .current_dir(folder)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn ignored_files_stay_and_everything_else_travels() -> anyhow::Result<()> {
        let scratch = tempfile::tempdir()?;
        let root = scratch.path();
        let mut tree = ContentTree::default();
        for (rel, entry) in [
            ("src", dir()),
            ("src/lib.rs", file()),
            ("notes.txt", file()),
            (".gitignore", file()),
            ("target", dir()),
            ("target/debug", dir()),
            ("target/debug/app", file()),
        ] {
            tree.entries.insert(rel.into(), entry);
        }
        // Not a repository: everything travels.
        let (all, left_out) = shippable(root, &tree);
        assert_eq!((all, left_out), (tree.clone(), 0));

        std::fs::create_dir_all(root.join("src"))?;
        std::fs::create_dir_all(root.join("target/debug"))?;
        for rel in ["src/lib.rs", "notes.txt", "target/debug/app"] {
            std::fs::write(root.join(rel), "x")?;
        }
        std::fs::write(root.join(".gitignore"), "/target\n")?;
        anyhow::ensure!(git(root, &["init", "-q"]), "git init");
        anyhow::ensure!(git(root, &["add", "src/lib.rs", ".gitignore"]), "git add");
        let (kept, left_out) = shippable(root, &tree);
        let paths: Vec<&str> = kept.entries.keys().map(String::as_str).collect();
        // Tracked, and untracked but not ignored, travel; the ignored build output stays.
        assert_eq!(paths, [".gitignore", "notes.txt", "src", "src/lib.rs"]);
        assert_eq!(left_out, 1);
        Ok(())
    }
}
