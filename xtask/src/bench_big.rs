//! `cargo xtask bench-big`: a big build output through a pipeline — produced by an `exec` stage
//! (dd), checksummed by the checksum stage, packed by the release stage, every stage under
//! `memory = "128 MiB"` — beside the native commands doing the same (`bench/big.sh`: dd, openssl,
//! tar + gzip). Once with compressible data (zeros), once with incompressible (random). Wall time
//! and peak memory of each whole process (`wait4`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::measure::measure;

/// Size of the artifact, unless `SLUICE_BENCH_BIG_MIB` says otherwise.
const DEFAULT_MIB: u64 = 1024;

fn pipeline(root: &Path, source: &str, mib: u64) -> String {
    let dist = root.join("plugins").join("dist");
    let plugin = |name: &str| dist.join(format!("{name}.wasm")).display().to_string();
    format!(
        r#"version = 1
[pipeline]
name = "big"
limits = {{ memory = "128 MiB" }}

[[stage]]
name = "build"
plugin = "{exec}"
[stage.allow]
exec = ["dd"]
[stage.config]
program = "dd"
args = ["if={source}", "of=${{out}}/raw.bin", "bs=1M", "count={mib}", "status=none"]
collect = [{{ from = "/out/raw.bin", to = "big.bin" }}]

[[stage]]
name = "sums"
plugin = "{checksum}"
inputs = ["build/big.bin"]

[[stage]]
name = "release"
plugin = "{release}"
inputs = ["build/big.bin"]
[stage.config]
name = "big"
version = "1.0.0"
"#,
        exec = plugin("exec"),
        checksum = plugin("checksum"),
        release = plugin("release"),
    )
}

/// Runs the comparison with `sluice` (a built binary) on an artifact of `SLUICE_BENCH_BIG_MIB`
/// MiB (1024 unless set); prints and returns the table.
pub fn bench(root: &Path, sluice: &Path) -> Result<String> {
    let mib = std::env::var("SLUICE_BENCH_BIG_MIB")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MIB);
    artifact(root, sluice, mib)
}

/// The comparison on an artifact of `mib` MiB; prints and returns the table.
pub fn artifact(root: &Path, sluice: &Path, mib: u64) -> Result<String> {
    let scratch = crate::target_dir(root).join("bench-big");
    let mut table = format!(
        "| {mib} MiB artifact | native (bench/big.sh) ms | sluice ms | sluice/native | native peak RSS MiB | sluice peak RSS MiB |\n|---|---:|---:|---:|---:|---:|\n"
    );
    for (label, source) in [("zeros", "/dev/zero"), ("random", "/dev/urandom")] {
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)?;
        let file = scratch.join(format!("{label}.toml"));
        std::fs::write(&file, pipeline(root, source, mib))?;
        let native_dir: PathBuf = scratch.join("native");
        let native = measure(
            Command::new(root.join("bench").join("big.sh"))
                .arg(&native_dir)
                .arg(source)
                .arg(mib.to_string()),
        )?;
        let _ = std::fs::remove_dir_all(&native_dir);
        let sluice_run = measure(
            Command::new(sluice)
                .arg("run")
                .arg(&file)
                .args(["--quiet", "--format", "plain", "--no-stage-cache"])
                .arg("--runs-dir")
                .arg(scratch.join("runs"))
                .arg("--cache-dir")
                .arg(scratch.join("compiled"))
                .env("SLUICE_CACHE_KEY", scratch.join("cache.key"))
                .current_dir(root),
        )?;
        let row = format!(
            "| {label} | {:.0} | {:.0} | {:.2}× | {:.1} | {:.1} |\n",
            native.wall_ms,
            sluice_run.wall_ms,
            sluice_run.wall_ms / native.wall_ms,
            native.peak_mib(),
            sluice_run.peak_mib()
        );
        eprint!("{row}");
        table.push_str(&row);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{table}");
    Ok(table)
}
