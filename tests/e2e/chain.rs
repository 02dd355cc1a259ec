//! A passing chain: artifacts flow from stage to stage, are hashed correctly, and are recorded.

use anyhow::{Context, Result};
use sluice::model::report::{RunStatus, StageStatus};

use crate::support::{Pipeline, Sandbox, Stage, repo_root, sha256_of, table};

#[test]
fn hello_example_passes_artifacts_down_the_chain() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "stderr:\n{}", ran.stderr);
    assert_eq!(report.status, RunStatus::Succeeded);
    let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["code", "build", "test", "release"]);
    assert!(
        report
            .stages
            .iter()
            .all(|s| s.status == StageStatus::Succeeded)
    );

    let run_dir = std::path::PathBuf::from(&report.run_dir);
    assert!(
        run_dir.starts_with(sandbox.runs_dir()),
        "run dir {}",
        run_dir.display()
    );
    // Every recorded output exists with the recorded size and digest.
    for stage in &report.stages {
        for artifact in &stage.outputs {
            let file = run_dir.join(&artifact.path);
            assert_eq!(
                sha256_of(&file)?,
                artifact.sha256,
                "{}",
                artifact.reference()
            );
            assert_eq!(std::fs::metadata(&file)?.len(), artifact.size);
        }
    }
    // The build stage really transformed what the code stage produced.
    let upper = std::fs::read_to_string(run_dir.join("artifacts/build/greeting.txt"))?;
    assert_eq!(upper, "HELLO, SLUICE\nSTAGES ARE WASM COMPONENTS\n");
    // Only the granted input reached the test stage.
    let test = report.stage("test").context("no test stage")?;
    assert_eq!(test.inputs, ["build/greeting.txt"]);
    assert_eq!(test.phase.as_deref(), Some("test"));
    assert_eq!(test.plugin.name.as_deref(), Some("assert-text"));
    // SHA256SUMS lists exactly the build outputs with the digests the host recorded.
    let build = report.stage("build").context("no build stage")?;
    let sums = std::fs::read_to_string(run_dir.join("artifacts/release/SHA256SUMS"))?;
    let mut expected: Vec<String> = build
        .outputs
        .iter()
        .map(|a| format!("{}  build/{}", a.sha256, a.name))
        .collect();
    expected.sort();
    assert_eq!(sums.lines().collect::<Vec<_>>(), expected);
    // Logs are stored per stage and streamed with the stage's name.
    let log = std::fs::read_to_string(run_dir.join("logs/code.log"))?;
    assert!(log.contains("wrote greeting.txt"), "{log}");
    assert!(
        ran.stderr.contains("[code] info   | wrote greeting.txt"),
        "{}",
        ran.stderr
    );
    // The run folder holds the same report.
    let stored: sluice::model::report::RunReport =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json"))?)?;
    assert_eq!(stored, report);
    assert!(sandbox.runs_dir().join("latest").exists());
    Ok(())
}

#[test]
fn json_format_streams_every_event_in_order() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let ran = sandbox.sluice(&[
        "run",
        &pipeline.display().to_string(),
        "--format",
        "json",
        "--runs-dir",
        &sandbox.runs_dir().display().to_string(),
    ])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let events: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run-started"));
    assert_eq!(kinds.last(), Some(&"run-finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "stage-finished").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "plugin-ready").count(), 4);
    assert!(kinds.contains(&"artifact-written") && kinds.contains(&"log"));
    Ok(())
}

/// A stage sees, under `/in/<stage>`, exactly the artifacts it chose: all of an earlier stage's
/// (handed over as that stage's own folder, read-only, nothing linked) or only the ones it named
/// (linked into a folder of their own) — never a file it did not ask for.
#[test]
fn a_stage_sees_exactly_the_inputs_it_chose_and_nothing_is_left_behind() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let list = |name: &str| {
        Stage::new(name, "escape")
            .config("mode", "list")
            .config("path", "/in/code")
    };
    let pipeline = Pipeline::new("t")
        .stage(
            Stage::new("code", "emit")
                .phase("code")
                .config("files", table([("a.txt", "alpha\n"), ("b.txt", "beta\n")])),
        )
        .stage(list("every"))
        .stage(list("one").inputs(["code/a.txt"]));
    let run = sandbox.run_pipeline(&pipeline)?;
    run.assert_stages(
        0,
        &[
            ("code", StageStatus::Succeeded),
            ("every", StageStatus::Succeeded),
            ("one", StageStatus::Succeeded),
        ],
    );
    let seen = |stage: &str| -> Result<Vec<String>> {
        let text =
            std::fs::read_to_string(run.run_dir().join(format!("artifacts/{stage}/loot.txt")))?;
        let mut names: Vec<String> = text.lines().map(str::to_string).collect();
        names.sort();
        Ok(names)
    };
    assert_eq!(seen("every")?, ["a.txt", "b.txt"]);
    assert_eq!(
        seen("one")?,
        ["a.txt"],
        "a stage that named a.txt saw b.txt"
    );
    // The published files are intact, and no scratch folder remains.
    for artifact in &run.stage("code").outputs {
        assert_eq!(
            sha256_of(&run.run_dir().join(&artifact.path))?,
            artifact.sha256
        );
    }
    let work = run.run_dir().join("work");
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", work.display());
    Ok(())
}
