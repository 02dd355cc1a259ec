//! How the hostile suite proves containment by state: canaries no file or output holds, what a
//! stopped attack leaves on disk and in the record, files only the host has.

use std::path::{Path, PathBuf};

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus;
use sluice::model::report::StageStatus::{Crashed, Error, Failed};

use crate::support::{
    Outcome, Pipeline, Ran, Sandbox, Stage, all_text_under, assert_first_stage_intact, stopped_at,
};

/// `what` and 24 hex digits no other call, test or run shares: a canary nothing holds by chance.
pub(super) fn unique(what: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!(
        "{what}/{}/{now}/{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    );
    let digest = format!("{:x}", Sha256::digest(seed));
    format!("{what}-{}", &digest[..24])
}

/// None of `needles` is in sluice's stdout or stderr or in any file under `dir` but `except`
/// (where the test itself put one): where a leak would land, the plugin's loot, its log, the
/// report and the journal included.
#[track_caller]
pub(super) fn assert_nowhere(dir: &Path, ran: &Ran, needles: &[&str], except: &[&Path]) {
    for needle in needles {
        assert!(
            !ran.stdout.contains(needle) && !ran.stderr.contains(needle),
            "`{needle}` in what sluice printed\n{}",
            ran.stderr
        );
        for (file, text) in all_text_under(dir) {
            assert!(
                except.contains(&file.as_path()) || !text.contains(needle),
                "`{needle}` in {}",
                file.display()
            );
        }
    }
}

/// Every entry (files, links, folders) under `dir`; none when it does not exist.
pub(super) fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
            found.push(entry.path());
        }
    }
    found
}

/// A stage named `attack` running the built `plugin`.
pub(super) fn attack(plugin: &str) -> Stage {
    Stage::new("attack", plugin)
}

/// Runs `stage` between `code` and `release` in a fresh sandbox.
pub(super) fn run_attack(stage: Stage) -> Result<Outcome> {
    Sandbox::new()?.run_pipeline(&Pipeline::three_stage(stage))
}

/// What a stopped attack leaves: the first stage's artifacts on disk with their recorded digests,
/// no output recorded for the attack stage (nor its loot on disk), and nothing of the next stage.
/// (A stage that did not succeed may leave unpublished regular files in its folder; tests of
/// limits that delete say so themselves.)
#[track_caller]
pub(super) fn assert_contained(run: &Outcome) -> Result<()> {
    assert_first_stage_intact(&run.report)?;
    for stage in ["attack", "release"] {
        let recorded = &run.stage(stage).outputs;
        assert!(recorded.is_empty(), "{stage} recorded {recorded:?}");
    }
    let loot = run.run_dir().join("artifacts/attack/loot.txt");
    assert!(!loot.exists(), "the attack left loot");
    let left = entries_under(&run.run_dir().join("artifacts/release"));
    assert!(left.is_empty(), "release left {left:?}");
    Ok(())
}

/// A run refused before any stage ran: no stage recorded an output or left anything on disk.
#[track_caller]
pub(super) fn assert_nothing_ran(run: &Outcome) {
    for stage in &run.report.stages {
        assert!(
            stage.outputs.is_empty(),
            "{} recorded {:?}",
            stage.name,
            stage.outputs
        );
    }
    let left = entries_under(&run.run_dir().join("artifacts"));
    assert!(left.is_empty(), "left {left:?}");
}

/// The attack was contained (state first: [`assert_contained`]); then the attack stage ended with
/// `status`, the run with its exit code, the next stage was skipped, and the message has
/// `expected`.
#[track_caller]
pub(super) fn assert_stopped(run: &Outcome, status: StageStatus, expected: &[&str]) -> Result<()> {
    assert_contained(run)?;
    let exit_code = match status {
        Failed => exit_codes::STAGE_FAILED,
        Crashed => exit_codes::STAGE_CRASHED,
        Error => exit_codes::STAGE_ERROR,
        other => unreachable!("an attack does not end {other:?}"),
    };
    run.assert_stages(exit_code, &stopped_at("attack", status))
        .assert_message("attack", expected);
    Ok(())
}

/// A file only the host has, outside every folder a stage is given (beside the runs folder),
/// holding a canary; and the paths a plugin could try to reach it by.
pub(super) fn host_only_file(sandbox: &Sandbox) -> Result<(PathBuf, String, Vec<String>)> {
    let file = sandbox.path().join("host-only/canary.txt");
    std::fs::create_dir_all(sandbox.path().join("host-only"))?;
    let canary = unique("canary-file");
    std::fs::write(&file, &canary)?;
    let absolute = file.display().to_string();
    let below_root = absolute.trim_start_matches('/');
    let climb = "../".repeat(24);
    let paths = vec![
        absolute.clone(),
        format!("/out/{climb}{below_root}"),
        format!("/in/{climb}{below_root}"),
        format!("{climb}{below_root}"),
    ];
    Ok((file, canary, paths))
}
