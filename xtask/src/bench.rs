//! `cargo xtask bench`: every figure beside its baseline, in the release profile — sluice against
//! a shell script, bubblewrap and bare wasmtime ([`crate::bench_baselines`]), the engine's own
//! micro-figures (`host/benches/stage_overhead.rs`: plugin loads per guest language, resolution),
//! many runs at once ([`crate::bench_load`]) and the graph engine's ([`crate::bench_graph`]).
//! `--smoke` runs every benchmark once at its smallest on the debug build CI already has, to
//! prove they all still work (no timing; [`smoke`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::bench_baselines::{Bench, Size};
use crate::{host_binary, setup, sh, sh_env};

mod smoke;

pub fn bench(root: &Path, smoke: bool) -> Result<()> {
    if smoke {
        return smoke::run(root);
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
    release_sluice(root)?;
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
    let (sluice, size) = (host_binary(root, "release"), Size::FIGURES);
    Bench::new(root, sluice, bare, "bench", size).run()
}

/// Builds one bench target with `cargo_args` and returns its executable.
fn bench_executable(root: &Path, cargo_args: &[&str], env: &[(&str, OsString)]) -> Result<PathBuf> {
    bench_executables(root, cargo_args, env)?
        .into_values()
        .next()
        .context("cargo built no bench executable")
}

/// Builds bench targets with `cargo_args` and returns each one's executable by target name (from
/// cargo's JSON messages, since their file names carry a hash).
fn bench_executables(
    root: &Path,
    cargo_args: &[&str],
    env: &[(&str, OsString)],
) -> Result<BTreeMap<String, PathBuf>> {
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
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["kind"][0] == "bench")
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_string();
            Some((name, PathBuf::from(message["executable"].as_str()?)))
        })
        .collect())
}

/// The release `sluice`, built (or found up to date) the way every benchmark measures it: with
/// the remapped paths an installed binary has.
pub fn release_sluice(root: &Path) -> Result<PathBuf> {
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
    Ok(host_binary(root, "release"))
}
