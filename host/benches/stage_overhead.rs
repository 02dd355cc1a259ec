//! Per-stage overhead, measured on the real engine with real plugins from `plugins/dist`
//! (`cargo xtask bench` builds them and runs this):
//! - compile a plugin cold vs load its compiled code from the cache;
//! - instantiate + call a trivial stage (fresh store and sandbox each time);
//! - a whole one-stage `runner::run` (run folder, log, report included);
//! - resolving a signed registry plugin on a warm run (pipeline.lock + local plugin store, no
//!   network), for a small and a large component.
//!
//! `cargo bench -p sluice --bench stage_overhead -- [SAMPLES] [--only-calls] [--languages=A,B]`:
//! SAMPLES caps the samples of every figure; `--languages` loads only those guest languages'
//! plugins (the CI smoke pass: `1 --languages=Rust,C`, as the Python and JavaScript components
//! take about a minute each to compile on a debug build).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sluice::config::pipeline as manifest;
use sluice::model::events::EventSink;
use sluice::resolve::{ResolveOptions, ResolvedPipeline, resolve_pipeline};
use sluice::run as runner;
use sluice::sandbox::caps::CapSet;
use sluice::{Host, plugin};

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cap: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(usize::MAX), |a| a.parse())
        .context("SAMPLES is a number")?;
    let options = Options {
        samples: Samples(cap.max(1)),
        only_calls: args.iter().any(|a| a == "--only-calls"),
        languages: args
            .iter()
            .find_map(|a| a.strip_prefix("--languages="))
            .map(|list| list.split(',').map(str::to_lowercase).collect()),
    };
    runtime.block_on(bench(&root, &noop, &options))
}

/// What the command line asked for.
struct Options {
    samples: Samples,
    /// Only the instantiate + call figure, many times.
    only_calls: bool,
    /// The guest languages whose plugins are loaded (all when `None`), lower case.
    languages: Option<Vec<String>>,
}

/// How many samples a figure takes: its own number, at most the cap from the command line.
#[derive(Clone, Copy)]
struct Samples(usize);

impl Samples {
    fn of(self, n: usize) -> usize {
        n.min(self.0)
    }
}

async fn bench(root: &Path, noop: &Path, options: &Options) -> Result<()> {
    let samples = options.samples;
    let scratch = tempfile::tempdir()?;
    let cache = scratch.path().join("cache");

    let cold = sample(samples.of(5), || {
        let host = Host::new(None)?;
        let started = Instant::now();
        plugin::load(&host, noop, "noop", CapSet::default())?;
        Ok(started.elapsed())
    })?;
    print("plugin load, cold (Cranelift compile)", &cold);

    let host = Host::new(Some(&cache))?;
    plugin::load(&host, noop, "noop", CapSet::default())?;
    settle();
    let warm = sample(samples.of(200), || {
        // A new host per load, as each `sluice run` is a new process.
        let host = Host::new(Some(&cache))?;
        let started = Instant::now();
        plugin::load(&host, noop, "noop", CapSet::default())?;
        Ok(started.elapsed())
    })?;
    print("plugin load, warm (compiled-code cache)", &warm);

    let loaded = plugin::load(&host, noop, "noop", CapSet::default())?;
    let only_calls = options.only_calls;
    let n = samples.of(if only_calls { 50_000 } else { 2000 });
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
    let pipeline = local(manifest::load(&pipeline_file)?).await?;
    let run_options = runner::RunOptions {
        runs_dir: Some(scratch.path().join("runs")),
        ..Default::default()
    };
    let mut runs = Vec::new();
    for _ in 0..samples.of(200) {
        let started = Instant::now();
        runner::run(&host, &pipeline, &run_options, &EventSink::discard()).await?;
        runs.push(started.elapsed());
    }
    print(
        "one-stage runner::run (dirs, log, report, cached plugin)",
        &runs,
    );

    let hello = local(manifest::load(&root.join("examples/hello/pipeline.toml"))?).await?;
    let mut hello_runs = Vec::new();
    for _ in 0..samples.of(50) {
        let started = Instant::now();
        runner::run(&host, &hello, &run_options, &EventSink::discard()).await?;
        hello_runs.push(started.elapsed());
    }
    print("examples/hello runner::run, 4 stages, warm", &hello_runs);
    for plugin in ["emit", "config-check"] {
        let component = root.join("plugins/dist").join(format!("{plugin}.wasm"));
        if component.is_file() {
            warm_resolution(&component, samples).await?;
        }
    }
    languages(root, options).await
}

/// `manifest::load` + `resolve_pipeline` for one signed registry plugin already in the lock and
/// the store. The reference names a port nothing listens on: any network use would fail.
async fn warm_resolution(component: &Path, samples: Samples) -> Result<()> {
    use sluice::registry::media::{
        Descriptor, Manifest, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
    };
    use sluice::trust::signing::{SigningKey, Statement, Subject, generate_key_pair};
    let scratch = tempfile::tempdir()?;
    let store = sluice::registry::store::PluginStore::new(scratch.path().join("store"));
    let bytes = std::fs::read(component)?;
    let layer = Descriptor::of(WASM_LAYER_MEDIA_TYPE, &bytes);
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: None,
        artifact_type: None,
        config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, b"{}"),
        layers: vec![layer.clone()],
        annotations: Default::default(),
    })?;
    let manifest_digest = format!(
        "sha256:{}",
        sluice::model::artifacts::sha256_bytes(&manifest)
    );
    store.put_blob(&manifest_digest, &manifest)?;
    store.put_blob(&layer.digest, &bytes)?;
    let (private, public, _) = generate_key_pair(&scratch.path().join("team"))?;
    let statement = Statement::new(
        vec![Subject::sha256(
            "127.0.0.1:9/acme/stage",
            manifest_digest.trim_start_matches("sha256:"),
        )],
        sluice::registry::sharing::PLUGIN_SIGNATURE_PREDICATE,
        serde_json::json!({}),
    );
    let envelope = SigningKey::from_file(&private)?.sign_statement(&statement)?;
    store.add_signatures(&manifest_digest, &[envelope])?;
    let reference = "oci://127.0.0.1:9/acme/stage:1.0.0";
    let pipeline_file = scratch.path().join("pipeline.toml");
    std::fs::write(
        &pipeline_file,
        format!(
            "version = 1\n[pipeline]\nname = \"bench\"\ntrusted_keys = [\"{}\"]\n[[stage]]\nname = \"s\"\nplugin = \"{reference}\"\n",
            public.display()
        ),
    )?;
    std::fs::write(
        scratch.path().join("pipeline.lock"),
        format!(
            "version = 1\n[[plugin]]\nreference = \"{reference}\"\nmanifest = \"{manifest_digest}\"\nlayer = \"{}\"\nsize = {}\n",
            layer.digest,
            bytes.len()
        ),
    )?;
    // A version-1 lock as an older sluice wrote it: one resolution records the plugin's
    // capability set (version 2), as a user's first run does; then it is only read.
    let mut options = ResolveOptions {
        store,
        offline: false,
        update: false,
        locked: false,
        record: false,
        accept: Vec::new(),
    };
    resolve_pipeline(
        manifest::load(&pipeline_file)?,
        &options,
        &EventSink::discard(),
    )
    .await?;
    options.locked = true;
    let mut times = Vec::new();
    for _ in 0..samples.of(50) {
        let started = Instant::now();
        let pipeline = manifest::load(&pipeline_file)?;
        resolve_pipeline(pipeline, &options, &EventSink::discard()).await?;
        times.push(started.elapsed());
    }
    print(
        &format!(
            "resolve a signed registry plugin, warm ({} KiB, lock + store)",
            bytes.len() / 1024
        ),
        &times,
    );
    Ok(())
}

/// A pipeline of local plugins, resolved (nothing to fetch).
async fn local(pipeline: manifest::Pipeline) -> Result<ResolvedPipeline> {
    let options = ResolveOptions {
        store: sluice::registry::store::PluginStore::new(std::env::temp_dir()),
        offline: true,
        update: false,
        locked: true,
        record: false,
        accept: Vec::new(),
    };
    Ok(resolve_pipeline(pipeline, &options, &EventSink::discard())
        .await?
        .0)
}

/// Per guest language: component size, first (cold) compile, warm load from the cache, and
/// instantiate + call of `describe` on a fresh store.
async fn languages(root: &Path, options: &Options) -> Result<()> {
    let samples = options.samples;
    let plugins = [
        ("Rust", "emit"),
        ("Python", "config-check"),
        ("JavaScript", "notify"),
        ("C", "digest"),
    ];
    for asked in options.languages.iter().flatten() {
        anyhow::ensure!(
            plugins.iter().any(|(l, _)| l.to_lowercase() == *asked),
            "--languages: no guest language {asked}"
        );
    }
    println!();
    for (language, plugin) in plugins {
        let path = root.join("plugins/dist").join(format!("{plugin}.wasm"));
        if !path.is_file() {
            println!("{language:<10} {plugin}: not built (run `cargo xtask plugins`)");
            continue;
        }
        let size = std::fs::metadata(&path)?.len();
        let chosen = options
            .languages
            .as_ref()
            .is_none_or(|only| only.iter().any(|l| *l == language.to_lowercase()));
        if !chosen {
            println!(
                "{language:<10} {plugin:<13} {:>9.1} KiB   not loaded (--languages)",
                size as f64 / 1024.0
            );
            continue;
        }
        let scratch = tempfile::tempdir()?;
        let host = Host::new(Some(scratch.path()))?;
        let started = Instant::now();
        plugin::load(&host, &path, plugin, CapSet::all())?;
        let cold = started.elapsed();
        settle();
        let warm = sample(samples.of(20), || {
            // A new host per load, as each `sluice run` is a new process.
            let host = Host::new(Some(scratch.path()))?;
            let started = Instant::now();
            plugin::load(&host, &path, plugin, CapSet::all())?;
            Ok(started.elapsed())
        })?;
        let loaded = plugin::load(&host, &path, plugin, CapSet::all())?;
        let mut calls = Vec::new();
        for _ in 0..samples.of(200) {
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

/// Waits until files written just now count as settled for the compiled-code cache (it trusts a
/// file's identity only for files that last changed over two seconds ago), so warm loads show
/// the steady state of every later run rather than the first one after a compile.
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
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
