//! Per-stage overhead, measured on the real engine with real plugins from `plugins/dist`
//! (`cargo xtask bench` builds them and runs this):
//! - compile a plugin cold vs load its compiled code from the cache;
//! - instantiate + call a trivial stage (fresh store and sandbox each time);
//! - a whole one-stage `runner::run` (run folder, log, report included).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sluice::capabilities::CapSet;
use sluice::events::EventSink;
use sluice::{Host, manifest, plugin, runner};

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("no repo root")?
        .to_path_buf();
    let noop = root.join("plugins/dist/noop.wasm");
    anyhow::ensure!(
        noop.is_file(),
        "{} missing: run `cargo xtask plugins`",
        noop.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(&root, &noop))
}

async fn bench(root: &Path, noop: &Path) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let cache = scratch.path().join("cache");

    let cold = sample(5, || {
        let host = Host::new(None)?;
        let started = Instant::now();
        plugin::load(&host, noop, "noop", CapSet::default())?;
        Ok(started.elapsed())
    })?;
    print("plugin load, cold (Cranelift compile)", &cold);

    let host = Host::new(Some(&cache))?;
    plugin::load(&host, noop, "noop", CapSet::default())?;
    let warm = sample(200, || {
        let started = Instant::now();
        plugin::load(&host, noop, "noop", CapSet::default())?;
        Ok(started.elapsed())
    })?;
    print("plugin load, warm (compiled-code cache)", &warm);

    let loaded = plugin::load(&host, noop, "noop", CapSet::default())?;
    let only_calls = std::env::args().any(|a| a == "--only-calls");
    let n = if only_calls { 50_000 } else { 2000 };
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        loaded.describe(&host).await?;
        calls.push(started.elapsed());
    }
    print("per-stage overhead: new store + instantiate + call", &calls);
    if only_calls {
        return Ok(());
    }

    let pipeline_file = scratch.path().join("pipeline.toml");
    std::fs::write(
        &pipeline_file,
        format!(
            "version = 1\n[pipeline]\nname = \"bench\"\n[[stage]]\nname = \"noop\"\nplugin = \"{}\"\n",
            noop.display()
        ),
    )?;
    let pipeline = manifest::load(&pipeline_file)?;
    let options = runner::RunOptions {
        runs_dir: Some(scratch.path().join("runs")),
        ..Default::default()
    };
    let mut runs = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        runner::run(&host, &pipeline, &options, &EventSink::discard()).await?;
        runs.push(started.elapsed());
    }
    print(
        "one-stage runner::run (dirs, log, report, cached plugin)",
        &runs,
    );

    let hello = manifest::load(&root.join("examples/hello/pipeline.toml"))?;
    let mut hello_runs = Vec::with_capacity(50);
    for _ in 0..50 {
        let started = Instant::now();
        runner::run(&host, &hello, &options, &EventSink::discard()).await?;
        hello_runs.push(started.elapsed());
    }
    print("examples/hello runner::run, 4 stages, warm", &hello_runs);
    languages(root).await
}

/// Per guest language: component size, first (cold) compile, warm load from the cache, and
/// instantiate + call of `describe` on a fresh store.
async fn languages(root: &Path) -> Result<()> {
    println!();
    for (language, plugin) in [
        ("Rust", "emit"),
        ("Python", "config-check"),
        ("JavaScript", "notify"),
        ("C", "digest"),
    ] {
        let path = root.join("plugins/dist").join(format!("{plugin}.wasm"));
        if !path.is_file() {
            println!("{language:<10} {plugin}: not built (run `cargo xtask plugins`)");
            continue;
        }
        let size = std::fs::metadata(&path)?.len();
        let scratch = tempfile::tempdir()?;
        let host = Host::new(Some(scratch.path()))?;
        let started = Instant::now();
        plugin::load(&host, &path, plugin, CapSet::all())?;
        let cold = started.elapsed();
        let warm = sample(20, || {
            let started = Instant::now();
            plugin::load(&host, &path, plugin, CapSet::all())?;
            Ok(started.elapsed())
        })?;
        let loaded = plugin::load(&host, &path, plugin, CapSet::all())?;
        let mut calls = Vec::with_capacity(200);
        for _ in 0..200 {
            let started = Instant::now();
            loaded.describe(&host).await?;
            calls.push(started.elapsed());
        }
        let median = |samples: &[Duration]| {
            let mut sorted = samples.to_vec();
            sorted.sort();
            sorted[sorted.len() / 2]
        };
        println!(
            "{language:<10} {plugin:<13} {:>9.1} KiB   first compile {:>10}   warm load {:>10}   instantiate+call {:>10}",
            size as f64 / 1024.0,
            fmt(cold),
            fmt(median(&warm)),
            fmt(median(&calls))
        );
    }
    Ok(())
}

fn sample(n: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Vec<Duration>> {
    (0..n).map(|_| f()).collect()
}

fn print(label: &str, samples: &[Duration]) {
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "{label:<58} median {:>10}  p10 {:>10}  p90 {:>10}  (n={})",
        fmt(at(0.5)),
        fmt(at(0.1)),
        fmt(at(0.9)),
        sorted.len()
    );
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1}µs")
    } else {
        format!("{:.2}ms", us / 1000.0)
    }
}
