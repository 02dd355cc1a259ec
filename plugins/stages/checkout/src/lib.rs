//! Code stage: packs the workspace (`allow.workspace = "read"`) into a reproducible tar archive,
//! leaving out what `.gitignore` and `exclude` name, and records the commit, branch and dirty
//! state read straight from `.git` (HEAD, refs, packed-refs and the index).

mod git;
mod ignore;

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
    /// None when it cannot be told (no .git, or an index format this reader does not know).
    dirty: Option<bool>,
    /// Tracked files that differ from the index, and untracked files (first 20).
    changes: Vec<String>,
    files: usize,
    bytes: u64,
}

const WORKSPACE: &str = "/workspace";

struct Checkout;

impl Stage for Checkout {
    const PHASE: Phase = Phase::Code;
    const DESCRIPTION: &'static str =
        "Packs the workspace (respecting .gitignore) and records commit, branch and dirty state";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let root = Path::new(WORKSPACE);
        if std::fs::read_dir(root).is_err() {
            return Err(Failure::new(
                "cannot read /workspace: grant it with `allow.workspace = \"read\"`",
            ));
        }
        let mut patterns = ignore::Patterns::default();
        if let Ok(text) = std::fs::read_to_string(root.join(".gitignore")) {
            patterns.add_lines(&text);
        }
        patterns.add_lines(&config.exclude.join("\n"));
        patterns.add_lines(".git/\n.sluice/");
        let files = walk(root, &patterns)?;

        // Streamed: each file is read through a buffer straight into the archive on disk.
        let mut builder = tar::Builder::new(ctx.create_output(&config.name, "application/x-tar")?);
        let mut bytes = 0u64;
        for relative in &files {
            let cannot_read = |e: std::io::Error| {
                Failure::new(format!("cannot read {}: {e}", relative.display()))
            };
            let file = std::fs::File::open(root.join(relative)).map_err(cannot_read)?;
            let size = file.metadata().map_err(cannot_read)?.len();
            bytes += size;
            // Reproducible: fixed mode, owner and time, sorted order.
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            builder
                .append_data(&mut header, relative, std::io::BufReader::new(file))
                .map_err(|e| Failure::new(format!("cannot archive {}: {e}", relative.display())))?;
        }
        builder
            .into_inner()
            .map_err(|e| Failure::new(format!("cannot finish the archive: {e}")))?
            .finish()?;

        let repo = git::Repo::open(Path::new(&config.git_dir));
        let (commit, branch) = match &repo {
            Some(repo) => (repo.head_commit(), repo.branch()),
            None => (None, None),
        };
        let prefix = match config.repo_prefix.trim_matches('/') {
            "" => String::new(),
            inner => format!("{inner}/"),
        };
        let status = repo.as_ref().and_then(|r| r.status(root, &prefix, &files));
        let info = SourceInfo {
            commit: commit.clone(),
            branch: branch.clone(),
            dirty: status.as_ref().map(|s| !s.is_empty()),
            changes: status.unwrap_or_default().into_iter().take(20).collect(),
            files: files.len(),
            bytes,
        };
        if repo.is_none() {
            warn!(
                "no git repository at {}: commit and branch are unknown",
                config.git_dir
            );
        }
        let json = serde_json::to_string_pretty(&info)?;
        ctx.write_output("source.json", "application/json", json)?;
        let short = commit
            .as_deref()
            .map_or("no commit", |c| &c[..c.len().min(12)]);
        info!("{} files, {bytes} bytes at {short}", files.len());
        ctx.set_summary(format!(
            "{} files @ {short}{}{}",
            files.len(),
            branch.map(|b| format!(" ({b})")).unwrap_or_default(),
            match info.dirty {
                Some(true) => ", dirty",
                _ => "",
            }
        ));
        Ok(())
    }
}

/// Every file under `root` not ignored, as sorted relative paths.
fn walk(root: &Path, patterns: &ignore::Patterns) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(root.join(&dir))
            .map_err(|e| Failure::new(format!("cannot list {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let relative = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if patterns.ignored(&relative, kind.is_dir()) {
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
