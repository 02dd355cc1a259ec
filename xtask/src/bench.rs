//! `cargo xtask bench`: per-stage overhead (the criterion-free `stage_overhead` bench) and the
//! whole-process wall time of `sluice run examples/hello`, cold and warm compile cache.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{host_binary, setup, sh};

pub fn bench(root: &Path) -> Result<()> {
    setup(root)?;
    // The dev profile keeps every dependency (wasmtime included) at opt-level 3, so benching
    // it reuses the test build instead of compiling wasmtime a second time.
    sh(
        root,
        "cargo",
        &[
            "bench",
            "--profile",
            "dev",
            "--package",
            "sluice",
            "--bench",
            "stage_overhead",
        ],
    )?;
    sh(root, "cargo", &["build", "--package", "sluice"])?;
    whole_pipeline_wall_time(root)?;
    crate::bench_graph::bench(root)
}

/// Times `sluice run examples/hello` as a whole process: cold (empty compile cache) and warm.
fn whole_pipeline_wall_time(root: &Path) -> Result<()> {
    let sluice = host_binary(root, "debug");
    let scratch = root.join("target").join("bench-wall");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let cache = scratch.join("cache");
    let runs = scratch.join("runs");
    let once = |label: &str| -> Result<f64> {
        let started = Instant::now();
        let status = Command::new(&sluice)
            .args([
                "run",
                "examples/hello/pipeline.toml",
                "--quiet",
                "--format",
                "plain",
            ])
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--runs-dir")
            .arg(&runs)
            .current_dir(root)
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot start {}", sluice.display()))?;
        if !status.success() {
            bail!("{label} run of examples/hello failed ({status})");
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    let mut cold = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&cache);
        cold.push(once("cold")?);
    }
    let mut warm = Vec::new();
    for _ in 0..20 {
        warm.push(once("warm")?);
    }
    report("sluice run examples/hello, cold cache (ms)", &mut cold);
    report("sluice run examples/hello, warm cache (ms)", &mut warm);
    Ok(())
}

fn report(label: &str, samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let min = samples[0];
    let max = samples[samples.len() - 1];
    println!(
        "{label}: median {median:.1}  min {min:.1}  max {max:.1}  (n={})",
        samples.len()
    );
}
