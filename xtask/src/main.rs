//! The project's driver, behind the README's commands: installs what the build needs, builds the
//! guest plugins, runs the demo, the checks, the test suite and the benchmarks. Plain
//! `std::process::Command` calls to rustup and cargo, each printed before it runs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod bench_baselines;
mod bench_big;
mod bench_graph;
mod bench_load;
mod bench_projects;
mod bench_serve;
mod build_env;
mod c_bindings;
mod cargo_tools;
mod ci;
mod demo;
mod fuzz;
mod install;
mod layers;
mod measure;
mod plugins;
mod polyglot;
mod readme;
mod services;
mod steps;

const USAGE: &str = "\
usage: cargo xtask <command>

  demo          set up, build, and run the demo: the six-phase website pipeline against a real
                nginx on 127.0.0.1:18080, signed stages shared through a real OCI registry on
                127.0.0.1:15000 (examples/shared), then examples/hello
  test          what CI runs: fmt, setup, layers, C bindings stamp, the guest plugins (built with
                clippy), the host (one clippy-linted build), every unit and end-to-end test with
                the README's runnable blocks beside them, fuzzing, the benchmarks once
  lint          fmt, layers, C bindings stamp and clippy (host and guests), without building
  layers [DIR]  the module layer and import-cycle check of host/src and config/src, and the
                import-cycle check of the sluice binary (host/src/cli) and of xtask/src (in DIR,
                by default this checkout)
  c-bindings    regenerate plugins/c/bindings from wit/ with the pinned wit-bindgen
  wkg-interop   install the pinned `wkg` and run the sharing test against it (not part of `test`)
  plugins       build the guest plugins into plugins/dist/
  setup         install the wasm32-wasip2 target, nginx and docker-registry; build the plugins
  bench         release build; every figure beside its baseline in one run: sluice against a
                shell script, bubblewrap and bare wasmtime (wall, per-stage slope, peak memory),
                plugin loads per guest language, the graph engine's figures; `--smoke`: every
                benchmark once at its smallest on the debug build (what CI runs; not for timing)
  bench-baselines  only the comparisons with the shell script, bubblewrap and bare wasmtime
  bench-graph   only the graph engine's figures
  bench-big     only a 1 GiB artifact through exec, checksum and release (128 MiB per stage),
                beside dd + openssl + tar/gzip (SLUICE_BENCH_BIG_MIB=N for another size)
  bench-load    only 200 runs of the hello example at once (SLUICE_BENCH_LOAD=N for another
                count), beside as many shell scripts at once
  bench-projects [--project rust|npm|python] [--rounds N] [--sluice BINARY]
                real projects as published (semver from crates.io, deep-is from npm,
                more-itertools from PyPI) through `sluice init` + `sluice run` beside the same
                commands by hand, release build, alternating rounds (3 by default): cold, nothing
                changed, one file touched, with the stages the stage cache served
  bench-serve   `sluice serve` on 10,000 runs: the runs page's and /api/runs's median times,
                and a 100 MB log streamed with the server's peak memory (release build, or the
                binary SLUICE_BIN names)
  readme        the README's runnable blocks, in order, in a folder outside the checkout with the
                built sluice installed alone on PATH (part of `test`)
  install [--root DIR]
                the Rust plugins (the binary carries the stages `sluice init` writes), then
                `cargo install --path host --locked` (release; into ~/.cargo/bin or DIR/bin)
                with the build's folders rewritten out of the binary, then checks that it names
                none of them
  fuzz [--time SECONDS] [--runs N] [TARGET...]
                build the libFuzzer targets in fuzz/ (stable Rust) and run each from a copy of
                its checked-in corpus, 10 s each by default (what CI runs): pipeline, lockfile,
                plugin_ref, diagnostic
";

fn main() {
    if let Err(err) = run() {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root()?;
    match args.first().map(String::as_str) {
        Some("demo") => demo::demo(&root),
        Some("test") => ci::test(&root),
        Some("lint") => ci::lint(&root),
        Some("layers") => {
            let dir = args.get(1).map_or_else(|| root.clone(), PathBuf::from);
            layers::check(&dir)
        }
        Some("c-bindings") => c_bindings::generate(&root, &toolchains_dir(&root)),
        Some("wkg-interop") => ci::wkg_interop(&root),
        Some("plugins") => plugins::build(&root, plugins::Lint::No),
        Some("setup") => setup(&root),
        Some("bench") => bench::bench(&root, args.iter().any(|a| a == "--smoke")),
        // Only the comparisons with the baselines (part of `bench`).
        Some("bench-baselines") => bench::baselines(&root),
        Some("bench-projects") => bench_projects::bench(&root, &args[1..]),
        Some("readme") => readme::run(&root),
        Some("install") => install::install(&root, &args[1..]),
        Some("fuzz") => fuzz::fuzz(&root, &fuzz::Options::parse(&args[1..])?),
        // Parts of `bench`, each on a fresh release build: the big-artifact pipeline beside
        // native commands, many runs of the hello example at once, the graph engine's figures.
        Some("bench-big") => {
            with_release_binary(&root, |sluice| bench_big::bench(&root, sluice).map(drop))
        }
        Some("bench-load") => {
            with_release_binary(&root, |sluice| bench_load::bench(&root, sluice).map(drop))
        }
        // Not part of `bench`: `sluice serve` on 10,000 runs and a 100 MB log.
        Some("bench-serve") => match std::env::var_os("SLUICE_BIN") {
            Some(sluice) => bench_serve::bench(Path::new(&sluice)),
            None => with_release_binary(&root, bench_serve::bench),
        },
        Some("bench-graph") => {
            with_release_binary(&root, |sluice| bench_graph::bench(&root, sluice))
        }
        _ => {
            eprint!("{USAGE}");
            bail!("unknown or missing command");
        }
    }
}

/// Builds the release `sluice` and hands its path to `bench`.
fn with_release_binary(root: &Path, bench: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    sh_env(
        root,
        "cargo",
        &["build", "--release", "--package", "sluice"],
        &build_env::remap_env(),
    )?;
    bench(&host_binary(root, "release"))
}

fn repo_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .context("xtask is not inside the repository")
}

/// Runs a command in `dir`, echoing it, failing with its exit status.
fn sh(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    sh_env::<&str>(dir, program, args, &[])
}

/// [`sh`] with extra environment variables (echoed too).
fn sh_env<V: AsRef<OsStr>>(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, V)],
) -> Result<()> {
    let shown: Vec<String> = env
        .iter()
        .map(|(key, value)| format!("{key}={} ", value.as_ref().to_string_lossy()))
        .collect();
    eprintln!("xtask: $ {}{program} {}", shown.concat(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(key, value)| (key, value.as_ref())))
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot start `{program}`: is it installed and on PATH?"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn setup(root: &Path) -> Result<()> {
    plugins::ensure_wasm_target(root)?;
    services::ensure_debian_tools(root)?;
    plugins::build(root, plugins::Lint::No)
}

/// Where cargo builds the root workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Where the guest workspace builds: beside a shared CARGO_TARGET_DIR when one is set.
fn plugin_target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm-plugins"),
        None => root.join("plugins").join("target"),
    }
}

/// Where the guest toolchains for Python, JavaScript and C (and pinned cargo tools) live.
fn toolchains_dir(root: &Path) -> PathBuf {
    target_dir(root).join("toolchains")
}

fn host_binary(root: &Path, profile: &str) -> PathBuf {
    target_dir(root).join(profile).join("sluice")
}
