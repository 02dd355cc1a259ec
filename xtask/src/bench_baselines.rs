//! `cargo xtask bench`'s comparisons: every sluice figure beside a baseline doing the same work,
//! measured in the same run with the runs alternating — a shell script of the same steps
//! (`bench/hello.sh`, `bench/emit.sh`), the same steps each in a bubblewrap sandbox, and bare
//! wasmtime calling the same component (`host/benches/bare_wasmtime.rs`), all in the same
//! alternating rounds — as whole processes, wall time and peak memory (the process's own
//! `VmHWM`), medians with p10/p90.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::measure::{Sample, measure};

/// Median, p10 and p90 of a set of figures.
struct Spread {
    median: f64,
    p10: f64,
    p90: f64,
    n: usize,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Self {
            median: at(0.5),
            p10: at(0.1),
            p90: at(0.9),
            n: sorted.len(),
        }
    }
}

/// The figures of one contender in one comparison.
struct Contender {
    label: String,
    samples: Vec<Sample>,
}

impl Contender {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_string(),
            samples: Vec::new(),
        }
    }
    fn wall(&self) -> Spread {
        Spread::of(&self.samples.iter().map(|s| s.wall_ms).collect::<Vec<_>>())
    }
    fn peak_mib(&self) -> f64 {
        let peaks: Vec<f64> = self.samples.iter().map(Sample::peak_mib).collect();
        Spread::of(&peaks).median
    }
}

/// How much work the comparisons take.
pub struct Size {
    /// Rounds of each alternating comparison.
    pub rounds: usize,
    /// The stages of the long pipeline of the per-stage slope (against one stage).
    pub many_stages: usize,
    /// Bare-wasmtime calls in each round (one process per round and mode).
    pub bare_calls: usize,
}

impl Size {
    /// The figures of BENCHMARKS.md.
    pub const FIGURES: Size = Size {
        rounds: 21,
        many_stages: 41,
        bare_calls: 100,
    };
}

/// Everything the comparisons need: the binaries, a scratch folder and their size.
pub struct Bench {
    root: PathBuf,
    sluice: PathBuf,
    bare: PathBuf,
    scratch: PathBuf,
    size: Size,
    /// Where the markdown table goes.
    table: PathBuf,
}

impl Bench {
    /// Comparisons of `size` in `target/<scratch>`, whose table goes to
    /// `target/<scratch>/baselines.md`.
    pub fn new(root: &Path, sluice: PathBuf, bare: PathBuf, scratch: &str, size: Size) -> Self {
        let scratch = crate::target_dir(root).join(scratch);
        Self {
            root: root.to_path_buf(),
            sluice,
            bare,
            table: scratch.join("baselines.md"),
            scratch,
            size,
        }
    }

    fn fresh(&self, name: &str) -> Result<PathBuf> {
        let dir = self.scratch.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn sluice_run(&self, pipeline: &Path, state: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(&self.sluice);
        command
            .arg("run")
            .arg(pipeline)
            .args(["--quiet", "--format", "plain", "--no-stage-cache"])
            .arg("--runs-dir")
            .arg(state.join("runs"))
            .arg("--cache-dir")
            .arg(state.join("compiled"))
            .args(extra)
            .env("SLUICE_CACHE_KEY", self.scratch.join("cache.key"))
            .current_dir(&self.root);
        command
    }

    fn script(&self, name: &str) -> Command {
        let mut command = Command::new("sh");
        command
            .arg(self.root.join("bench").join(name))
            .current_dir(&self.root);
        command
    }

    /// Runs every comparison and writes the table.
    pub fn run(&self) -> Result<()> {
        std::fs::create_dir_all(&self.scratch)?;
        let mut table = String::from(
            "| what | median ms | p10 | p90 | peak RSS MiB | n |\n|---|---:|---:|---:|---:|---:|\n",
        );
        let hello = self.hello(&mut table)?;
        let slope = self.per_stage(&mut table)?;
        let mut summary = String::new();
        writeln!(summary, "\n{}", hello)?;
        writeln!(summary, "{slope}")?;
        print!("{table}{summary}");
        if let Some(parent) = self.table.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&self.table, format!("{table}{summary}"))?;
        println!("(written to {})", self.table.display());
        Ok(())
    }

    /// `sluice run examples/hello` (warm and cold compiled cache) against the shell script and
    /// the bubblewrap script of the same four steps.
    fn hello(&self, table: &mut String) -> Result<String> {
        let pipeline = self.root.join("examples/hello/pipeline.toml");
        let warm_state = self.fresh("hello-warm")?;
        measure(&mut self.sluice_run(&pipeline, &warm_state, &[]))?;
        let mut shell = Contender::new("hello: shell script (bench/hello.sh)");
        let mut bwrap = Contender::new("hello: each step in bubblewrap (bench/hello-bwrap.sh)");
        let mut warm = Contender::new("hello: sluice run, warm compiled cache");
        let mut cold = Contender::new("hello: sluice run, cold (compiles 4 plugins)");
        for round in 0..self.size.rounds {
            let dir = self.fresh("hello-out")?;
            shell.samples.push(measure(
                self.script("hello.sh").arg(dir.join(format!("sh{round}"))),
            )?);
            bwrap.samples.push(measure(
                self.script("hello-bwrap.sh")
                    .arg(dir.join(format!("bwrap{round}"))),
            )?);
            warm.samples
                .push(measure(&mut self.sluice_run(&pipeline, &warm_state, &[]))?);
            if round % 4 == 0 {
                let cold_state = self.fresh("hello-cold")?;
                cold.samples
                    .push(measure(&mut self.sluice_run(&pipeline, &cold_state, &[]))?);
            }
        }
        for contender in [&shell, &bwrap, &warm, &cold] {
            row(table, contender);
        }
        let (w, s, b) = (warm.wall().median, shell.wall().median, bwrap.wall().median);
        Ok(format!(
            "hello (stage cache off), warm: sluice/shell = {:.2}× (target ≤ 0.6×, then 0.4×), sluice/bubblewrap = {:.2}×; {:.1} ms wall (aim 8 ms); \
             cold (compiles 4 plugins): {:.0} ms",
            w / s,
            w / b,
            w,
            cold.wall().median
        ))
    }

    /// The slope between a many-stage (41 for the figures) and a 1-stage pipeline of one-file
    /// `emit` stages, for sluice (one stage at a time, as the baselines), the shell script and
    /// bubblewrap; and sluice's peak memory for both.
    fn per_stage(&self, table: &mut String) -> Result<String> {
        let emit = self.root.join("plugins/dist/emit.wasm");
        let pipelines = self.fresh("emit-pipelines")?;
        let write = |stages: usize| -> Result<PathBuf> {
            let mut text = format!("version = 1\n[pipeline]\nname = \"emit{stages}\"\n");
            for index in 1..=stages {
                write!(
                    text,
                    "[[stage]]\nname = \"s{index}\"\nplugin = \"{}\"\ninputs = []\n[stage.config.files]\n\"f.txt\" = \"stage {index}\\n\"\n",
                    emit.display()
                )?;
            }
            let file = pipelines.join(format!("emit{stages}.toml"));
            std::fs::write(&file, text)?;
            Ok(file)
        };
        let many_stages = self.size.many_stages;
        let (one, many) = (write(1)?, write(many_stages)?);
        let state = self.fresh("emit-state")?;
        measure(&mut self.sluice_run(&one, &state, &["--jobs", "1"]))?;
        let mut contenders: Vec<Contender> = ["shell", "bubblewrap", "sluice run --jobs 1"]
            .into_iter()
            .flat_map(|who| {
                [
                    Contender::new(&format!("1 emit stage: {who}")),
                    Contender::new(&format!("{many_stages} emit stages: {who}")),
                ]
            })
            .collect();
        let mut bare = Vec::new();
        for round in 0..self.size.rounds {
            let dir = self.fresh("emit-out")?;
            bare.push(self.bare_round(self.size.bare_calls)?);
            for (index, stages) in [1, many_stages].into_iter().enumerate() {
                let n = stages.to_string();
                let out = dir.join(format!("sh{round}-{stages}"));
                contenders[index]
                    .samples
                    .push(measure(self.script("emit.sh").arg(&n).arg(&out))?);
                let out = dir.join(format!("bwrap{round}-{stages}"));
                contenders[2 + index].samples.push(measure(
                    self.script("emit.sh").arg(&n).arg(&out).arg("--bwrap"),
                )?);
                let file = if stages == 1 { &one } else { &many };
                contenders[4 + index]
                    .samples
                    .push(measure(&mut self.sluice_run(
                        file,
                        &state,
                        &["--jobs", "1"],
                    ))?);
            }
        }
        for contender in &contenders {
            row(table, contender);
        }
        let slope = |pair: usize| {
            (contenders[pair * 2 + 1].wall().median - contenders[pair * 2].wall().median)
                / (many_stages - 1) as f64
        };
        let (shell, bwrap, sluice) = (slope(0), slope(1), slope(2));
        let (peak_one, peak_many) = (contenders[4].peak_mib(), contenders[5].peak_mib());
        let bare_median = |pick: fn(&BareRound) -> f64| {
            Spread::of(&bare.iter().map(pick).collect::<Vec<_>>()).median
        };
        let bare_thread = bare_median(|r| r.calling_thread_ms);
        let bare_pool = bare_median(|r| r.blocking_pool_ms);
        let calls = self.size.bare_calls;
        Ok(format!(
            "per stage (slope {many_stages} vs 1 stages): sluice {sluice:.3} ms, shell {shell:.3} ms, bubblewrap {bwrap:.3} ms \
             → sluice/shell {:.2}×, sluice/bubblewrap {:.2}×\n\
             bare wasmtime, emit `run` per call (fresh store + WASI ctx + /out + instantiate + call; {calls} calls in each of the {} rounds, \
             median of the rounds' medians): {bare_thread:.3} ms with WASI file I/O on the calling thread (as sluice runs this stage), \
             {bare_pool:.3} ms on tokio's blocking pool → sluice's per-stage slope is {:.2}× bare wasmtime's (target ≤ 1.2×)\n\
             peak memory: {many_stages} stages {peak_many:.1} MiB vs 1 stage {peak_one:.1} MiB = {:.2}× (target ≤ 1.2×)\n\
             SLUICE_PER_STAGE_MS={sluice:.3} BARE_PER_CALL_MS={bare_thread:.3} BARE_PER_CALL_POOL_MS={bare_pool:.3}",
            sluice / shell,
            sluice / bwrap,
            bare.len(),
            sluice / bare_thread,
            peak_many / peak_one
        ))
    }

    /// Bare wasmtime calling `emit`'s `run` with the same config (one file): `calls` calls in
    /// one process, per call, with WASI file I/O on the calling thread (as sluice runs a stage
    /// that only sees its inputs and output folder) and on tokio's blocking pool (wasmtime-wasi's
    /// default). One of these runs in every round, beside the runs it is compared with.
    fn bare_round(&self, calls: usize) -> Result<BareRound> {
        let emit = self.root.join("plugins/dist/emit.wasm");
        let config = r#"{"files":{"f.txt":"stage 1\n"}}"#;
        let mut round = BareRound::default();
        for (mode, label) in [(Some("--blocking"), "run-blocking"), (None, "run")] {
            let output = Command::new(&self.bare)
                .arg(&emit)
                .arg(config)
                .arg(calls.to_string())
                .args(mode)
                .output()
                .with_context(|| format!("cannot start {}", self.bare.display()))?;
            if !output.status.success() {
                bail!(
                    "bare_wasmtime failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let per_call_ms = text
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(label))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse::<f64>().ok())
                .map(|us| us / 1000.0)
                .with_context(|| format!("bare_wasmtime printed no `{label}` figure: {text}"))?;
            match mode {
                Some(_) => round.calling_thread_ms = per_call_ms,
                None => round.blocking_pool_ms = per_call_ms,
            }
        }
        Ok(round)
    }
}

/// One round's bare-wasmtime figures: the median per call of that round's calls.
#[derive(Default, Clone, Copy)]
struct BareRound {
    calling_thread_ms: f64,
    blocking_pool_ms: f64,
}

fn row(table: &mut String, contender: &Contender) {
    let wall = contender.wall();
    let _ = writeln!(
        table,
        "| {} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
        contender.label,
        wall.median,
        wall.p10,
        wall.p90,
        contender.peak_mib(),
        wall.n
    );
}
