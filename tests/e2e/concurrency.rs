//! Many sluices at once on shared state: runs of one pipeline side by side (one runs folder,
//! compiled cache, plugin store, lock file and cache key, all starting empty), and a run beside
//! `sluice lock --update` on the same lock file — nothing corrupted, no lock update lost — and
//! two hundred runs of the hello example at once, all green.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sluice::model::report::{RunReport, RunStatus};

use crate::support::{
    Pipeline, RegistryServer, Sandbox, Stage, plugin, push, repo_root, sha256_of, table,
};

fn spawn(sandbox: &Sandbox, args: &[&str], key: &Path) -> Result<Child> {
    sandbox
        .command(args)
        .env("SLUICE_CACHE_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start sluice")
}

/// Waits for a child; its exit code and what it printed.
fn finish(child: Child) -> Result<(i32, String)> {
    let output = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains("panicked"), "sluice panicked:\n{text}");
    Ok((output.status.code().unwrap_or(-1), text))
}

fn run_folders(runs: &Path) -> Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(runs)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            folders.push(entry.path());
        }
    }
    Ok(folders)
}

#[test]
fn runs_of_one_pipeline_at_once_share_every_folder_without_corruption() -> Result<()> {
    let registry = RegistryServer::start()?;
    let publisher = Sandbox::new()?;
    let reference = registry.reference("acme/upper:1.0.0");
    let manifest = push(&publisher, &plugin("text-transform")?, &reference)?;
    // Its own compiled cache, plugin store, runs folder, lock file and cache key: all empty, so
    // every run compiles, fetches, pins and creates the key at the same moment.
    let sandbox = Sandbox::with_own_cache()?;
    let key = sandbox.path().join("keys").join("compiled-cache.key");
    let pipeline = sandbox.write(
        &Pipeline::new("side-by-side")
            .stage(
                Stage::new("code", "emit")
                    .config("files", table([("greeting.txt", "hello side by side\n")])),
            )
            .stage(
                Stage::with_plugin("build", &reference)
                    .inputs(["code/*"])
                    .config("op", "upper"),
            ),
    )?;
    let file = pipeline.display().to_string();
    let children = (0..4)
        .map(|_| spawn(&sandbox, &["run", &file, "--format", "plain"], &key))
        .collect::<Result<Vec<_>>>()?;
    for child in children {
        let (code, text) = finish(child)?;
        assert_eq!(code, 0, "a run beside the others failed:\n{text}");
    }

    // Four whole run folders: each report final, each output the bytes it records.
    let folders = run_folders(&sandbox.runs_dir())?;
    assert_eq!(folders.len(), 4, "{folders:?}");
    for folder in &folders {
        let report = RunReport::read(&folder.join("report.json"))?;
        assert_eq!(report.status, RunStatus::Succeeded, "{}", folder.display());
        assert!(!folder.join("journal.jsonl").exists());
        let outputs: Vec<_> = report.stages.iter().flat_map(|s| &s.outputs).collect();
        assert_eq!(outputs.len(), 2);
        for output in outputs {
            assert_eq!(sha256_of(&folder.join(&output.path))?, output.sha256);
        }
    }
    // The lock pins the tag; every blob in the shared store is the bytes its name says.
    let lock = std::fs::read_to_string(pipeline.with_extension("lock"))?;
    assert!(lock.contains(&manifest), "{lock}");
    let blobs = sandbox
        .path()
        .join("plugin-store")
        .join("blobs")
        .join("sha256");
    let mut checked = 0;
    for blob in std::fs::read_dir(&blobs)? {
        let blob = blob?.path();
        let name = blob.file_name().map(|n| n.to_string_lossy().into_owned());
        assert_eq!(Some(sha256_of(&blob)?), name, "{}", blob.display());
        checked += 1;
    }
    assert!(
        checked >= 2,
        "manifest and component expected in {}",
        blobs.display()
    );

    // A later run agrees with all of it: the lock is current, both plugins come from the
    // compiled cache the four wrote at once, under the key they made at once.
    let (ran, report) = sandbox.run_with_env(
        &pipeline,
        &[("SLUICE_CACHE_KEY", key.to_str().context("key path")?)],
    )?;
    ran.assert_exit(0);
    for stage in &report.stages {
        assert_eq!(
            stage.plugin.cache_hit,
            Some(true),
            "{}: {}",
            stage.name,
            ran.stderr
        );
    }
    Ok(())
}

#[test]
fn a_run_beside_lock_update_loses_neither_update() -> Result<()> {
    let registry = RegistryServer::start()?;
    let publisher = Sandbox::new()?;
    let moving = registry.reference("acme/moving:1.0.0");
    let added = registry.reference("acme/added:1.0.0");
    let (upper, sum) = (plugin("text-transform")?, plugin("checksum")?);
    push(&publisher, &sum, &added)?;
    let sandbox = Sandbox::new()?;
    let key = sandbox.path().join("compiled-cache.key");
    let moving_stage = || {
        Stage::with_plugin("moving", &moving)
            .inputs(["code/*"])
            .config("op", "upper")
    };
    let code = || Stage::new("code", "emit").config("files", table([("greeting.txt", "hello\n")]));
    // Each round: the lock pins `moving` only; the tag then moves; `sluice lock --update` (which
    // moves the pin) and a run of the pipeline, which now also names `added` (so the run writes
    // the lock too), start together. Whichever goes second must see what the first wrote.
    for round in 0..4 {
        let before = push(&publisher, &upper, &moving)?;
        let pipeline =
            sandbox.write(&Pipeline::new("racing").stage(code()).stage(moving_stage()))?;
        let file = pipeline.display().to_string();
        let _ = std::fs::remove_file(pipeline.with_extension("lock"));
        sandbox.sluice(&["lock", &file])?.assert_exit(0);
        assert!(std::fs::read_to_string(pipeline.with_extension("lock"))?.contains(&before));
        sandbox.write(
            &Pipeline::new("racing")
                .stage(code())
                .stage(moving_stage())
                .stage(Stage::with_plugin("added", &added).inputs(["code/*"])),
        )?;
        let after = push(&publisher, &sum, &moving)?;
        assert_ne!(before, after);

        let update = spawn(&sandbox, &["lock", &file, "--update"], &key)?;
        let run = spawn(&sandbox, &["run", &file, "--format", "plain"], &key)?;
        let (update_code, update_text) = finish(update)?;
        assert_eq!(update_code, 0, "round {round}: {update_text}");
        // The run's own outcome depends on which pin it read (the moved tag is another plugin);
        // what matters here is the lock it leaves.
        finish(run)?;

        let lock = std::fs::read_to_string(pipeline.with_extension("lock"))?;
        assert!(
            lock.contains(&after) && !lock.contains(&before),
            "round {round}: the update of `moving` was lost:\n{lock}"
        );
        assert!(lock.contains("acme/added"), "round {round}:\n{lock}");
    }
    Ok(())
}

#[test]
fn two_hundred_runs_of_hello_at_once_all_succeed() -> Result<()> {
    const AT_ONCE: usize = 200;
    let sandbox = Sandbox::new()?;
    let hello = repo_root()
        .join("examples")
        .join("hello")
        .join("pipeline.toml");
    let file = hello.display().to_string();
    // One run first, so the crowd shares a warm compiled cache as runs on a CI machine do.
    let (ran, _) = sandbox.run(&hello)?;
    ran.assert_exit(0);
    let runs = sandbox.path().join("crowd");
    let runs_arg = runs.display().to_string();
    let args = ["run", &file, "--format", "plain", "--runs-dir", &runs_arg];
    let mut children = Vec::with_capacity(AT_ONCE);
    for _ in 0..AT_ONCE {
        children.push(
            sandbox
                .command(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot start sluice")?,
        );
    }
    // Every run ends, and ends green, well within CI's patience.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut failures = Vec::new();
    for child in &mut children {
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                break child.kill().and_then(|()| child.wait())?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            failures.push(format!("{status}: {stderr}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let folders = run_folders(&runs)?;
    assert_eq!(folders.len(), AT_ONCE);
    for folder in &folders {
        let report = RunReport::read(&folder.join("report.json"))?;
        assert_eq!(report.status, RunStatus::Succeeded, "{}", folder.display());
        assert_eq!(report.stages.len(), 4);
    }
    // `latest` names one of them (each run moved it by rename; none left it dangling).
    let latest = std::fs::read_link(runs.join("latest"))?;
    assert!(
        runs.join(&latest).join("report.json").is_file(),
        "{latest:?}"
    );
    Ok(())
}
