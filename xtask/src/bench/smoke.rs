//! `cargo xtask bench --smoke`, CI's bench-smoke step: every benchmark once at its smallest — one
//! round, a few files, stages and MiB — on the debug build CI already made (the `sluice` binary
//! and the bench executables of `cargo test --no-run`, same environment, so nothing compiles
//! again), so that none rots. No figure is checked. A bench that fails fails the step, after the
//! others have run, each failure named.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::bench_executables;
use crate::bench_baselines::{self, Bench};
use crate::build_env::host_test_env;
use crate::{bench_big, bench_graph, bench_load, host_binary, sh, sh_env, steps};

/// The comparisons with the baselines at their smallest: one round, a 3-stage slope, 3 bare calls.
const BASELINES: bench_baselines::Size = bench_baselines::Size {
    rounds: 1,
    many_stages: 3,
    bare_calls: 3,
};

/// The graph engine's figures at their smallest: a few spin rounds, one pipeline of three
/// stages, one run of each side.
const GRAPH: bench_graph::Size = bench_graph::Size {
    spin_rounds: 10,
    stage_counts: &[3],
    repeats: 1,
};

/// What the benches run with.
struct Smoke {
    root: PathBuf,
    /// The debug `sluice`.
    sluice: PathBuf,
    /// The bench executables (`host/benches`), by name.
    benches: std::collections::BTreeMap<String, PathBuf>,
    /// The scripts' compiled-code cache, empty at the start of the pass.
    compiled: PathBuf,
}

impl Smoke {
    fn bench(&self, name: &str) -> Result<&Path> {
        self.benches
            .get(name)
            .map(PathBuf::as_path)
            .with_context(|| format!("cargo built no bench named {name}"))
    }

    /// Runs `host/benches/<name>.rs` with `args`.
    fn cargo_bench(&self, name: &str, args: &[&str]) -> Result<()> {
        sh(&self.root, &self.bench(name)?.to_string_lossy(), args)
    }

    /// Runs `bench/<script>` with bash: the debug `sluice` first, then `args`. The scripts share
    /// one compiled-code cache, so that each plugin is compiled once across them.
    fn script(&self, script: &str, args: &[&str], env: &[(&str, OsString)]) -> Result<()> {
        let path = Path::new("bench").join(script);
        let sluice = self.sluice.to_string_lossy();
        let mut all = vec![path.to_str().context("bench path")?, &sluice];
        all.extend(args);
        let mut env = env.to_vec();
        env.push(("SLUICE_CACHE_DIR", self.compiled.clone().into_os_string()));
        sh_env(&self.root, "bash", &all, &env)
    }
}

/// One bench of the pass: its name, the files under `bench/` and `host/benches/` it runs, and
/// how.
struct Part {
    name: &'static str,
    covers: &'static [&'static str],
    run: fn(&Smoke) -> Result<()>,
}

/// Every bench, in the order they run.
const PARTS: &[Part] = &[
    Part {
        name: "baselines",
        covers: &[
            "bench/hello.sh",
            "bench/hello-bwrap.sh",
            "bench/emit.sh",
            "bench/box.sh",
            "host/benches/bare_wasmtime.rs",
        ],
        run: |cx| {
            let bare = cx.bench("bare_wasmtime")?.to_path_buf();
            Bench::new(&cx.root, cx.sluice.clone(), bare, "bench-smoke", BASELINES).run()
        },
    },
    Part {
        name: "sealing",
        covers: &["host/benches/sealing.rs"],
        run: |cx| cx.cargo_bench("sealing", &["1"]),
    },
    Part {
        name: "stage_key",
        covers: &["host/benches/stage_key.rs"],
        run: |cx| cx.cargo_bench("stage_key", &["100", "1"]),
    },
    Part {
        name: "stage_overhead",
        covers: &["host/benches/stage_overhead.rs"],
        // Not the Python and JavaScript plugins: compiling them takes over 40 s each.
        run: |cx| cx.cargo_bench("stage_overhead", &["1", "--languages=Rust,C"]),
    },
    Part {
        name: "bench-load",
        covers: &[],
        run: |cx| bench_load::crowds(&cx.root, &cx.sluice, 2).map(drop),
    },
    Part {
        name: "bench-big",
        covers: &["bench/big.sh"],
        run: |cx| bench_big::artifact(&cx.root, &cx.sluice, 1).map(drop),
    },
    Part {
        name: "bench-graph",
        covers: &[],
        run: |cx| bench_graph::figures(&cx.root, &cx.sluice, &GRAPH),
    },
    Part {
        name: "dist.sh",
        covers: &["bench/dist.sh", "bench/common.sh"],
        // 2 pipelines, up to 2 agents, 1 round.
        run: |cx| cx.script("dist.sh", &["2", "2", "1"], &[]),
    },
    Part {
        name: "workspace-shipping.sh",
        covers: &["bench/workspace-shipping.sh"],
        // 20 files.
        run: |cx| cx.script("workspace-shipping.sh", &["20"], &[]),
    },
    Part {
        name: "rust-crate-state.sh",
        covers: &["bench/rust-crate-state.sh"],
        // 1 round, on the small example crate instead of semver from crates.io.
        run: |cx| cx.script("rust-crate-state.sh", &["1"], &small_crate(&cx.root)),
    },
    Part {
        name: "shared-cache.sh",
        covers: &["bench/shared-cache.sh"],
        run: |cx| cx.script("shared-cache.sh", &["1"], &small_crate(&cx.root)),
    },
];

/// `BENCH_CRATE`: the state benchmarks build examples/rust-crate (no dependencies).
fn small_crate(root: &Path) -> [(&'static str, OsString); 1] {
    [(
        "BENCH_CRATE",
        root.join("examples").join("rust-crate").into_os_string(),
    )]
}

pub fn run(root: &Path) -> Result<()> {
    let benches = bench_executables(
        root,
        &["test", "--package", "sluice", "--benches", "--no-run"],
        &host_test_env(root)?,
    )?;
    let compiled = crate::target_dir(root).join("bench-smoke").join("compiled");
    let _ = std::fs::remove_dir_all(&compiled);
    let cx = Smoke {
        root: root.to_path_buf(),
        sluice: host_binary(root, "debug"),
        benches,
        compiled,
    };
    let mut failed = Vec::new();
    for part in PARTS {
        eprintln!("xtask: bench {} {:?}", part.name, part.covers);
        if let Err(err) = steps::timed_part(part.name, || (part.run)(&cx)) {
            eprintln!("xtask: {err:#}");
            failed.push(part.name);
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} benches failed: {}",
            failed.len(),
            PARTS.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bench added under `bench/` or `host/benches/` is run by the smoke pass, or this fails.
    #[test]
    fn every_bench_file_is_run_by_the_smoke_pass() -> Result<()> {
        let root = crate::repo_root()?;
        let covered: Vec<&str> = PARTS
            .iter()
            .flat_map(|p| p.covers.iter().copied())
            .collect();
        let mut missing = Vec::new();
        for folder in ["bench", "host/benches"] {
            for entry in std::fs::read_dir(root.join(folder))? {
                let file = format!("{folder}/{}", entry?.file_name().to_string_lossy());
                if !covered.contains(&file.as_str()) {
                    missing.push(file);
                }
            }
        }
        assert!(missing.is_empty(), "not in the smoke pass: {missing:?}");
        Ok(())
    }
}
