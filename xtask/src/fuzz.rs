//! `cargo xtask fuzz [--time SECONDS] [--runs N] [TARGET...]`: builds the libFuzzer targets in
//! fuzz/ on stable Rust (the coverage instrumentation cargo-fuzz asks rustc for, without its
//! nightly-only sanitizer) and runs each from a scratch copy of its checked-in corpus — never
//! growing the checked-in one — for a bounded time or number of inputs, as many at once as there
//! are cores. A crash, a hang or a blown memory limit fails the run and names the saved input.
//! The build is also the fuzz crate's clippy lint, as the host's build is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::build_env::clippy_env;
use crate::target_dir;

/// Every target in fuzz/fuzz_targets, in the order they run.
pub const TARGETS: &[&str] = &["pipeline", "lockfile", "plugin_ref", "diagnostic"];

/// Seconds per target when neither `--time` nor `--runs` is given (what CI runs).
pub const DEFAULT_SECONDS: u64 = 10;

/// What cargo-fuzz passes rustc (`cargo fuzz build -s none`): libFuzzer's coverage counters,
/// its comparison tracing, `cfg(fuzzing)`, and every debug assertion and overflow check on.
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// Largest input tried: a pipeline file far bigger than anyone writes.
const MAX_LEN: &str = "8192";
/// Seconds one input may take before it counts as a hang.
const INPUT_TIMEOUT: &str = "10";
/// Memory one fuzzing process may use before it counts as a leak or a blow-up.
const RSS_LIMIT_MB: &str = "2048";

/// How long, and on what, to fuzz.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// `-max_total_time` per target, in seconds.
    pub seconds: Option<u64>,
    /// `-runs` per target.
    pub runs: Option<u64>,
    pub targets: Vec<String>,
}

impl Options {
    /// `[--time SECONDS] [--runs N] [TARGET...]`; no bound at all means [`DEFAULT_SECONDS`].
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            seconds: None,
            runs: None,
            targets: Vec::new(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--time" | "--runs" => {
                    let value = args
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|&v| v > 0)
                        .with_context(|| format!("`{arg}` takes a whole number above 0"))?;
                    if arg == "--time" {
                        options.seconds = Some(value);
                    } else {
                        options.runs = Some(value);
                    }
                }
                target if TARGETS.contains(&target) => options.targets.push(target.to_string()),
                other => bail!(
                    "unknown fuzz target or option `{other}`; targets: {}",
                    TARGETS.join(", ")
                ),
            }
        }
        if options.seconds.is_none() && options.runs.is_none() {
            options.seconds = Some(DEFAULT_SECONDS);
        }
        if options.targets.is_empty() {
            options.targets = TARGETS.iter().map(ToString::to_string).collect();
        }
        Ok(options)
    }
}

/// The figures libFuzzer printed at the end of one target's run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Figures {
    inputs: u64,
    exec_per_sec: u64,
    cov: u64,
    ft: u64,
    corpus: u64,
    seed: u64,
}

/// `cargo xtask fuzz`: build, then run every chosen target; fails if any of them found something.
pub fn fuzz(root: &Path, options: &Options) -> Result<()> {
    let bins = build(root)?;
    let work = target_dir(root).join("fuzz").join("runs");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(options.targets.len());
    eprintln!(
        "xtask: fuzzing {} ({} at once); logs in {}",
        options.targets.join(", "),
        workers,
        work.display()
    );
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(target) = options.targets.get(next.fetch_add(1, Ordering::SeqCst)) {
                    if let Err(err) = run_target(root, &bins, &work, target, options) {
                        eprintln!("xtask: fuzz {target}: FAILED: {err:#}");
                        if let Ok(mut failures) = failures.lock() {
                            failures.push(target.clone());
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        bail!(
            "fuzzing found a problem in {} (the saved inputs and logs are named above); \
             reproduce with the target's binary and the input, fix it in config/src, and add \
             the input as a golden case or unit test",
            failures.join(", ")
        );
    }
    Ok(())
}

/// Builds every target with coverage instrumentation; returns the folder of the binaries.
fn build(root: &Path) -> Result<PathBuf> {
    let host = host_triple()?;
    let target_dir = target_dir(root).join("fuzz");
    let target_dir_arg = target_dir.display().to_string();
    // `--target`: the flags then reach only the target's code, not build scripts and proc
    // macros (which would not link without libFuzzer).
    let args = [
        "build",
        "--release",
        "--locked",
        "--bins",
        "--target",
        &host,
        "--target-dir",
        &target_dir_arg,
    ];
    let rustflags = RUSTFLAGS.join(" ");
    // Linted as it compiles, like the host: clippy-driver for the fuzz crate's own code.
    let clippy = clippy_env()?;
    let shown: Vec<String> = clippy
        .iter()
        .map(|(key, value)| format!("{key}={} ", value.to_string_lossy()))
        .collect();
    eprintln!(
        "xtask: $ (cd fuzz && {}RUSTFLAGS=\"{rustflags}\" cargo {})",
        shown.concat(),
        args.join(" ")
    );
    let status = Command::new("cargo")
        .args(args)
        .envs(clippy)
        .env("RUSTFLAGS", &rustflags)
        // Would take precedence over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .current_dir(root.join("fuzz"))
        .status()
        .context("cannot start `cargo`")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    Ok(target_dir.join(host).join("release"))
}

/// This toolchain's host target triple (`rustc -vV`).
fn host_triple() -> Result<String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot start `rustc`")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_string())
        .context("`rustc -vV` names no host triple")
}

/// Runs one target from a fresh scratch copy of its checked-in corpus; its log, scratch corpus,
/// temporary folder and any crashing input stay under `work/<target>/`.
fn run_target(
    root: &Path,
    bins: &Path,
    work: &Path,
    target: &str,
    options: &Options,
) -> Result<()> {
    let dir = work.join(target);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    let corpus = dir.join("corpus");
    let artifacts = dir.join("artifacts");
    let tmp = dir.join("tmp");
    for folder in [&corpus, &artifacts, &tmp] {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot make {}", folder.display()))?;
    }
    let seeds = copy_seeds(&root.join("fuzz").join("corpus").join(target), &corpus)?;
    let log_path = dir.join("log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let mut args = vec![
        corpus.display().to_string(),
        format!(
            "-dict={}",
            root.join("fuzz").join("dict").join("toml.dict").display()
        ),
        format!("-max_len={MAX_LEN}"),
        format!("-timeout={INPUT_TIMEOUT}"),
        format!("-rss_limit_mb={RSS_LIMIT_MB}"),
        // libFuzzer joins this prefix and the input's name as text: keep the trailing `/`.
        format!("-artifact_prefix={}/", artifacts.display()),
        "-print_final_stats=1".to_string(),
    ];
    if let Some(seconds) = options.seconds {
        args.push(format!("-max_total_time={seconds}"));
    }
    if let Some(runs) = options.runs {
        args.push(format!("-runs={runs}"));
    }
    let binary = bins.join(target);
    eprintln!(
        "xtask: fuzz {target}: {seeds} seeds; $ {} {} > {}",
        binary.display(),
        args.join(" "),
        log_path.display()
    );
    let started = Instant::now();
    let status = Command::new(&binary)
        .args(&args)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let took = started.elapsed();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let saved = text
            .lines()
            .filter_map(|line| line.split_once("Test unit written to ").map(|(_, p)| p))
            .collect::<Vec<_>>();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        eprintln!(
            "xtask: fuzz {target}: the end of {}:\n{tail}",
            log_path.display()
        );
        bail!(
            "libFuzzer stopped ({status}) after {:.0}s; the input is saved at {}; rerun it with \
             `{} {}`",
            took.as_secs_f64(),
            if saved.is_empty() {
                "(none saved: see the log)".to_string()
            } else {
                saved.join(", ")
            },
            binary.display(),
            saved.first().copied().unwrap_or("INPUT")
        );
    }
    let figures = figures(&text);
    eprintln!(
        "xtask: fuzz {target}: ok, {} inputs in {} ({} exec/s), cov {}, ft {}, corpus {} \
         (from {seeds} seeds), seed {}",
        figures.inputs,
        humanize(took),
        figures.exec_per_sec,
        figures.cov,
        figures.ft,
        figures.corpus,
        figures.seed
    );
    Ok(())
}

/// Copies the checked-in seeds into the scratch corpus; returns how many there were.
fn copy_seeds(from: &Path, to: &Path) -> Result<usize> {
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?;
    let mut count = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", from.display()))?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
            count += 1;
        }
    }
    Ok(count)
}

/// The last status line (`#N DONE cov: C ft: F corp: K/...`), the final stats and the seed.
fn figures(log: &str) -> Figures {
    let mut figures = Figures::default();
    let number = |text: &str, key: &str| -> Option<u64> {
        let rest = text.split(key).nth(1)?;
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    for line in log.lines() {
        if line.starts_with('#') && line.contains("cov: ") {
            figures.cov = number(line, "cov:").unwrap_or(figures.cov);
            figures.ft = number(line, "ft:").unwrap_or(figures.ft);
            figures.corpus = number(line, "corp:").unwrap_or(figures.corpus);
        } else if let Some(n) = number(line, "stat::number_of_executed_units:") {
            figures.inputs = n;
        } else if let Some(n) = number(line, "stat::average_exec_per_sec:") {
            figures.exec_per_sec = n;
        } else if line.starts_with("INFO: Seed:") {
            figures.seed = number(line, "Seed:").unwrap_or(0);
        }
    }
    figures
}

/// `1m 23s` or `45.2s`.
fn humanize(took: Duration) -> String {
    let secs = took.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m {:02}s", took.as_secs() / 60, took.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_default_to_every_target_for_the_ci_time() -> Result<()> {
        let options = Options::parse(&[])?;
        assert_eq!(options.seconds, Some(DEFAULT_SECONDS));
        assert_eq!(options.runs, None);
        assert_eq!(options.targets, TARGETS);
        let options = Options::parse(&args("--runs 1000000 lockfile pipeline"))?;
        assert_eq!(options.seconds, None);
        assert_eq!(options.runs, Some(1_000_000));
        assert_eq!(options.targets, ["lockfile", "pipeline"]);
        assert!(Options::parse(&args("--time")).is_err());
        assert!(Options::parse(&args("--time 0")).is_err());
        assert!(Options::parse(&args("nosuch")).is_err());
        Ok(())
    }

    #[test]
    fn figures_come_from_the_last_status_line_and_the_final_stats() {
        let log = "INFO: Seed: 1234567\n\
                   #2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #1000000\tDONE   cov: 2071 ft: 9313 corp: 1422/170Kb lim: 8192 exec/s: 2164 rss: 412Mb\n\
                   Done 1000000 runs in 462 second(s)\n\
                   stat::number_of_executed_units: 1000000\n\
                   stat::average_exec_per_sec:     2164\n";
        assert_eq!(
            figures(log),
            Figures {
                inputs: 1_000_000,
                exec_per_sec: 2164,
                cov: 2071,
                ft: 9313,
                corpus: 1422,
                seed: 1_234_567,
            }
        );
    }

    #[test]
    fn durations_read_like_the_step_timings() {
        assert_eq!(humanize(Duration::from_millis(45_200)), "45.2s");
        assert_eq!(humanize(Duration::from_secs(83)), "1m 23s");
    }
}
