//! The three failure shapes — failed, crashed, error — each stop the chain with its own status
//! and exit code, skip the rest, and leave finished stages' artifacts intact.

use std::time::{Duration, Instant};

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::RunStatus;
use sluice::model::report::StageStatus::{Crashed, Error, Failed};

use crate::support::{
    Outcome, Pipeline, Ran, Sandbox, Stage, assert_first_stage_intact, refused_before_running,
    repo_root, stopped_at,
};

#[test]
fn a_failing_stage_stops_the_chain() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let run: Outcome = sandbox
        .run(&repo_root().join("examples/fail-fast/pipeline.toml"))?
        .into();
    run.assert_stages(exit_codes::STAGE_FAILED, &stopped_at("test", Failed))
        .assert_message("test", &["forbidden text \"TODO\"", "code/notes.txt:2"])
        .assert_message("release", &["stage `test` failed"]);
    assert_eq!(run.report.status, RunStatus::Failed);
    let release = run.stage("release");
    assert!(release.duration_ms.is_none() && release.outputs.is_empty());
    assert_first_stage_intact(&run.report)?;
    // A failed stage's own files stay on disk for inspection but are not published.
    assert!(
        run.run_dir()
            .join("artifacts/test/assert-report.txt")
            .is_file()
    );
    assert!(run.stage("test").outputs.is_empty());
    Ok(())
}

#[test]
fn a_panicking_plugin_is_reported_as_crashed() -> Result<()> {
    let run = Sandbox::new()?.run_pipeline(&Pipeline::three_stage(Stage::new("boom", "panic")))?;
    run.assert_stages(exit_codes::STAGE_CRASHED, &stopped_at("boom", Crashed))
        .assert_message("boom", &["trapped", "unreachable", "index out of bounds"]);
    assert_eq!(run.report.status, RunStatus::Crashed);
    assert_first_stage_intact(&run.report)
}

#[test]
fn a_broken_output_contract_is_an_error_and_keeps_earlier_artifacts() -> Result<()> {
    let run = Sandbox::new()?
        .run_pipeline(&Pipeline::three_stage(Stage::new("liar", "phantom-output")))?;
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("liar", Error))
        .assert_message("liar", &["`never-written.bin` was not written"]);
    assert_eq!(run.report.status, RunStatus::Error);
    assert_first_stage_intact(&run.report)
}

#[test]
fn an_output_named_to_escape_is_refused() -> Result<()> {
    let run = Sandbox::new()?.run_pipeline(&Pipeline::three_stage(
        Stage::new("liar", "phantom-output").config("name", "../../escape"),
    ))?;
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("liar", Error))
        .assert_message("liar", &["invalid name", "`..`"]);
    Ok(())
}

/// Plugins the host cannot run: each is an error before anything runs.
fn assert_plugin_refused(plugin: impl std::fmt::Display, expected: &[&str]) -> Result<()> {
    let run =
        Sandbox::new()?.run_pipeline(&Pipeline::three_stage(Stage::with_plugin("bad", plugin)))?;
    // Plugins are checked before any stage runs, so nothing ran at all.
    run.assert_stages(exit_codes::STAGE_ERROR, &refused_before_running("bad"))
        .assert_message("bad", expected);
    assert_eq!(run.report.status, RunStatus::Error);
    run.ran.assert_stderr(&expected[..1]);
    Ok(())
}

#[test]
fn a_missing_plugin_file_is_an_error() -> Result<()> {
    assert_plugin_refused(
        "plugins/nope.wasm",
        &[
            "does not exist",
            "nope.wasm",
            "relative to the pipeline file",
        ],
    )
}

#[test]
fn a_file_that_is_not_wasm_is_an_error() -> Result<()> {
    assert_plugin_refused(
        repo_root().join("README.md").display(),
        &["is not a WebAssembly file"],
    )
}

#[test]
fn a_core_module_is_an_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let module = dir.path().join("core.wasm");
    // The smallest valid core module: magic and version 1.
    std::fs::write(&module, b"\0asm\x01\0\0\0")?;
    assert_plugin_refused(
        module.display(),
        &[
            "is a core WebAssembly module, not a component",
            "wasm-tools component new",
        ],
    )
}

#[test]
fn a_component_of_another_world_is_an_error() -> Result<()> {
    assert_plugin_refused(
        "{plugin:not-a-stage}",
        &[
            "not a sluice stage",
            "does not export `describe` and `run`",
            "wasi:cli/run",
        ],
    )
}

#[test]
fn a_truncated_component_is_an_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bytes = std::fs::read(crate::support::plugin("emit")?)?;
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, &bytes[..bytes.len() / 2])?;
    assert_plugin_refused(broken.display(), &["is not a valid WebAssembly component"])
}

#[test]
fn an_endless_loop_is_stopped_by_the_stage_timeout() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let started = Instant::now();
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        Stage::new("spin", "busy-loop").limit("timeout", "1s"),
    ))?;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout did not stop it"
    );
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("spin", Error))
        .assert_message("spin", &["exceeded its 1s timeout"]);
    assert_first_stage_intact(&run.report)
}

#[test]
fn ctrl_c_stops_the_running_stage_and_the_run_is_recorded() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = sandbox.write(&Pipeline::three_stage(
        Stage::new("spin", "busy-loop").limit("timeout", "5m"),
    ))?;
    let report_path = sandbox.path().join("report.json");
    let child = sandbox
        .command(&["run", &pipeline.display().to_string(), "--format", "plain"])
        .arg("--runs-dir")
        .arg(sandbox.runs_dir())
        .arg("--report")
        .arg(&report_path)
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Wait until the endless stage is running (its log exists: it is made when the stage
    // starts, and an interrupt from then on stops the stage), then press Ctrl-C.
    let started = Instant::now();
    let running = || {
        std::fs::read_dir(sandbox.runs_dir())
            .into_iter()
            .flatten()
            .flatten()
            .any(|run| run.path().join("logs/spin.log").exists())
    };
    while !running() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stage never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    assert!(sent.success());
    let output = child.wait_with_output()?;
    let ran = Ran {
        command: format!("sluice run {} (interrupted)", pipeline.display()),
        code: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::new(),
    };
    ran.assert_no_panic();
    let report = serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
    let run = Outcome::from((ran, report));
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("spin", Error))
        .assert_message("spin", &["interrupted (Ctrl-C)"]);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_first_stage_intact(&run.report)
}
