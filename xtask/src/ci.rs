//! The check flows: `cargo xtask test` (what CI runs, as timed steps, cheapest and most likely to
//! fail first, each compile done once and linted as it compiles), `cargo xtask lint` (the static
//! checks alone, for developers) and `cargo xtask wkg-interop` (the opt-in test against `wkg`).

use std::path::Path;

use anyhow::Result;

use crate::build_env::{build_host, host_test_env};
use crate::plugins::{self, Lint};
use crate::steps::{self, Step};
use crate::{
    c_bindings, layers, plugin_target_dir, polyglot, services, sh, sh_env, toolchains_dir,
};

pub fn test(root: &Path) -> Result<()> {
    if std::env::var_os("SLUICE_BLESS").is_some() {
        anyhow::bail!(
            "SLUICE_BLESS is set: the golden tests would write what they print instead of checking it; unset it to run the checks"
        );
    }
    let before = git_status(root);
    let plan: Vec<Step<'_>> = vec![
        ("fmt", Box::new(|| fmt(root))),
        (
            "setup",
            Box::new(|| {
                plugins::ensure_wasm_target(root)?;
                services::ensure_debian_tools(root)
            }),
        ),
        ("layers", Box::new(|| layers::check(root))),
        ("c-bindings-stamp", Box::new(|| c_bindings::check(root))),
        (
            "plugins-rust+clippy, toolchains alongside",
            Box::new(|| rust_plugins_while_toolchains_install(root)),
        ),
        // The host's compile keeps both cores busy most of the time; the Python, JavaScript and C
        // plugins (single-threaded componentize and zig runs) fill the gaps.
        (
            "host-build+clippy, polyglot plugins alongside",
            Box::new(|| {
                let build = || build_host(root);
                let polyglot = || plugins::build_polyglot(root).map(drop);
                steps::alongside(("host-build", build), ("plugins-polyglot", polyglot))
            }),
        ),
        // The tests, then the parsers and the diagnostic renderer fuzzed from the checked-in
        // corpus for a bounded time; beside them what a new user types, outside the checkout,
        // with the binary installed (toolchain downloads and single-threaded builds leave room).
        (
            "host-test then fuzz, readme alongside",
            Box::new(|| {
                let tests_then_fuzz = || {
                    steps::timed_part("host-test", || {
                        sh_env(
                            root,
                            "cargo",
                            &["test", "--workspace"],
                            &host_test_env(root)?,
                        )
                    })?;
                    steps::timed_part("fuzz", || {
                        crate::fuzz::fuzz(root, &crate::fuzz::Options::parse(&[])?)
                    })
                };
                steps::alongside(
                    ("host-test, fuzz", tests_then_fuzz),
                    ("readme", || crate::readme::run(root)),
                )
            }),
        ),
        // Every benchmark once at its smallest on the debug build, so none rots (no timing;
        // figures come from `cargo xtask bench`).
        ("bench-smoke", Box::new(|| crate::bench::bench(root, true))),
        // Nothing above may have changed the checkout: a golden file rewritten, a test writing
        // beside the sources.
        (
            "checkout-unchanged",
            Box::new(|| checkout_unchanged(root, before.as_deref())),
        ),
    ];
    steps::run("test", plan)
}

/// What `git status` shows of the checkout (tracked files modified, untracked files not
/// ignored), one line each; `None` outside a git checkout.
fn git_status(root: &Path) -> Option<Vec<String>> {
    let output = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

/// Fails when the checks changed the checkout since `before` (what `git status` showed when
/// they started): a golden file rewritten, a test writing beside the sources.
fn checkout_unchanged(root: &Path, before: Option<&[String]>) -> Result<()> {
    let (Some(before), Some(after)) = (before, git_status(root)) else {
        eprintln!("xtask: not a git checkout; the checkout was not compared");
        return Ok(());
    };
    let new: Vec<&String> = after.iter().filter(|line| !before.contains(line)).collect();
    if !new.is_empty() {
        anyhow::bail!(
            "the checks changed the checkout (a golden file rewritten, or a test writing beside the sources):\n{}",
            new.iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// Builds (and lints) the Rust guests while the Python and JavaScript toolchains download and
/// install beside them: one is CPU-bound, the other mostly network and disk.
fn rust_plugins_while_toolchains_install(root: &Path) -> Result<()> {
    let toolchains = toolchains_dir(root);
    let install = || -> Result<()> {
        polyglot::python_tools(&toolchains)?;
        polyglot::node_tools(&toolchains).map(drop)
    };
    let build = || plugins::build_rust(root, Lint::Yes).map(drop);
    steps::alongside(("plugins-rust", build), ("toolchains", install))
}

fn fmt(root: &Path) -> Result<()> {
    sh(root, "cargo", &["fmt", "--all", "--check"])?;
    sh(&root.join("plugins"), "cargo", &["fmt", "--all", "--check"])?;
    // Not `--all`: that would check the path dependency (config) a second time.
    sh(&root.join("fuzz"), "cargo", &["fmt", "--check"])
}

/// `cargo xtask lint`: the static checks, with `cargo clippy` (no code generation) for the host
/// and the guests.
pub fn lint(root: &Path) -> Result<()> {
    let plan: Vec<Step<'_>> = vec![
        ("fmt", Box::new(|| fmt(root))),
        ("layers", Box::new(|| layers::check(root))),
        ("c-bindings-stamp", Box::new(|| c_bindings::check(root))),
        (
            "clippy-host",
            Box::new(|| {
                let args = [
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ];
                sh(root, "cargo", &args)
            }),
        ),
        (
            "clippy-plugins",
            Box::new(|| {
                plugins::ensure_wasm_target(root)?;
                let target_dir = plugin_target_dir(root).display().to_string();
                let args = [
                    "clippy",
                    "--workspace",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "--target-dir",
                    &target_dir,
                    "--",
                    "-D",
                    "warnings",
                ];
                sh(&root.join("plugins"), "cargo", &args)
            }),
        ),
    ];
    steps::run("lint", plan)
}

/// `cargo xtask wkg-interop`: what `wkg` (the component registry client, pinned, installed into
/// the toolchains folder) pushes sluice runs, and what sluice pushes `wkg` pulls. Not part of
/// `test`: installing wkg compiles it from source. Same environment as `test`, so after a
/// `cargo xtask test` nothing recompiles.
pub fn wkg_interop(root: &Path) -> Result<()> {
    let plan: Vec<Step<'_>> = vec![
        (
            "setup",
            Box::new(|| {
                plugins::ensure_wasm_target(root)?;
                services::ensure_debian_tools(root)
            }),
        ),
        (
            "wkg",
            Box::new(|| polyglot::wkg(root, &toolchains_dir(root)).map(drop)),
        ),
        (
            "plugins-rust+clippy",
            Box::new(|| plugins::build_rust(root, Lint::Yes).map(drop)),
        ),
        (
            "wkg-test",
            Box::new(|| {
                let args = [
                    "test",
                    "--package",
                    "sluice",
                    "--test",
                    "e2e",
                    "--",
                    "--ignored",
                    "wkg",
                ];
                sh_env(root, "cargo", &args, &host_test_env(root)?)
            }),
        ),
    ];
    steps::run("wkg-interop", plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> Result<()> {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "git {args:?}");
        Ok(())
    }

    #[test]
    fn a_file_changed_during_the_checks_fails_them_and_earlier_edits_do_not() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        git(root, &["init", "-q"])?;
        std::fs::write(root.join("golden.stderr"), "expected\n")?;
        git(root, &["add", "golden.stderr"])?;
        git(
            root,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "golden",
            ],
        )?;
        // A developer's own edit before the checks is theirs.
        std::fs::write(root.join("notes.txt"), "mine\n")?;
        let before = git_status(root);
        assert!(checkout_unchanged(root, before.as_deref()).is_ok());
        // A golden file rewritten by the checks is not.
        std::fs::write(root.join("golden.stderr"), "whatever it printed\n")?;
        let err = checkout_unchanged(root, before.as_deref())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("golden.stderr"), "{err}");
        Ok(())
    }
}
