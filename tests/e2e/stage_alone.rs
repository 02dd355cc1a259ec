//! `sluice stage run`: one stage alone, with inputs, config and grants from the command line, or
//! a stage of an earlier run replayed with exactly its inputs; and run folders as input, not
//! authority (`stage run --from`, `report` and `resume` on a folder from elsewhere).

use anyhow::{Context, Result};
use sluice::exit_codes;

use crate::support::{Pipeline, Sandbox, Stage, table};

#[test]
fn one_stage_runs_alone_with_given_inputs_and_replays_from_a_run() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let given = sandbox.path().join("greeting.txt");
    std::fs::write(&given, "hello, stage\n")?;
    let out = sandbox.path().join("out");
    let plugin = crate::support::plugin("text-transform")?
        .display()
        .to_string();
    sandbox
        .sluice(&[
            "stage",
            "run",
            &plugin,
            "--input",
            &format!("code/greeting.txt={}", given.display()),
            "--config",
            "op=upper",
            "--out",
            &out.display().to_string(),
            "--format",
            "plain",
        ])?
        .assert_exit(exit_codes::SUCCESS)
        .assert_stdout(&["stage text-transform succeeded", "greeting.txt"]);
    assert_eq!(
        std::fs::read_to_string(out.join("greeting.txt"))?,
        "HELLO, STAGE\n"
    );

    // Grants are as strict as in a pipeline: no exec unless given.
    let probe = crate::support::plugin("exec-probe")?.display().to_string();
    sandbox
        .sluice(&[
            "stage",
            "run",
            &probe,
            "--config",
            "program=sh",
            "--format",
            "plain",
        ])?
        .assert_exit(exit_codes::STAGE_ERROR);

    // A failed stage of a run, replayed with exactly the inputs it had.
    let pipeline = Pipeline::new("replay")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::new("test", "assert-text")
                .inputs(["code/a.txt"])
                .config("require", ["omega"]),
        );
    let run = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(run.ran.code, exit_codes::STAGE_FAILED, "{}", run.describe());
    let original = run.message("test").to_string();
    let honest = sandbox.path().join("pipeline.toml").display().to_string();
    let replay = sandbox.sluice(&[
        "stage",
        "run",
        "--from",
        &format!("{}/test", run.report.run_id),
        "--pipeline",
        &honest,
        "--format",
        "plain",
    ])?;
    replay.assert_exit(exit_codes::STAGE_FAILED);
    let first_line = original.lines().next().unwrap_or_default();
    replay.assert_stderr(&[first_line]);
    Ok(())
}

/// A run folder is input, not authority: a downloaded folder whose record names its own pipeline
/// (granting a host program) with that pipeline's digest gets nothing run from it; the user's
/// pipeline is the one replayed, and only when it is the one the run was made with and its
/// plugin is the one that ran.
#[test]
fn a_run_folder_cannot_choose_the_pipeline_or_plugin_a_replay_runs() -> Result<()> {
    use sha2::{Digest, Sha256};
    let sandbox = Sandbox::new()?;
    let pipeline = Pipeline::new("replay")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::new("test", "assert-text")
                .inputs(["code/a.txt"])
                .config("require", ["alpha"]),
        );
    let run = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(run.ran.code, 0, "{}", run.describe());
    let run_dir = std::path::PathBuf::from(&run.report.run_dir);
    let honest = sandbox.path().join("pipeline.toml");

    // The folder, edited as an attacker would: its record names their pipeline, with its digest.
    let marker = sandbox.path().join("owned");
    let evil = Pipeline::new("replay")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::new("test", "exec")
                .inputs(["code/a.txt"])
                .allow("exec", vec!["sh"])
                .config("program", "sh")
                .config("args", vec!["-c", &format!("touch '{}'", marker.display())]),
        )
        .to_toml();
    let evil_file = sandbox.pipeline("evil.toml", &evil)?;
    let evil_text = std::fs::read_to_string(&evil_file)?;
    let record_file = run_dir.join("report.json");
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record_file)?)?;
    record["pipeline_file"] = evil_file.display().to_string().into();
    record["pipeline_sha256"] = format!("{:x}", Sha256::digest(evil_text.as_bytes())).into();
    std::fs::write(&record_file, serde_json::to_vec(&record)?)?;
    let from = format!("{}/test", run_dir.display());
    let honest_arg = honest.display().to_string();
    let replay = sandbox.sluice(&[
        "stage",
        "run",
        "--from",
        &from,
        "--pipeline",
        &honest_arg,
        "--format",
        "plain",
    ])?;
    replay
        .assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["is not the pipeline run", "--pipeline FILE"]);
    assert!(
        !marker.exists(),
        "the folder's own pipeline ran its program"
    );

    // The honest record back, but the plugin the run used is not the one the pipeline names now.
    record["pipeline_file"] = honest.display().to_string().into();
    record["pipeline_sha256"] = run.report.pipeline_sha256.clone().into();
    let test = record["stages"]
        .as_array_mut()
        .and_then(|stages| stages.iter_mut().find(|s| s["name"] == "test"))
        .context("no test stage")?;
    test["plugin"]["sha256"] = "0".repeat(64).into();
    std::fs::write(&record_file, serde_json::to_vec(&record)?)?;
    let replay = sandbox.sluice(&[
        "stage",
        "run",
        "--from",
        &from,
        "--pipeline",
        &honest_arg,
        "--format",
        "plain",
    ])?;
    replay
        .assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["is not the one run", "sha256:000000000000"]);

    // `sluice report` on the folder: the page goes in the folder given, not where the record
    // says, and a log reached through a symlink out of the folder is not read into it.
    let elsewhere = sandbox.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere)?;
    record["run_dir"] = elsewhere.display().to_string().into();
    let test = record["stages"]
        .as_array_mut()
        .and_then(|stages| stages.iter_mut().find(|s| s["name"] == "test"))
        .context("no test stage")?;
    test["log"] = "proc/self/environ".into();
    std::fs::write(&record_file, serde_json::to_vec(&record)?)?;
    std::os::unix::fs::symlink("/proc", run_dir.join("proc"))?;
    let canary = "canary-5d41402abc4b2a76";
    let page = sandbox.sluice_with_env(
        &["report", &run_dir.display().to_string()],
        &[("SLUICE_REPORT_CANARY", canary)],
    )?;
    assert_eq!(page.code, 0, "{}", page.stderr);
    assert!(
        !elsewhere.join("report.html").exists(),
        "written where the record said"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html"))?;
    assert!(!html.contains(canary), "the environment reached the page");
    Ok(())
}

#[test]
fn resume_takes_the_pipeline_a_folder_names_only_if_this_user_started_it() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let marker = sandbox.path().join("shipped");
    let pipeline = Pipeline::new("gate")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::new("ship", "exec")
                .inputs(["code/a.txt"])
                .set("approval", "manual")
                .allow("exec", vec!["touch"])
                .config("program", "touch")
                .config("args", vec![marker.display().to_string()]),
        );
    let run = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(
        run.ran.code,
        exit_codes::AWAITING_APPROVAL,
        "{}",
        run.describe()
    );
    let run_dir = std::path::PathBuf::from(&run.report.run_dir);
    let folder = run_dir.display().to_string();
    let record = std::fs::read(run_dir.join("report.json"))?;

    // The same folder as another machine's (or user's) sluice sees it: another per-user key.
    let elsewhere = sandbox.path().join("other-user.key");
    let elsewhere = elsewhere.display().to_string();
    let foreign = sandbox.sluice_with_env(
        &["resume", &folder, "--approve", "ship", "--format", "plain"],
        &[("SLUICE_CACHE_KEY", &elsewhere)],
    )?;
    // State first: the pipeline it names did not run, and the record is as it was.
    assert!(
        !marker.exists(),
        "the recorded pipeline ran: {}",
        foreign.stderr
    );
    assert_eq!(std::fs::read(run_dir.join("report.json"))?, record);
    foreign
        .assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["was not started by sluice as this user", "--pipeline FILE"]);

    // Named by the user, the pipeline runs on that folder.
    let file = sandbox.path().join("pipeline.toml").display().to_string();
    let named = sandbox.sluice_with_env(
        &[
            "resume",
            &folder,
            "--pipeline",
            &file,
            "--approve",
            "ship",
            "--format",
            "plain",
        ],
        &[("SLUICE_CACHE_KEY", &elsewhere)],
    )?;
    assert_eq!(named.code, 0, "{}", named.stderr);
    assert!(marker.exists(), "the approved stage did not run");
    Ok(())
}
