//! The three failure shapes — failed, crashed, error — each stop the chain with its own status
//! and exit code, skip the rest, and leave finished stages' artifacts intact.

use anyhow::{Context, Result};
use sluice::exit_codes;
use sluice::model::report::{RunStatus, StageStatus};

use crate::support::{Sandbox, assert_first_stage_intact, repo_root, statuses, three_stage};

#[test]
fn a_failing_stage_stops_the_chain() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ran, report) = sandbox.run(&repo_root().join("examples/fail-fast/pipeline.toml"))?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Succeeded,
            StageStatus::Failed,
            StageStatus::Skipped
        ]
    );
    let test = report.stage("test").context("no test stage")?;
    let message = test.message.as_deref().unwrap_or_default();
    assert!(message.contains("forbidden text \"TODO\""), "{message}");
    assert!(message.contains("code/notes.txt:2"), "{message}");
    let release = report.stage("release").context("no release stage")?;
    assert!(
        release
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("stage `test` failed")
    );
    assert!(release.duration_ms.is_none() && release.outputs.is_empty());
    assert_first_stage_intact(&report)?;
    // A failed stage's own files stay on disk for inspection but are not published.
    assert!(
        std::path::Path::new(&report.run_dir)
            .join("artifacts/test/assert-report.txt")
            .is_file()
    );
    assert!(test.outputs.is_empty());
    Ok(())
}

#[test]
fn a_panicking_plugin_is_reported_as_crashed() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = three_stage(
        &sandbox,
        "[[stage]]\nname = \"boom\"\nplugin = \"{plugin:panic}\"\n",
    )?;
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, exit_codes::STAGE_CRASHED, "{}", ran.stderr);
    assert_eq!(report.status, RunStatus::Crashed);
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Succeeded,
            StageStatus::Crashed,
            StageStatus::Skipped
        ]
    );
    let boom = report.stage("boom").context("no boom stage")?;
    let message = boom.message.as_deref().unwrap_or_default();
    assert!(message.contains("trapped"), "{message}");
    assert!(message.contains("unreachable"), "{message}");
    assert!(message.contains("index out of bounds"), "{message}");
    assert_first_stage_intact(&report)?;
    Ok(())
}

#[test]
fn a_broken_output_contract_is_an_error_and_keeps_earlier_artifacts() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = three_stage(
        &sandbox,
        "[[stage]]\nname = \"liar\"\nplugin = \"{plugin:phantom-output}\"\n",
    )?;
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    assert_eq!(report.status, RunStatus::Error);
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Succeeded,
            StageStatus::Error,
            StageStatus::Skipped
        ]
    );
    let message = report
        .stage("liar")
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("`never-written.bin` was not written"),
        "{message}"
    );
    assert_first_stage_intact(&report)?;
    Ok(())
}

#[test]
fn an_output_named_to_escape_is_refused() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = three_stage(
        &sandbox,
        "[[stage]]\nname = \"liar\"\nplugin = \"{plugin:phantom-output}\"\n[stage.config]\nname = \"../../escape\"\n",
    )?;
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    let message = report
        .stage("liar")
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(message.contains("invalid name"), "{message}");
    assert!(message.contains("`..`"), "{message}");
    Ok(())
}

/// Plugins the host cannot run: each is an error before anything runs.
fn assert_plugin_refused(plugin_line: &str, expected: &[&str]) -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = three_stage(
        &sandbox,
        &format!("[[stage]]\nname = \"bad\"\n{plugin_line}\n"),
    )?;
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    assert_eq!(report.status, RunStatus::Error);
    // Plugins are checked before any stage runs, so nothing ran at all.
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Skipped,
            StageStatus::Error,
            StageStatus::Skipped
        ]
    );
    let message = report
        .stage("bad")
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    for part in expected {
        assert!(message.contains(part), "`{part}` not in: {message}");
    }
    assert!(ran.stderr.contains(expected[0]), "{}", ran.stderr);
    Ok(())
}

#[test]
fn a_missing_plugin_file_is_an_error() -> Result<()> {
    assert_plugin_refused(
        "plugin = \"plugins/nope.wasm\"",
        &[
            "does not exist",
            "nope.wasm",
            "relative to the pipeline file",
        ],
    )
}

#[test]
fn a_file_that_is_not_wasm_is_an_error() -> Result<()> {
    let text = repo_root().join("README.md");
    assert_plugin_refused(
        &format!("plugin = \"{}\"", text.display()),
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
        &format!("plugin = \"{}\"", module.display()),
        &[
            "is a core WebAssembly module, not a component",
            "wasm-tools component new",
        ],
    )
}

#[test]
fn a_component_of_another_world_is_an_error() -> Result<()> {
    assert_plugin_refused(
        "plugin = \"{plugin:not-a-stage}\"",
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
    assert_plugin_refused(
        &format!("plugin = \"{}\"", broken.display()),
        &["is not a valid WebAssembly component"],
    )
}

#[test]
fn an_endless_loop_is_stopped_by_the_stage_timeout() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = three_stage(
        &sandbox,
        "[[stage]]\nname = \"spin\"\nplugin = \"{plugin:busy-loop}\"\nlimits = { timeout = \"1s\" }\n",
    )?;
    let started = std::time::Instant::now();
    let (ran, report) = sandbox.run(&pipeline)?;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the timeout did not stop it"
    );
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Succeeded,
            StageStatus::Error,
            StageStatus::Skipped
        ]
    );
    let message = report
        .stage("spin")
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(message.contains("exceeded its 1s timeout"), "{message}");
    assert_first_stage_intact(&report)?;
    Ok(())
}

#[test]
fn ctrl_c_stops_the_running_stage_and_the_run_is_recorded() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = three_stage(
        &sandbox,
        "[[stage]]\nname = \"spin\"\nplugin = \"{plugin:busy-loop}\"\nlimits = { timeout = \"5m\" }\n",
    )?;
    let report_path = sandbox.path().join("report.json");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &pipeline.display().to_string(), "--format", "plain"])
        .arg("--runs-dir")
        .arg(sandbox.runs_dir())
        .arg("--report")
        .arg(&report_path)
        .env("SLUICE_CACHE_DIR", sandbox.cache_dir())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Wait until the endless stage is running (its log exists), then press Ctrl-C.
    let started = std::time::Instant::now();
    let running = || {
        std::fs::read_dir(sandbox.runs_dir())
            .into_iter()
            .flatten()
            .flatten()
            .any(|run| run.path().join("logs/spin.log").exists())
    };
    while !running() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the stage never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    assert!(sent.success());
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(exit_codes::STAGE_ERROR),
        "{stderr}"
    );
    let report: sluice::model::report::RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Succeeded,
            StageStatus::Error,
            StageStatus::Skipped
        ]
    );
    let message = report
        .stage("spin")
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(message.contains("interrupted (Ctrl-C)"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_first_stage_intact(&report)?;
    Ok(())
}
