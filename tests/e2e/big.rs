//! Big artifacts stream: a file several times larger than any stage's memory limit is produced by
//! a host program, collected, checksummed and packed by wasm stages under a small `memory` limit.
//! Were any stage to hold the file in memory, the limit would stop it.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use sluice::model::report::RunStatus;

use crate::support::{Pipeline, Sandbox, Stage, table};

const MIB: u64 = 1024 * 1024;
/// Large enough to be 8× the stages' memory limit, small enough to keep CI quick.
const BIG_MIB: u64 = 192;

/// sha256 of a file, read through a buffer (the test holds no big file in memory either).
fn streamed_sha256(path: &Path) -> Result<(String, u64)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok((format!("{:x}", hasher.finalize()), size));
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
}

#[test]
fn a_file_eight_times_the_memory_limit_flows_through_exec_checksum_and_release() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let limit = || table([("memory", "24 MiB")]);
    let count = format!("count={BIG_MIB}");
    let pipeline = Pipeline::new("big")
        .stage(
            Stage::new("build", "exec")
                .allow("exec", ["dd"])
                .set("limits", limit())
                .config("program", "dd")
                .config(
                    "args",
                    ["if=/dev/zero", "of=${out}/raw.bin", "bs=1M", count.as_str()],
                )
                .config(
                    "collect",
                    [table([("from", "/out/raw.bin"), ("to", "big.bin")])],
                ),
        )
        .stage(
            Stage::new("sums", "checksum")
                .inputs(["build/big.bin"])
                .set("limits", limit())
                // Re-hashed inside the sandbox, streaming: 8× its memory limit.
                .config("rehash", true),
        )
        .stage(
            Stage::new("release", "release")
                .inputs(["build/big.bin"])
                .set("limits", limit())
                .config("name", "big")
                .config("version", "1.0.0"),
        );
    let run = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(
        run.report.status,
        RunStatus::Succeeded,
        "{}",
        run.describe()
    );

    // The collected file is the program's bytes, whole, moved (not copied) to its name.
    let big = &run.report.stages[0].outputs;
    let big = big
        .iter()
        .find(|o| o.name == "big.bin")
        .context("big.bin not published")?;
    assert_eq!(big.size, BIG_MIB * MIB);
    let (digest, size) = streamed_sha256(&run.run_dir().join(&big.path))?;
    assert_eq!(
        (digest.as_str(), size),
        (big.sha256.as_str(), BIG_MIB * MIB)
    );
    assert!(!run.run_dir().join("artifacts/build/raw.bin").exists());

    // The checksum stage hashed it, streaming, to the same digest.
    let sums = std::fs::read_to_string(run.run_dir().join("artifacts/sums/SHA256SUMS"))?;
    assert_eq!(sums, format!("{}  build/big.bin\n", big.sha256));

    // The release archive is a real .tar.gz holding the same bytes, and its recorded digest is
    // the archive's.
    let release = &run.report.stages[2];
    let archive = release
        .outputs
        .iter()
        .find(|o| o.name == "big-1.0.0.tar.gz")
        .context("no archive")?;
    let archive_path = run.run_dir().join(&archive.path);
    assert_eq!(streamed_sha256(&archive_path)?.0, archive.sha256);
    let unpacked = sandbox.path().join("unpacked");
    std::fs::create_dir_all(&unpacked)?;
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&archive_path)
        .arg("-C")
        .arg(&unpacked)
        .status()?;
    assert!(status.success());
    assert_eq!(streamed_sha256(&unpacked.join("big.bin"))?.0, big.sha256);
    let release_sums = std::fs::read_to_string(run.run_dir().join("artifacts/release/SHA256SUMS"))?;
    assert!(
        release_sums.contains(&format!("{}  big-1.0.0.tar.gz", archive.sha256)),
        "{release_sums}"
    );
    Ok(())
}
