//! Flaky tests proven by identical inputs, on a crate made by `cargo new` and the pipeline
//! `sluice init` writes for it (checkout, cargo build, cargo-test), with one deliberately flaky
//! test: `sometimes` fails when the file `$FLAKY_MARKER` names is not there (and makes it),
//! and passes when it is. `changes` fails until `mode.txt` says `fixed`: a test that failed and
//! passed under different stage keys, which is a change, not a flake. One crate, one cargo
//! target volume, six runs:
//! 1. retries 0, marker absent, mode broken: the stage fails (key K1).
//! 2. mode fixed (key K2), marker absent: fails again, `sometimes` only.
//! 3. retries 1, marker absent: attempt 1 fails, attempt 2 passes — `sometimes` (and only it)
//!    is flaky in the record, the page and the run's JUnit (`flakyFailure`); `runs flaky`
//!    lists it under K2 (failed in runs 2 and 3, passed in 3) and not `changes` (K1 vs K2).
//!    With the marker inside the workspace the failed attempt changes the key: not marked.
//! 4. `sometimes` quarantined until 2099, marker absent, stage cache off: the stage fails only
//!    in it, so it counts as succeeded and says so.
//! 5. quarantined until 2000: `sluice check` and the run refuse, naming the entry and its date,
//!    before anything runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice::model::report::{RunReport, StageStatus};

use crate::support::{Ran, Sandbox, statuses};

const LIB: &str = r#"pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[cfg(test)]
mod tests {
    #[test]
    fn steady() {
        assert_eq!(super::add(2, 2), 4);
    }

    #[test]
    fn sometimes() {
        let marker = std::env::var("FLAKY_MARKER").unwrap_or_default();
        if !std::path::Path::new(&marker).exists() {
            std::fs::write(&marker, "seen").unwrap_or_default();
            panic!("no marker yet at {marker}");
        }
    }

    #[test]
    fn changes() {
        assert_eq!(include_str!("../mode.txt").trim(), "fixed");
    }
}
"#;

/// The pipeline `sluice init` wrote in `project`, moved beside it (`workspace` is the project,
/// so editing the pipeline — retries, quarantine — changes no stage key), with the test stage
/// given `FLAKY_MARKER` and `extra` lines.
fn pipeline_beside(sandbox: &Sandbox, written: &str, extra: &str) -> Result<PathBuf> {
    let text = written
        .replace("workspace = \".\"", "workspace = \"flakes\"")
        .replace("plugin = \".sluice/", "plugin = \"flakes/.sluice/");
    let (head, test) = text
        .split_once("name = \"test\"\n")
        .context("no test stage in the pipeline init wrote")?;
    let test = test.replacen(
        "[stage.allow]\n",
        &format!("{extra}[stage.allow]\nenv = [\"FLAKY_MARKER\"]\n"),
        1,
    );
    let path = sandbox.path().join("pipeline.toml");
    std::fs::write(&path, format!("{head}name = \"test\"\n{test}"))?;
    Ok(path)
}

/// `sluice run` with the marker's path set, its JUnit written to `junit.xml` in the sandbox.
fn run(
    sandbox: &Sandbox,
    pipeline: &Path,
    marker: &Path,
    more: &[&str],
) -> Result<(Ran, RunReport)> {
    let report_path = sandbox.path().join("report.json");
    let _ = std::fs::remove_file(&report_path);
    let mut args = sandbox.run_args(pipeline, &report_path);
    args.extend([
        "--junit".to_string(),
        sandbox.path().join("junit.xml").display().to_string(),
    ]);
    args.extend(more.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let marker = marker.display().to_string();
    let ran = sandbox.sluice_with_env(&args, &[("FLAKY_MARKER", marker.as_str())])?;
    let text = std::fs::read_to_string(&report_path)
        .with_context(|| format!("no report written (exit {}):\n{}", ran.code, ran.stderr))?;
    Ok((ran, serde_json::from_str(&text)?))
}

fn test_stage(report: &RunReport) -> Result<&sluice::model::report::StageRecord> {
    report.stage("test").context("no test stage in the report")
}

fn key_of(report: &RunReport) -> Result<String> {
    Ok(test_stage(report)?
        .cache
        .as_ref()
        .context("no stage key recorded for the test stage")?
        .key
        .clone())
}

#[test]
fn a_test_that_failed_and_passed_on_identical_inputs_is_proven_flaky_and_can_be_quarantined()
-> Result<()> {
    let sandbox = Sandbox::new()?;
    let made = sandbox
        .program("cargo")
        .args(["new", "--lib", "--vcs", "none", "flakes"])
        .current_dir(sandbox.path())
        .output()?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let project = sandbox.path().join("flakes");
    std::fs::write(project.join("src/lib.rs"), LIB)?;
    std::fs::write(project.join("mode.txt"), "broken\n")?;
    let init = sandbox.command(&["init"]).current_dir(&project).output()?;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let written = std::fs::read_to_string(project.join("pipeline.toml"))?;
    std::fs::remove_file(project.join("pipeline.toml"))?;
    let marker = sandbox.path().join("marker");

    // 1. Fails, under K1.
    let pipeline = pipeline_beside(&sandbox, &written, "")?;
    let (ran, first) = run(&sandbox, &pipeline, &marker, &[])?;
    assert_ne!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        test_stage(&first)?.status,
        StageStatus::Failed,
        "{}",
        ran.stderr
    );
    let k1 = key_of(&first)?;

    // 2. `changes` fixed: another key; `sometimes` fails again.
    std::fs::write(project.join("mode.txt"), "fixed\n")?;
    std::fs::remove_file(&marker)?;
    crate::support::settle();
    let (ran, second) = run(&sandbox, &pipeline, &marker, &[])?;
    let stage = test_stage(&second)?;
    assert_eq!(stage.status, StageStatus::Failed, "{}", ran.stderr);
    let message = stage.message.clone().unwrap_or_default();
    assert!(
        message.contains("1 of 3 tests failed: tests::sometimes"),
        "{message}"
    );
    let k2 = key_of(&second)?;
    assert_ne!(k1, k2, "a changed source file must change the key");

    // 3. With a retry: failed, then passed on identical inputs.
    std::fs::remove_file(&marker)?;
    let pipeline = pipeline_beside(&sandbox, &written, "retries = 1\n")?;
    let (ran, third) = run(&sandbox, &pipeline, &marker, &[])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let stage = test_stage(&third)?;
    assert_eq!(stage.status, StageStatus::Succeeded);
    assert_eq!(stage.earlier_attempts.len(), 1);
    assert_eq!(key_of(&third)?, k2, "the same inputs as run 2");
    let flaky: Vec<(&str, u32)> = stage
        .flaky
        .iter()
        .map(|f| (f.name.as_str(), f.failed_attempt))
        .collect();
    assert_eq!(flaky, [("tests::sometimes", 1)]);
    assert!(
        stage.flaky[0].message.contains("no marker yet"),
        "{:?}",
        stage.flaky
    );
    ran.assert_stderr(&[
        "flaky on identical inputs",
        "tests::sometimes (failed in attempt 1)",
    ]);
    let page = std::fs::read_to_string(Path::new(&third.run_dir).join("report.html"))?;
    assert!(
        page.contains("tests: 3 passed (1 flaky)"),
        "no flaky count on the page"
    );
    let row = |name: &str| {
        page.lines()
            .find(|l| l.contains(&format!("::{name}</td>")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("tests::sometimes").contains("<td>flaky</td>"),
        "{}",
        row("tests::sometimes")
    );
    assert!(
        row("tests::steady").contains("<td>passed</td>"),
        "{}",
        row("tests::steady")
    );
    assert!(
        row("tests::changes").contains("<td>passed</td>"),
        "{}",
        row("tests::changes")
    );
    // Valid against the JUnit schema Jenkins and GitLab read, `flakyFailure` included.
    let junit = crate::support::valid_junit(&sandbox.path().join("junit.xml"))?;
    assert_eq!(junit.matches("<flakyFailure ").count(), 1, "{junit}");
    let case = junit
        .split("<testcase ")
        .find(|c| c.contains("name=\"tests::sometimes\""))
        .context("no testcase for tests::sometimes in the run's JUnit")?;
    assert!(case.contains("<flakyFailure message=\""), "{case}");
    assert!(!case.contains("<failure"), "{case}");

    // The history: `sometimes` under K2 (runs 2 and 3 failed, 3 passed); `changes` failed
    // under K1 and passed under K2 only, so it is not listed.
    let listed = sandbox.sluice(&["runs", "flaky", "--json"])?;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let history: serde_json::Value = serde_json::from_str(&listed.stdout)?;
    let found = history["flaky"].as_array().context("no flaky list")?;
    let tests: Vec<&str> = found.iter().filter_map(|f| f["test"].as_str()).collect();
    assert_eq!(tests.len(), 1, "{}", listed.stdout);
    assert!(
        tests[0].ends_with("::tests::sometimes"),
        "{}",
        listed.stdout
    );
    assert_eq!(found[0]["key"], k2.as_str());
    assert_eq!(
        found[0]["failed_in"],
        serde_json::json!([second.run_id, third.run_id])
    );
    assert_eq!(found[0]["passed_in"], serde_json::json!([third.run_id]));
    let text = sandbox.sluice(&["runs", "flaky"])?;
    assert!(
        text.stdout.contains(&format!("key {:.12}…: failed 2×", k2)),
        "{}",
        text.stdout
    );

    // 3b. The marker inside the workspace: the failed attempt changed the stage's inputs (a
    // program it ran wrote there), so the retry ran on another key and nothing is proven.
    let inside = project.join("marker");
    let (ran, moved) = run(&sandbox, &pipeline, &inside, &[])?;
    std::fs::remove_file(&inside)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let stage = test_stage(&moved)?;
    assert_eq!(stage.earlier_attempts.len(), 1, "{}", ran.stderr);
    assert!(stage.flaky.is_empty(), "{:?}", stage.flaky);
    ran.assert_stderr(&["not marked flaky: the inputs changed between attempts (key"]);

    // 4. Quarantined until a date to come: a failing `sometimes` does not fail the stage.
    std::fs::remove_file(&marker)?;
    let quarantine = "quarantine = [{ test = \"tests::sometimes\", until = \"2099-12-31\" }]\n";
    let pipeline = pipeline_beside(&sandbox, &written, quarantine)?;
    let (ran, fourth) = run(&sandbox, &pipeline, &marker, &["--no-stage-cache"])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let stage = test_stage(&fourth)?;
    assert_eq!(stage.status, StageStatus::Succeeded);
    assert_eq!(stage.quarantined.len(), 1, "{:?}", stage.quarantined);
    assert!(
        stage.quarantined[0].ends_with("::tests::sometimes (quarantined until 2099-12-31)"),
        "{:?}",
        stage.quarantined
    );
    ran.assert_stderr(&[
        "only quarantined tests failed",
        "(quarantined until 2099-12-31)",
    ]);
    assert!(
        stage.outputs.iter().any(|o| o.name == "junit.xml"),
        "published as a success's"
    );

    // 5. Quarantined until a date gone by: refused before anything runs.
    let expired = "quarantine = [{ test = \"tests::sometimes\", until = \"2000-01-01\" }]\n";
    let pipeline = pipeline_beside(&sandbox, &written, expired)?;
    let checked = sandbox.sluice(&["check", &pipeline.display().to_string()])?;
    assert_ne!(checked.code, 0, "{}", checked.stdout);
    let said = format!("{}{}", checked.stdout, checked.stderr);
    assert!(
        said.contains("`tests::sometimes` (until 2000-01-01)"),
        "{said}"
    );
    let (ran, fifth) = run(&sandbox, &pipeline, &marker, &[])?;
    assert_ne!(ran.code, 0);
    ran.assert_stderr(&["quarantine has expired for `tests::sometimes` (until 2000-01-01)"]);
    assert!(
        statuses(&fifth)
            .iter()
            .all(|(name, status)| *name == "test" || *status != StageStatus::Succeeded),
        "{:?}",
        statuses(&fifth)
    );
    assert!(
        fifth.stages.iter().all(|s| s.started_at.is_none()),
        "nothing ran"
    );
    Ok(())
}
