//! Cache volumes: a tool's state kept between runs for the stages granted it and no other, one
//! stage at a time, never inside a folder a stage is given.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice::exit_codes;

use crate::support::{Pipeline, Sandbox, Stage, table};

/// An `exec` stage running `sh -c SCRIPT`, never served from the stage cache.
fn shell(name: &str, script: &str) -> Stage {
    Stage::new(name, "exec")
        .inputs::<0>([])
        .set("cache", false)
        .allow("exec", vec!["sh"])
        .config("program", "sh")
        .config("args", vec!["-c", script])
        .config("log_name", "out.txt")
}

/// The one pipeline folder under the sandbox's volumes, and volume `name` in it.
fn volume(sandbox: &Sandbox, name: &str) -> Result<PathBuf> {
    let root = sandbox.path().join("volumes");
    let scope = std::fs::read_dir(&root)
        .with_context(|| format!("no volumes under {}", root.display()))?
        .flatten()
        .next()
        .context("no pipeline folder under the volumes")?;
    Ok(scope.path().join(name))
}

fn output(report: &sluice::model::report::RunReport, stage: &str) -> Result<String> {
    let path = Path::new(&report.run_dir).join(format!("artifacts/{stage}/out.txt"));
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

#[test]
fn a_volume_keeps_a_tools_state_between_runs_and_only_its_stages_get_it() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = Pipeline::new("volumes")
        .stage(
            shell(
                "build",
                r#"echo run >> "$CARGO_TARGET_DIR/runs"; wc -l < "$CARGO_TARGET_DIR/runs""#,
            )
            .allow("caches", table([("cargo-target", "CARGO_TARGET_DIR")])),
        )
        .stage(shell("other", r#"echo "target=${CARGO_TARGET_DIR:-none}""#));
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    for round in 1..=2 {
        let (ran, report) = sandbox.run(&file)?;
        assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
        assert_eq!(output(&report, "build")?.trim(), round.to_string());
        assert_eq!(output(&report, "other")?.trim(), "target=none");
        // A volume is never an output.
        let build = report.stages.iter().find(|s| s.name == "build");
        let names: Vec<&str> = build
            .map(|s| s.outputs.iter().map(|o| o.name.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["out.txt"]);
    }
    let kept = std::fs::read_to_string(volume(&sandbox, "cargo-target")?.join("runs"))?;
    assert_eq!(kept, "run\nrun\n");
    let listed = sandbox.sluice(&["cache", "ls"])?;
    listed.assert_stdout(&["volume cargo-target", "1 cache volumes"]);
    Ok(())
}

#[test]
fn two_runs_on_one_volume_take_turns() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = Pipeline::new("turns").stage(
        shell(
            "build",
            r#"echo start >> "$CARGO_TARGET_DIR/log"; sleep 1; echo end >> "$CARGO_TARGET_DIR/log""#,
        )
        .allow("caches", table([("cargo-target", "CARGO_TARGET_DIR")])),
    );
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let run = |runs: &str| {
        let mut command = sandbox.command(&[
            "run",
            &file.display().to_string(),
            "--format",
            "plain",
            "--runs-dir",
            &sandbox.path().join(runs).display().to_string(),
        ]);
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn()
    };
    let (first, second) = (run("runs-a")?, run("runs-b")?);
    let (first, second) = (first.wait_with_output()?, second.wait_with_output()?);
    for done in [&first, &second] {
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let log = std::fs::read_to_string(volume(&sandbox, "cargo-target")?.join("log"))?;
    assert_eq!(
        log, "start\nend\nstart\nend\n",
        "the runs used the volume at once"
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&first.stderr),
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        said.contains("waiting for cache volume `cargo-target`"),
        "{said}"
    );
    Ok(())
}

#[test]
fn a_volumes_folder_inside_the_workspace_is_refused_at_the_stage() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(&ws)?;
    let pipeline = Pipeline::new("overlap")
        .set("workspace", "ws")
        .stage(Stage::new("code", "checkout").allow("workspace", "read"));
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let inside = ws.join("volumes");
    let ran = sandbox.sluice_with_env(
        &["run", &file.display().to_string(), "--format", "plain"],
        &[("SLUICE_VOLUMES", &inside.display().to_string())],
    )?;
    assert_eq!(ran.code, exit_codes::INVALID_INPUT, "{}", ran.stderr);
    ran.assert_stderr(&["pipeline.toml:", "overlaps the cache volumes"]);
    assert!(
        !inside.exists(),
        "the volumes folder was made inside the workspace"
    );
    Ok(())
}
