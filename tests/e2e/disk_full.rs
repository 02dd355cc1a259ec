//! A disk that fills up, for real: each test runs sluice in a mount namespace (util-linux
//! `unshare`) where a folder is a tmpfs of a few hundred KiB to a few MiB, so writes there end
//! with ENOSPC exactly as on a full disk. What the tmpfs held is copied out for the checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sluice::exit_codes;
use sluice::model::report::{RunReport, RunStatus, StageStatus};

use crate::support::{Pipeline, Sandbox, Stage, sha256_of, table, take_env_of};

/// What a script run on a small disk printed, and a copy of that disk afterwards.
struct SmallDisk {
    output: String,
    copy: PathBuf,
}

/// Runs `script` with `sh` where `$DISK` is a fresh tmpfs of `size` (e.g. `2m`) and `$SLUICE` the
/// binary, in the sandbox's environment; then copies the disk's content out.
fn on_a_small_disk(sandbox: &Sandbox, size: &str, script: &str) -> Result<SmallDisk> {
    let disk = sandbox.path().join("disk");
    let copy = sandbox.path().join("disk-copy");
    std::fs::create_dir_all(&disk)?;
    std::fs::create_dir_all(&copy)?;
    let template = sandbox.command(&[]);
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={size} tmpfs \"$DISK\" || exit 99\n{script}\ncp -a \"$DISK/.\" \"$COPY/\""
        ))
        .env("DISK", &disk)
        .env("COPY", &copy)
        .env("SLUICE", template.get_program())
        .current_dir(sandbox.path());
    take_env_of(&mut command, &template);
    let output = command
        .output()
        .context("cannot start unshare (util-linux)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_ne!(output.status.code(), Some(99), "no tmpfs: {text}");
    assert!(!text.contains("panicked"), "sluice panicked:\n{text}");
    Ok(SmallDisk { output: text, copy })
}

/// Every file under `dir` whose name says it was left half-made (temporary files and entries).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp") || name.starts_with(".entry-") {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                folders.push(path);
            }
        }
    }
    found
}

#[test]
fn a_stage_that_fills_the_disk_says_so_and_the_record_is_still_written() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let big = "x".repeat(3 * 1024 * 1024);
    let pipeline = sandbox.write(
        &Pipeline::new("full")
            .stage(Stage::new("code", "emit").config("files", table([("small.txt", "small\n")])))
            .stage(
                Stage::new("big", "emit")
                    .inputs(["code/*"])
                    .config("files", table([("big.txt", big.as_str())])),
            )
            .stage(
                Stage::new("after", "emit")
                    .inputs(["big/*"])
                    .config("files", table([("a.txt", "a\n")])),
            ),
    )?;
    let disk = on_a_small_disk(
        &sandbox,
        "2m",
        &format!(
            "\"$SLUICE\" run {} --format plain --no-stage-cache --runs-dir \"$DISK/runs\"\necho \"EXIT=$?\"",
            pipeline.display()
        ),
    )?;
    assert!(
        disk.output
            .contains(&format!("EXIT={}", exit_codes::STAGE_FAILED)),
        "{}",
        disk.output
    );
    // Said plainly, with what to do.
    assert!(
        disk.output.contains("no space left on the disk holding"),
        "{}",
        disk.output
    );
    assert!(disk.output.contains("--runs-dir"), "{}", disk.output);

    // The record is whole: final, with every stage, and the finished stage's output intact.
    let runs = disk.copy.join("runs");
    let run = std::fs::read_dir(&runs)?
        .flatten()
        .find(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .context("no run folder")?;
    let report = RunReport::read(&run.join("report.json"))?;
    assert_eq!(report.status, RunStatus::Failed);
    let statuses: Vec<StageStatus> = report.stages.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StageStatus::Succeeded,
            StageStatus::Failed,
            StageStatus::Skipped
        ]
    );
    let message = report.stages[1].message.as_deref().unwrap_or_default();
    assert!(message.contains("no space left"), "{message}");
    let small = &report.stages[0].outputs[0];
    assert_eq!(sha256_of(&run.join(&small.path))?, small.sha256);
    // The half-written output is gone (it is what kept the record from fitting), and nothing
    // half-written is left anywhere.
    assert!(!run.join("artifacts/big/big.txt").exists());
    assert!(!run.join("journal.jsonl").exists());
    assert_eq!(leftovers(&disk.copy), Vec::<PathBuf>::new());
    Ok(())
}

#[test]
fn a_full_disk_leaves_no_half_written_cache_entry_and_a_later_run_uses_the_caches() -> Result<()> {
    let sandbox = Sandbox::with_own_cache()?;
    let pipeline = sandbox.write(
        &Pipeline::new("cache-full")
            .stage(
                Stage::new("code", "emit")
                    .set("cache", true)
                    .config("files", table([("small.txt", "small\n")])),
            )
            .stage(
                Stage::new("build", "text-transform")
                    .set("cache", true)
                    .inputs(["code/*"])
                    .config("op", "upper"),
            ),
    )?;
    let runs = sandbox.runs_dir().display().to_string();
    let report = sandbox.path().join("last.json").display().to_string();
    let run = format!(
        "\"$SLUICE\" run {} --format plain --runs-dir {runs} --report {report}",
        pipeline.display()
    );
    // The compiled cache and the stage cache live on the small disk; the first run finds it
    // full, the second after room was made, the third from both caches.
    let disk = on_a_small_disk(
        &sandbox,
        "1m",
        &format!(
            "export SLUICE_CACHE_DIR=\"$DISK/compiled\" SLUICE_STAGE_CACHE=\"$DISK/stage-cache\" \
             SLUICE_CACHE_KEY={key}\n\
             mkdir \"$DISK/compiled\"\n\
             dd if=/dev/zero of=\"$DISK/filler\" bs=64k 2>/dev/null\n\
             {run}\necho \"EXIT1=$?\"\n\
             rm \"$DISK/filler\"\n\
             {run}\necho \"EXIT2=$?\"\n\
             {run}\necho \"EXIT3=$?\"",
            key = sandbox.path().join("cache.key").display(),
        ),
    )?;
    for exit in ["EXIT1=0", "EXIT2=0", "EXIT3=0"] {
        assert!(disk.output.contains(exit), "{exit}:\n{}", disk.output);
    }
    assert!(
        disk.output
            .contains("cannot store the stage in the stage cache: No space left on device"),
        "{}",
        disk.output
    );
    assert_eq!(leftovers(&disk.copy), Vec::<PathBuf>::new());
    // The third run: both stages from the stage cache, their outputs the same bytes.
    let last = RunReport::read(Path::new(&report))?;
    assert_eq!(last.status, RunStatus::Succeeded);
    for stage in &last.stages {
        assert!(
            stage.cache.as_ref().is_some_and(|c| c.hit),
            "{}",
            stage.name
        );
    }
    // Every compiled entry on the disk is whole: a code file beside its tag, never alone.
    let compiled: Vec<PathBuf> = std::fs::read_dir(disk.copy.join("compiled"))?
        .flatten()
        .flat_map(|engine| {
            std::fs::read_dir(engine.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .collect();
    let code: Vec<&PathBuf> = compiled
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(code.len(), 2, "{compiled:?}");
    for file in code {
        assert!(file.with_extension("tag").is_file(), "{}", file.display());
    }
    Ok(())
}
