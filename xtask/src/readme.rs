//! `cargo xtask readme`: the README is a test. Its runnable shell blocks (fenced as
//! ```` ```sh runnable ````) run in order, as one bash script, in an empty folder outside the
//! checkout, with the `sluice` this build made installed alone into a fresh `bin/` folder on PATH
//! — what a new user types, from installing to sharing a plugin between two teams — and CI fails
//! naming the block that failed. Before that, the installed binary is checked to name no folder
//! of this build.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::build_env::{build_host, remap_env_for};
use crate::{host_binary, install, plugin_target_dir, services, target_dir};

/// One runnable block: the README line its fence opens on, and its text.
#[derive(Debug, PartialEq, Eq)]
struct Block {
    line: usize,
    text: String,
}

fn runnable_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in markdown.lines().enumerate() {
        match open.as_mut() {
            None => {
                let info = line
                    .trim_start()
                    .strip_prefix("```")
                    .map(str::split_whitespace);
                if let Some(mut words) = info
                    && words.next() == Some("sh")
                    && words.any(|w| w == "runnable")
                {
                    open = Some(Block {
                        line: index + 1,
                        text: String::new(),
                    });
                }
            }
            Some(block) => {
                if line.trim_start().starts_with("```") {
                    blocks.extend(open.take());
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
    }
    blocks
}

/// The script: stop at the first failing command and say which block it was in.
fn script(blocks: &[Block]) -> String {
    let mut script = String::from(
        "set -euo pipefail\ntrap 'echo \"README.md: the block at line $README_BLOCK failed\" >&2' ERR\n",
    );
    for block in blocks {
        script.push_str(&format!(
            "README_BLOCK={line}\necho \"--- README.md line {line} (at ${{SECONDS}} s)\" >&2\n{text}",
            line = block.line,
            text = block.text
        ));
    }
    script
}

/// `cargo xtask readme`: builds the host as CI does (a no-op after CI's build step: another
/// command could unify features differently and build another binary in its place), then runs
/// the blocks.
pub fn run(root: &Path) -> Result<()> {
    build_host(root)?;
    run_built(root)
}

/// The blocks, with the binary CI's host build made (CI runs this beside the tests, so it runs
/// no cargo command on the host's target folder, which `cargo test` holds).
pub fn run_built(root: &Path) -> Result<()> {
    let readme =
        std::fs::read_to_string(root.join("README.md")).context("cannot read README.md")?;
    let blocks = runnable_blocks(&readme);
    if blocks.is_empty() {
        bail!("README.md has no ```sh runnable blocks");
    }
    let built = host_binary(root, "debug");
    install::check_names_no_build_folder(root, &built)?;

    let home = tempfile::Builder::new()
        .prefix("sluice-readme-")
        .tempdir_in(std::env::temp_dir())
        .context("cannot make a temporary folder")?;
    let top = home.path().canonicalize()?;
    if top.starts_with(root) {
        bail!(
            "the temporary folder {} is inside the checkout; set TMPDIR elsewhere",
            top.display()
        );
    }
    let bin = top.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(&built, bin.join("sluice")).context("cannot install sluice")?;
    let work = top.join("work");
    std::fs::create_dir_all(&work)?;

    let port = free_port()?;
    let _registry = services::start_registry(root, port, &top.join("registry"))?;

    // The user's data and cache folders are under the target folder: empty on a fresh clone, so
    // the toolchains and the SDK are installed on first use, as for anyone; kept between local
    // runs to save time. Speed only, too: pip's wheel cache is the real one (it saves
    // downloads), and Rust scaffolds build into the guest plugins' target folder with the same
    // flags, reusing the dependencies compiled there (2.5 min → 0.5 min on a fresh clone).
    let user = target_dir(root).join("readme-user");
    let real_pip_cache = dirs_cache().map(|c| c.join("pip"));
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script(&blocks))
        .current_dir(&work)
        .env("PATH", path)
        .env("REGISTRY", format!("127.0.0.1:{port}"))
        .env("XDG_CACHE_HOME", user.join("cache"))
        .env("XDG_DATA_HOME", user.join("data"))
        .env("XDG_STATE_HOME", top.join("state"))
        .env("XDG_CONFIG_HOME", top.join("config"))
        .env("CARGO_TARGET_DIR", plugin_target_dir(root))
        .envs(remap_env_for(&plugin_target_dir(root)))
        .env_remove("SLUICE_TOOLCHAINS")
        .env_remove("SLUICE_SDK_DIR")
        .env_remove("SLUICE_PLUGIN_STORE")
        .env_remove("SLUICE_STAGE_CACHE")
        .env_remove("SLUICE_CACHE_DIR")
        .env_remove("SLUICE_RUNS_DIR");
    if let Some(pip) = real_pip_cache {
        command.env("PIP_CACHE_DIR", pip);
    }
    eprintln!(
        "xtask: running {} README blocks in {} with {} on PATH",
        blocks.len(),
        work.display(),
        bin.join("sluice").display()
    );
    let status = command.status().context("cannot run bash")?;
    if !status.success() {
        bail!("a README block failed ({status}); the message above names its line");
    }
    Ok(())
}

fn dirs_cache() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blocks_marked_runnable_are_taken_with_their_lines() {
        let md = "# t\n```sh\nnot me\n```\n\n```sh runnable\necho a\necho b\n```\n```toml runnable\nx = 1\n```\n```sh runnable\necho c\n```\n";
        let blocks = runnable_blocks(md);
        assert_eq!(
            blocks,
            vec![
                Block {
                    line: 6,
                    text: "echo a\necho b\n".into()
                },
                Block {
                    line: 13,
                    text: "echo c\n".into()
                },
            ]
        );
        assert!(script(&blocks).contains("README_BLOCK=13\n"));
    }
}
