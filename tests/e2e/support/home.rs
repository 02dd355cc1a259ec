//! Where the processes the tests start keep their per-user state: a HOME, XDG folders, TMPDIR
//! and CARGO_HOME inside each sandbox (so no test writes into the developer's home), and the
//! compile cache every sluice shares, warmed once.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use super::{eventually, repo_root};

/// `command` with HOME (`home`), the XDG folders (`xdg/data`, `xdg/state`, `xdg/cache`,
/// `xdg/config`) and TMPDIR (`tmp`) under `root`, which [`make_home`] prepared: what it keeps
/// per user, or leaves in the temp folder (sluice's `sluice-exec-*` working folders, when it is
/// killed), goes there. `CARGO_HOME` too (`home/.cargo`): the rustup proxy that started `cargo
/// test` set it to the real one, and a cargo the process runs itself (`sluice init` runs `cargo
/// generate-lockfile`) would write its locks and cache tracker there; `RUSTUP_HOME` stays the
/// real one, only read.
pub(super) fn isolate(command: &mut Command, root: &Path) {
    let (home, xdg) = (root.join("home"), root.join("xdg"));
    command
        .env("HOME", &home)
        .env("CARGO_HOME", home.join(".cargo"))
        .env("TMPDIR", root.join("tmp"))
        .env("XDG_DATA_HOME", xdg.join("data"))
        .env("XDG_STATE_HOME", xdg.join("state"))
        .env("XDG_CACHE_HOME", xdg.join("cache"))
        .env("XDG_CONFIG_HOME", xdg.join("config"));
    if let (Some(rustup), _) = real_tool_homes()
        && rustup.is_dir()
    {
        command.env("RUSTUP_HOME", rustup);
    }
}

/// The real home folder's rustup and cargo folders, as rustup finds them: `$RUSTUP_HOME` and
/// `$CARGO_HOME` (the rustup proxy that started `cargo test` sets both), else `~/.rustup` and
/// `~/.cargo`.
pub(super) fn real_tool_homes() -> (Option<PathBuf>, Option<PathBuf>) {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let pick = |var: &str, dot: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(dot)))
    };
    (pick("RUSTUP_HOME", ".rustup"), pick("CARGO_HOME", ".cargo"))
}

/// `home` and `tmp` under `root`, for [`isolate`]: a HOME where cargo still works without the
/// network — `.rustup` links to the real toolchains (only read: no test installs a toolchain),
/// `.cargo` is the sandbox's own (cargo writes its package-cache locks and global cache tracker
/// there), with the real `config.toml` linked in, so a machine's cargo settings (mirrors,
/// offline) still apply.
pub(super) fn make_home(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root.join("tmp"))?;
    let home = root.join("home");
    std::fs::create_dir_all(home.join(".cargo"))?;
    let (rustup, cargo) = real_tool_homes();
    if let Some(rustup) = rustup.filter(|r| r.is_dir()) {
        std::os::unix::fs::symlink(rustup, home.join(".rustup"))?;
    }
    for name in ["config.toml", "config"] {
        if let Some(config) = cargo.as_ref().map(|c| c.join(name)).filter(|c| c.is_file()) {
            std::os::unix::fs::symlink(config, home.join(".cargo").join(name))?;
        }
    }
    Ok(())
}

/// The compiled-code cache key of every sluice the tests start, beside the shared compile cache
/// in cargo's target folder (never the developer's own, in `~/.local/share/sluice`).
pub(super) fn shared_cache_key() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-compile-cache.key")
}

/// Compiles every built plugin into the shared compile cache once, before the first test uses
/// it: the tests start together and would otherwise all compile the same components at once.
/// `sluice inspect` compiles each (through the cache, with the tests' key), two at a time, in a
/// HOME of its own. Failures are left for the tests themselves to report.
pub(super) fn warm_shared_cache(dir: &Path) {
    static WARM: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    WARM.get_or_init(|| {
        let Ok(scratch) = tempfile::tempdir() else {
            return;
        };
        if make_home(scratch.path()).is_err() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(repo_root().join("plugins/dist")) else {
            return;
        };
        let plugins: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
            .collect();
        for pair in plugins.chunks(2) {
            let started: Vec<std::process::Child> = pair
                .iter()
                .filter_map(|plugin| {
                    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
                    isolate(&mut command, scratch.path());
                    command
                        .arg("inspect")
                        .arg(plugin)
                        .env("SLUICE_CACHE_DIR", dir)
                        .env("SLUICE_CACHE_KEY", shared_cache_key())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .ok()
                })
                .collect();
            for mut child in started {
                let within = std::time::Duration::from_secs(300);
                if eventually(within, "end of sluice inspect", || Ok(child.try_wait()?)).is_err() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    });
}
