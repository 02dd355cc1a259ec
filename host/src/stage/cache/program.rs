//! What the stage-cache key sees of the programs a stage runs: the content digest of each
//! granted program's file (remembered per file identity, so it is hashed once), so a new or
//! rewritten compiler makes a new key and the same one anywhere makes the same key; and the output of the stage's `cache_key` commands, for
//! what no file identity shows (the toolchain a rustup proxy picks).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::model::digests::sha256_bytes;
use crate::sandbox::process::base_env;

/// A `cache_key` command that has not ended by then is stopped, and the stage runs uncached.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// What is read of a `cache_key` command's output (a version banner is a few lines).
const MAX_OUTPUT: u64 = 64 << 10;

/// A program as the key sees it: the sha256 of the file it resolves to (by content, not by
/// path or inode, so the same compiler installed elsewhere — another machine sharing the cache —
/// is the same part), given by `digest` (which remembers it per file identity).
pub(super) fn program_fingerprint(
    program: &str,
    workspace: &Path,
    digest: impl Fn(&Path) -> Option<String>,
) -> String {
    match resolve(program, workspace).and_then(|path| digest(&path)) {
        Some(sha256) => format!("sha256:{sha256}"),
        None => "missing".to_string(),
    }
}

/// `program` on the host: inside `workspace` for a `${workspace}/…` program, as written when it
/// is a path, else the first match on PATH.
fn resolve(program: &str, workspace: &Path) -> Option<PathBuf> {
    if let Some(inside) = crate::config::names::workspace_program(program) {
        return Some(workspace.join(inside));
    }
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// What each `cache_key` command printed, by command, folder and environment, so that one run
/// runs it once, not once per stage (`python3 --version` through pyenv's shim takes ~150 ms).
/// Clones share it: every stage of the run sees what one of them ran.
#[derive(Default, Clone)]
pub(super) struct CommandMemo(
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
);

impl CommandMemo {
    /// [`command_output`], or what it gave the last time it ran the same way.
    pub(super) fn output(&self, words: &[String], dir: &Path, env: &[String]) -> Result<String> {
        let memo = serde_json::json!([words, dir, env]).to_string();
        if let Some(output) = self.0.lock().ok().and_then(|m| m.get(&memo).cloned()) {
            return Ok(output);
        }
        let output = command_output(words, dir, env)?;
        if let Ok(mut known) = self.0.lock() {
            known.insert(memo, output.clone());
        }
        Ok(output)
    }
}

/// The key part of one `cache_key` command run in `dir` with the environment its stage's
/// programs get (`allowed_env` on top of PATH and HOME): its first line of output, for
/// `cache why` to show, and the digest of all of it. `Err` when it cannot run, fails or hangs.
fn command_output(words: &[String], dir: &Path, allowed_env: &[String]) -> Result<String> {
    let shown = words.join(" ");
    let Some((program, args)) = words.split_first() else {
        bail!("an empty cache_key command");
    };
    let path =
        resolve(program, dir).with_context(|| format!("`{program}` was not found on PATH"))?;
    let mut child = Command::new(&path)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(base_env(allowed_env))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start cache_key command `{shown}`"))?;
    let reader = child.stdout.take().map(|stdout| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.take(MAX_OUTPUT).read_to_end(&mut bytes);
            bytes
        })
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.wait();
            bail!("cache_key command `{shown}` did not end within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = reader
        .and_then(|thread| thread.join().ok())
        .unwrap_or_default();
    if !status.success() {
        bail!("cache_key command `{shown}` failed ({status})");
    }
    let text = String::from_utf8_lossy(&output);
    let first: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect();
    Ok(format!("{first} ({})", &sha256_bytes(&output)[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn a_command_part_shows_its_first_line_and_changes_with_its_output() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let one = command_output(&words("echo toolchain 1.95"), dir.path(), &[])?;
        let two = command_output(&words("echo toolchain 1.96"), dir.path(), &[])?;
        assert!(one.starts_with("toolchain 1.95 ("), "{one}");
        assert_ne!(one, two);
        assert_eq!(
            one,
            command_output(&words("echo toolchain 1.95"), dir.path(), &[])?
        );
        Ok(())
    }

    #[test]
    fn a_failing_or_missing_command_makes_no_key() {
        let dir = std::env::temp_dir();
        assert!(command_output(&words("false"), &dir, &[]).is_err());
        assert!(command_output(&words("no-such-program-sluice"), &dir, &[]).is_err());
    }

    #[test]
    fn one_run_runs_a_cache_key_command_once_per_folder() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("count.sh");
        std::fs::write(&script, "echo ran >> \"$(dirname \"$0\")/runs\"\necho v1\n")?;
        let command = vec!["sh".to_string(), script.display().to_string()];
        let memo = CommandMemo::default();
        let first = memo.output(&command, dir.path(), &[])?;
        assert_eq!(first, memo.output(&command, dir.path(), &[])?);
        assert_eq!(std::fs::read_to_string(dir.path().join("runs"))?, "ran\n");
        // Another folder (another workspace) is another command.
        let other = tempfile::tempdir()?;
        memo.output(&command, other.path(), &[])?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("runs"))?,
            "ran\nran\n"
        );
        Ok(())
    }
}
