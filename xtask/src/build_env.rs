//! The environments xtask's cargo builds run with, shared by every flow that builds (so that the
//! flows share them without naming one another): the build machine's folders rewritten out of
//! binaries ([`remap_env`]), clippy as the workspace's compiler ([`clippy_env`]), and both
//! together for the host's test build ([`host_test_env`], [`build_host`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{plugin_target_dir, sh_env, target_dir, toolchains_dir};

/// `CARGO_ENCODED_RUSTFLAGS` rewriting the build's absolute path prefixes. Neither names the
/// checkout, so a target folder reused by several clones stays valid for all of them.
pub fn remap_env() -> Vec<(&'static str, OsString)> {
    remap_env_for(&target_dir_from_env())
}

/// [`remap_env`] for a build into `target` (the guest plugins build into their own folder; the
/// binary carries some of them).
pub fn remap_env_for(target: &Path) -> Vec<(&'static str, OsString)> {
    let mut flags = Vec::new();
    if let Some(home) = cargo_home() {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    // Last, so it wins where the target folder is inside the cargo home.
    if let Ok(target) = std::path::absolute(target) {
        flags.push(format!("--remap-path-prefix={}=/target", target.display()));
    }
    vec![(
        "CARGO_ENCODED_RUSTFLAGS",
        OsString::from(flags.join("\x1f")),
    )]
}

/// The target folder as cargo will see it (relative CARGO_TARGET_DIR is taken from the root,
/// where xtask runs cargo).
fn target_dir_from_env() -> PathBuf {
    crate::repo_root()
        .map(|root| target_dir(&root))
        .unwrap_or_else(|_| PathBuf::from("target"))
}

/// The cargo home: `$CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// The environment that makes a `cargo build`/`cargo test` lint as it compiles, exactly as
/// `cargo clippy -- -D warnings` does: cargo runs every workspace member's rustc through
/// `clippy-driver` (dependencies keep plain rustc), and the driver reads its lint flags from
/// CLIPPY_ARGS. One compile gives both the lint verdict and the artifacts, and a later cargo
/// command with the same environment reuses them (the driver records CLIPPY_ARGS in its
/// dep-info, so changing the flags rebuilds).
pub fn clippy_env() -> Result<Vec<(&'static str, OsString)>> {
    Ok(vec![
        ("RUSTC_WORKSPACE_WRAPPER", clippy_driver()?.into_os_string()),
        (
            "CLIPPY_ARGS",
            OsString::from("-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"),
        ),
    ])
}

/// `clippy-driver` of the toolchain that runs us: next to `$CARGO`, else what rustup reports,
/// else the first on PATH.
fn clippy_driver() -> Result<PathBuf> {
    let beside_cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| cargo.parent().map(|bin| bin.join("clippy-driver")));
    if let Some(driver) = beside_cargo.filter(|p| p.is_file()) {
        return Ok(driver);
    }
    let from_rustup = Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(driver) = from_rustup.filter(|p| p.is_file()) {
        return Ok(driver);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("clippy-driver"))
        .find(|p| p.is_file())
        .context("cannot find `clippy-driver`; install it with `rustup component add clippy`")
}

/// The host's build for the tests (and its lint): every target of the workspace, the `sluice`
/// binary among them.
pub fn build_host(root: &Path) -> Result<()> {
    let args = ["test", "--workspace", "--all-targets", "--no-run"];
    sh_env(root, "cargo", &args, &host_test_env(root)?)
}

/// The environment of the host's test build and run: clippy as the workspace's compiler (so the
/// one compile is also the lint) and where the tests find the toolchains and the guest build.
/// The build step and the test step must use the same, or cargo compiles everything again.
pub fn host_test_env(root: &Path) -> Result<Vec<(&'static str, OsString)>> {
    let mut env = clippy_env()?;
    // The binary the README test installs must name no build folder.
    env.extend(remap_env());
    // The scaffold tests build plugins with the same toolchains and compiled dependencies.
    env.push(("SLUICE_TOOLCHAINS", toolchains_dir(root).into_os_string()));
    env.push((
        "SLUICE_PLUGIN_TARGET",
        plugin_target_dir(root).into_os_string(),
    ));
    Ok(env)
}
