//! Corrupt state: a truncated report or journal, cache entries replaced by folders or garbage, an
//! unreadable cache folder, plugin-store blobs replaced by folders or garbage — each gives a clear error, a clean miss or a run without the cache,
//! never a panic and never a wrong output.

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus;

use crate::support::{
    Pipeline, RegistryServer, Sandbox, Stage, plugin, push, repo_root, sha256_of, table,
};

#[test]
fn a_truncated_report_is_a_clear_error_for_resume_and_is_skipped_by_runs() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = Pipeline::new("gate")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(Stage::new("ship", "checksum").set("approval", "manual"));
    let run = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(
        run.ran.code,
        exit_codes::AWAITING_APPROVAL,
        "{}",
        run.describe()
    );
    let report = run.run_dir().join("report.json");
    let text = std::fs::read_to_string(&report)?;
    std::fs::write(&report, &text[..text.len() / 2])?;
    let id = run.report.run_id.clone();
    sandbox
        .sluice(&["resume", &id, "--approve", "ship"])?
        .assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["is not a sluice run report"]);
    let listed = sandbox.sluice(&["runs"])?;
    listed.assert_exit(exit_codes::SUCCESS);
    assert!(!listed.stdout.contains(&id), "{}", listed.stdout);
    Ok(())
}

#[test]
fn cache_entries_replaced_by_folders_or_garbage_are_misses() -> Result<()> {
    let sandbox = Sandbox::with_own_cache()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let (first, cold) = sandbox.run(&pipeline)?;
    assert_eq!(first.code, 0, "{}", first.stderr);
    // Compiled code: every entry becomes a folder.
    for dir in std::fs::read_dir(sandbox.cache_dir())?.flatten() {
        for entry in std::fs::read_dir(dir.path())?.flatten() {
            if entry.path().extension().is_some_and(|e| e == "cwasm") {
                std::fs::remove_file(entry.path())?;
                std::fs::create_dir(entry.path())?;
            }
        }
    }
    // Stage cache: one entry's record is garbage, another's files are a file.
    let stage_cache = sandbox.path().join("stage-cache");
    let mut entries: Vec<_> = std::fs::read_dir(&stage_cache)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("entry.json").is_file())
        .collect();
    entries.sort();
    assert!(entries.len() >= 2, "{entries:?}");
    std::fs::write(entries[0].join("entry.json"), "{ not json")?;
    std::fs::remove_dir_all(entries[1].join("files"))?;
    std::fs::write(entries[1].join("files"), "not a folder")?;
    let (second, warm) = sandbox.run(&pipeline)?;
    assert_eq!(second.code, 0, "{}", second.stderr);
    for (before, after) in cold.stages.iter().zip(&warm.stages) {
        assert_eq!(after.status, StageStatus::Succeeded, "{}", after.name);
        let digests = |r: &sluice::model::report::StageRecord| -> Vec<String> {
            r.outputs.iter().map(|o| o.sha256.clone()).collect()
        };
        assert_eq!(
            digests(before),
            digests(after),
            "{} changed its outputs",
            after.name
        );
    }
    Ok(())
}

#[test]
fn an_unreadable_cache_folder_is_said_once_and_the_run_goes_on_without_it() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::with_own_cache()?;
    let cache = sandbox.cache_dir();
    std::fs::create_dir_all(&cache)?;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o000))?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let runs = sandbox.runs_dir().display().to_string();
    let key = sandbox.path().join("cache.key");
    // In a user namespace of its own even root is held to the folder's mode, as any user is.
    let command = sandbox.command(&[
        "run",
        &pipeline.display().to_string(),
        "--format",
        "plain",
        "--runs-dir",
        &runs,
    ]);
    let binary = command.get_program().to_owned();
    let output = std::process::Command::new("unshare")
        .arg("--user")
        .arg(binary)
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("SLUICE_CACHE_KEY", &key)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr
            .matches("the compiled-code cache cannot be used")
            .count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");
    // Nothing was written into it (it could not be), and nothing else was made to stand in.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700))?;
    assert_eq!(std::fs::read_dir(&cache)?.count(), 0);
    Ok(())
}

#[test]
fn plugin_store_blobs_replaced_by_folders_or_garbage_are_fetched_again() -> Result<()> {
    let registry = RegistryServer::start()?;
    let publisher = Sandbox::new()?;
    let reference = registry.reference("acme/upper:1.0.0");
    let upper = plugin("text-transform")?;
    push(&publisher, &upper, &reference)?;
    let sandbox = Sandbox::new()?;
    let pipeline = Pipeline::new("store-faults")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::with_plugin("build", &reference)
                .inputs(["code/*"])
                .config("op", "upper"),
        );
    let first = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(first.ran.code, 0, "{}", first.describe());
    let blobs = sandbox.path().join("plugin-store/blobs/sha256");
    let stored: Vec<std::path::PathBuf> = std::fs::read_dir(&blobs)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    assert!(stored.len() >= 2, "{stored:?}");

    for (round, damage) in ["folder", "garbage"].into_iter().enumerate() {
        for blob in &stored {
            std::fs::remove_dir_all(blob).or_else(|_| std::fs::remove_file(blob))?;
            match damage {
                "folder" => std::fs::create_dir_all(blob.join("inside"))?,
                _ => std::fs::write(blob, b"not what the digest says")?,
            }
        }
        let again = sandbox.run_pipeline(&pipeline)?;
        assert_eq!(
            again.ran.code,
            0,
            "round {round} ({damage}): {}",
            again.describe()
        );
        // The plugin that ran is the published one, and the store holds its true bytes again.
        let build = &again.report.stages[1];
        assert_eq!(
            build.plugin.sha256.as_deref(),
            Some(sha256_of(&upper)?.as_str())
        );
        for blob in &stored {
            let name = blob.file_name().map(|n| n.to_string_lossy().into_owned());
            assert_eq!(Some(sha256_of(blob)?), name, "round {round} ({damage})");
        }
    }
    Ok(())
}
