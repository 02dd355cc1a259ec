//! The shipped stages on content nobody here wrote: crate sources from the machine's cargo
//! registry made into git repositories with real `git` (checkout, release, deploy), and this
//! repository itself. Each case says what a user would expect and checks it against what real
//! tools (`git ls-files`, `tar`, `gzip`, `sha256sum`) say. Sites are in `real_sites`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sluice::exit_codes;

use crate::support::{Pipeline, Sandbox, Stage, repo_root, table};

/// `git ARGS` in `dir`, with an identity and the settings a test needs; its stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=sluice test",
            "-c",
            "user.email=test@sluice.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
            "-c",
            "core.autocrlf=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .context("cannot run git")?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The crate sources cargo unpacked on this machine, sorted by folder name.
fn registry_crates() -> Result<Vec<PathBuf>> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("no CARGO_HOME or HOME")?;
    let mut crates = Vec::new();
    for index in std::fs::read_dir(home.join("registry/src"))?.flatten() {
        for krate in std::fs::read_dir(index.path())?.flatten() {
            if krate.path().join("Cargo.toml").is_file() {
                crates.push(krate.path());
            }
        }
    }
    crates.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    Ok(crates)
}

/// Bytes under `dir` (files only), stopping early past `limit`.
fn size_under(dir: &Path, limit: u64) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
            if total > limit {
                return total;
            }
        }
    }
    total
}

pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)?.flatten() {
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The first `count` small crates (under 1 MiB) with a README.md, copied under `ws/crates/`
/// and committed.
pub(crate) fn crates_repository(sandbox: &Sandbox, count: usize) -> Result<(PathBuf, Vec<String>)> {
    let ws = sandbox.path().join("ws");
    let mut names = Vec::new();
    for krate in registry_crates()? {
        if names.len() == count {
            break;
        }
        if !krate.join("README.md").is_file() || size_under(&krate, 1 << 20) > 1 << 20 {
            continue;
        }
        let name = krate
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        copy_tree(&krate, &ws.join("crates").join(&name))?;
        names.push(name);
    }
    assert_eq!(
        names.len(),
        count,
        "not enough crates in the cargo registry"
    );
    git(&ws, &["init", "-q"])?;
    // Crates ship .gitignore files of their own (nested ones, then); some files they ignore are
    // in the crate anyway, and those are added on purpose like a vendored tree would be.
    git(&ws, &["add", "-A", "-f"])?;
    git(&ws, &["commit", "-q", "-m", "crates"])?;
    Ok((ws, names))
}

/// What is in a tar archive, by `tar -tvf`: regular files and symlinks.
fn tar_listing(archive: &Path) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let out = Command::new("tar").arg("-tvf").arg(archive).output()?;
    if !out.status.success() {
        bail!("tar cannot read {}", archive.display());
    }
    let (mut files, mut links) = (BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line
            .split_whitespace()
            .nth(5)
            .unwrap_or_default()
            .to_string();
        match line.chars().next() {
            Some('-') => {
                files.insert(name);
            }
            Some('l') => {
                links.insert(name);
            }
            _ => {}
        }
    }
    Ok((files, links))
}

#[test]
fn checkout_packs_what_git_ls_files_lists_and_release_versions_it_from_the_tag() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ws, _) = crates_repository(&sandbox, 3)?;
    // A nested .gitignore, a file it ignores and one it re-includes; an untracked file; an LFS
    // pointer; a symlink; a submodule; an annotated release tag.
    std::fs::write(ws.join("crates/.gitignore"), "*.log\n!keep.log\n")?;
    std::fs::write(ws.join("crates/noise.log"), "ignored\n")?;
    std::fs::write(ws.join("crates/keep.log"), "kept\n")?;
    std::fs::write(
        ws.join("model.bin"),
        "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n",
    )?;
    std::os::unix::fs::symlink("crates/.gitignore", ws.join("ignore-rules"))?;
    let other = sandbox.path().join("other");
    std::fs::create_dir_all(&other)?;
    std::fs::write(other.join("lib.rs"), "// another repository\n")?;
    git(&other, &["init", "-q"])?;
    git(&other, &["add", "-A"])?;
    git(&other, &["commit", "-q", "-m", "other"])?;
    git(&ws, &["submodule", "add", "-q", "../other", "vendor/other"])?;
    git(&ws, &["add", "-A"])?;
    git(&ws, &["commit", "-q", "-m", "more"])?;
    git(&ws, &["tag", "-a", "v1.4.2", "-m", "release 1.4.2"])?;
    std::fs::write(ws.join("notes.txt"), "not added yet\n")?;

    let tracked = lines(&git(&ws, &["ls-files"])?);
    let untracked = lines(&git(&ws, &["ls-files", "--others", "--exclude-standard"])?);
    assert!(tracked.contains("crates/keep.log") && !tracked.contains("crates/noise.log"));
    assert_eq!(untracked, BTreeSet::from(["notes.txt".to_string()]));

    for with_untracked in [false, true] {
        let pipeline = Pipeline::new("checkout")
            .set("workspace", "ws")
            .stage(
                Stage::new("code", "checkout")
                    .allow("workspace", "read")
                    .config("untracked", with_untracked),
            )
            .stage(
                Stage::new("release", "release")
                    .inputs(["code/*"])
                    .config("name", "crates")
                    .config("include", vec!["source.tar"]),
            );
        let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
        let (ran, report) = sandbox.run(&file)?;
        assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
        let run_dir = PathBuf::from(&report.run_dir);
        let (files, links) = tar_listing(&run_dir.join("artifacts/code/source.tar"))?;
        let mut expected: BTreeSet<String> = tracked
            .iter()
            .filter(|p| *p != "vendor/other" && *p != "ignore-rules")
            .cloned()
            .collect();
        if with_untracked {
            expected.extend(untracked.iter().cloned());
        }
        assert_eq!(files, expected, "untracked = {with_untracked}");
        assert_eq!(links, BTreeSet::from(["ignore-rules".to_string()]));
        let source: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            run_dir.join("artifacts/code/source.json"),
        )?)?;
        assert_eq!(source["listing"], "git index");
        assert_eq!(source["submodules"], serde_json::json!(["vendor/other"]));
        assert_eq!(source["lfs_pointers"], serde_json::json!(["model.bin"]));
        assert_eq!(source["tags"], serde_json::json!(["v1.4.2"]));
        assert_eq!(
            source["commit"].as_str().unwrap_or_default(),
            git(&ws, &["rev-parse", "HEAD"])?.trim()
        );

        // The release is named by the tag and checks out with sha256sum.
        let release = run_dir.join("artifacts/release");
        assert!(release.join("crates-1.4.2.tar.gz").is_file());
        let checked = Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&release)
            .output()?;
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stdout)
        );
        let gzip = Command::new("gzip")
            .arg("-t")
            .arg(release.join("crates-1.4.2.tar.gz"))
            .status()?;
        assert!(gzip.success());
    }
    Ok(())
}

#[test]
fn a_release_rebuilt_from_the_same_source_is_byte_identical() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ws, _) = crates_repository(&sandbox, 2)?;
    std::fs::write(ws.join("VERSION"), "0.3.0\n")?;
    git(&ws, &["add", "VERSION"])?;
    git(&ws, &["commit", "-q", "-m", "version"])?;
    let pipeline = Pipeline::new("rebuild")
        .set("workspace", "ws")
        .stage(Stage::new("code", "checkout").allow("workspace", "read"))
        .stage(
            Stage::new("release", "release")
                .inputs(["code/*"])
                .config("name", "crates")
                .config("include", vec!["source.tar"]),
        );
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let mut digests = Vec::new();
    let report_file = sandbox.path().join("report.json");
    for _ in 0..2 {
        let ran = sandbox.sluice(&[
            "run",
            &file.display().to_string(),
            "--no-stage-cache",
            "--format",
            "plain",
            "--report",
            &report_file.display().to_string(),
        ])?;
        assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
        let report: sluice::model::report::RunReport =
            serde_json::from_str(&std::fs::read_to_string(&report_file)?)?;
        digests.push(crate::support::sha256_of(
            &Path::new(&report.run_dir).join("artifacts/release/crates-0.3.0.tar.gz"),
        )?);
    }
    assert_eq!(digests[0], digests[1], "the rebuilt archive differs");
    Ok(())
}

#[test]
fn this_repository_is_packed_as_git_lists_it() -> Result<()> {
    let root = repo_root();
    if !root.join(".git").exists() {
        bail!("{} is not a git checkout", root.display());
    }
    // Its own compiled cache: the shared one is inside this repository, which sluice refuses
    // to let overlap a workspace. No stage cache: its key would fingerprint the build folders.
    let sandbox = Sandbox::with_own_cache()?;
    let pipeline = Pipeline::new("self")
        .set("workspace", root.display().to_string())
        .stage(
            Stage::new("code", "checkout")
                .allow("workspace", "read")
                .set("cache", false),
        );
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let (ran, report) = sandbox.run(&file)?;
    assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
    let (files, links) =
        tar_listing(&Path::new(&report.run_dir).join("artifacts/code/source.tar"))?;
    // Tracked files deleted in this work tree are not packed (the record names them).
    let tracked: BTreeSet<String> = lines(&git(&root, &["ls-files"])?)
        .into_iter()
        .filter(|p| root.join(p).symlink_metadata().is_ok())
        .collect();
    let packed: BTreeSet<String> = files.union(&links).cloned().collect();
    assert_eq!(packed, tracked);
    assert!(links.contains("plugins/sdk/wit"), "the SDK's wit symlink");
    Ok(())
}

#[test]
fn deploy_keeps_the_last_releases_and_rolls_back_to_a_named_one() -> Result<()> {
    let sandbox = Sandbox::new()?;
    std::fs::create_dir_all(sandbox.path().join("target"))?;
    let target = || {
        [table([
            ("host", "target"),
            ("guest", "/deploy"),
            ("mode", "write"),
        ])]
    };
    let release = |version: &str| {
        Pipeline::new("ship")
            .stage(Stage::new("build", "emit").config(
                "files",
                table([("index.html", format!("<p>{version}</p>\n").as_str())]),
            ))
            .stage(
                Stage::new("release", "release")
                    .inputs(["build/*"])
                    .config("name", "site")
                    .config("version", version)
                    .config("strip_prefix", "build/"),
            )
            .stage(
                Stage::new("deploy", "deploy")
                    .inputs(["release/*"])
                    .allow("dirs", target())
                    .config("keep", 2),
            )
    };
    let deploy_root = sandbox.path().join("target");
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        let run = sandbox.run_pipeline(&release(version))?;
        assert_eq!(run.ran.code, exit_codes::SUCCESS, "{}", run.describe());
    }
    let mut kept: Vec<String> = std::fs::read_dir(deploy_root.join("releases"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    kept.sort();
    assert_eq!(kept, ["1.1.0", "1.2.0"]);
    let current = || std::fs::read_link(deploy_root.join("current"));
    assert_eq!(current()?, Path::new("releases/1.2.0"));

    let rollback = |version: &str| {
        Pipeline::new("back").stage(
            Stage::new("rollback", "deploy")
                .allow("dirs", target())
                .config("action", "rollback")
                .config("version", version),
        )
    };
    // A release that was removed: named as such, and nothing moves.
    let run = sandbox.run_pipeline(&rollback("1.0.0"))?;
    run.assert_message("rollback", &["1.0.0 is not in", "1.1.0, 1.2.0"]);
    assert_eq!(current()?, Path::new("releases/1.2.0"));
    let run = sandbox.run_pipeline(&rollback("1.1.0"))?;
    assert_eq!(run.ran.code, exit_codes::SUCCESS, "{}", run.describe());
    assert_eq!(current()?, Path::new("releases/1.1.0"));
    assert_eq!(
        std::fs::read_to_string(deploy_root.join("current/index.html"))?,
        "<p>1.1.0</p>\n"
    );
    Ok(())
}
