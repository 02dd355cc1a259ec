//! `cargo xtask bench-load`: many `sluice run`s of the hello example at once on one machine (one
//! runs folder, one compiled cache), beside the same number of the hello shell script at once —
//! all must succeed; total wall time and each process's own peak memory ([`crate::measure`]).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Result, bail};

use crate::measure::{reap, spawn_traced};

/// How many at once, unless `SLUICE_BENCH_LOAD` says otherwise.
const DEFAULT_AT_ONCE: usize = 200;

struct Crowd {
    label: String,
    wall_ms: f64,
    peaks_kib: Vec<u64>,
}

impl Crowd {
    /// Starts every command (one process group, each held at its exec until all have started),
    /// lets them all go at once and reaps them; fails if any did not exit 0.
    fn run(label: &str, commands: Vec<Command>) -> Result<Crowd> {
        let started = Instant::now();
        let mut children: Vec<Child> = Vec::with_capacity(commands.len());
        for mut command in commands {
            let group = children.first().map_or(0, Child::id);
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(i32::try_from(group)?);
            children.push(spawn_traced(&mut command)?);
        }
        let mut peaks_kib = Vec::with_capacity(children.len());
        let mut failed = 0;
        for (status, peak) in reap(&children)? {
            failed += usize::from(status != 0);
            peaks_kib.push(peak);
        }
        let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        if failed > 0 {
            bail!("{label}: {failed} of {} runs failed", children.len());
        }
        peaks_kib.sort_unstable();
        Ok(Crowd {
            label: label.to_string(),
            wall_ms,
            peaks_kib,
        })
    }

    fn line(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let n = self.peaks_kib.len();
        let median = self.peaks_kib.get(n / 2).copied().unwrap_or(0);
        let max = self.peaks_kib.last().copied().unwrap_or(0);
        let sum: u64 = self.peaks_kib.iter().sum();
        format!(
            "| {} | {n} | {:.0} | {:.2} | {:.1} | {:.1} | {:.0} |",
            self.label,
            self.wall_ms,
            self.wall_ms / n.max(1) as f64,
            mib(median),
            mib(max),
            mib(sum)
        )
    }
}

/// Runs the load comparison with `sluice` (a built binary), `SLUICE_BENCH_LOAD` runs at once
/// (200 unless set); prints and returns the table.
pub fn bench(root: &Path, sluice: &Path) -> Result<String> {
    let at_once = std::env::var("SLUICE_BENCH_LOAD")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(DEFAULT_AT_ONCE);
    crowds(root, sluice, at_once)
}

/// The load comparison with `at_once` runs of each at once; prints and returns the table.
pub fn crowds(root: &Path, sluice: &Path, at_once: usize) -> Result<String> {
    let scratch = crate::target_dir(root).join("bench-load");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let pipeline = root.join("examples").join("hello").join("pipeline.toml");
    let run = |runs: &PathBuf| {
        let mut command = Command::new(sluice);
        command
            .arg("run")
            .arg(&pipeline)
            .args(["--quiet", "--format", "plain", "--no-stage-cache"])
            .arg("--runs-dir")
            .arg(runs)
            .arg("--cache-dir")
            .arg(scratch.join("compiled"))
            .env("SLUICE_CACHE_KEY", scratch.join("cache.key"))
            .current_dir(root);
        command
    };
    // One run first fills the compiled cache: the crowd measures warm runs.
    let warm = scratch.join("warm-runs");
    Crowd::run("warm-up", vec![run(&warm)])?;
    let runs = scratch.join("runs");
    let shell = Crowd::run(
        &format!("{at_once} × bench/hello.sh at once"),
        (0..at_once)
            .map(|i| {
                let mut command = Command::new(root.join("bench").join("hello.sh"));
                command.arg(scratch.join("sh").join(i.to_string()));
                command
            })
            .collect(),
    )?;
    let crowd = Crowd::run(
        &format!("{at_once} × sluice run examples/hello at once"),
        (0..at_once).map(|_| run(&runs)).collect(),
    )?;
    let finished = std::fs::read_dir(&runs)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("report.json"))
                .is_ok_and(|r| r.contains("\"status\": \"succeeded\""))
        })
        .count();
    if finished != at_once {
        bail!("{finished} of {at_once} run folders hold a succeeded report");
    }
    let table = format!(
        "| what | processes | total wall ms | ms per run | peak RSS MiB, median | max | sum |\n\
         |---|---:|---:|---:|---:|---:|---:|\n{}\n{}\n\n\
         all {at_once} sluice runs succeeded, {finished} run folders with a succeeded report; \
         sluice/shell total wall = {:.2}×\n",
        shell.line(),
        crowd.line(),
        crowd.wall_ms / shell.wall_ms
    );
    println!("{table}");
    let _ = std::fs::remove_dir_all(scratch.join("sh"));
    Ok(table)
}
