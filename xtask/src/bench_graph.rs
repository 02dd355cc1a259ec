//! The graph engine's two figures (issue 12): three independent CPU-bound stages with `--jobs 2`
//! against `--jobs 1`, and a `cargo build` stage on an unchanged workspace served from the
//! stage cache against the same stage run again — each pair measured in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// How much work the figures take.
pub struct Size {
    /// Rounds of the `spin` plugin per stage (2400: about 2 s).
    pub spin_rounds: u32,
    /// How many independent stages, one pipeline each.
    pub stage_counts: &'static [usize],
    /// Measured runs of each side (medians of these).
    pub repeats: usize,
}

impl Size {
    /// The figures of BENCHMARKS.md.
    pub const FIGURES: Size = Size {
        spin_rounds: 2400,
        stage_counts: &[3, 4],
        repeats: 3,
    };
}

pub fn bench(root: &Path, sluice: &Path) -> Result<()> {
    figures(root, sluice, &Size::FIGURES)
}

/// Both figures at `size`.
pub fn figures(root: &Path, sluice: &Path, size: &Size) -> Result<()> {
    let scratch = crate::target_dir(root).join("bench-graph");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    parallel_stages(root, sluice, &scratch, size)?;
    cached_cargo_build(root, sluice, &scratch, size.repeats)
}

/// `sluice run FILE ARGS` in `scratch`; the wall time in ms and the report.
fn run(
    sluice: &Path,
    scratch: &Path,
    file: &Path,
    args: &[&str],
) -> Result<(f64, serde_json::Value)> {
    let report = scratch.join("report.json");
    let started = Instant::now();
    let status = Command::new(sluice)
        .arg("run")
        .arg(file)
        .args(["--quiet", "--format", "plain", "--report"])
        .arg(&report)
        .arg("--runs-dir")
        .arg(scratch.join("runs"))
        .arg("--stage-cache")
        .arg(scratch.join("stage-cache"))
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot start {}", sluice.display()))?;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        bail!("sluice run {} {args:?} failed ({status})", file.display());
    }
    let report = serde_json::from_slice(&std::fs::read(&report)?)?;
    Ok((wall, report))
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn parallel_stages(root: &Path, sluice: &Path, scratch: &Path, size: &Size) -> Result<()> {
    let spin = root.join("plugins/dist/spin.wasm");
    let (rounds, repeats) = (size.spin_rounds, size.repeats);
    println!(
        "independent CPU-bound stages (spin, {rounds} rounds each), wall ms, median of {repeats}:"
    );
    for &count in size.stage_counts {
        // What 2 cores can give `count` equal stages: `count` stage-times in ⌈count/2⌉.
        let bound = count as f64 / count.div_ceil(2) as f64;
        let mut text = format!("version = 1\n[pipeline]\nname = \"spin{count}\"\n");
        for index in 0..count {
            text.push_str(&format!(
                "[[stage]]\nname = \"s{index}\"\nplugin = \"{}\"\ninputs = []\n[stage.config]\nrounds = {rounds}\n",
                spin.display()
            ));
        }
        let file = scratch.join(format!("spin{count}.toml"));
        std::fs::write(&file, text)?;
        // Warm the compiled-code cache first; then alternate, so drift hits both sides alike.
        run(sluice, scratch, &file, &["--no-stage-cache"])?;
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            one.push(run(sluice, scratch, &file, &["--no-stage-cache", "--jobs", "1"])?.0);
            two.push(run(sluice, scratch, &file, &["--no-stage-cache", "--jobs", "2"])?.0);
        }
        let (one, two) = (median(&mut one), median(&mut two));
        println!(
            "  {count} stages: --jobs 1: {one:.0}   --jobs 2: {two:.0}   → {:.2}× faster \
             (the bound on 2 cores for {count} equal stages: {bound:.1}×)",
            one / two
        );
    }
    Ok(())
}

fn stage_ms(report: &serde_json::Value, stage: &str) -> f64 {
    report["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == stage)
        .and_then(|s| s["duration_ms"].as_f64())
        .unwrap_or(f64::NAN)
}

fn cached_cargo_build(root: &Path, sluice: &Path, scratch: &Path, repeats: usize) -> Result<()> {
    let crate_dir: PathBuf = root.join("examples/rust-crate");
    let text = format!(
        r#"version = 1
[pipeline]
name = "cargo-build"
workspace = "{}"
limits = {{ timeout = "10m" }}
[[stage]]
name = "build"
plugin = "{}"
cache = true
[stage.allow]
workspace = "read"
exec = ["cargo"]
[stage.config]
program = "cargo"
args = ["build", "--release", "--locked", "--target-dir", "${{out}}/target"]
collect = [{{ from = "/out/target/release/wordcount", to = "wordcount" }}]
remove = ["target"]
"#,
        crate_dir.display(),
        root.join("plugins/dist/exec.wasm").display()
    );
    let file = scratch.join("cargo-build.toml");
    std::fs::write(&file, text)?;
    let (_, first) = run(sluice, scratch, &file, &[])?;
    let (mut cold, mut hit) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        cold.push(stage_ms(
            &run(sluice, scratch, &file, &["--no-stage-cache"])?.1,
            "build",
        ));
        let (_, report) = run(sluice, scratch, &file, &[])?;
        if report["stages"][0]["cache"]["hit"] != true {
            bail!("the unchanged cargo build was not served from the stage cache");
        }
        hit.push(stage_ms(&report, "build"));
    }
    let (cold, hit) = (median(&mut cold), median(&mut hit));
    println!(
        "cargo build --release of examples/rust-crate on an unchanged workspace, stage ms, median of {repeats}:\n  \
         run again: {cold:.0}   from the stage cache: {hit:.1}   → {:.0}× faster (first run {:.0} ms)",
        cold / hit,
        stage_ms(&first, "build")
    );
    Ok(())
}
