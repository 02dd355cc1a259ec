//! Secrets: masked wherever a plugin prints them, never on disk, and a missing one stops the
//! stage before it runs.

use super::*;

const SECRET: &str = "s3cr3t-t0ken-9f8e7d";

/// `secret-leak`, granted the secret TOKEN and told to leak it.
fn leak() -> Stage {
    attack("secret-leak")
        .allow("secrets", ["TOKEN"])
        .config("name", "TOKEN")
}

/// `stage` between `code` and `release`, with TOKEN read from CI_TEST_TOKEN.
fn with_token(stage: Stage) -> Pipeline {
    Pipeline::three_stage(stage).secret("TOKEN", table([("env", "CI_TEST_TOKEN")]))
}

/// Runs `pipeline` with the secret in the environment.
fn run_with_secret(sandbox: &Sandbox, pipeline: &Pipeline) -> Result<Outcome> {
    sandbox.run_pipeline_with_env(pipeline, &[("CI_TEST_TOKEN", SECRET)])
}

/// The secret appears nowhere sluice wrote or printed.
fn assert_secret_nowhere(sandbox: &Sandbox, ran: &Ran) {
    assert!(
        !ran.stderr.contains(SECRET) && !ran.stdout.contains(SECRET),
        "{}",
        ran.stderr
    );
    for (path, text) in all_text_under(sandbox.path()) {
        assert!(
            !text.contains(SECRET),
            "secret stored in {}",
            path.display()
        );
    }
}

#[test]
fn a_printed_secret_is_masked_everywhere() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let run = run_with_secret(&sandbox, &with_token(leak()))?;
    // State first: the secret is nowhere; then where the masked text went.
    assert_secret_nowhere(&sandbox, &run.ran);
    run.assert_stages(0, &all_succeeded("attack"));
    let log = run.file("logs/attack.log")?;
    for channel in [
        "stdout: the secret is ***",
        "stderr: the secret is ***",
        "log: the secret is ***",
    ] {
        assert!(log.contains(channel), "{channel} not in {log}");
    }
    assert_eq!(
        run.stage("attack").summary.as_deref(),
        Some("summary: the secret is ***")
    );
    Ok(())
}

#[test]
fn a_secret_in_a_failure_message_or_an_output_never_reaches_disk() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let run = run_with_secret(&sandbox, &with_token(leak().config("fail", true)))?;
    // State first: the secret is nowhere; then the message, masked.
    assert_secret_nowhere(&sandbox, &run.ran);
    assert_stopped(&run, Failed, &[])?;
    assert_eq!(
        run.message("attack"),
        "failure: the secret is ***",
        "{}",
        run.describe()
    );

    let sandbox = Sandbox::new()?;
    let run = run_with_secret(&sandbox, &with_token(leak().config("into_output", true)))?;
    // State first: the secret is nowhere, and the output that held it is gone from the folder
    // and the record.
    assert_secret_nowhere(&sandbox, &run.ran);
    let out = run.run_dir().join("artifacts/attack");
    assert!(
        !out.join("leak.txt").exists(),
        "leak.txt left in {}",
        out.display()
    );
    assert!(run.stage("attack").outputs.is_empty());
    assert_stopped(
        &run,
        Error,
        &["output `leak.txt` was refused and deleted: it contained a secret value"],
    )?;
    Ok(())
}

#[test]
fn an_unset_secret_stops_the_stage_before_it_runs() -> Result<()> {
    let run = Sandbox::new()?.run_pipeline(&with_token(leak()))?;
    // State first: secrets are loaded while plugins are prepared, so nothing ran at all: no
    // stage left an output, and the plugin printed nothing.
    assert_nothing_ran(&run);
    assert_nowhere(run.run_dir(), &run.ran, &["the secret is"], &[]);
    run.assert_stages(exit_codes::STAGE_ERROR, &refused_before_running("attack"))
        .assert_message(
            "attack",
            &["secret `TOKEN` cannot be loaded: environment variable `CI_TEST_TOKEN` is not set"],
        );
    Ok(())
}
