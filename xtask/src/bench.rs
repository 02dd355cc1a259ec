//! `cargo xtask bench`: every figure beside its baseline, in the release profile — sluice against
//! a shell script, bubblewrap and bare wasmtime ([`crate::bench_baselines`]), the engine's own
//! micro-figures (`host/benches/stage_overhead.rs`: plugin loads per guest language, resolution),
//! many runs at once ([`crate::bench_load`]) and the graph engine's ([`crate::bench_graph`]). `--smoke` runs each comparison once on the
//! debug build CI already has, to prove the benchmarks still work (no timing).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::bench_baselines::Bench;
use crate::{host_binary, setup, sh, sh_env};

pub fn bench(root: &Path, smoke: bool) -> Result<()> {
    if smoke {
        return smoke_pass(root);
    }
    setup(root)?;
    baselines(root)?;
    let overhead = bench_executable(
        root,
        &[
            "build",
            "--release",
            "--package",
            "sluice",
            "--bench",
            "stage_overhead",
        ],
        &crate::build_env::remap_env(),
    )?;
    sh(root, &overhead.to_string_lossy(), &[])?;
    crate::bench_load::bench(root, &host_binary(root, "release"))?;
    crate::bench_big::bench(root, &host_binary(root, "release"))?;
    crate::bench_graph::bench(root, &host_binary(root, "release"))
}

/// Only the comparisons with the shell script, bubblewrap and bare wasmtime (release build).
pub fn baselines(root: &Path) -> Result<()> {
    sh_env(
        root,
        "cargo",
        &[
            "build",
            "--release",
            "--package",
            "sluice",
            "--bin",
            "sluice",
        ],
        &crate::build_env::remap_env(),
    )?;
    let bare = bench_executable(
        root,
        &[
            "build",
            "--release",
            "--package",
            "sluice",
            "--bench",
            "bare_wasmtime",
        ],
        &crate::build_env::remap_env(),
    )?;
    Bench::new(root, host_binary(root, "release"), bare, "bench", 21, 2000).run()
}

/// Each comparison once, on the binaries `cargo test --no-run` built (CI's host build): the
/// scripts, bubblewrap, bare wasmtime and sluice all still run. Not for timing.
fn smoke_pass(root: &Path) -> Result<()> {
    let env = crate::build_env::host_test_env(root)?;
    let bare = bench_executable(
        root,
        &[
            "test",
            "--package",
            "sluice",
            "--bench",
            "bare_wasmtime",
            "--no-run",
        ],
        &env,
    )?;
    Bench::new(root, host_binary(root, "debug"), bare, "bench-smoke", 1, 3).run()
}

/// Builds a bench target with `cargo_args` and returns its executable (from cargo's JSON
/// messages, since its file name carries a hash).
fn bench_executable(root: &Path, cargo_args: &[&str], env: &[(&str, OsString)]) -> Result<PathBuf> {
    eprintln!("xtask: $ cargo {}", cargo_args.join(" "));
    let output = Command::new("cargo")
        .args(cargo_args)
        .arg("--message-format=json-render-diagnostics")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start cargo")?;
    if !output.status.success() {
        bail!(
            "`cargo {}` failed ({})",
            cargo_args.join(" "),
            output.status
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["kind"][0] == "bench")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo built no bench executable")
}
