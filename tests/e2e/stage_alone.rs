//! `sluice stage run`: one stage alone, with inputs, config and grants from the command line, or
//! a stage of an earlier run replayed with exactly its inputs.

use anyhow::Result;
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
    let replay = sandbox.sluice(&[
        "stage",
        "run",
        "--from",
        &format!("{}/test", run.report.run_id),
        "--format",
        "plain",
    ])?;
    replay.assert_exit(exit_codes::STAGE_FAILED);
    let first_line = original.lines().next().unwrap_or_default();
    replay.assert_stderr(&[first_line]);
    Ok(())
}
