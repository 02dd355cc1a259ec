//! A user's mistakes in pipeline.toml: exit code 2, file:line:column, a hint, nothing run. The
//! pipeline is raw TOML here because the line and column numbers are part of what is tested.

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus::{Error, Succeeded};

use crate::support::{Pipeline, Sandbox, Stage, table};

const GOOD: &str = r#"version = 1
[pipeline]
name = "p"

[[stage]]
name = "code"
plugin = "{plugin:emit}"
[stage.config.files]
"a.txt" = "a"

[[stage]]
name = "build"
plugin = "{plugin:text-transform}"
inputs = ["code/a.txt"]
[stage.config]
op = "upper"
"#;

/// Runs a pipeline made from GOOD with one edit; expects a clean refusal.
fn refused(from: &str, to: &str, expected: &[&str]) -> Result<()> {
    let sandbox = Sandbox::new()?;
    assert!(GOOD.contains(from), "test edit `{from}` does not apply");
    let pipeline = sandbox.pipeline("pipeline.toml", &GOOD.replacen(from, to, 1))?;
    let pipeline = pipeline.display().to_string();
    for command in ["run", "check"] {
        let ran = sandbox.sluice(&[command, &pipeline])?;
        ran.assert_exit(exit_codes::INVALID_INPUT)
            .assert_stderr(expected)
            .assert_stderr(&["= help:"]);
        assert!(
            ran.stderr.starts_with("error: "),
            "{command}: {}",
            ran.stderr
        );
    }
    // Nothing ran: no run folder was created.
    assert!(!sandbox.runs_dir().exists());
    assert!(!sandbox.path().join(".sluice").exists());
    Ok(())
}

#[test]
fn toml_syntax_error_points_at_line_and_column() -> Result<()> {
    refused(
        "op = \"upper\"",
        "op = \"upper",
        &["pipeline.toml:16:", "16 | op = \"upper"],
    )
}

#[test]
fn unknown_key_is_named() -> Result<()> {
    refused(
        "inputs = [",
        "input = [",
        &["pipeline.toml:14:1", "unknown field `input`"],
    )
}

#[test]
fn duplicate_stage_names_both_places() -> Result<()> {
    refused(
        "name = \"build\"",
        "name = \"code\"",
        &[
            "pipeline.toml:12:8",
            "duplicate stage name `code`",
            "line 6",
        ],
    )
}

#[test]
fn input_from_no_earlier_stage_is_refused() -> Result<()> {
    refused(
        "\"code/a.txt\"",
        "\"deploy/a.txt\"",
        &[
            "pipeline.toml:14:11",
            "names no earlier stage `deploy`",
            "earlier stages are: code",
        ],
    )
}

#[test]
fn missing_version_is_refused() -> Result<()> {
    refused("version = 1\n", "", &["missing field `version`"])
}

#[test]
fn a_missing_pipeline_file_is_a_clear_error() -> Result<()> {
    let sandbox = Sandbox::new()?;
    sandbox
        .sluice(&["run", "no/such/pipeline.toml"])?
        .assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["no/such/pipeline.toml: cannot read the pipeline file"]);
    Ok(())
}

#[test]
fn an_input_that_was_not_produced_stops_at_that_stage() -> Result<()> {
    // Valid statically (stage `code` exists), but `code` never publishes `b.txt`.
    let run = Sandbox::new()?.run_pipeline(
        &Pipeline::new("p")
            .stage(Stage::new("code", "emit").config("files", table([("a.txt", "a")])))
            .stage(
                Stage::new("build", "text-transform")
                    .inputs(["code/b.txt"])
                    .config("op", "upper"),
            ),
    )?;
    run.assert_stages(
        exit_codes::STAGE_ERROR,
        &[("code", Succeeded), ("build", Error)],
    )
    .assert_message(
        "build",
        &["input `code/b.txt` was not produced", "published a.txt"],
    );
    Ok(())
}

#[test]
fn a_malformed_lock_is_an_input_error_at_its_line_and_nothing_runs() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // Port 9 (discard): nothing may be fetched anyway, the lock is read first.
    let pipeline = sandbox.pipeline(
        "pipeline.toml",
        "version = 1\n[pipeline]\nname = \"p\"\n\n[[stage]]\nname = \"code\"\n\
         plugin = \"oci://127.0.0.1:9/acme/emit:1.0.0\"\n",
    )?;
    std::fs::write(
        sandbox.path().join("pipeline.lock"),
        "version = 1\n[[plugin]]\nreference = 3\n",
    )?;
    let pipeline = pipeline.display().to_string();
    for command in ["run", "check", "lock"] {
        sandbox
            .sluice(&[command, &pipeline])?
            .assert_exit(exit_codes::INVALID_INPUT)
            .assert_stderr(&["pipeline.lock:3:13", "reference = 3", "= help:"]);
    }
    assert!(!sandbox.runs_dir().exists());
    Ok(())
}

#[test]
fn devices_fifos_folders_and_loops_named_in_a_pipeline_are_refused_at_their_line() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let fifo = sandbox.path().join("fifo");
    anyhow::ensure!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()?
            .success(),
        "mkfifo failed"
    );
    std::os::unix::fs::symlink(sandbox.path().join("loop-b"), sandbox.path().join("loop-a"))?;
    std::os::unix::fs::symlink(sandbox.path().join("loop-a"), sandbox.path().join("loop-b"))?;
    std::fs::write(sandbox.path().join("a-file"), "not a folder")?;
    let emit = crate::support::plugin("emit")?.display().to_string();
    let cases: Vec<(String, &str)> = vec![
        (
            "[[stage]]\nname = \"s\"\nplugin = \"/dev/zero\"\n".to_string(),
            "plugin /dev/zero is a device",
        ),
        (
            "[[stage]]\nname = \"s\"\nplugin = \"fifo\"\n".to_string(),
            "is a FIFO (named pipe)",
        ),
        (
            "[[stage]]\nname = \"s\"\nplugin = \".\"\n".to_string(),
            "is a directory, not a regular file",
        ),
        (
            "[[stage]]\nname = \"s\"\nplugin = \"loop-a\"\n".to_string(),
            "is a symlink loop",
        ),
        (
            format!(
                "[secrets]\nT = {{ file = \"/dev/zero\" }}\n[[stage]]\nname = \"s\"\nplugin = \"{emit}\"\n"
            ),
            "secret `T` /dev/zero is a device",
        ),
        (
            format!(
                "[secrets]\nT = {{ file = \"fifo\" }}\n[[stage]]\nname = \"s\"\nplugin = \"{emit}\"\n"
            ),
            "is a FIFO",
        ),
        (
            format!(
                "[[stage]]\nname = \"s\"\nplugin = \"{emit}\"\n[stage.allow]\ndirs = [{{ host = \"a-file\", guest = \"/d\" }}]\n"
            ),
            "is a regular file, not a directory",
        ),
    ];
    for (body, expected) in cases {
        let text = format!("version = 1\n[pipeline]\nname = \"p\"\n{body}");
        let file = sandbox.pipeline("pipeline.toml", &text)?;
        for command in ["check", "run"] {
            let ran = sandbox.sluice_within(&[command, &file.display().to_string()], 20)?;
            ran.assert_exit(exit_codes::INVALID_INPUT)
                .assert_stderr(&[expected, "pipeline.toml:"]);
        }
    }
    // The pipeline file itself, and a lock, are read the same way.
    let ran = sandbox.sluice_within(&["check", "/dev/zero"], 20)?;
    ran.assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["cannot read the pipeline file: it is a device"]);
    let ran = sandbox.sluice_within(&["run", &fifo.display().to_string()], 20)?;
    ran.assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["FIFO"]);
    assert!(!sandbox.runs_dir().exists(), "nothing ran");
    Ok(())
}
